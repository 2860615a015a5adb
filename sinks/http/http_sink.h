#pragma once

// The HTTP sink: each batch is one request (POST or PUT) in the configured format, through libcurl.
// With format loki, a url without a path gets Loki's /loki/api/v1/push. probe() GETs health_url (else
// url); a 2xx or a 405 (the endpoint is there and wants a POST) is Success, any other answer and any
// transfer error Retriable. Statuses and errors are classed by the tables of http_body.h: only what the
// records caused is Permanent.
//
// NOTE on threads:
// - start() and stop() run on the pipeline's thread, before the first and after the last send().
// - send() and probe() run on the runner's `workers` threads at once. Each call takes one Connection
//   (a curl easy handle with its buffers) from the pool for the whole request and gives it back after,
//   so a handle is only ever used by one thread at a time and keeps its TCP/TLS connection between
//   batches. At most `workers` connections exist; a call that finds none free waits for one until its
//   deadline.
// - mutex_ guards idle_ and created_; available_ signals a returned connection. Nothing else is shared
//   and mutable: the header list, body builder and settings are fixed by start().
// - stats() counters are relaxed atomics, readable from any thread.
//
// What a caller may rely on: the sink never retries and never sleeps for backoff; every call returns
// by its deadline (capped by the sink's `timeout`) plus a little; curl never raises signals.

#include <curl/curl.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "config/config.h"
#include "sinks/http/http_body.h"
#include "sinks/http/http_config.h"
#include "sinks/sink.h"

namespace logcapture::sinks::http {

struct HttpStats {
  std::atomic<std::uint64_t> requests{0};      // requests attempted, probes included
  std::atomic<std::uint64_t> retriable{0};     // failures by class: transfer errors, 3xx, most 4xx, 5xx
  std::atomic<std::uint64_t> throttled{0};     // 429
  std::atomic<std::uint64_t> permanent{0};     // 400, 413, 422: refused for what the body holds
  std::atomic<std::uint64_t> itemFailures{0};  // records refused inside a 2xx bulk answer
  std::atomic<std::uint64_t> bytesSent{0};     // request bodies as sent (after compression)
  std::atomic<std::uint64_t> connections{0};   // TCP connections opened; stays low while reuse works
  std::atomic<std::int64_t> inFlight{0};       // requests under way now
};

class HttpSink final : public Sink {
 public:
  explicit HttpSink(const config::SinkConfig& cfg);
  ~HttpSink() override;
  HttpSink(const HttpSink&) = delete;
  HttpSink& operator=(const HttpSink&) = delete;

  std::optional<std::string> start() override;
  SendResult send(const Batch& batch, base::Deadline deadline) override;
  SendResult probe(base::Deadline deadline) override;
  void stop(base::Deadline deadline) override;
  std::vector<SinkMetric> metrics() const override;

  const HttpStats& stats() const { return stats_; }

  // One easy handle and its buffers; public for libcurl's callbacks in the .cc only.
  struct Connection;

 private:
  struct ConnectionDeleter {
    void operator()(Connection* c) const;
  };
  using ConnectionPtr = std::unique_ptr<Connection, ConnectionDeleter>;

  // A connection for one call: an idle one, a new one while fewer than `workers` exist, or the next
  // one returned before the deadline. nullptr with `error` set otherwise.
  ConnectionPtr acquire(base::Deadline deadline, std::string& error);
  void release(ConnectionPtr c);
  // A new easy handle with the options every request shares; nullptr with `error` set on failure.
  ConnectionPtr open(std::string& error) const;
  // Runs the prepared request on `c` and turns its end into a result.
  SendResult perform(Connection& c, base::Deadline deadline, bool isProbe, const Batch* batch);
  void noteReachable(bool reachable, const std::string& error);

  std::string name_;
  HttpConfig cfg_;
  std::string url_;
  IndexSource indexSource_;
  std::string healthUrl_;
  std::chrono::milliseconds timeout_;
  std::uint32_t workers_;
  BodyBuilder body_;
  curl_slist* headers_ = nullptr;  // fixed by start(), read by every connection

  std::mutex mutex_;
  std::condition_variable available_;
  std::vector<ConnectionPtr> idle_;
  std::uint32_t created_ = 0;

  std::atomic<bool> reachable_{true};  // for logging the loss and return of the destination once
  HttpStats stats_;
};

}  // namespace logcapture::sinks::http
