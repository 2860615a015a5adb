// logcapture-http-receiver: an HTTP endpoint for tests and demos that counts the records it receives
// and can be told to fail or stall.
//
//   logcapture-http-receiver --listen 127.0.0.1:PORT [--out FILE] [--parse]
//
// Prints "listening on HOST:PORT" once bound (PORT 0 picks a free port). Any path takes POST and PUT;
// gzip bodies are inflated. Records are counted by the body's shape: Loki push (path ending
// /loki/api/v1/push) values, Elasticsearch bulk (path ending /_bulk) documents, a JSON array's elements
// (Content-Type application/json), else ndjson lines. --out appends every accepted record, one per line.
// --parse makes it a destination that reads what it gets, as a log store does: every ndjson or bulk record
// is parsed as JSON and must be an object, else the request is answered 400 naming the first bad record
// and none of it counts.
//
// POST /_control {"status":503,"retry_after":2,"delay_ms":2000,"times":N,"for_ms":M,
//                 "fail_items":[1,{"index":3,"status":429}],"item_status":500,"pad_items":BYTES}
//   sets the answer of the next N data requests, or of those in the next M milliseconds (neither: until
//   the next control); {"status":200} restores. fail_items refuses those bulk items inside a 200 answer
//   (item_status, default 500); pad_items makes each bulk item that many bytes longer, for large answers.
// POST /_control {"rate_limit":N,"for_ms":M} accepts at most N data requests a second (a token bucket
//   holding a quarter second's worth) and answers the rest `status` (default 500), as a destination
//   recovering with little capacity does.
// POST /_control {"latency_ms":B,"latency_per_concurrent2_us":K} delays each data request by
//   B ms + K us * c^2, c the data requests in progress with it: a destination that slows as it is loaded.
// GET /_stats  {"requests","records","bytes","failed_requests","refused_records","connections",
//               "max_concurrent"}
// GET /_last   the last data request's method, path, headers and content length.
// A GET to any other path gets the configured failure status, or 405 (it wants POST).
//
// Threads: httplib's pool runs the handlers; mutex_ guards the answer, the counters and the out file.
// SIGINT and SIGTERM are taken by a thread of their own (sigwait), which stops the server.

#include <httplib.h>
#include <pthread.h>
#include <signal.h>
#include <zlib.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <deque>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/json_object.h"

namespace {

using Json = nlohmann::ordered_json;

struct Answer {
  int status = 200;
  std::optional<int> retryAfter;
  int delayMs = 0;
  std::optional<std::uint64_t> times;                          // requests left with this answer; none: until changed
  std::optional<std::chrono::steady_clock::time_point> until;  // the answer holds until then
  std::map<std::size_t, int> failItems;
  std::size_t padItems = 0;
  std::optional<double> ratePerSecond;  // accept this many requests a second, answer `status` to the rest
  double latencyMs = 0;                 // the delay: latencyMs + latencyPerConcurrent2Us * concurrent^2 us
  double latencyPerConcurrent2Us = 0;
};

std::optional<std::string> gunzip(const std::string& in) {
  z_stream z{};
  if (inflateInit2(&z, 15 + 32) != Z_OK) return std::nullopt;
  std::string out;
  char buf[65536];
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  int rc = Z_OK;
  while (rc == Z_OK) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    rc = inflate(&z, Z_NO_FLUSH);
    out.append(buf, sizeof buf - z.avail_out);
  }
  inflateEnd(&z);
  if (rc != Z_STREAM_END) return std::nullopt;
  return out;
}

bool endsWith(const std::string& s, std::string_view suffix) { return std::string_view(s).ends_with(suffix); }

// Every line of the body, empty ones included (an empty log line is a record); a last line without a
// newline counts unless it is empty.
// The views point into `body`.
std::vector<std::string_view> lines(std::string_view body) {
  std::vector<std::string_view> out;
  std::size_t pos = 0;
  while (pos < body.size()) {
    auto end = body.find('\n', pos);
    if (end == std::string_view::npos) end = body.size();
    out.push_back(body.substr(pos, end - pos));
    pos = end + 1;
  }
  return out;
}

// Whether `text` is one JSON object, read as a destination must read every record: checked to the end
// (RFC 8259) with each top-level member's key and value located. The project's own one-pass reader:
// nlohmann's parser cost 3.7 us a record, which made the receiver the slower party on a small machine.
bool isJsonObject(std::string_view text) {
  thread_local logcapture::base::JsonObjectReader reader;  // one per handler thread, its buffers kept
  return reader.read(text) == logcapture::base::JsonVerdict::Object;
}

