#include "agent/admin/admin_server.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <regex>

#include "agent/admin/breaker_view.h"
#include "agent/admin/metrics.h"
#include "agent/admin/request_intake.h"
#include "agent/inputs/input.h"
#include "agent/pipeline/pipeline.h"
#include "agent/pipeline/queue.h"
#include "agent/runner/sink_runner.h"
#include "base/log.h"
#include "config/endpoint.h"

namespace logcapture::agent::admin {
namespace {

constexpr const char* kJson = "application/json";

std::int64_t steadyNs() { return std::chrono::steady_clock::now().time_since_epoch().count(); }

void reply(httplib::Response& res, int status, const Json& body) {
  res.status = status;
  res.set_content(body.dump() + "\n", kJson);
}

void error(httplib::Response& res, int status, const std::string& message) {
  reply(res, status, Json{{"error", message}});
}

bool isLoopback(const sockaddr_storage& addr) {
  if (addr.ss_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(addr);
    return (ntohl(in.sin_addr.s_addr) >> 24) == 127;
  }
  if (addr.ss_family == AF_INET6) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(addr);
    if (IN6_IS_ADDR_LOOPBACK(&in6.sin6_addr)) return true;
    return IN6_IS_ADDR_V4MAPPED(&in6.sin6_addr) && in6.sin6_addr.s6_addr[12] == 127;
  }
  return false;
}

// The Host header names this machine's loopback: localhost, or a loopback address, with any port.
bool loopbackHost(std::string_view host) {
  if (host.empty()) return true;  // HTTP/1.0 sends none; a browser always does
  std::string name;
  if (host.front() == '[') {
    const auto close = host.find(']');
    if (close == std::string_view::npos) return false;
    name = std::string(host.substr(1, close - 1));
  } else {
    name = std::string(host.substr(0, host.find(':')));
  }
  for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (name == "localhost" || name.ends_with(".localhost")) return true;  // RFC 6761: never resolves elsewhere
  sockaddr_storage addr{};
  auto& in = reinterpret_cast<sockaddr_in&>(addr);
  auto& in6 = reinterpret_cast<sockaddr_in6&>(addr);
  if (::inet_pton(AF_INET, name.c_str(), &in.sin_addr) == 1) {
    addr.ss_family = AF_INET;
  } else if (::inet_pton(AF_INET6, name.c_str(), &in6.sin6_addr) == 1) {
    addr.ss_family = AF_INET6;
  } else {
    return false;
  }
  return isLoopback(addr);
}

// A browser sends Origin with every POST and with every cross-origin request, and Sec-Fetch-Site
// with every request; curl, scripts and `logcapture breakers` send neither.
bool fromBrowserPage(const httplib::Request& req) {
  if (req.has_header("Origin")) return true;
  const std::string site = req.get_header_value("Sec-Fetch-Site");
  return site == "cross-site" || site == "same-site";
}

// application/json, with any parameters, in any case.
bool jsonContent(const httplib::Request& req) {
  std::string type = req.get_header_value("Content-Type");
  type = type.substr(0, type.find(';'));
  while (!type.empty() && type.back() == ' ') type.pop_back();
  for (auto& ch : type) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return type == "application/json";
}

// An httplib::Stream over a request the intake read whole: reads come from memory (the request cannot
// make a serving thread wait), writes go to the socket within the write timeout.
class WholeRequestStream final : public httplib::Stream {
 public:
  WholeRequestStream(WholeRequest& request, std::chrono::milliseconds writeTimeout)
      : request_(request), writeTimeout_(writeTimeout) {}

  bool is_readable() const override { return at_ < request_.bytes.size(); }
  bool is_writable() const override { return waitWritable(writeTimeout_); }
  ssize_t read(char* ptr, size_t size) override {
    const std::size_t n = std::min(size, request_.bytes.size() - at_);
    std::memcpy(ptr, request_.bytes.data() + at_, n);
    at_ += n;
    return static_cast<ssize_t>(n);
  }
  ssize_t write(const char* ptr, size_t size) override {
    const auto deadline = std::chrono::steady_clock::now() + writeTimeout_;
    std::size_t done = 0;
    while (done < size) {
      const ssize_t n = ::send(request_.fd, ptr + done, size - done, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n > 0) {
        done += static_cast<std::size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() > 0 && waitWritable(left)) continue;
      }
      return -1;  // the client went away or stopped reading
    }
    return static_cast<ssize_t>(done);
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override { address(::getpeername, ip, port); }
  void get_local_ip_and_port(std::string& ip, int& port) const override { address(::getsockname, ip, port); }
  socket_t socket() const override { return request_.fd; }

