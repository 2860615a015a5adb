// The admin server, `logcapture breakers` and `logcapture top` end to end: the logcapture binary tails a
// file into the HTTP receiver, with its admin server on a free port, and every check is a real HTTP call
// or a run of the CLI (`top` on a pseudo-terminal).

#include <doctest/doctest.h>
#include <httplib.h>
#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include "tests/support/fixtures.h"
#include "tests/support/http_receiver.h"
#include "tests/support/process.h"
#include "tests/support/terminal_process.h"

namespace {

using logcapture::testing::appendFile;
using logcapture::testing::ChildProcess;
using logcapture::testing::freePort;
using logcapture::testing::HttpReceiver;
using logcapture::testing::numberedLines;
using logcapture::testing::numberedMessages;
using logcapture::testing::runProcess;
using logcapture::testing::TempDir;
using logcapture::testing::waitUntil;
using Json = nlohmann::json;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

const std::string kBinary = LOGCAPTURE_BINARY;
constexpr const char* kSink = "search";

struct Answer {
  int status = 0;  // 0: nothing answered
  std::string body;
  std::string contentType;
  Json json() const { return Json::parse(body, nullptr, false); }
};

struct AdminOptions {
  std::string host = "127.0.0.1";
  std::string token = "";
  std::string queue = "";  // a queue mapping, e.g. "{max_records: 10, when_full: block}"
  std::string sinkExtra = "";
  std::string batch = "{max_records: 1000, linger: 10ms}";
  std::string breaker =
      "{failure_threshold: 3, success_threshold: 1, half_open_max_calls: 1, open_timeout: 200ms, "
      "max_open_timeout: 400ms, jitter: 0}";  // appended to the http sink's mapping, e.g. ", buffer: {...}"
};

// The agent with its admin server, tailing one file into the HTTP receiver (sink "search") and a
// console sink ("debug") writing to a file.
class AdminAgent {
 public:
  explicit AdminAgent(const AdminOptions& options = {}) : port_(freePort()) {
    fs::create_directories(dir_ / "logs");
    std::ofstream out(dir_ / "capture.yaml");
    out << "agent:\n  state_dir: " << (dir_ / "state").string() << "\n  admin: {listen: \"" << options.host << ":"
        << port_ << "\", token: \"" << options.token << "\"}\n  shutdown_timeout: 10s\n"
        << "inputs:\n  - {name: app, type: file, start_at: beginning, paths: [" << log().string() << "]}\n"
        << (options.queue.empty() ? "" : "queue: " + options.queue + "\n") << "sinks:\n"
        << "  - {name: " << kSink << ", type: http, url: \"" << http_.base()
        << "/ingest\", format: ndjson, encoding: raw, timeout: 2s, batch: " << options.batch << ", "
        << "retry: {max_attempts: 3, initial_backoff: 10ms, max_backoff: 100ms}, "
        << "breaker: " << options.breaker << options.sinkExtra << "}\n"
        << "  - {name: debug, type: console, path: " << (dir_ / "debug.out").string()
        << ", encoding: raw, batch: {linger: 10ms}}\n";
    out.close();
    process_.emplace(std::vector<std::string>{kBinary, "run", "-c", (dir_ / "capture.yaml").string()});
    if (!process_->waitForStderr("agent_started", 20s)) FAIL("the agent did not start, stderr:\n" << process_->err());
  }

  fs::path log() const { return dir_ / "logs" / "app.log"; }
  HttpReceiver& http() { return http_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  const TempDir& dir() const { return dir_; }
  ChildProcess& process() { return *process_; }
  std::int64_t received() { return http_.stats()["records"].get<std::int64_t>(); }

  Answer get(const std::string& path) { return request("GET", path, {}); }
  Answer post(const std::string& path, const std::optional<std::string>& token = std::nullopt) {
    return request("POST", path, token);
  }

  // Polls `done` until the deadline, reading the agent's output meanwhile so it never blocks on it.
  template <class Predicate>
  bool until(Predicate done, std::chrono::milliseconds timeout = 10s) {
    return waitUntil(
        [&] {
          process_->readOutput();
          return done();
        },
        timeout);
  }

 private:
  Answer request(const std::string& method, const std::string& path, const std::optional<std::string>& token) {
    process_->readOutput();
    httplib::Client client("127.0.0.1", port_);
    client.set_connection_timeout(2s);
    client.set_read_timeout(5s);
    httplib::Headers headers;
    if (token) headers.emplace("Authorization", "Bearer " + *token);
    const httplib::Result res =
        method == "GET" ? client.Get(path, headers) : client.Post(path, headers, "", "application/json");
    if (!res) return {};
    return {res->status, res->body, res->get_header_value("Content-Type")};
  }

  TempDir dir_{"logcapture-admin"};
  HttpReceiver http_;
  int port_;
  std::optional<ChildProcess> process_;
};

// One scrape, parsed by the Prometheus project's own parser: sample values keyed by
// `name{label=value,...}` with the labels sorted, and each family's type.
struct Scrape {
  std::map<std::string, double> samples;
  std::map<std::string, std::string> types;
  bool parsed = false;
  std::string error;

