#include "sinks/http/http_sink.h"

#include <strings.h>

#include <algorithm>

#include "base/log.h"
#include "config/redact.h"

namespace logcapture::sinks::http {
namespace {

// Error texts quote at most this much of a response body; the rest is read and dropped, so the
// connection stays usable. A bulk answer is read as it arrives, whatever its size.
constexpr std::size_t kQuoteBytes = 512;

std::once_flag curlInitOnce;
CURLcode curlInitResult = CURLE_OK;

bool hasHeader(const std::map<std::string, std::string>& headers, const char* name) {
  return std::any_of(headers.begin(), headers.end(),
                     [&](const auto& h) { return strcasecmp(h.first.c_str(), name) == 0; });
}

// Loki's push API lives at a fixed path: a bare http://host:3100 gets it appended.
std::string lokiUrl(std::string url) {
  const auto host = url.find("://");
  const auto path = url.find('/', host == std::string::npos ? 0 : host + 3);
  if (path == std::string::npos) return url + "/loki/api/v1/push";
  if (path == url.size() - 1) return url + "loki/api/v1/push";
  return url;
}

}  // namespace

struct HttpSink::Connection {
  CURL* easy = nullptr;
  std::string body;          // the request body, reused between batches
  std::string compressed;    // its gzip, when compression is on
  std::string response;      // the response body's first kQuoteBytes
  std::string retryAfter;    // the last response's Retry-After value
  bool readingBulk = false;  // the response is a bulk answer, read by `bulk` as it comes
  BulkAnswerReader bulk;
  char error[CURL_ERROR_SIZE] = {};
};

void HttpSink::ConnectionDeleter::operator()(Connection* c) const {
  if (c->easy != nullptr) curl_easy_cleanup(c->easy);
  delete c;
}

namespace {

size_t onBody(char* data, size_t size, size_t count, void* user) {
  auto& c = *static_cast<HttpSink::Connection*>(user);
  const std::size_t n = size * count;
  if (c.response.size() < kQuoteBytes) c.response.append(data, std::min(n, kQuoteBytes - c.response.size()));
  if (c.readingBulk) c.bulk.feed(std::string_view(data, n));
  return n;
}

size_t onHeader(char* data, size_t size, size_t count, void* user) {
  auto& retryAfter = *static_cast<std::string*>(user);
  const std::size_t n = size * count;
  const std::string_view line(data, n);
  constexpr std::string_view kName = "retry-after:";
  if (line.starts_with("HTTP/")) {
    retryAfter.clear();  // a new response begins (after a 100 Continue): forget the previous one's
  } else if (line.size() > kName.size() && strncasecmp(line.data(), kName.data(), kName.size()) == 0) {
    retryAfter.assign(line.substr(kName.size()));
  }
  return n;
}

}  // namespace

HttpSink::HttpSink(const config::SinkConfig& cfg)
    : name_(cfg.name),
      cfg_(std::get<HttpConfig>(cfg.settings)),
      url_(cfg_.format == Format::Loki ? lokiUrl(cfg_.url) : cfg_.url),
      indexSource_(RecordTemplate(cfg_.index).constant() ? IndexSource::Config : IndexSource::Record),
      healthUrl_(cfg_.healthUrl.empty() ? url_ : cfg_.healthUrl),
      timeout_(cfg.timeout),
      workers_(std::max<std::uint32_t>(cfg.workers, 1)),
      body_(cfg_, cfg.encoding) {}

HttpSink::~HttpSink() {
  idle_.clear();  // the handles refer to headers_
  curl_slist_free_all(headers_);
}

std::optional<std::string> HttpSink::start() {
  std::call_once(curlInitOnce, [] { curlInitResult = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (curlInitResult != CURLE_OK) return std::string("curl_global_init: ") + curl_easy_strerror(curlInitResult);

  for (const std::string* url : {&url_, &healthUrl_}) {
    CURLU* parsed = curl_url();
    if (parsed == nullptr) return "curl_url: out of memory";
    const CURLUcode rc = curl_url_set(parsed, CURLUPART_URL, url->c_str(), 0);
    curl_url_cleanup(parsed);
    if (rc != CURLUE_OK) return "url '" + config::redactUrl(*url) + "': " + curl_url_strerror(rc);
  }

  std::vector<std::string> lines;
  if (!hasHeader(cfg_.headers, "Content-Type")) lines.push_back("Content-Type: " + std::string(body_.contentType()));
  if (cfg_.compression == Compression::Gzip) lines.emplace_back("Content-Encoding: gzip");
  // No "Expect: 100-continue" round trip before large bodies: receivers answer the request itself.
  lines.emplace_back("Expect:");
  if (cfg_.auth.strategy == AuthStrategy::Bearer && !hasHeader(cfg_.headers, "Authorization")) {
    lines.push_back("Authorization: Bearer " + cfg_.auth.token);
  }
  for (const auto& [name, value] : cfg_.headers) lines.push_back(name + ": " + value);
  for (const auto& line : lines) {
    curl_slist* next = curl_slist_append(headers_, line.c_str());
    if (next == nullptr) return "curl_slist_append: out of memory";
    headers_ = next;
  }

  if (!cfg_.tls.verify) {
    log::event(*log::component("http"), spdlog::level::warn, "tls_verify_off",
               {{"sink", name_}, {"detail", "the server's certificate and host name are not checked"}});
  }

  // One connection now, so options this libcurl refuses fail the start rather than every send.
  std::string error;
  ConnectionPtr c = open(error);
  if (!c) return error;
  std::lock_guard lock(mutex_);
  ++created_;
  idle_.push_back(std::move(c));
  return std::nullopt;
}

HttpSink::ConnectionPtr HttpSink::open(std::string& error) const {
  ConnectionPtr c(new Connection);
  c->easy = curl_easy_init();
  if (c->easy == nullptr) {
    error = "curl_easy_init failed";
    return nullptr;
  }
  CURLcode first = CURLE_OK;
  const char* failed = nullptr;
  auto set = [&](const char* what, CURLoption option, auto value) {
    const CURLcode rc = curl_easy_setopt(c->easy, option, value);
    if (rc != CURLE_OK && first == CURLE_OK) {
      first = rc;
      failed = what;
    }
  };
  set("nosignal", CURLOPT_NOSIGNAL, 1L);  // timeouts must not raise SIGALRM in a threaded program
  set("protocols", CURLOPT_PROTOCOLS_STR, "http,https");
  set("errorbuffer", CURLOPT_ERRORBUFFER, static_cast<char*>(c->error));
  set("writefunction", CURLOPT_WRITEFUNCTION, &onBody);
  set("writedata", CURLOPT_WRITEDATA, static_cast<void*>(c.get()));
  set("headerfunction", CURLOPT_HEADERFUNCTION, &onHeader);
  set("headerdata", CURLOPT_HEADERDATA, static_cast<void*>(&c->retryAfter));
  set("httpheader", CURLOPT_HTTPHEADER, headers_);
  set("useragent", CURLOPT_USERAGENT, "logcapture/" LOGCAPTURE_VERSION);
  // Only a bulk answer is read, and it can be large: worth compressing. Other answers are a status
  // and a few bytes, which a server would spend more time compressing (brotli above all) than sending.
  if (cfg_.format == Format::EsBulk) set("accept_encoding", CURLOPT_ACCEPT_ENCODING, "gzip");
  set("tcp_keepalive", CURLOPT_TCP_KEEPALIVE, 1L);
  // libcurl copies a body to the socket through this buffer, a send and a poll per fill. With its 64 KiB
  // a batch of 1,000 lines took some 6 sends and 14 polls, all while the destination waits for the whole
  // request (a lane sends in order, one request at a time). One per connection, touched as far as bodies go.
  set("upload_buffersize", CURLOPT_UPLOAD_BUFFERSIZE, 1L << 20);
  set("ssl_verifypeer", CURLOPT_SSL_VERIFYPEER, cfg_.tls.verify ? 1L : 0L);
  set("ssl_verifyhost", CURLOPT_SSL_VERIFYHOST, cfg_.tls.verify ? 2L : 0L);
  if (!cfg_.tls.caFile.empty()) set("tls.ca_file", CURLOPT_CAINFO, cfg_.tls.caFile.c_str());
  if (!cfg_.tls.certFile.empty()) set("tls.cert_file", CURLOPT_SSLCERT, cfg_.tls.certFile.c_str());
  if (!cfg_.tls.keyFile.empty()) set("tls.key_file", CURLOPT_SSLKEY, cfg_.tls.keyFile.c_str());
  if (cfg_.auth.strategy == AuthStrategy::Basic) {
    set("httpauth", CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_BASIC));
    set("auth.user", CURLOPT_USERNAME, cfg_.auth.user.c_str());
    set("auth.password", CURLOPT_PASSWORD, cfg_.auth.password.c_str());
  }
  if (first != CURLE_OK) {
    error = std::string("libcurl refuses option ") + failed + ": " + curl_easy_strerror(first);
    return nullptr;
  }
  return c;
}

HttpSink::ConnectionPtr HttpSink::acquire(base::Deadline deadline, std::string& error) {
  std::unique_lock lock(mutex_);
  if (!available_.wait_until(lock, deadline, [&] { return !idle_.empty() || created_ < workers_; })) {
    error = "no HTTP connection free before the deadline (" + std::to_string(workers_) + " in use)";
    return nullptr;
  }
  if (!idle_.empty()) {
    // The most recently used connection is the likeliest still open.
    ConnectionPtr c = std::move(idle_.back());
    idle_.pop_back();
    return c;
  }
  ++created_;
  lock.unlock();
  ConnectionPtr c = open(error);
  if (!c) {
    lock.lock();
    --created_;
    available_.notify_one();
  }
  return c;
}

void HttpSink::release(ConnectionPtr c) {
  {
    std::lock_guard lock(mutex_);
    idle_.push_back(std::move(c));
  }
  available_.notify_one();
}

SendResult HttpSink::send(const Batch& batch, base::Deadline deadline) {
  if (batch.empty()) return SendResult::success();
  std::string error;
  ConnectionPtr c = acquire(deadline, error);
  if (!c) {
    stats_.retriable.fetch_add(1, std::memory_order_relaxed);
    return SendResult::failure(Outcome::Retriable, std::move(error));
  }
  const std::string* payload = body_.asIs(batch);
  if (payload == nullptr) {
    body_.build(batch, c->body);
    payload = &c->body;
  }
  if (cfg_.compression == Compression::Gzip) {
    if (auto failed = gzip(*payload, c->compressed)) {
      // zlib fails only for want of memory, which may come back.
      release(std::move(c));
      stats_.retriable.fetch_add(1, std::memory_order_relaxed);
      return SendResult::failure(Outcome::Retriable, "gzip: " + *failed);
    }
    payload = &c->compressed;
  }

  CURLcode rc = curl_easy_setopt(c->easy, CURLOPT_URL, url_.c_str());
  if (rc == CURLE_OK) rc = curl_easy_setopt(c->easy, CURLOPT_POST, 1L);
  if (rc == CURLE_OK) {
    rc = curl_easy_setopt(c->easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(payload->size()));
  }
  if (rc == CURLE_OK) rc = curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, payload->data());
  if (rc == CURLE_OK) {
    rc = curl_easy_setopt(c->easy, CURLOPT_CUSTOMREQUEST, cfg_.method == Method::Put ? "PUT" : nullptr);
  }
  SendResult result;
  if (rc != CURLE_OK) {
    result = SendResult::failure(classifyTransfer(rc), std::string("request setup: ") + curl_easy_strerror(rc));
  } else {
    stats_.bytesSent.fetch_add(payload->size(), std::memory_order_relaxed);
    result = perform(*c, deadline, false, &batch);
  }
  release(std::move(c));
  return result;
}

SendResult HttpSink::probe(base::Deadline deadline) {
  std::string error;
  ConnectionPtr c = acquire(deadline, error);
  if (!c) {
    stats_.retriable.fetch_add(1, std::memory_order_relaxed);
    return SendResult::failure(Outcome::Retriable, std::move(error));
  }
  CURLcode rc = curl_easy_setopt(c->easy, CURLOPT_URL, healthUrl_.c_str());
  if (rc == CURLE_OK) rc = curl_easy_setopt(c->easy, CURLOPT_CUSTOMREQUEST, nullptr);
  if (rc == CURLE_OK) rc = curl_easy_setopt(c->easy, CURLOPT_HTTPGET, 1L);
  SendResult result = rc == CURLE_OK ? perform(*c, deadline, true, nullptr)
                                     : SendResult::failure(classifyTransfer(rc),
                                                           std::string("request setup: ") + curl_easy_strerror(rc));
  release(std::move(c));
  return result;
}

SendResult HttpSink::perform(Connection& c, base::Deadline deadline, bool isProbe, const Batch* batch) {
  const auto remaining =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  const auto limit = std::min(remaining, timeout_);
  const auto count = [this](Outcome outcome) {
    switch (outcome) {
      case Outcome::Success:
        break;
      case Outcome::Retriable:
        stats_.retriable.fetch_add(1, std::memory_order_relaxed);
        break;
      case Outcome::Throttled:
        stats_.throttled.fetch_add(1, std::memory_order_relaxed);
        break;
      case Outcome::Permanent:
        stats_.permanent.fetch_add(1, std::memory_order_relaxed);
        break;
    }
  };
  if (limit <= std::chrono::milliseconds(0)) {
    count(Outcome::Retriable);
    return SendResult::failure(Outcome::Retriable, "deadline passed before the request was sent");
  }
  CURLcode rc = curl_easy_setopt(c.easy, CURLOPT_TIMEOUT_MS, static_cast<long>(limit.count()));
  if (rc == CURLE_OK) rc = curl_easy_setopt(c.easy, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(limit.count()));
  if (rc != CURLE_OK) {
    count(classifyTransfer(rc));
    return SendResult::failure(classifyTransfer(rc), std::string("request setup: ") + curl_easy_strerror(rc));
  }
  c.response.clear();
  c.retryAfter.clear();
  c.error[0] = '\0';
  c.readingBulk = batch != nullptr && cfg_.format == Format::EsBulk;
  if (c.readingBulk) c.bulk.reset(batch->size(), indexSource_);

  stats_.requests.fetch_add(1, std::memory_order_relaxed);
  stats_.inFlight.fetch_add(1, std::memory_order_relaxed);
  rc = curl_easy_perform(c.easy);
  stats_.inFlight.fetch_sub(1, std::memory_order_relaxed);
  long connects = 0;
  if (curl_easy_getinfo(c.easy, CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK && connects > 0) {
    stats_.connections.fetch_add(static_cast<std::uint64_t>(connects), std::memory_order_relaxed);
  }
  const char* method = isProbe ? "GET" : cfg_.method == Method::Put ? "PUT" : "POST";

  if (rc != CURLE_OK) {
    const Outcome outcome = classifyTransfer(rc);
    count(outcome);
    std::string error = std::string(method) + " failed: " + (c.error[0] != '\0' ? c.error : curl_easy_strerror(rc));
    if (outcome == Outcome::Retriable) noteReachable(false, error);
    return SendResult::failure(outcome, std::move(error));
  }
  noteReachable(true, {});

  long status = 0;
  rc = curl_easy_getinfo(c.easy, CURLINFO_RESPONSE_CODE, &status);
  if (rc != CURLE_OK) {
    count(Outcome::Retriable);
    return SendResult::failure(Outcome::Retriable, std::string("reading the status: ") + curl_easy_strerror(rc));
  }

  const Outcome outcome = isProbe ? classifyProbeStatus(status) : classifyStatus(status);
  if (outcome == Outcome::Success) {
    if (!c.readingBulk) return SendResult::success();
    SendResult result = c.bulk.finish();
    count(result.outcome);
    stats_.itemFailures.fetch_add(result.failures.size(), std::memory_order_relaxed);
    return result;
  }

  count(outcome);
  SendResult result =
      SendResult::failure(outcome, std::string(method) + " answered HTTP " + std::to_string(status) +
                                       (c.response.empty() ? "" : ": " + c.response.substr(0, kQuoteBytes)));
  result.tooLarge = status == 413;
  if (!c.retryAfter.empty()) result.retryAfter = parseRetryAfter(c.retryAfter, std::chrono::system_clock::now());
  return result;
}

void HttpSink::noteReachable(bool reachable, const std::string& error) {
  if (reachable_.exchange(reachable, std::memory_order_relaxed) == reachable) return;
  auto logger = log::component("http");
  if (reachable) {
    log::event(*logger, spdlog::level::info, "http_reachable", {{"sink", name_}});
  } else {
    log::event(*logger, spdlog::level::warn, "http_unreachable", {{"sink", name_}, {"error", error}});
  }
}

void HttpSink::stop(base::Deadline) {
  std::lock_guard lock(mutex_);
  created_ -= static_cast<std::uint32_t>(idle_.size());
  idle_.clear();
}

std::vector<SinkMetric> HttpSink::metrics() const {
  const auto load = [](const auto& a) { return static_cast<std::int64_t>(a.load(std::memory_order_relaxed)); };
  constexpr std::string_view kFailures = "logcapture_http_failed_requests_total";
  constexpr std::string_view kFailuresHelp =
      "HTTP requests that failed, by class: retriable (transfer errors, 3xx, most 4xx, 5xx), throttled (429), "
      "permanent (400, 413, 422: refused for what the body holds).";
  return {
      {"logcapture_http_requests_total", "HTTP requests attempted, probes included.", load(stats_.requests)},
      {kFailures, kFailuresHelp, load(stats_.retriable), SinkMetric::Kind::Counter, {"class", "retriable"}},
      {kFailures, kFailuresHelp, load(stats_.throttled), SinkMetric::Kind::Counter, {"class", "throttled"}},
      {kFailures, kFailuresHelp, load(stats_.permanent), SinkMetric::Kind::Counter, {"class", "permanent"}},
      {"logcapture_http_item_failures_total", "Records refused inside a 2xx bulk answer (es_bulk item errors).",
       load(stats_.itemFailures)},
      {"logcapture_http_sent_bytes_total", "Request bodies as sent, after compression.", load(stats_.bytesSent)},
      {"logcapture_http_connections_opened_total", "TCP connections opened; stays low while reuse works.",
       load(stats_.connections)},
      {"logcapture_http_requests_in_flight", "HTTP requests under way now.", load(stats_.inFlight),
       SinkMetric::Kind::Gauge},
  };
}

std::unique_ptr<Sink> build(const HttpConfig&, const config::SinkConfig& cfg) {
  return std::make_unique<HttpSink>(cfg);
}

}  // namespace logcapture::sinks::http