std::string asLine(const Json& value) { return value.is_string() ? value.get<std::string>() : value.dump(); }

class Receiver {
 public:
  Receiver(std::FILE* out, bool parse) : out_(out), parse_(parse) {}

  void control(const httplib::Request& req, httplib::Response& res) {
    const Json j = Json::parse(req.body, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return reply(res, 400, R"({"error":"expected a JSON object"})");
    Answer a;
    if (j.contains("rate_limit")) a.ratePerSecond = j["rate_limit"].get<double>();
    a.status = j.value("status", a.ratePerSecond ? 500 : 200);
    a.latencyMs = j.value("latency_ms", 0.0);
    a.latencyPerConcurrent2Us = j.value("latency_per_concurrent2_us", 0.0);
    if (j.contains("retry_after")) a.retryAfter = j["retry_after"].get<int>();
    a.delayMs = j.value("delay_ms", 0);
    if (j.contains("times")) a.times = j["times"].get<std::uint64_t>();
    if (j.contains("for_ms"))
      a.until = std::chrono::steady_clock::now() + std::chrono::milliseconds(j["for_ms"].get<int>());
    a.padItems = j.value("pad_items", std::size_t{0});
    const int itemStatus = j.value("item_status", 500);
    for (const auto& item : j.value("fail_items", Json::array())) {
      if (item.is_number_integer()) a.failItems[item.get<std::size_t>()] = itemStatus;
      if (item.is_object()) a.failItems[item.value("index", std::size_t{0})] = item.value("status", itemStatus);
    }
    std::lock_guard lock(mutex_);
    answer_ = a;
    if (a.ratePerSecond) {
      tokens_ = capacity(a);
      refilledAt_ = std::chrono::steady_clock::now();
    }
    reply(res, 200, R"({"ok":true})");
  }

  void stats(httplib::Response& res) {
    std::lock_guard lock(mutex_);
    Json j{{"requests", requests_},
           {"records", records_},
           {"bytes", bytes_},
           {"failed_requests", failedRequests_},
           {"refused_records", refusedRecords_},
           {"connections", connections_.size()},
           {"max_concurrent", maxConcurrent_}};
    reply(res, 200, j.dump());
  }

  void last(httplib::Response& res) {
    std::lock_guard lock(mutex_);
    reply(res, 200, last_.dump());
  }

  void get(const httplib::Request& req, httplib::Response& res) {
    const Answer a = take(req);
    if (a.status < 200 || a.status >= 300) return fail(res, a);
    res.set_header("Allow", "POST, PUT");
    reply(res, 405, R"({"error":"use POST or PUT"})");
  }

  void data(const httplib::Request& req, httplib::Response& res) {
    // Counted from here to the answer: the load that latency_per_concurrent2_us answers.
    struct InProgress {
      Receiver& r;
      ~InProgress() {
        std::lock_guard lock(r.mutex_);
        --r.concurrent_;
      }
    } inProgress{*this};
    const Answer a = take(req, /*data=*/true);
    // Stalling is what this helper is for: it plays a slow destination.
    if (a.delayMs > 0) std::this_thread::sleep_for(std::chrono::milliseconds(a.delayMs));
    if (a.status < 200 || a.status >= 300) return fail(res, a);

    // Records are views into the body or into `parsed`, whose elements never move (a deque).
    std::string inflated;
    std::string_view body = req.body;
    // httplib inflates gzip bodies itself; a body still starting with the gzip magic was not.
    if (req.get_header_value("Content-Encoding") == "gzip" && body.size() >= 2 && body[0] == '\x1f' &&
        body[1] == '\x8b') {
      auto out = gunzip(req.body);
      if (!out) return reply(res, 400, R"({"error":"bad gzip body"})");
      inflated = std::move(*out);
      body = inflated;
    }

    std::deque<std::string> parsed;
    std::vector<std::string_view> records;
    std::string answer = R"({"ok":true})";
    bool textRecords = true;  // ndjson and bulk lines; Loki pushes and JSON arrays are parsed whole below
    if (endsWith(req.path, "/loki/api/v1/push")) {
      textRecords = false;
      const Json j = Json::parse(body, nullptr, false);
      if (j.is_discarded() || !j.contains("streams")) return reply(res, 400, R"({"error":"not a Loki push"})");
      for (const auto& stream : j["streams"]) {
        for (const auto& value : stream.value("values", Json::array())) {
          if (value.is_array() && value.size() == 2) records.push_back(parsed.emplace_back(asLine(value[1])));
        }
      }
      res.status = 204;
    } else if (endsWith(req.path, "/_bulk")) {
      const auto all = lines(body);
      Json items = Json::array();
      bool errors = false;
      // Lines alternate action and document; item i answers the pair starting at line 2i.
      const std::string padding(a.padItems, 'p');
      for (std::size_t i = 0; 2 * i < all.size(); ++i) {
        const auto failed = a.failItems.find(i);
        if (failed != a.failItems.end()) {
          errors = true;
          items.push_back({{"index",
                            {{"status", failed->second},
                             {"error", {{"type", "injected_failure"}, {"reason", "told to refuse item"}}}}}});
        } else {
          items.push_back({{"index", {{"status", 201}}}});
          if (2 * i + 1 < all.size()) records.push_back(all[2 * i + 1]);
        }
        if (!padding.empty()) items.back()["index"]["_padding"] = padding;
      }
      answer = Json{{"took", 0}, {"errors", errors}, {"items", items}}.dump();
    } else if (req.get_header_value("Content-Type").starts_with("application/json")) {
      textRecords = false;
      const Json j = Json::parse(body, nullptr, false);
      if (!j.is_array()) return reply(res, 400, R"({"error":"expected a JSON array"})");
      for (const auto& element : j) records.push_back(parsed.emplace_back(asLine(element)));
    } else {
      records = lines(body);
    }
    if (parse_ && textRecords) {
      for (std::size_t i = 0; i < records.size(); ++i) {
        if (isJsonObject(records[i])) continue;
        {
          std::lock_guard lock(mutex_);
          ++refusedRecords_;
        }
        return reply(res, 400, Json{{"error", "record " + std::to_string(i) + " is not a JSON object"}}.dump());
      }
    }

    {
      std::lock_guard lock(mutex_);
      records_ += records.size();
      bytes_ += req.has_header("Content-Length") ? std::stoull(req.get_header_value("Content-Length")) : body.size();
      if (out_ != nullptr) {
        for (const auto& r : records) {
          std::fwrite(r.data(), 1, r.size(), out_);
          std::fputc('\n', out_);
        }
        std::fflush(out_);
      }
    }
    if (res.status == 204) return;
    reply(res, 200, answer);
  }

 private:
  // The answer for this request, counting it and remembering it as the last one.
  Answer take(const httplib::Request& req, bool data = false) {
    std::lock_guard lock(mutex_);
    ++requests_;
    if (data) maxConcurrent_ = std::max(maxConcurrent_, ++concurrent_);
    if (connections_.size() < 100000) connections_.insert(req.remote_addr + ":" + std::to_string(req.remote_port));
    Json headers = Json::object();
    for (const auto& [name, value] : req.headers) headers[name] = value;
    last_ = Json{{"method", req.method},
                 {"path", req.path},
                 {"headers", headers},
                 {"content_length", req.get_header_value("Content-Length")}};
    if (answer_.until && std::chrono::steady_clock::now() >= *answer_.until) answer_ = Answer{};
    Answer a = answer_;
    if (answer_.times && --*answer_.times == 0) answer_ = Answer{};
    if (a.ratePerSecond) {
      const auto now = std::chrono::steady_clock::now();
      tokens_ =
          std::min(capacity(a), tokens_ + *a.ratePerSecond * std::chrono::duration<double>(now - refilledAt_).count());
      refilledAt_ = now;
      if (tokens_ >= 1) {
        tokens_ -= 1;
        a.status = 200;
      }
    }
    if (data && (a.latencyMs > 0 || a.latencyPerConcurrent2Us > 0)) {
      const double c = double(concurrent_);
      a.delayMs += int(a.latencyMs + a.latencyPerConcurrent2Us * c * c / 1000);
    }
    if (a.status < 200 || a.status >= 300) ++failedRequests_;
    return a;
  }

  static double capacity(const Answer& a) { return std::max(1.0, *a.ratePerSecond / 4); }

  static void fail(httplib::Response& res, const Answer& a) {
    if (a.retryAfter) res.set_header("Retry-After", std::to_string(*a.retryAfter));
    reply(res, a.status, R"({"error":"told to fail"})");
  }

  static void reply(httplib::Response& res, int status, const std::string& body) {
    res.status = status;
    res.set_content(body, "application/json");
  }

  std::mutex mutex_;
  std::FILE* out_;
  Answer answer_;
  std::uint64_t requests_ = 0;
  std::uint64_t records_ = 0;
  std::uint64_t bytes_ = 0;
  std::uint64_t failedRequests_ = 0;
  std::uint64_t refusedRecords_ = 0;
  const bool parse_;
  std::set<std::string> connections_;
  double tokens_ = 0;  // of the rate limit's bucket
  std::chrono::steady_clock::time_point refilledAt_;
  std::uint64_t concurrent_ = 0;  // data requests in progress
  std::uint64_t maxConcurrent_ = 0;
  Json last_ = Json::object();
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"HTTP endpoint that counts received log records, for tests and demos"};
  std::string listen = "127.0.0.1:0";
  std::string outPath;
  app.add_option("--listen", listen, "HOST:PORT to listen on; port 0 picks a free one");
  app.add_option("--out", outPath, "append every received record to this file, one per line");
  bool parse = false;
  app.add_flag("--parse", parse, "parse every record as JSON and refuse a request holding one that is not an object");
  CLI11_PARSE(app, argc, argv);