  double at(const std::string& key) const {
    const auto it = samples.find(key);
    return it == samples.end() ? -1 : it->second;
  }
};

// The system's python3 holds python3-prometheus-client; a python3 earlier on PATH may not.
std::string python() { return fs::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3"; }

Scrape parseMetrics(const std::string& body, const TempDir& dir) {
  const fs::path file = dir / "metrics.txt";
  std::ofstream(file) << body;
  const std::string script =
      "import json, sys\n"
      "from prometheus_client.parser import text_string_to_metric_families\n"
      "samples, types = {}, {}\n"
      "for family in text_string_to_metric_families(open(sys.argv[1]).read()):\n"
      "    types[family.name] = family.type\n"
      "    for s in family.samples:\n"
      "        labels = ','.join(k + '=' + v for k, v in sorted(s.labels.items()))\n"
      "        samples[s.name + '{' + labels + '}'] = s.value\n"
      "print(json.dumps({'samples': samples, 'types': types}))\n";
  const auto r = runProcess({python(), "-c", script, file.string()}, 30s);
  Scrape scrape;
  if (r.exitCode != 0) {
    scrape.error = r.err;
    return scrape;
  }
  const Json j = Json::parse(r.out, nullptr, false);
  if (j.is_discarded()) {
    scrape.error = "not JSON: " + r.out;
    return scrape;
  }
  for (const auto& [k, v] : j["samples"].items()) scrape.samples[k] = v.get<double>();
  for (const auto& [k, v] : j["types"].items()) scrape.types[k] = v.get<std::string>();
  scrape.parsed = true;
  return scrape;
}

// One sample read straight from the text, for polling: `key` is "name{a=x,b=y}" with the labels in the
// order the exposition writes them, or "name{}". The full parser runs in the test that checks the format.
double metric(AdminAgent& agent, const std::string& key) {
  const std::string body = agent.get("/metrics").body;
  const auto brace = key.find('{');
  std::string labels;
  for (std::size_t pos = brace + 1; pos < key.size() - 1;) {
    auto comma = key.find(',', pos);
    if (comma == std::string::npos || comma > key.size() - 1) comma = key.size() - 1;
    const std::string pair = key.substr(pos, comma - pos);
    const auto eq = pair.find('=');
    labels += (labels.empty() ? "" : ",") + pair.substr(0, eq) + "=\"" + pair.substr(eq + 1) + "\"";
    pos = comma + 1;
  }
  const std::string line = key.substr(0, brace) + (labels.empty() ? "" : "{" + labels + "}");
  const auto at = body.find("\n" + line + " ");
  if (at == std::string::npos) return -1;
  return std::stod(body.substr(at + line.size() + 2));
}

std::string sinkKey(const std::string& name, const std::string& sink = kSink) { return name + "{sink=" + sink + "}"; }

}  // namespace

TEST_CASE("metrics parse as Prometheus text, hold every documented family, and count lines as they flow") {
  AdminAgent agent;
  appendFile(agent.log(), numberedLines(0, 200));
  REQUIRE(agent.until([&] { return agent.received() == 200; }));
  REQUIRE(agent.until([&] { return metric(agent, sinkKey("logcapture_sink_delivered_records_total")) == 200; }));

  const Answer a = agent.get("/metrics");
  REQUIRE(a.status == 200);
  CHECK(a.contentType.find("text/plain; version=0.0.4") == 0);
  const Scrape first = parseMetrics(a.body, agent.dir());
  REQUIRE_MESSAGE(first.parsed, first.error);
  for (const char* family : {"logcapture_input_records",
                             "logcapture_input_bytes",
                             "logcapture_queue_records",
                             "logcapture_sink_delivered_records",
                             "logcapture_sink_dropped_records",
                             "logcapture_sink_dead_letter_records",
                             "logcapture_sink_buffer_bytes",
                             "logcapture_breaker_state",
                             "logcapture_breaker_transitions",
                             "logcapture_breaker_calls",
                             "logcapture_queue_dropped_records",
                             "logcapture_input_lag_bytes",
                             "logcapture_input_files_open",
                             "logcapture_input_files_waiting",
                             "logcapture_queue_bytes",
                             "logcapture_queue_max_records",
                             "logcapture_queue_max_bytes",
                             "logcapture_sink_batches_in_flight",
                             "logcapture_sink_retries",
                             "logcapture_sink_sends",
                             "logcapture_sink_buffer_records",
                             "logcapture_breaker_time_in_state_seconds",
                             "logcapture_breaker_opens",
                             "logcapture_breaker_state_seconds",
                             "logcapture_breaker_mode",
                             "logcapture_breaker_bypassed",
                             "logcapture_sink_oldest_batch_age_seconds",
                             "logcapture_sink_probes",
                             "logcapture_sink_send_exceptions",
                             "process_resident_memory_bytes",
                             "process_cpu_seconds",
                             "process_open_fds",
                             "process_start_time_seconds",
                             "logcapture_build_info"}) {
    CHECK_MESSAGE(first.types.contains(family), family);
  }
  CHECK(first.types.at("logcapture_input_records") == "counter");
  CHECK(first.types.at("logcapture_sink_buffer_bytes") == "gauge");
  CHECK(first.at("logcapture_input_records_total{input=app}") == 200);
  CHECK(first.at("logcapture_input_bytes_total{input=app}") == double(numberedLines(0, 200).size()));
  CHECK(first.at("logcapture_sink_delivered_records_total{sink=search}") == 200);
  CHECK(first.at("logcapture_sink_delivered_records_total{sink=debug}") == 200);
  CHECK(first.at("logcapture_sink_dropped_records_total{reason=buffer_full,sink=search}") == 0);
  CHECK(first.at("logcapture_sink_dropped_records_total{reason=dead_letter_failed,sink=search}") == 0);
  CHECK(first.at("logcapture_sink_dropped_records_total{reason=sink_removed,sink=search}") == 0);
  CHECK(first.types.at("logcapture_sink_oldest_batch_age_seconds") == "gauge");
  CHECK(first.at("logcapture_sink_oldest_batch_age_seconds{sink=search}") == 0);  // nothing waits
  CHECK(first.at("logcapture_queue_dropped_records_total{policy=drop_newest}") == 0);
  CHECK(first.at("logcapture_input_files_open{input=app}") == 1);
  CHECK(first.at("process_resident_memory_bytes{}") > 0);
  CHECK(first.at("process_open_fds{}") > 0);
  // All five states are present, the current one at 1.
  CHECK(first.at("logcapture_breaker_state{sink=search,state=closed}") == 1);
  for (const char* state : {"open", "half_open", "forced_open", "disabled"}) {
    CHECK(first.at(std::string("logcapture_breaker_state{sink=search,state=") + state + "}") == 0);
  }
  CHECK(first.at("logcapture_breaker_calls_total{result=success,sink=search}") >= 1);
  CHECK(first.at("logcapture_breaker_transitions_total{from=closed,sink=search,to=open}") == 0);
  CHECK(first.types.at("logcapture_breaker_state_seconds") == "counter");
  CHECK(first.at("logcapture_breaker_state_seconds_total{sink=search,state=closed}") > 0);
  CHECK(first.at("logcapture_breaker_state_seconds_total{sink=search,state=open}") == 0);
  CHECK(first.at("logcapture_breaker_mode{mode=enforce,sink=search}") == 1);
  CHECK(first.at("logcapture_breaker_mode{mode=metrics_only,sink=search}") == 0);

  appendFile(agent.log(), numberedLines(200, 300));
  REQUIRE(agent.until([&] { return metric(agent, sinkKey("logcapture_sink_delivered_records_total")) == 300; }));
  const Scrape second = parseMetrics(agent.get("/metrics").body, agent.dir());
  REQUIRE_MESSAGE(second.parsed, second.error);
  CHECK(second.at("logcapture_input_records_total{input=app}") == 300);
  CHECK(second.at("logcapture_input_bytes_total{input=app}") == double(numberedLines(0, 300).size()));
  CHECK(second.at("logcapture_sink_delivered_records_total{sink=search}") == 300);
  // The current state's time counts up to each scrape, not only at transitions.
  CHECK(second.at("logcapture_breaker_state_seconds_total{sink=search,state=closed}") >
        first.at("logcapture_breaker_state_seconds_total{sink=search,state=closed}"));
}

TEST_CASE("force-open holds a sink's lines in its buffer and auto drains them, each line once") {
  AdminAgent agent;
  appendFile(agent.log(), numberedLines(0, 100));
  REQUIRE(agent.until([&] { return agent.received() == 100; }));

  const Answer opened = agent.post("/api/v1/breakers/search/force-open");
  REQUIRE(opened.status == 200);
  CHECK(opened.json()["previous_state"] == "closed");
  CHECK(opened.json()["state"] == "forced_open");

  const std::string held = numberedLines(100, 200);
  appendFile(agent.log(), held);
  CHECK(agent.until([&] { return metric(agent, sinkKey("logcapture_sink_buffer_records")) == 100; }));
  CHECK(metric(agent, sinkKey("logcapture_sink_buffer_bytes")) > 0);
  // The held lines are not checkpointed: the input lags by exactly their bytes.
  CHECK(agent.until([&] { return metric(agent, "logcapture_input_lag_bytes{input=app}") == double(held.size()); }));
  // Workers asked the breaker and were refused a few times; nothing reached the receiver meanwhile.
  const double rejected = metric(agent, "logcapture_breaker_calls_total{sink=search,result=rejected}");
  CHECK(agent.until(
      [&] { return metric(agent, "logcapture_breaker_calls_total{sink=search,result=rejected}") >= rejected + 3; }));
  CHECK(agent.received() == 100);
  CHECK(metric(agent, "logcapture_breaker_state{sink=search,state=forced_open}") == 1);

  const Answer resumed = agent.post("/api/v1/breakers/search/auto");
  REQUIRE(resumed.status == 200);
  CHECK(resumed.json()["previous_state"] == "forced_open");
  CHECK(agent.until([&] { return agent.received() == 200; }));
  CHECK(agent.until([&] { return metric(agent, sinkKey("logcapture_sink_buffer_records")) == 0; }));
  CHECK(agent.until([&] { return metric(agent, "logcapture_input_lag_bytes{input=app}") == 0; }));
  CHECK(agent.until([&] { return agent.get("/api/v1/breakers/search").json()["state"] == "closed"; }));
  agent.process().signal(SIGTERM);
  CHECK(agent.process().wait(20s).exitCode == 0);
  CHECK(agent.http().records() == numberedMessages(0, 200));
  CHECK(agent.process().err().find("breaker_operator_action sink=search action=force-open peer=127.0.0.1:") !=
        std::string::npos);
  CHECK(agent.process().err().find("from=closed to=forced_open") != std::string::npos);
}

// While an operator holds the breaker open, each policy either keeps or drops what arrives; the metrics
// account for every line written: delivered plus dropped (by reason) equals the input, and the receiver
// holds exactly the delivered lines, each once and in order.
TEST_CASE("with on_open drop and each when_full policy, delivered plus dropped equals the lines written") {
  struct Policy {
    std::string name;
    std::string buffer;  // the sink's buffer mapping
    const char* reason;  // the drop reason the policy produces, or nullptr when it loses nothing
  };
  const std::vector<Policy> policies = {
      {"on_open: drop", "{on_open: drop}", "breaker_open"},
      {"when_full: drop_newest", "{max_bytes: 64KiB, when_full: drop_newest}", "buffer_full"},
      {"when_full: drop_oldest", "{max_bytes: 64KiB, when_full: drop_oldest}", "buffer_full"},
      {"when_full: block", "{max_bytes: 64KiB, when_full: block}", nullptr},
  };
  for (const auto& policy : policies) {
    CAPTURE(policy.name);
    // 200,000 lines overflow the smallest buffer (64 KiB, some 7,000 of these lines) and what the sink's
    // intake and the queue (100 records) hold, so a blocked sink holds the input back.
    AdminAgent agent({.queue = "{max_records: 100, when_full: block}",
                      .sinkExtra = ", buffer: " + policy.buffer,
                      .batch = "{max_records: 50, max_bytes: 1KiB, linger: 10ms}"});
    const auto delivered = [&] { return metric(agent, sinkKey("logcapture_sink_delivered_records_total")); };
    const auto dropped = [&] {
      double sum = 0;
      for (const char* reason :
           {"breaker_open", "buffer_full", "dead_letter_full", "dead_letter_failed", "sink_removed"}) {
        sum += metric(agent, "logcapture_sink_dropped_records_total{sink=search,reason=" + std::string(reason) + "}");
      }
      return sum;
    };
    appendFile(agent.log(), numberedLines(0, 100));
    REQUIRE(agent.until([&] { return delivered() == 100; }));

    REQUIRE(agent.post("/api/v1/breakers/search/force-open").status == 200);
    appendFile(agent.log(), numberedLines(100, 200100));
    if (policy.reason != nullptr) {
      const std::string key =
          "logcapture_sink_dropped_records_total{sink=search,reason=" + std::string(policy.reason) + "}";
      CHECK(agent.until([&] { return metric(agent, key) > 0; }));
    } else {
      // Nothing is dropped: the full buffer holds the queue, and the queue the input.
      CHECK(agent.until([&] { return metric(agent, "logcapture_queue_blocked{}") == 1; }));
    }
    REQUIRE(agent.post("/api/v1/breakers/search/auto").status == 200);
    CHECK(agent.until([&] { return delivered() + dropped() == 200100; }, 20s));
    CHECK(agent.until([&] { return metric(agent, sinkKey("logcapture_sink_buffer_records")) == 0; }));
    appendFile(agent.log(), numberedLines(200100, 200200));
    CHECK(agent.until([&] { return delivered() + dropped() == 200200; }));
    CHECK(agent.until([&] { return agent.received() == std::int64_t(delivered()); }));
    const double deliveredLines = delivered();
    if (policy.reason == nullptr) CHECK(dropped() == 0);
    agent.process().signal(SIGTERM);
    CHECK(agent.process().wait(20s).exitCode == 0);

    // What arrived is in order, each line once, and holds everything from before the outage and after it.
    const auto got = agent.http().records();
    CHECK(got.size() == std::size_t(deliveredLines));
    std::vector<int> numbers;
    for (const auto& line : got) numbers.push_back(std::stoi(line.substr(5)));
    CHECK(std::is_sorted(numbers.begin(), numbers.end()));
    CHECK(std::adjacent_find(numbers.begin(), numbers.end()) == numbers.end());
    CHECK(std::vector<std::string>(got.begin(), got.begin() + std::min<std::size_t>(got.size(), 100)) ==
          numberedMessages(0, 100));
    CHECK(std::vector<std::string>(got.end() - std::min<std::size_t>(got.size(), 100), got.end()) ==
          numberedMessages(200100, 200200));
  }
}

// 429 is "throttled": by default it slows the sink (each retry waits at least Retry-After) without
// tripping the breaker; with trip_on_throttle it counts as a failure, and once the breaker opens
// Retry-After is a floor on its open time, far above the 200 ms open_timeout configured here.
TEST_CASE("429 with Retry-After and trip_on_throttle holds the breaker open at least that long") {
  AdminAgent agent({.breaker = "{failure_threshold: 1, success_threshold: 1, half_open_max_calls: 1, "
                               "open_timeout: 200ms, max_open_timeout: 10s, jitter: 0, trip_on_throttle: true}"});
  agent.http().control({{"status", 429}, {"retry_after", 3}});
  appendFile(agent.log(), numberedLines(0, 100));
  REQUIRE(agent.until([&] { return agent.get("/api/v1/breakers/search").json()["state"] == "open"; }));
  const auto opened = std::chrono::steady_clock::now();
  const auto requests = agent.http().stats()["requests"].get<int>();
  agent.http().control({{"status", 200}});
  // Nothing is sent while the floor holds, though open_timeout alone would allow a trial after 200 ms.
  while (std::chrono::steady_clock::now() - opened < 2s) {
    CHECK(agent.http().stats()["requests"].get<int>() == requests);
    CHECK(agent.get("/api/v1/breakers/search").json()["state"] == "open");
    std::this_thread::sleep_for(100ms);
  }
  CHECK(agent.until([&] { return agent.received() == 100; }));
  CHECK(std::chrono::steady_clock::now() - opened >= 2900ms);
  CHECK(metric(agent, "logcapture_breaker_calls_total{sink=search,result=throttled}") >= 1);
  agent.process().signal(SIGTERM);
  CHECK(agent.process().wait(20s).exitCode == 0);
  CHECK(agent.http().records() == numberedMessages(0, 100));
}

TEST_CASE("429 by default slows the sink by its Retry-After without opening the breaker") {
  AdminAgent agent({.breaker = "{failure_threshold: 1, success_threshold: 1, half_open_max_calls: 1, "
                               "open_timeout: 200ms, max_open_timeout: 10s, jitter: 0}"});
  agent.http().control({{"status", 429}, {"retry_after", 2}, {"times", 1}});
  const auto started = std::chrono::steady_clock::now();
  appendFile(agent.log(), numberedLines(0, 100));
  CHECK(agent.until([&] { return agent.received() == 100; }));
  CHECK(std::chrono::steady_clock::now() - started >= 1900ms);  // the retry waited for Retry-After
  CHECK(agent.get("/api/v1/breakers/search").json()["state"] == "closed");
  CHECK(metric(agent, sinkKey("logcapture_breaker_opens_total")) == 0);
  CHECK(metric(agent, "logcapture_breaker_calls_total{sink=search,result=throttled}") == 1);
  agent.process().signal(SIGTERM);
  CHECK(agent.process().wait(20s).exitCode == 0);
  CHECK(agent.http().records() == numberedMessages(0, 100));
}

TEST_CASE("breaker actions and reload need the configured bearer token") {
  AdminAgent agent({.token = "s3cret-token"});
  const Answer none = agent.post("/api/v1/breakers/search/force-open");
  CHECK(none.status == 401);
  CHECK(none.json()["error"].is_string());
  CHECK(agent.post("/api/v1/breakers/search/force-open", "s3cret-tokem").status == 401);
  CHECK(agent.post("/api/v1/breakers/search/force-open", "s3cret-token-and-more").status == 401);
  CHECK(agent.post("/api/v1/reload").status == 401);
  CHECK(agent.get("/api/v1/breakers/search").json()["state"] == "closed");

  const Answer right = agent.post("/api/v1/breakers/search/force-open", "s3cret-token");
  CHECK(right.status == 200);
  CHECK(right.json()["state"] == "forced_open");
  // Reads need no token.
  CHECK(agent.get("/api/v1/breakers").status == 200);
  CHECK(agent.get("/metrics").status == 200);
}

TEST_CASE(
    "POST reload applies a valid config and names what changed, and an invalid one answers 400 and changes nothing") {
  AdminAgent agent;
  const fs::path config = agent.dir() / "capture.yaml";
  std::stringstream text;
  text << std::ifstream(config).rdbuf();
  const std::string original = text.str();
  appendFile(agent.log(), numberedLines(0, 100));
  REQUIRE(agent.until([&] { return agent.received() == 100; }));

  // The console sink changes its encoding; the http sink is untouched and keeps its breaker.
  REQUIRE(agent.post("/api/v1/breakers/search/force-open").status == 200);
  std::string edited = original;
  const std::string from = "encoding: raw, batch: {linger: 10ms}";
  REQUIRE(edited.find(from) != std::string::npos);
  edited.replace(edited.find(from), from.size(), "encoding: json, batch: {linger: 10ms}");
  std::ofstream(config) << edited;
  const Answer applied = agent.post("/api/v1/reload");
  CHECK(applied.status == 200);
  CHECK(applied.json()["applied"] == true);
  CHECK(applied.json()["changes"].dump().find("debug") != std::string::npos);
  CHECK(applied.json()["changes"].dump().find("search") == std::string::npos);
  CHECK(agent.get("/api/v1/breakers/search").json()["state"] == "forced_open");
  REQUIRE(agent.post("/api/v1/breakers/search/auto").status == 200);

  std::ofstream(config) << original << "  - {name: broken, type: http}\n";  // an http sink needs a url
  const Answer refused = agent.post("/api/v1/reload");
  CHECK(refused.status == 400);
  CHECK(refused.json()["applied"] == false);
  CHECK(refused.json()["error"].get<std::string>().find("url") != std::string::npos);
  CHECK(agent.until([&] { return agent.process().err().find("config_reload_failed") != std::string::npos; }));

  // The running config stays: lines keep arriving, and the console sink writes JSON.
  appendFile(agent.log(), numberedLines(100, 200));
  CHECK(agent.until([&] { return agent.received() == 200; }));
  CHECK(agent.until([&] {
    std::stringstream out;
    out << std::ifstream(agent.dir() / "debug.out").rdbuf();
    return out.str().find("\"message\":\"line 199\"") != std::string::npos;
  }));
  agent.process().signal(SIGTERM);
  CHECK(agent.process().wait(20s).exitCode == 0);
  CHECK(agent.http().records() == numberedMessages(0, 200));
}

TEST_CASE("without a token, an admin server beyond loopback refuses actions and still serves reads") {
  AdminAgent agent({.host = "0.0.0.0"});
  const Answer refused = agent.post("/api/v1/breakers/search/force-open");
  CHECK(refused.status == 403);
  CHECK(refused.json()["error"].get<std::string>().find("agent.admin.token") != std::string::npos);
  CHECK(agent.post("/api/v1/breakers/search/force-open", "anything").status == 403);
  CHECK(agent.post("/api/v1/reload").status == 403);
  CHECK(agent.get("/api/v1/breakers").status == 200);
  CHECK(agent.get("/health").status == 200);
  CHECK(agent.get("/api/v1/breakers/search").json()["state"] == "closed");
}

TEST_CASE("an unknown sink, action or path answers 404 with a JSON error") {
  AdminAgent agent;
  for (const auto& [method, path] :
       std::vector<std::pair<std::string, std::string>>{{"GET", "/api/v1/breakers/nope"},
                                                        {"POST", "/api/v1/breakers/nope/force-open"},
                                                        {"POST", "/api/v1/breakers/search/explode"},
                                                        {"GET", "/nothing/here"},
                                                        {"POST", "/metrics"}}) {
    const Answer a = method == "GET" ? agent.get(path) : agent.post(path);
    CHECK_MESSAGE(a.status == 404, method << " " << path);
    CHECK_MESSAGE(a.contentType == "application/json", method << " " << path);
    CHECK_MESSAGE(a.json()["error"].is_string(), method << " " << path << ": " << a.body);
  }
  CHECK(agent.get("/api/v1/breakers/nope").json()["error"] == "no sink is named 'nope'");
  const Answer wrongMethod = agent.get("/api/v1/breakers/search/force-open");
  CHECK(wrongMethod.status == 405);
  CHECK(wrongMethod.json()["error"].is_string());
}

TEST_CASE("a breaker's view holds its state, options, counters and the sink's figures") {
  AdminAgent agent;
  appendFile(agent.log(), numberedLines(0, 10));
  REQUIRE(agent.until([&] { return agent.received() == 10; }));
  REQUIRE(agent.until([&] { return agent.get("/api/v1/breakers/search").json()["sink_stats"]["delivered"] == 10; }));
  const Json view = agent.get("/api/v1/breakers/search").json();
  CHECK(view["state"] == "closed");
  CHECK(view["type"] == "http");
  // Closed since the agent started, moments ago, and counting.
  const double inState = view["time_in_state_seconds"].get<double>();
  CHECK(inState > 0);
  CHECK(inState < 60);
  CHECK(agent.until(
      [&] { return agent.get("/api/v1/breakers/search").json()["time_in_state_seconds"].get<double>() > inState; }));
  CHECK(view["next_retry_at"].is_null());
  CHECK(view["config"]["failure_threshold"] == 3);
  CHECK(view["config"]["open_timeout"] == "200ms");
  CHECK(view["totals"]["successes"].get<int>() >= 1);
  CHECK(view["consecutive_failures"] == 0);
  CHECK(view["sink_stats"]["buffer"]["records"] == 0);
  CHECK(view["sink_stats"]["dropped"]["total"] == 0);

  const Json all = agent.get("/api/v1/breakers").json();
  REQUIRE(all["breakers"].size() == 2);
  CHECK(all["breakers"][0]["sink"] == "search");
  CHECK(all["breakers"][1]["sink"] == "debug");
}

TEST_CASE("a breaker's view shows the bound of the sink's buffer beside what it holds") {
  AdminAgent agent({.sinkExtra = ", buffer: {max_bytes: 1MiB}"});
  const Json buffer = agent.get("/api/v1/breakers/search").json()["sink_stats"]["buffer"];
  CHECK(buffer["max_bytes"] == 1024 * 1024);
  CHECK(buffer["bytes"] == 0);
}

TEST_CASE("an opened breaker shows its next retry time in RFC 3339 UTC, and reset closes it") {
  // Open for a minute, so the view is taken while it is open.
  AdminAgent agent({.breaker = "{failure_threshold: 3, success_threshold: 1, open_timeout: 1m, jitter: 0}"});
  agent.http().control({{"status", 503}});
  appendFile(agent.log(), numberedLines(0, 10));
  REQUIRE(agent.until([&] { return agent.get("/api/v1/breakers/search").json()["state"] == "open"; }));
  const Json view = agent.get("/api/v1/breakers/search").json();
  const std::string at = view["next_retry_at"].get<std::string>();
  CHECK(at.size() == 30);  // 2026-11-23T14:15:42.123456789Z
  CHECK(at[10] == 'T');
  CHECK(at.back() == 'Z');
  CHECK(at > view["since"].get<std::string>());
  CHECK(view["opens"] == 1);
  CHECK(view["consecutive_failures"] == 0);  // opening starts the count afresh
  // The batch waits behind the open breaker, and its age shows it.
  CHECK(agent.until([&] { return metric(agent, sinkKey("logcapture_sink_oldest_batch_age_seconds")) > 0.1; }));
  CHECK(view["totals"]["failures"].get<int>() >= 3);
  CHECK(metric(agent, sinkKey("logcapture_breaker_opens_total")) == 1);
  CHECK(metric(agent, "logcapture_breaker_transitions_total{sink=search,from=closed,to=open}") == 1);

  agent.http().control({{"status", 200}});
  const Answer reset = agent.post("/api/v1/breakers/search/reset");
  CHECK(reset.status == 200);
  CHECK(reset.json()["previous_state"] == "open");
  CHECK(reset.json()["state"] == "closed");
  CHECK(agent.until([&] { return agent.received() == 10; }));
}

TEST_CASE("health and ready answer JSON, and ready lists an open breaker yet stays ready") {
  AdminAgent agent;
  const Answer health = agent.get("/health");
  CHECK(health.status == 200);
  CHECK(health.json()["status"] == "ok");
  CHECK(health.json()["heartbeat_age_seconds"].get<double>() < 5);

  const Answer ready = agent.get("/ready");
  CHECK(ready.status == 200);
  CHECK(ready.json()["ready"] == true);
  CHECK(ready.json()["open_breakers"].empty());
  CHECK(ready.json()["inputs"][0]["name"] == "app");
  CHECK(ready.json()["queue"]["blocked"] == false);

  REQUIRE(agent.post("/api/v1/breakers/search/force-open").status == 200);
  const Answer stillReady = agent.get("/ready");
  CHECK(stillReady.status == 200);
  CHECK(stillReady.json()["open_breakers"] ==
        Json::array({{{"sink", "search"}, {"state", "forced_open"}, {"mode", "enforce"}}}));
}

TEST_CASE("ready answers 503 with the reason while the full queue holds the inputs back") {
  // The sink is forced open and blocks when its 64 KiB buffer is full, so its intake, the fan-out and
  // then the 10-record queue fill up and the file input waits.
  AdminAgent agent({.queue = "{max_records: 10, when_full: block}",
                    .sinkExtra = ", buffer: {max_bytes: 64KiB, on_open: buffer, when_full: block}",
                    .batch = "{max_records: 1000, max_bytes: 16KiB, linger: 10ms}"});
  REQUIRE(agent.post("/api/v1/breakers/search/force-open").status == 200);
  appendFile(agent.log(), numberedLines(0, 200000));
  CHECK(agent.until([&] { return agent.get("/ready").status == 503; }, 20s));
  const Json body = agent.get("/ready").json();
  CHECK(body["ready"] == false);
  CHECK(body["reason"].get<std::string>().find("queue") != std::string::npos);
  CHECK(metric(agent, "logcapture_queue_blocked{}") == 1);

  REQUIRE(agent.post("/api/v1/breakers/search/auto").status == 200);
  CHECK(agent.until([&] { return agent.received() == 200000; }, 60s));
  CHECK(agent.until([&] { return agent.get("/ready").status == 200; }));
}

TEST_CASE("an admin address already in use stops the agent at start with exit code 3") {
  TempDir dir("logcapture-admin");
  HttpReceiver taken;  // holds a port on 127.0.0.1
  fs::create_directories(dir / "logs");
  std::ofstream(dir / "capture.yaml") << "agent:\n  state_dir: " << (dir / "state").string()
                                      << "\n  admin: {listen: \"127.0.0.1:" << taken.port() << "\"}\n"
                                      << "inputs: [{name: app, type: file, paths: [" << (dir / "logs").string()
                                      << "/*.log]}]\nsinks: [{name: out, type: console}]\n";
  const auto r = runProcess({kBinary, "run", "-c", (dir / "capture.yaml").string()}, 20s);
  CHECK(r.exitCode == 3);
  CHECK(r.err.find("admin_listen_failed listen=127.0.0.1:" + std::to_string(taken.port())) != std::string::npos);
  CHECK(r.err.find("agent_started") == std::string::npos);
}

TEST_CASE("breakers list prints one aligned row per sink") {
  AdminAgent agent;
  appendFile(agent.log(), numberedLines(0, 5));
  REQUIRE(agent.until([&] { return agent.received() == 5; }));
  REQUIRE(agent.until([&] { return agent.get("/api/v1/breakers/debug").json()["sink_stats"]["delivered"] == 5; }));
  const auto r = runProcess({kBinary, "breakers"}, 20s, {"LOGCAPTURE_ADMIN_URL=" + agent.url()});
  CHECK(r.exitCode == 0);
  std::vector<std::string> lines;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  REQUIRE(lines.size() == 3);
  CHECK(lines[0].starts_with("SINK"));
  CHECK(lines[0].find("NEXT RETRY") != std::string::npos);
  CHECK(lines[1].starts_with("search  closed"));
  CHECK(lines[2].starts_with("debug   closed"));
  // Columns line up: DELIVERED starts at the same place in every row.
  const auto column = lines[0].find("DELIVERED");
  CHECK(lines[1].substr(column, 1) == "5");
  CHECK(lines[2].substr(column, 1) == "5");
}

TEST_CASE("breakers open forces a sink open and list then shows it forced_open") {
  AdminAgent agent;
  const auto opened = runProcess({kBinary, "breakers", "open", kSink, "--admin", agent.url()}, 20s);
  CHECK(opened.exitCode == 0);
  CHECK(opened.out == "search: forced_open (was closed)\n");
  const auto listed = runProcess({kBinary, "breakers", "list", "--admin", agent.url()}, 20s);
  CHECK(listed.exitCode == 0);
  CHECK(listed.out.find("search  forced_open") != std::string::npos);
  const auto resumed = runProcess({kBinary, "breakers", "auto", kSink, "--admin", agent.url()}, 20s);
  CHECK(resumed.exitCode == 0);
  CHECK(resumed.out == "search: half_open (was forced_open)\n");
}

TEST_CASE("breakers sends the token from LOGCAPTURE_ADMIN_TOKEN and exits 1 when it is refused") {
  AdminAgent agent({.token = "t0ken"});
  const auto refused = runProcess({kBinary, "breakers", "close", kSink, "--admin", agent.url()}, 20s);
  CHECK(refused.exitCode == 1);
  CHECK(refused.err.find("HTTP 401") != std::string::npos);
  const auto accepted =
      runProcess({kBinary, "breakers", "close", kSink, "--admin", agent.url()}, 20s, {"LOGCAPTURE_ADMIN_TOKEN=t0ken"});
  CHECK(accepted.exitCode == 0);
  CHECK(accepted.out == "search: disabled (was closed)\n");
}

TEST_CASE("breakers exits 1 with the server's message for an unknown sink") {
  AdminAgent agent;
  const auto r = runProcess({kBinary, "breakers", "reset", "nope", "--admin", agent.url()}, 20s);
  CHECK(r.exitCode == 1);
  CHECK(r.err.find("no sink is named 'nope'") != std::string::npos);
  CHECK(r.out.empty());
}

TEST_CASE("breakers exits 3 when no admin server answers and 2 on a bad command line") {
  const auto port = freePort();
  const auto unreachable =
      runProcess({kBinary, "breakers", "list", "--admin", "http://127.0.0.1:" + std::to_string(port)}, 20s);
  CHECK(unreachable.exitCode == 3);
  CHECK(unreachable.err.find("cannot reach the admin server") != std::string::npos);
  CHECK(runProcess({kBinary, "breakers", "open"}, 20s).exitCode == 2);
  CHECK(runProcess({kBinary, "breakers", "explode"}, 20s).exitCode == 2);
  CHECK(runProcess({kBinary, "breakers", "list", "--admin", "not a url"}, 20s).exitCode == 2);
}

// `logcapture top` on a pseudo-terminal: what it draws is read raw, keys are typed into it.

// xterm's exit from the alternate screen (rmcup): endwin() writes it as the terminal is restored.
constexpr std::string_view kLeaveAlternateScreen = "\x1b[?1049l";

// True when the output ends with the terminal restored: the alternate screen left after the last time
// it was entered, and nothing drawn after that but the few control sequences endwin() ends with.
bool endsRestored(const std::string& screen) {
  const auto entered = screen.rfind("\x1b[?1049h");
  const auto left = screen.rfind(kLeaveAlternateScreen);
  if (entered == std::string::npos || left == std::string::npos || left < entered) return false;
  return screen.size() - left < 64;
}

std::vector<std::string> topCommand(const std::string& url) {
  return {kBinary, "top", "--admin", url, "--interval", "200ms"};
}

TEST_CASE("top shows the sink's breaker, forces it open with o, and q quits with the terminal restored") {
  AdminAgent agent;
  logcapture::testing::TerminalProcess top(topCommand(agent.url()), {"TERM=xterm", "LOGCAPTURE_ADMIN_TOKEN="}, 120, 40);
  const auto seen = [&](const std::string& text) { return agent.until([&] { return top.waitFor(text, 50ms); }, 20s); };
  REQUIRE_MESSAGE(seen(kSink), top.screen());
  REQUIRE_MESSAGE(seen("closed"), top.screen());
  CHECK(seen("DELIVERED/S"));
  CHECK(seen("LINES/S"));

  top.type("o");
  CHECK(agent.until([&] { return agent.get("/api/v1/breakers/search").json().value("state", "") == "forced_open"; }));
  CHECK(seen("search: forced_open (was closed)"));

  top.type("q");
  CHECK(top.wait(10s) == 0);
  CHECK_MESSAGE(endsRestored(top.screen()),
                top.screen().substr(top.screen().size() > 300 ? top.screen().size() - 300 : 0));
}

TEST_CASE("top asks for the token an action needs without echoing it, and keeps it for the session") {
  AdminAgent agent({.token = "s3cret-t0ken"});
  logcapture::testing::TerminalProcess top(topCommand(agent.url()), {"TERM=xterm", "LOGCAPTURE_ADMIN_TOKEN="}, 120, 40);
  const auto seen = [&](const std::string& text, std::size_t from = 0) {
    return agent.until([&] { return top.waitFor(text, 50ms, from); }, 20s);
  };
  REQUIRE_MESSAGE(seen("closed"), top.screen());
  top.type("o");
  REQUIRE_MESSAGE(seen("token: "), top.screen());
  const std::size_t typedAt = top.screen().size();
  top.type("s3cret-t0ken\r");
  CHECK(agent.until([&] { return agent.get("/api/v1/breakers/search").json().value("state", "") == "forced_open"; }));
  CHECK(top.screen().find("s3cret-t0ken", typedAt) == std::string::npos);

  // The next action sends the kept token: no second prompt.
  const std::size_t before = top.screen().size();
  top.type("c");
  CHECK(agent.until([&] { return agent.get("/api/v1/breakers/search").json().value("state", "") == "disabled"; }));
  CHECK(seen("disabled", before));
  CHECK(top.screen().find("token: ", before) == std::string::npos);

  ::kill(top.pid(), SIGTERM);
  CHECK(top.wait(10s) == 0);
  CHECK(endsRestored(top.screen()));
}

TEST_CASE("top shows an agent it cannot reach, keeps retrying, and Ctrl-C quits with the terminal restored") {
  const std::string url = "http://127.0.0.1:" + std::to_string(freePort());
  logcapture::testing::TerminalProcess top(topCommand(url), {"TERM=xterm"}, 100, 30);
  REQUIRE_MESSAGE(top.waitFor("cannot reach " + url + ": ", 20s), top.screen());
  // Still running, and still trying: the clock in the title is not drawn without an answer, so the
  // proof of retrying is that the process stays up through several intervals and still answers keys.
  CHECK_FALSE(top.waitFor("\x1b[?1049l", 1s));
  top.type("\x03");
  CHECK(top.wait(10s) == 0);
  CHECK(endsRestored(top.screen()));
}

TEST_CASE("top shows that the agent stopped answering and shows it again once it answers") {
  AdminAgent agent;
  logcapture::testing::TerminalProcess top(topCommand(agent.url()), {"TERM=xterm"}, 120, 40);
  REQUIRE_MESSAGE(agent.until([&] { return top.waitFor("closed", 50ms); }, 20s), top.screen());
  agent.process().signal(SIGSTOP);  // its listener still takes connections; nothing answers them
  const bool stopped = top.waitFor("cannot reach " + agent.url() + ": ", 20s);
  const std::size_t at = top.screen().size();
  agent.process().signal(SIGCONT);
  REQUIRE_MESSAGE(stopped, top.screen());
  // The status line goes back to the keys once a read succeeds.
  CHECK(agent.until([&] { return top.waitFor("q quit", 50ms, at); }, 20s));
  top.type("q");
  CHECK(top.wait(10s) == 0);
}

TEST_CASE("top refuses a bad interval or URL before touching the terminal") {
  CHECK(runProcess({kBinary, "top", "--interval", "10ms"}, 20s).exitCode == 2);
  CHECK(runProcess({kBinary, "top", "--admin", "not a url"}, 20s).exitCode == 2);
  const auto notTerminal = runProcess({kBinary, "top"}, 20s);
  CHECK(notTerminal.exitCode == 2);
  CHECK(notTerminal.err.find("needs a terminal") != std::string::npos);
}