 private:
  bool waitWritable(std::chrono::milliseconds timeout) const {
    pollfd p{request_.fd, POLLOUT, 0};
    int rc = 0;
    do {
      rc = ::poll(&p, 1, static_cast<int>(timeout.count()));
    } while (rc < 0 && errno == EINTR);
    return rc > 0 && (p.revents & POLLOUT) != 0;
  }
  void address(int (*get)(int, sockaddr*, socklen_t*), std::string& ip, int& port) const {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    if (get(request_.fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return;
    char host[NI_MAXHOST];
    char serv[NI_MAXSERV];
    if (::getnameinfo(reinterpret_cast<sockaddr*>(&addr), len, host, sizeof host, serv, sizeof serv,
                      NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
      return;
    }
    ip = host;
    port = std::atoi(serv);
  }

  WholeRequest& request_;
  const std::chrono::milliseconds writeTimeout_;
  std::size_t at_ = 0;
};

// Runs httplib's accept loop; the connections it accepts go to the intake rather than to a thread each.
class AcceptedToIntake final : public httplib::TaskQueue {
 public:
  // The task is the server's process_and_close_socket(), which AdminHttp makes a hand-over.
  void enqueue(std::function<void()> fn) override { fn(); }
  void shutdown() override {}
};

// Compares in time independent of where the strings differ, so the token cannot be guessed a byte at
// a time from response times. The length still shows; it is not the secret.
bool sameSecret(std::string_view given, std::string_view expected) {
  unsigned char diff = given.size() == expected.size() ? 0 : 1;
  for (std::size_t i = 0; i < given.size(); ++i) {
    diff |= static_cast<unsigned char>(given[i] ^ expected[i % std::max<std::size_t>(expected.size(), 1)]);
  }
  return diff == 0;
}

std::string peer(const httplib::Request& req) { return req.remote_addr + ":" + std::to_string(req.remote_port); }

// The operator's word for each breaker action.
enum class Action { ForceOpen, ForceClose, Reset, Auto };

std::optional<Action> actionNamed(std::string_view name) {
  if (name == "force-open") return Action::ForceOpen;
  if (name == "force-close") return Action::ForceClose;
  if (name == "reset") return Action::Reset;
  if (name == "auto") return Action::Auto;
  return std::nullopt;
}

void apply(circuit::Breaker& breaker, Action action) {
  switch (action) {
    case Action::ForceOpen:
      breaker.forceOpen();
      return;
    case Action::ForceClose:
      breaker.forceClose();
      return;
    case Action::Reset:
      breaker.reset();
      return;
    case Action::Auto:
      breaker.resumeAuto();
      return;
  }
}

}  // namespace

// httplib's server with its routing and answers, fed whole requests by the intake.
class AdminHttp final : public httplib::Server {
 public:
  explicit AdminHttp(RequestIntake& intake) : intake_(intake) {
    new_task_queue = [] { return new AcceptedToIntake; };
  }
  int listeningSocket() const { return svr_sock_; }
  // Answers one request and closes its connection.
  void serve(WholeRequest request, std::chrono::milliseconds writeTimeout) {
    {
      WholeRequestStream stream(request, writeTimeout);
      bool closed = false;
      process_request(stream, /*close_connection=*/true, closed, nullptr);
    }
    ::shutdown(request.fd, SHUT_RDWR);
    ::close(request.fd);
  }

 private:
  // Called on the accept thread for each connection (httplib's only hook for it).
  bool process_and_close_socket(socket_t sock) override {
    intake_.add(sock);
    return true;
  }

  RequestIntake& intake_;
};

AdminServer::AdminServer(const config::AdminConfig& cfg, Pipeline& pipeline, Reload reload,
                         std::chrono::milliseconds heartbeatStale)
    : listen_(cfg.listen),
      token_(cfg.token),
      pipeline_(pipeline),
      reload_(std::move(reload)),
      lastBeatNs_(steadyNs()),
      startedAt_(std::chrono::steady_clock::now()),
      heartbeatStale_(heartbeatStale) {}

AdminServer::~AdminServer() { stop(); }

bool AdminServer::bind() {
  if (!enabled()) return true;
  auto logger = log::component("admin");
  const auto endpoint = config::parseEndpoint(listen_);
  if (!endpoint) {
    log::event(*logger, spdlog::level::critical, "admin_listen_failed",
               {{"listen", listen_}, {"error", "expected host:port"}});
    return false;
  }
  intake_ = std::make_unique<RequestIntake>(
      IntakeLimits{.requestTimeout = kRequestTimeout, .threads = kThreads},
      [this](WholeRequest request) { server_->serve(std::move(request), kRequestTimeout); });
  server_ = std::make_unique<AdminHttp>(*intake_);
  // httplib's default sets SO_REUSEPORT, which would let a second agent bind the same port and take
  // half of the requests; SO_REUSEADDR alone still allows a restart while old connections linger.
  server_->set_socket_options([](int sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  server_->set_tcp_nodelay(true);
  server_->set_payload_max_length(IntakeLimits{}.maxBodyBytes);
  routes();
  errno = 0;
  if (!server_->bind_to_port(endpoint->host, endpoint->port)) {
    const int err = errno;
    log::event(*logger, spdlog::level::critical, "admin_listen_failed",
               {{"listen", listen_},
                {"error", err != 0 ? std::strerror(err) : "cannot bind"},
                {"hint", "another process may hold the port; set agent.admin.listen, or \"\" to turn it off"}});
    server_.reset();
    intake_.reset();
    return false;
  }
  // What was bound decides, not how it was written: "localhost" may be any address in /etc/hosts,
  // and "127.example.com" a public one.
  sockaddr_storage bound{};
  socklen_t length = sizeof bound;
  if (::getsockname(server_->listeningSocket(), reinterpret_cast<sockaddr*>(&bound), &length) != 0) {
    log::event(*logger, spdlog::level::critical, "admin_listen_failed",
               {{"listen", listen_}, {"error", std::string("getsockname: ") + std::strerror(errno)}});
    server_.reset();
    intake_.reset();
    return false;
  }
  loopback_ = isLoopback(bound);
  port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<const sockaddr_in6&>(bound).sin6_port
                                            : reinterpret_cast<const sockaddr_in&>(bound).sin_port);
  if (!loopback_ && token_.empty()) {
    log::event(*logger, spdlog::level::warn, "admin_actions_refused",
               {{"listen", listen_}, {"reason", "not on loopback and agent.admin.token is empty"}});
  }
  return true;
}

void AdminServer::start() {
  if (!server_ || thread_.joinable()) return;
  serving_.store(true);
  intake_->start();
  thread_ = std::thread([this] {
    log::guardThread("admin", [this] { server_->listen_after_bind(); });
    loopEnded_.store(true);
  });
  // httplib's stop() does nothing before the accept loop runs; wait for it so stop() always works.
  while (!server_->is_running() && !loopEnded_.load()) std::this_thread::yield();
  log::event(*log::component("admin"), spdlog::level::info, "admin_listening",
             {{"listen", listen_}, {"actions", token_.empty() ? (loopback_ ? "loopback" : "refused") : "token"}});
}

void AdminServer::stop() {
  if (!thread_.joinable()) return;
  serving_.store(false);
  server_->stop();
  thread_.join();
  intake_->stop();
}

void AdminServer::heartbeat() { lastBeatNs_.store(steadyNs(), std::memory_order_relaxed); }

void AdminServer::routes() {
  httplib::Server& s = *server_;
  s.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(renderMetrics(pipeline_), kMetricsContentType);
  });
  s.Get("/health", [this](const httplib::Request&, httplib::Response& res) { health(res); });
  s.Get("/ready", [this](const httplib::Request&, httplib::Response& res) { ready(res); });
  s.Get("/api/v1/breakers", [this](const httplib::Request&, httplib::Response& res) { listBreakers(res); });
  s.Get(R"(/api/v1/breakers/([^/]+))",
        [this](const httplib::Request& req, httplib::Response& res) { showBreaker(req.matches[1], res); });
  s.Post(".*", [this](const httplib::Request& req, httplib::Response& res) { post(req, res); });
  // httplib 0.11 answers 400 to a POST with neither Content-Length nor Transfer-Encoding, which is how
  // `curl -X POST URL` sends one; such a request has no body (RFC 9112 6.3), so it is served here,
  // before httplib would try to read one.
  s.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (loopback_ && !loopbackHost(req.get_header_value("Host"))) {
      error(res, 421,
            "the Host header names neither localhost nor a loopback address; the admin server on loopback "
            "serves local clients only");
      return httplib::Server::HandlerResponse::Handled;
    }
    if (req.method != "POST" || req.has_header("Content-Length") || req.has_header("Transfer-Encoding")) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    post(req, res);
    return httplib::Server::HandlerResponse::Handled;
  });
  // The action paths exist but take POST only.
  const auto postOnly = [](const httplib::Request&, httplib::Response& res) {
    res.set_header("Allow", "POST");
    error(res, 405, "use POST");
  };
  s.Get(R"(/api/v1/breakers/([^/]+)/([^/]+))", postOnly);
  s.Get("/api/v1/reload", postOnly);
  s.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 404) {
      reply(res, 404, Json{{"error", "not found"}, {"path", req.path}});
    } else {
      error(res, res.status, "HTTP " + std::to_string(res.status));
    }
  });
  s.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "internal error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    error(res, 500, what);
  });
}