  const auto colon = listen.rfind(':');
  if (colon == std::string::npos) {
    std::cerr << "--listen expects HOST:PORT, found '" << listen << "'\n";
    return 2;
  }
  const std::string host = listen.substr(0, colon);
  int port = 0;
  try {
    port = std::stoi(listen.substr(colon + 1));
  } catch (const std::exception&) {
    std::cerr << "--listen expects a numeric port, found '" << listen.substr(colon + 1) << "'\n";
    return 2;
  }

  std::FILE* out = nullptr;
  if (!outPath.empty()) {
    out = std::fopen(outPath.c_str(), "a");
    if (out == nullptr) {
      std::perror(outPath.c_str());
      return 1;
    }
  }

  // Every thread started from here on inherits the blocked signals; only the waiter takes them.
  sigset_t stopSignals;
  sigemptyset(&stopSignals);
  sigaddset(&stopSignals, SIGINT);
  sigaddset(&stopSignals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stopSignals, nullptr);

  Receiver receiver(out, parse);
  httplib::Server server;
  server.new_task_queue = [] { return new httplib::ThreadPool(32); };
  // Headers and body go out as two writes; without this, Nagle and delayed ACKs add 40 ms to each answer.
  server.set_tcp_nodelay(true);
  server.set_keep_alive_max_count(1000000);
  server.set_keep_alive_timeout(30);
  // Headers and body go out as separate writes; with Nagle on, the body waits for the client's delayed
  // ACK (~40 ms), which would cap a sender at one request per 40 ms per connection.
  server.set_tcp_nodelay(true);
  server.Post("/_control", [&](const httplib::Request& req, httplib::Response& res) { receiver.control(req, res); });
  server.Get("/_stats", [&](const httplib::Request&, httplib::Response& res) { receiver.stats(res); });
  server.Get("/_last", [&](const httplib::Request&, httplib::Response& res) { receiver.last(res); });
  server.Get(".*", [&](const httplib::Request& req, httplib::Response& res) { receiver.get(req, res); });
  server.Post(".*", [&](const httplib::Request& req, httplib::Response& res) { receiver.data(req, res); });
  server.Put(".*", [&](const httplib::Request& req, httplib::Response& res) { receiver.data(req, res); });

  if (port == 0) {
    port = server.bind_to_any_port(host);
  } else if (!server.bind_to_port(host, port)) {
    port = -1;
  }
  if (port < 0) {
    std::cerr << "cannot listen on " << listen << "\n";
    return 1;
  }

  std::thread waiter([&] {
    int sig = 0;
    sigwait(&stopSignals, &sig);
    server.stop();
  });
  std::cout << "listening on " << host << ":" << port << std::endl;
  const bool ok = server.listen_after_bind();
  // Wake the waiter if the server stopped by itself.
  kill(getpid(), SIGTERM);
  waiter.join();
  if (out != nullptr) std::fclose(out);
  return ok ? 0 : 1;
}
