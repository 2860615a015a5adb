#pragma once

// The admin HTTP server on agent.admin.listen:
//   GET  /metrics                                   Prometheus text (metrics.h)
//   GET  /health                                    200 while the daemon's main loop ticks, else 503
//   GET  /ready                                     200 while inputs run and the queue does not block them
//   GET  /api/v1/breakers, /api/v1/breakers/{sink}  breaker views (breaker_view.h)
//   POST /api/v1/breakers/{sink}/{force-open|force-close|reset|auto}
//   POST /api/v1/reload                             runs the reload hook
// Every answer is JSON except /metrics; an unknown path is a 404 with a JSON error.
//
// POSTs change what the agent does, so they are guarded, in this order:
// - A request a web browser sends on behalf of a page is refused (403): any `Origin` header, or
//   `Sec-Fetch-Site: cross-site` or `same-site`. No browser page can drive the API, whatever it is.
// - A POST must carry `Content-Type: application/json` or an `X-Requested-By` header (415 otherwise):
//   an HTML form can send neither, and a script cannot without a CORS preflight, which is never granted.
// - With agent.admin.token set, `Authorization: Bearer <token>` (401 otherwise). Without a token, POSTs
//   are refused (403) unless the listener's bound address is a loopback address (decided on the bound
//   socket, not on how the host was written), where only local users reach it.
// On a loopback listener every request must name localhost or a loopback address in `Host` (421
// otherwise), so a page that points its own host name at 127.0.0.1 (DNS rebinding) reads nothing.
// Every accepted action is logged with the peer, the action and the breaker state before and after.
//
// NOTE on threads:
// - The daemon's main thread calls bind(), start(), heartbeat() and stop(), in that order.
// - start() runs httplib's accept loop on a thread of its own; each accepted connection waits in the
//   RequestIntake (request_intake.h) until its request has arrived whole, then one of kThreads serving
//   threads answers it, or the probes' own thread for /health and /ready. So slow or idle clients
//   hold no serving thread, and the probes answer while other requests are slow. One request per
//   connection: every answer closes it.
// - Handlers walk pipeline.runners() and inputs() afresh on every request and keep no pointer into
//   them between requests: a reload may replace the runners and inputs between two requests.
// - lastBeatNs_, serving_, loopEnded_ and lastRefusalLogNs_ are atomics; reloadMutex_ lets one reload
//   run at a time. Nothing else is shared between requests.
//
// IMPORTANT: stop() returns only after the requests in progress have finished, so the pipeline must
// outlive stop(), not only the constructor's call: the daemon stops the server before the pipeline.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "agent/pipeline/reload.h"
#include "config/config.h"

namespace httplib {
struct Request;
struct Response;
}  // namespace httplib

namespace logcapture::agent {
class Pipeline;
}

namespace logcapture::agent::admin {

class AdminHttp;
class RequestIntake;

class AdminServer {
 public:
  using Reload = std::function<ReloadOutcome()>;
  static constexpr int kThreads = 3;
  // /health fails once the main loop has not ticked for this long (tests shorten it).
  static constexpr std::chrono::milliseconds kHeartbeatStale{5000};
  // Refused POSTs are logged at most once per this interval.
  static constexpr std::chrono::seconds kRefusalLogInterval{10};
  // A client has this long from connecting to sending its whole request, and to reading the answer.
  static constexpr std::chrono::seconds kRequestTimeout{5};

  AdminServer(const config::AdminConfig& cfg, Pipeline& pipeline, Reload reload,
              std::chrono::milliseconds heartbeatStale = kHeartbeatStale);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Binds the listen address; false (logged, with the reason) when it cannot. Nothing is served until
  // start(), so a bad address fails the agent before its pipeline runs. True at once when the admin
  // server is turned off (listen: "").
  bool bind();
  // Serves requests until stop().
  void start();
  // Stops accepting, waits for the requests in progress, and returns. Idempotent.
  void stop();
  // Called by the daemon's main loop on each turn.
  void heartbeat();

  bool enabled() const { return !listen_.empty(); }
  // The bound port (useful with port 0); 0 before bind() or when turned off.
  int port() const { return port_; }

 private:
  enum class Access { Allowed, CrossSite, NotJson, Unauthorized, Forbidden };

  void routes();
  Access authorize(const httplib::Request& req) const;
  // False (answered) when the request may not change anything.
  bool admit(const httplib::Request& req, httplib::Response& res, std::string_view what) const;
  // Every POST: the breaker actions and the reload.
  void post(const httplib::Request& req, httplib::Response& res) const;
  void health(httplib::Response& res) const;
  void ready(httplib::Response& res) const;
  void listBreakers(httplib::Response& res) const;
  void showBreaker(const std::string& sink, httplib::Response& res) const;
  void actOnBreaker(const httplib::Request& req, const std::string& sink, const std::string& action,
                    httplib::Response& res) const;
  void reload(const httplib::Request& req, httplib::Response& res) const;

  const std::string listen_;
  const std::string token_;
  Pipeline& pipeline_;
  const Reload reload_;
  bool loopback_ = false;  // the bound address is a loopback address
  int port_ = 0;
  std::unique_ptr<AdminHttp> server_;
  std::unique_ptr<RequestIntake> intake_;
  std::thread thread_;
  std::atomic<std::int64_t> lastBeatNs_;
  std::atomic<bool> serving_{false};  // between start() and stop(): the pipeline runs
  std::atomic<bool> loopEnded_{false};
  mutable std::atomic<std::int64_t> lastRefusalLogNs_{INT64_MIN / 2};
  mutable std::mutex reloadMutex_;
  const std::chrono::steady_clock::time_point startedAt_;
  const std::chrono::milliseconds heartbeatStale_;
};

}  // namespace logcapture::agent::admin