void AdminServer::post(const httplib::Request& req, httplib::Response& res) const {
  static const std::regex kAction(R"(/api/v1/breakers/([^/]+)/([^/]+))");
  std::smatch m;
  if (std::regex_match(req.path, m, kAction)) return actOnBreaker(req, m[1].str(), m[2].str(), res);
  if (req.path == "/api/v1/reload") return reload(req, res);
  reply(res, 404, Json{{"error", "not found"}, {"path", req.path}});
}

AdminServer::Access AdminServer::authorize(const httplib::Request& req) const {
  if (fromBrowserPage(req)) return Access::CrossSite;
  if (!jsonContent(req) && req.get_header_value("X-Requested-By").empty()) return Access::NotJson;
  if (token_.empty()) return loopback_ ? Access::Allowed : Access::Forbidden;
  const std::string header = req.get_header_value("Authorization");
  constexpr std::string_view kBearer = "Bearer ";
  if (!std::string_view(header).starts_with(kBearer)) return Access::Unauthorized;
  return sameSecret(std::string_view(header).substr(kBearer.size()), token_) ? Access::Allowed : Access::Unauthorized;
}

bool AdminServer::admit(const httplib::Request& req, httplib::Response& res, std::string_view what) const {
  const Access access = authorize(req);
  switch (access) {
    case Access::Allowed:
      return true;
    case Access::CrossSite:
      error(res, 403,
            "refused: the request comes from a web page (Origin or Sec-Fetch-Site header); the admin API takes "
            "no requests from browsers");
      break;
    case Access::NotJson:
      error(res, 415, "a POST needs Content-Type: application/json or an X-Requested-By header");
      break;
    case Access::Unauthorized:
      res.set_header("WWW-Authenticate", "Bearer realm=\"logcapture\"");
      error(res, 401, "missing or wrong bearer token (agent.admin.token)");
      break;
    case Access::Forbidden:
      error(res, 403, "actions are refused: the admin server listens beyond loopback and agent.admin.token is not set");
      break;
  }
  // At most one event per interval: refusals come at whatever rate a client sends them.
  const std::int64_t now = steadyNs();
  std::int64_t last = lastRefusalLogNs_.load(std::memory_order_relaxed);
  if (now - last >= std::chrono::nanoseconds(kRefusalLogInterval).count() &&
      lastRefusalLogNs_.compare_exchange_strong(last, now)) {
    log::event(*log::component("admin"), spdlog::level::warn, "admin_action_refused",
               {{"peer", peer(req)}, {"action", what}, {"status", res.status}});
  }
  return false;
}

void AdminServer::health(httplib::Response& res) const {
  const auto age = std::chrono::nanoseconds(steadyNs() - lastBeatNs_.load(std::memory_order_relaxed));
  const double ageSeconds = std::chrono::duration<double>(age).count();
  const double uptime = std::chrono::duration<double>(std::chrono::steady_clock::now() - startedAt_).count();
  if (age > heartbeatStale_) {
    reply(res, 503,
          Json{{"status", "stalled"},
               {"reason", "the agent's main loop has not run for " + std::to_string(ageSeconds) + "s"},
               {"heartbeat_age_seconds", ageSeconds},
               {"uptime_seconds", uptime},
               {"version", LOGCAPTURE_VERSION}});
    return;
  }
  reply(res, 200,
        Json{{"status", "ok"},
             {"heartbeat_age_seconds", ageSeconds},
             {"uptime_seconds", uptime},
             {"version", LOGCAPTURE_VERSION}});
}

void AdminServer::ready(httplib::Response& res) const {
  Json inputs = Json::array();
  for (const auto& in : pipeline_.inputs()) {
    inputs.push_back({{"name", in->name()},
                      {"finished", in->finished()},
                      {"files_open", in->stats().filesOpen.load(std::memory_order_relaxed)}});
  }
  Json openBreakers = Json::array();
  for (const auto& r : pipeline_.runners()) {
    const circuit::State state = r->breaker().state();
    if (state == circuit::State::Open || state == circuit::State::HalfOpen || state == circuit::State::ForcedOpen) {
      // metrics_only: open, but holding nothing back.
      openBreakers.push_back({{"sink", r->name()},
                              {"state", circuit::stateName(state)},
                              {"mode", circuit::modeName(r->breaker().options().mode)}});
    }
  }
  const RecordQueue* queue = pipeline_.queue();
  const QueueStats q = queue != nullptr ? queue->stats() : QueueStats{};
  const bool blocked = queue != nullptr && queue->blocked();
  std::string reason;
  if (!serving_.load()) {
    reason = "the agent is stopping";
  } else if (inputs.empty()) {
    reason = "no inputs";
  } else if (blocked) {
    reason = "the queue is full and holds the inputs back (queue.when_full: block)";
  }
  Json body{{"ready", reason.empty()}};
  if (!reason.empty()) body["reason"] = reason;
  body["inputs"] = inputs;
  body["queue"] = {{"records", q.records}, {"bytes", q.bytes}, {"blocked", blocked}};
  // An open breaker is the agent working as designed (buffering for a sink that is down): it does not
  // make the agent unready, or a restart loop would follow every destination outage.
  body["open_breakers"] = openBreakers;
  reply(res, reason.empty() ? 200 : 503, body);
}

void AdminServer::listBreakers(httplib::Response& res) const {
  Json list = Json::array();
  for (const auto& r : pipeline_.runners()) list.push_back(breakerView(*r));
  reply(res, 200, Json{{"breakers", list}});
}

void AdminServer::showBreaker(const std::string& sink, httplib::Response& res) const {
  for (const auto& r : pipeline_.runners()) {
    if (r->name() == sink) return reply(res, 200, breakerView(*r));
  }
  error(res, 404, "no sink is named '" + sink + "'");
}

void AdminServer::actOnBreaker(const httplib::Request& req, const std::string& sink, const std::string& actionName,
                               httplib::Response& res) const {
  const auto action = actionNamed(actionName);
  if (!action) {
    return error(res, 404, "unknown action '" + actionName + "'; one of force-open, force-close, reset, auto");
  }
  if (!admit(req, res, actionName + " " + sink)) return;
  for (const auto& r : pipeline_.runners()) {
    if (r->name() != sink) continue;
    circuit::Breaker& breaker = r->breaker();
    const circuit::State before = breaker.state();
    apply(breaker, *action);
    const circuit::State after = breaker.state();
    log::event(*log::component("admin"), spdlog::level::warn, "breaker_operator_action",
               {{"sink", sink},
                {"action", actionName},
                {"peer", peer(req)},
                {"from", circuit::stateName(before)},
                {"to", circuit::stateName(after)}});
    return reply(res, 200,
                 Json{{"sink", sink},
                      {"action", actionName},
                      {"previous_state", circuit::stateName(before)},
                      {"state", circuit::stateName(after)},
                      {"breaker", breakerView(*r)}});
  }
  error(res, 404, "no sink is named '" + sink + "'");
}

void AdminServer::reload(const httplib::Request& req, httplib::Response& res) const {
  if (!admit(req, res, "reload")) return;
  ReloadOutcome outcome;
  {
    std::lock_guard lock(reloadMutex_);
    outcome = reload_ ? reload_() : ReloadOutcome{false, "reload not available", {}};
  }
  log::event(*log::component("admin"), outcome.applied ? spdlog::level::info : spdlog::level::warn, "reload_requested",
             {{"peer", peer(req)},
              {"applied", outcome.applied},
              {"changes", std::to_string(outcome.changes.size())},
              {"error", outcome.error}});
  Json body{{"applied", outcome.applied}, {"changes", outcome.changes}};
  if (!outcome.applied) body["error"] = outcome.error;
  reply(res, outcome.applied ? 200 : 400, body);
}

}  // namespace logcapture::agent::admin
