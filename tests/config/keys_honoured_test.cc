// Every key `logcapture check` accepts is honoured at run time. Each key the config declarations hold
// (config/reference.h walks them) is set to a value other than its default by one of the scenarios
// below, which checks that the running part sees it: what it sends, writes, logs or refuses, or the
// options of the live breaker. A key declared later without a scenario fails the first test case.

#include <doctest/doctest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "agent/inputs/input.h"
#include "agent/pipeline/pipeline.h"
#include "agent/pipeline/queue.h"
#include "agent/runner/sink_runner.h"
#include "circuit/breaker.h"
#include "circuit/clock.h"
#include "config/loader.h"
#include "config/reference.h"
#include "tests/support/fixtures.h"
#include "tests/support/kafka_broker.h"
#include "tests/support/process.h"
#include "tests/support/redis_server.h"

namespace {

using namespace logcapture;
using namespace std::chrono_literals;
using agent::Pipeline;
using agent::SinkRunner;
using testing::appendFile;
using testing::ChildProcess;
using testing::TempDir;
using testing::waitUntil;
using Json = nlohmann::json;
namespace fs = std::filesystem;

// Which scenario sets and checks which keys, by the name and condition the reference gives them.
struct Coverage {
  std::string scenario;
  std::vector<std::string> keys;
};

const std::vector<Coverage>& coverage() {
  static const std::vector<Coverage> table{
      {"the agent's own keys reach the running agent",
       {"agent.state_dir", "agent.log.level", "agent.log.format", "agent.admin.listen", "agent.admin.token",
        "agent.shutdown_timeout", "agent.checkpoint_retention", "inputs[].type"}},
      {"a file input's keys decide what it reads and how it decodes it",
       {"inputs[].name", "inputs[].paths [type: file]", "inputs[].exclude [type: file]",
        "inputs[].start_at [type: file]", "inputs[].format", "inputs[].max_line_bytes", "inputs[].fields",
        "sinks[].name", "sinks[].type", "sinks[].inputs", "sinks[].encoding", "sinks[].path [type: console]"}},
      {"max_open_files and close_inactive give files their places in turn",
       {"inputs[].max_open_files [type: file]", "inputs[].close_inactive [type: file]"}},
      {"the multiline keys join and cut records",
       {"inputs[].multiline", "inputs[].multiline.start_pattern", "inputs[].multiline.max_lines",
        "inputs[].multiline.max_bytes", "inputs[].multiline.timeout"}},
      {"the queue keys bound the pipeline's queue", {"queue.max_records", "queue.max_bytes", "queue.when_full"}},
      {"the breaker keys reach the live breaker",
       {"sinks[].breaker.mode", "sinks[].breaker.failure_threshold", "sinks[].breaker.success_threshold",
        "sinks[].breaker.open_timeout", "sinks[].breaker.max_open_timeout", "sinks[].breaker.backoff_multiplier",
        "sinks[].breaker.jitter", "sinks[].breaker.half_open_max_calls", "sinks[].breaker.trip_on_throttle",
        "sinks[].breaker.probe", "sinks[].breaker.window", "sinks[].breaker.window.type", "sinks[].breaker.window.size",
        "sinks[].breaker.window.min_calls", "sinks[].breaker.window.failure_rate",
        "sinks[].breaker.window.slow_call_rate", "sinks[].breaker.window.slow_call_duration"}},
      {"breaker.ramp paces a sink's sends after its breaker closes", {"sinks[].breaker.ramp"}},
      {"buffer.type: disk keeps the sink's batches in segment files under state_dir/buffers",
       {"sinks[].buffer.type", "sinks[].buffer.sync", "sinks[].buffer.sync_interval"}},
      {"the batch keys shape a sink's batches",
       {"sinks[].batch.max_records", "sinks[].batch.max_bytes", "sinks[].batch.linger"}},
      {"workers and timeout shape a sink's sends", {"sinks[].workers", "sinks[].timeout"}},
      {"the retry keys pace a sink's retries",
       {"sinks[].retry.max_attempts", "sinks[].retry.initial_backoff", "sinks[].retry.max_backoff"}},
      {"the buffer keys decide what an open breaker keeps",
       {"sinks[].buffer.max_bytes", "sinks[].buffer.on_open", "sinks[].buffer.when_full"}},
      {"dead_letter.max_bytes caps the dead letter", {"sinks[].dead_letter.max_bytes"}},
      {"fallback sends an open sink's batches to another sink until a reload removes it", {"sinks[].fallback"}},
      {"the http keys reach the request",
       {"sinks[].url [type: http]", "sinks[].method [type: http]", "sinks[].format [type: http]",
        "sinks[].compression [type: http]", "sinks[].headers [type: http]", "sinks[].auth.strategy [type: http]",
        "sinks[].auth.user [type: http, auth.strategy: basic]",
        "sinks[].auth.password [type: http, auth.strategy: basic]",
        "sinks[].auth.token [type: http, auth.strategy: bearer]", "sinks[].index [type: http, format: es_bulk]",
        "sinks[].labels [type: http, format: loki]"}},
      {"an http sink probes its health_url", {"sinks[].health_url [type: http]"}},
      {"the tls keys reach the TLS set-up",
       {"sinks[].tls.verify [type: http]", "sinks[].tls.ca_file [type: http]", "sinks[].tls.cert_file [type: http]",
        "sinks[].tls.key_file [type: http]"}},
      {"the redis keys reach the redis server",
       {"sinks[].address [type: redis]", "sinks[].db [type: redis]", "sinks[].username [type: redis]",
        "sinks[].password [type: redis]", "sinks[].mode [type: redis]", "sinks[].key [type: redis, mode: list]",
        "sinks[].key [type: redis, mode: stream]", "sinks[].maxlen [type: redis, mode: stream]",
        "sinks[].channel [type: redis, mode: pubsub]", "sinks[].connect_timeout [type: redis]"}},
      {"the kafka keys reach the topic",
       {"sinks[].brokers [type: kafka]", "sinks[].topic [type: kafka]", "sinks[].key [type: kafka]",
        "sinks[].properties [type: kafka]"}},
  };
  return table;
}

std::string keyId(const config::DeclaredKey& k) {
  return k.condition.empty() ? k.name : k.name + " [" + k.condition + "]";
}

// `text` with every {dir} replaced by `dir`.
std::string expand(std::string text, const fs::path& dir) {
  for (std::size_t at; (at = text.find("{dir}")) != std::string::npos;) text.replace(at, 5, dir.string());
  return text;
}

config::Config loadConfig(const std::string& text, const fs::path& dir) {
  try {
    return config::loadString(expand(text, dir), "audit.yaml", dir).config;
  } catch (const config::ConfigError& e) {
    FAIL("the config was rejected: " << std::string(e.what()));
  }
  return {};
}

// A pipeline in this process, built from `yaml` (state under the test's directory) and started.
struct Running {
  TempDir dir{"logcapture-keys"};
  config::Config config;
  std::unique_ptr<Pipeline> pipeline;
  bool started = false;

  explicit Running(const std::string& yaml, bool start = true) {
    config = loadConfig("agent: {state_dir: '{dir}/state'}\n" + yaml, dir.path);
    pipeline = Pipeline::build(config);
    REQUIRE(pipeline);
    if (start) {
      REQUIRE(pipeline->start());
      started = true;
    }
  }
  ~Running() { stop(); }
  void stop() {
    if (!started) return;
    started = false;
    pipeline->stop(std::chrono::steady_clock::now() + 5s);
  }
  std::shared_ptr<SinkRunner> runner(const std::string& name) const {
    for (const auto& r : pipeline->runners()) {
      if (r->name() == name) return r;
    }
    FAIL("no sink " << name);
    return nullptr;
  }
  std::shared_ptr<agent::Input> input(const std::string& name) const {
    for (const auto& in : pipeline->inputs()) {
      if (in->name() == name) return in;
    }
    FAIL("no input " << name);
    return nullptr;
  }
};

// The JSON objects a console sink wrote, one per line.
std::vector<Json> jsonLines(const fs::path& file) {
  std::vector<Json> out;
  for (const auto& line : testing::fileLines(file)) out.push_back(Json::parse(line, nullptr, false));
  return out;
}

// A sink standing in for a destination, to watch what the runner does with the runner's keys: it
// answers with `outcome`, or holds each send until released.
class WatchedSink final : public sinks::Sink {
 public:
  explicit WatchedSink(sinks::Outcome outcome = sinks::Outcome::Success) : outcome_(outcome) {}

  sinks::SendResult send(const sinks::Batch& batch, base::Deadline deadline) override {
    std::unique_lock lock(mutex_);
    ++sends_;
    ++inFlight_;
    maxInFlight_ = std::max(maxInFlight_, inFlight_);
    deadlines_.push_back(deadline - std::chrono::steady_clock::now());
    std::vector<std::string> messages;
    for (std::size_t i = 0; i < batch.size(); ++i) messages.emplace_back(batch.record(i).message);
    batches_.push_back(messages);
    encodedBytes_.push_back(batch.bytes());
    changed_.notify_all();
    changed_.wait(lock, [&] { return !hold_; });
    --inFlight_;
    return outcome_ == sinks::Outcome::Success ? sinks::SendResult::success()
                                               : sinks::SendResult::failure(outcome_, "refused by the test");
  }
  void hold(bool on) {
    std::lock_guard lock(mutex_);
    hold_ = on;
    changed_.notify_all();
  }
  int sends() const {
    std::lock_guard lock(mutex_);
    return sends_;
  }
  int maxInFlight() const {
    std::lock_guard lock(mutex_);
    return maxInFlight_;
  }
  std::vector<std::vector<std::string>> batches() const {
    std::lock_guard lock(mutex_);
    return batches_;
  }
  std::vector<std::uint64_t> encodedBytes() const {
    std::lock_guard lock(mutex_);
    return encodedBytes_;
  }
  std::vector<std::chrono::steady_clock::duration> deadlines() const {
    std::lock_guard lock(mutex_);
    return deadlines_;
  }

 private:
  const sinks::Outcome outcome_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  bool hold_ = false;
  int sends_ = 0;
  int inFlight_ = 0;
  int maxInFlight_ = 0;
  std::vector<std::vector<std::string>> batches_;
  std::vector<std::uint64_t> encodedBytes_;
  std::vector<std::chrono::steady_clock::duration> deadlines_;
};

// A SinkRunner built from the first sink of `sinkYaml` (one list item), around a WatchedSink.
struct WatchedRunner {
  TempDir dir{"logcapture-keys-runner"};
  circuit::SteadyClock clock;
  config::SinkConfig cfg;
  WatchedSink* sink = nullptr;
  std::unique_ptr<SinkRunner> runner;
  std::shared_ptr<base::Source> source = std::make_shared<base::Source>();
  std::shared_ptr<agent::SourceCursor> cursor = std::make_shared<agent::SourceCursor>(0, [](std::uint64_t) {});
  std::uint64_t offset = 0;

  explicit WatchedRunner(const std::string& sinkYaml, sinks::Outcome outcome = sinks::Outcome::Success,
                         bool start = true) {
    cfg = loadConfig("inputs: [{name: app, type: stdin}]\nsinks:\n" + sinkYaml, dir.path).sinks.at(0);
    auto owned = std::make_unique<WatchedSink>(outcome);
    sink = owned.get();
    runner = std::make_unique<SinkRunner>(cfg, std::move(owned), (dir / "state").string(), clock);
    source->input = "app";
    if (start) REQUIRE_FALSE(runner->start().has_value());
  }
  ~WatchedRunner() {
    sink->hold(false);
    runner->stop(std::chrono::steady_clock::now() + 500ms);
  }
  // Offers the messages as one chunk of one source, as an input would after one read.
  void offer(const std::vector<std::string>& messages, const base::Source* from = nullptr) {
    agent::Chunk c;
    for (const auto& m : messages) {
      base::Record r;
      r.message = c.storage.copy(m);
      r.source = from != nullptr ? from : source.get();
      r.offset = ++offset;
      c.bytes += m.size();
      c.records.push_back(std::move(r));
    }
    c.ack = agent::Ack(cursor, cursor->open(offset));
    runner->offer(agent::Claim(std::make_shared<agent::Delivery>(std::move(c))));
  }
};

std::vector<std::string> numbered(int count, std::size_t width = 0) {
  std::vector<std::string> out;
  for (int i = 0; i < count; ++i) {
    std::string m = std::to_string(i);
    if (m.size() < width) m += std::string(width - m.size(), '.');
    out.push_back(m);
  }
  return out;
}

// A real HTTP server in this process that keeps every request it gets and answers as each format wants.
class CapturingServer {
 public:
  struct Seen {
    std::string method;
    std::string path;
    httplib::Headers headers;
    std::string body;
  };

  CapturingServer() {
    const auto handle = [this](const httplib::Request& req, httplib::Response& res) {
      {
        std::lock_guard lock(mutex_);
        seen_.push_back({req.method, req.path, req.headers, req.body});
        if (failNext_ > 0 && req.method != "GET") {
          --failNext_;
          res.status = 500;
          return;
        }
      }
      if (req.path.ends_with("/_bulk")) {
        Json items = Json::array();
        const auto lines = std::count(req.body.begin(), req.body.end(), '\n');
        for (long i = 0; i < lines / 2; ++i) items.push_back({{"index", {{"status", 201}}}});
        res.set_content(Json{{"errors", false}, {"items", items}}.dump(), "application/json");
      } else if (req.path.ends_with("/loki/api/v1/push")) {
        res.status = 204;
      } else {
        res.set_content("{}", "application/json");
      }
    };
    server_.Get(".*", handle);
    server_.Post(".*", handle);
    server_.Put(".*", handle);
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(1ms);
  }
  ~CapturingServer() {
    server_.stop();
    thread_.join();
  }
  std::string base() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }
  void failNext(int n) {
    std::lock_guard lock(mutex_);
    failNext_ = n;
  }
  std::vector<Seen> seen() const {
    std::lock_guard lock(mutex_);
    return seen_;
  }
  // The first request to `path` with `method`, once one came (waits up to 10 s).
  std::optional<Seen> first(const std::string& method, const std::string& path) const {
    std::optional<Seen> found;
    waitUntil(
        [&] {
          for (const auto& s : seen()) {
            if (s.method == method && s.path == path) {
              found = s;
              return true;
            }
          }
          return false;
        },
        10s);
    return found;
  }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  mutable std::mutex mutex_;
  std::vector<Seen> seen_;
  int failNext_ = 0;
};

std::string header(const CapturingServer::Seen& s, const std::string& name) {
  const auto it = s.headers.find(name);
  return it == s.headers.end() ? "" : it->second;
}

// A TCP port that accepts connections and never answers.
class SilentListener {
 public:
  SilentListener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(fd_, 64) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port_ = ntohs(addr.sin_port);
  }
  ~SilentListener() { ::close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

}  // namespace

TEST_CASE("every declared config key is set and checked by a scenario of the key audit") {
  std::set<std::string> covered;
  for (const auto& c : coverage()) covered.insert(c.keys.begin(), c.keys.end());
  std::set<std::string> declared;
  for (const auto& k : config::declaredKeys()) declared.insert(keyId(k));
  REQUIRE(declared.size() > 50);
  for (const auto& key : declared) {
    CHECK_MESSAGE(covered.contains(key), "the key '" << key
                                                     << "' is declared but no scenario of the key audit sets it and "
                                                        "checks the runtime honours it");
  }
  for (const auto& key : covered) {
    CHECK_MESSAGE(declared.contains(key), "the key audit covers '" << key << "', which no longer is declared");
  }
}

TEST_CASE("the agent's own keys reach the running agent") {
  TempDir dir("logcapture-keys-agent");
  const std::uint16_t admin = testing::freePort();
  const std::uint16_t closed = testing::freePort();
  // A checkpoint of a file gone for an hour: kept for the default week, dropped with a 2 minute retention.
  fs::create_directories(dir / "custom-state");
  const auto hourAgo =
      std::chrono::duration_cast<std::chrono::milliseconds>((std::chrono::system_clock::now() - 1h).time_since_epoch())
          .count();
  std::ofstream(dir / "custom-state" / "checkpoints.json")
      << R"({"version":1,"files":[{"input":"app","path":"/gone/old.log","device":1,"inode":2,)"
      << R"("fingerprint":"00000000000000ff","fingerprint_bytes":8,"offset":4,"last_seen":)" << hourAgo << "}]}\n";
  appendFile(dir / "app.log", "from a file\n");
  const std::string config = expand(
      "agent:\n"
      "  state_dir: '{dir}/custom-state'\n"
      "  log: {level: debug, format: json}\n"
      "  admin: {listen: '127.0.0.1:" +
          std::to_string(admin) +
          "', token: audit-token}\n"
          "  shutdown_timeout: 1s\n"
          "  checkpoint_retention: 2m\n"
          "inputs:\n"
          "  - {name: app, type: file, start_at: beginning, paths: ['{dir}/app.log']}\n"
          "  - {name: pipe, type: stdin}\n"
          "sinks:\n"
          "  - {name: out, type: console, inputs: [app, pipe], encoding: raw, path: '{dir}/out', batch: {linger: "
          "10ms}}\n"
          "  - {name: stuck, type: http, inputs: [pipe], url: 'http://127.0.0.1:" +
          std::to_string(closed) + "/', batch: {linger: 10ms}, timeout: 500ms}\n",
      dir.path);
  std::ofstream(dir / "capture.yaml") << config;
  ChildProcess agent({LOGCAPTURE_BINARY, "run", "-c", (dir / "capture.yaml").string()}, {}, true);
  REQUIRE_MESSAGE(agent.waitForStderr("agent_started", 20s), agent.err());

  // inputs[].type: stdin reads standard input.
  REQUIRE(agent.writeStdin("from stdin\n"));
  CHECK(waitUntil(
      [&] {
        agent.readOutput();
        const auto lines = testing::fileLines(dir / "out");
        return std::count(lines.begin(), lines.end(), "from stdin") == 1 &&
               std::count(lines.begin(), lines.end(), "from a file") == 1;
      },
      10s));
  // agent.state_dir: the checkpoint of the file read is saved there.
  CHECK(waitUntil(
      [&] {
        std::ifstream in(dir / "custom-state" / "checkpoints.json");
        const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        return text.find((dir / "app.log").string()) != std::string::npos;
      },
      10s));
  // agent.checkpoint_retention: the entry of the file gone an hour ago is dropped.
  CHECK(agent.waitForStderr("\"retention_s\":120", 10s));
  // agent.admin.listen and agent.admin.token.
  httplib::Client client("127.0.0.1", admin);
  const auto health = client.Get("/health");
  REQUIRE(health);
  CHECK(health->status == 200);
  const auto refused = client.Post("/api/v1/breakers/out/reset", "", "application/json");
  REQUIRE(refused);
  CHECK(refused->status == 401);
  const auto allowed =
      client.Post("/api/v1/breakers/out/reset", {{"Authorization", "Bearer audit-token"}}, "", "application/json");
  REQUIRE(allowed);
  CHECK(allowed->status == 200);

  // agent.shutdown_timeout: `stuck` never delivers its record; the agent gives up after 1 s, not 10 s.
  const auto stopAt = std::chrono::steady_clock::now();
  agent.signal(SIGTERM);
  const auto result = agent.wait(20s);
  CHECK(result.exitCode == 4);
  CHECK(std::chrono::steady_clock::now() - stopAt < 6s);

  // agent.log.level and agent.log.format: every line is a JSON object, and debug events are written.
  bool debug = false;
  std::istringstream lines(result.err);
  for (std::string line; std::getline(lines, line);) {
    const Json j = Json::parse(line, nullptr, false);
    CHECK_MESSAGE(j.is_object(), "not a JSON line: " << line);
    if (j.is_object() && j.value("level", "") == "debug") debug = true;
  }
  CHECK(debug);
}

TEST_CASE("a file input's keys decide what it reads and how it decodes it") {
  TempDir files("logcapture-keys-files");
  fs::create_directories(files / "logs");
  // Written before the start: start_at: beginning reads them, the default (end) would not.
  appendFile(files / "logs" / "a.log", "{\"k\":\"v\"}\n" + std::string(300, 'x') + "\n");
  appendFile(files / "logs" / "b.skip", "{\"skipped\":true}\n");
  appendFile(files / "other.log", "other line\n");
  Running run(expand(
      "inputs:\n"
      "  - name: app-in\n"
      "    type: file\n"
      "    paths: ['{dir}/logs/*']\n"
      "    exclude: ['*.skip']\n"
      "    start_at: beginning\n"
      "    format: json\n"
      "    max_line_bytes: 100\n"
      "    fields: {env: audit}\n"
      "  - {name: other, type: file, start_at: beginning, paths: ['{dir}/other.log']}\n"
      "sinks:\n"
      "  - {name: json-out, type: console, inputs: [app-in], path: '{dir}/json.out', batch: {linger: 1ms}}\n"
      "  - {name: raw-out, type: console, inputs: [app-in], encoding: raw, path: '{dir}/raw.out', batch: {linger: "
      "1ms}}\n",
      files.path));
  REQUIRE(waitUntil([&] { return testing::fileLines(files / "json.out").size() >= 2; }, 10s));
  REQUIRE(waitUntil([&] { return testing::fileLines(files / "raw.out").size() >= 2; }, 10s));
  run.stop();
  const auto records = jsonLines(files / "json.out");
  REQUIRE(records.size() == 2);  // not b.skip (exclude), not other.log (sinks[].inputs)
  // inputs[].name and inputs[].fields.
  CHECK(records[0].value("input", "") == "app-in");
  CHECK(records[0].value("env", "") == "audit");
  // inputs[].format: json: the line's object is the record's fields.
  CHECK(records[0].value("k", "") == "v");
  // inputs[].max_line_bytes.
  CHECK(records[1].value("truncated", false));
  CHECK(records[1].value("message", "").size() <= 100);
  // sinks[].encoding: raw writes the lines as they were; sinks[].name and type: the two console sinks.
  const auto raw = testing::fileLines(files / "raw.out");
  CHECK(raw[0] == "{\"k\":\"v\"}");
  CHECK(run.runner("raw-out")->stats().delivered.load() == 2);
}

TEST_CASE("max_open_files and close_inactive give files their places in turn") {
  TempDir files("logcapture-keys-open");
  appendFile(files / "1.log", "one\n");
  appendFile(files / "2.log", "two\n");
  Running run(
      expand("inputs:\n"
             "  - {name: app, type: file, start_at: beginning, paths: ['{dir}/*.log'], max_open_files: 1, "
             "close_inactive: 300ms}\n"
             "sinks:\n"
             "  - {name: out, type: console, path: '{dir}/out', batch: {linger: 1ms}}\n",
             files.path));
  std::uint64_t mostOpen = 0;
  CHECK(waitUntil(
      [&] {
        mostOpen = std::max(mostOpen, run.input("app")->stats().filesOpen.load());
        return testing::fileLines(files / "out").size() == 2;
      },
      10s));
  CHECK(mostOpen <= 1);  // one at a time, each in its turn
  // Nothing waits now: the last file open is closed once idle for close_inactive.
  CHECK(waitUntil([&] { return run.input("app")->stats().filesOpen.load() == 0; }, 10s));
}

TEST_CASE("the multiline keys join and cut records") {
  TempDir files("logcapture-keys-multiline");
  appendFile(files / "m.log",
             "S1\n a\nS2\n 1\n 2\n 3\n 4\nS3\n" + std::string(5, ' ') + std::string(1500, 'y') + "\nS4 pending\n");
  Running run(
      expand("inputs:\n"
             "  - {name: m, type: file, start_at: beginning, paths: ['{dir}/m.log'], multiline: "
             "{start_pattern: '^S', max_lines: 3, max_bytes: 1KiB, timeout: 1h}}\n"
             "sinks:\n"
             "  - {name: out, type: console, path: '{dir}/out', batch: {linger: 1ms}}\n",
             files.path));
  std::vector<std::string> messages;
  const auto read = [&] {
    messages.clear();
    for (const auto& j : jsonLines(files / "out")) messages.push_back(j.value("message", ""));
  };
  REQUIRE(waitUntil(
      [&] {
        read();
        return std::any_of(messages.begin(), messages.end(), [](const auto& m) { return m.starts_with("S3"); });
      },
      10s));
  // start_pattern joins the lines after a start into its record.
  CHECK(std::find(messages.begin(), messages.end(), "S1\n a") != messages.end());
  // max_lines: the record of S2 is cut after three lines.
  CHECK(std::find(messages.begin(), messages.end(), "S2\n 1\n 2") != messages.end());
  // max_bytes: the record of S3 is cut at 1 KiB.
  for (const auto& m : messages) {
    if (m.starts_with("S3")) CHECK(m.size() <= 1024);
  }
  // timeout: S4 waits for its next line far longer than the default second.
  std::this_thread::sleep_for(1500ms);
  read();
  CHECK(std::none_of(messages.begin(), messages.end(), [](const auto& m) { return m.starts_with("S4"); }));
}

TEST_CASE("the queue keys bound the pipeline's queue") {
  // Built, not started: the test pushes into the pipeline's own queue and nothing takes from it.
  const auto push = [](agent::RecordQueue& queue, std::size_t bytes) {
    agent::Chunk c;
    base::Record r;
    r.message = c.storage.copy(std::string(bytes, 'q'));
    c.bytes = bytes;
    c.records.push_back(std::move(r));
    // A queue that ignored when_full would block here (the default): the test gives up rather than hang.
    auto pushed = std::async(std::launch::async,
                             [&queue, chunk = std::move(c)]() mutable { return queue.push(std::move(chunk)); });
    if (pushed.wait_for(5s) != std::future_status::ready) {
      queue.close();
      FAIL("the push blocked: when_full is not drop_newest");
    }
    return pushed.get();
  };
  {
    Running run(
        "inputs: [{name: app, type: stdin}]\nqueue: {max_records: 2, when_full: drop_newest}\n"
        "sinks: [{name: out, type: console}]\n",
        false);
    auto& queue = const_cast<agent::RecordQueue&>(*run.pipeline->queue());
    CHECK(push(queue, 10) == agent::RecordQueue::PushResult::Accepted);
    CHECK(push(queue, 10) == agent::RecordQueue::PushResult::Accepted);
    CHECK(push(queue, 10) == agent::RecordQueue::PushResult::Dropped);
    CHECK(queue.stats().droppedNewest == 1);
  }
  {
    Running run(
        "inputs: [{name: app, type: stdin}]\nqueue: {max_bytes: 64KiB, when_full: drop_newest}\n"
        "sinks: [{name: out, type: console}]\n",
        false);
    auto& queue = const_cast<agent::RecordQueue&>(*run.pipeline->queue());
    CHECK(push(queue, 40 * 1024) == agent::RecordQueue::PushResult::Accepted);
    CHECK(push(queue, 40 * 1024) == agent::RecordQueue::PushResult::Dropped);
  }
}

TEST_CASE("the breaker keys reach the live breaker") {
  Running run(
      "inputs: [{name: app, type: stdin}]\n"
      "sinks:\n"
      "  - name: out\n"
      "    type: console\n"
      "    breaker: {mode: metrics_only, failure_threshold: 7, success_threshold: 3, open_timeout: 45s, "
      "max_open_timeout: 2h,\n"
      "              backoff_multiplier: 1.5, jitter: 0.05, half_open_max_calls: 4, trip_on_throttle: true,\n"
      "              probe: true, window: {type: time, size: 90s, min_calls: 3, failure_rate: 12.5,\n"
      "              slow_call_rate: 7.5, slow_call_duration: 2s}}\n",
      false);
  const circuit::Options& o = run.runner("out")->breaker().options();
  CHECK(o.failureThreshold == 7);
  CHECK(o.successThreshold == 3);
  CHECK(o.openTimeout == 45s);
  CHECK(o.maxOpenTimeout == 2h);
  CHECK(o.backoffMultiplier == 1.5);
  CHECK(o.jitter == 0.05);
  CHECK(o.halfOpenMaxCalls == 4);
  CHECK(o.tripOnThrottle);
  CHECK(o.probe);
  CHECK(o.mode == circuit::Mode::MetricsOnly);
  REQUIRE(o.window.has_value());
  CHECK(o.window->type == circuit::WindowType::Time);
  CHECK(o.window->span == 90s);
  CHECK(o.window->minCalls == 3);
  CHECK(o.window->failureRatePercent == 12.5);
  CHECK(o.window->slowCallRatePercent == 7.5);
  CHECK(o.window->slowCallDuration == 2s);
}

TEST_CASE("workers: auto gives a sink max_workers lanes and a limit that starts at one") {
  Running run(
      "inputs: [{name: app, type: stdin}]\n"
      "sinks: [{name: out, type: console, workers: auto, max_workers: 6}]\n",
      false);
  const auto& cfg = run.runner("out")->config();
  CHECK(cfg.workers.adaptive);
  CHECK(cfg.workers.count == 6);
  CHECK(run.runner("out")->sendLimit().limit == 1);
}

TEST_CASE("breaker.ramp paces a sink's sends after its breaker closes") {
  Running run(
      "inputs: [{name: app, type: stdin}]\n"
      "sinks:\n"
      "  - {name: ramped, type: console, workers: 4, breaker: {success_threshold: 1, half_open_max_calls: 1, "
      "ramp: 20s}}\n"
      "  - {name: unramped, type: console, workers: 4, breaker: {success_threshold: 1, half_open_max_calls: 1, "
      "ramp: 0s}}\n",
      false);
  for (const char* name : {"ramped", "unramped"}) {
    circuit::Breaker& breaker = run.runner(name)->breaker();
    breaker.forceOpen();
    breaker.resumeAuto();  // half-open: a trial decides
    const circuit::Permit trial = breaker.tryAcquire();
    REQUIRE(trial.state == circuit::State::HalfOpen);
    breaker.onResult(trial, circuit::Outcome::Success, 1ms);
    REQUIRE(breaker.state() == circuit::State::Closed);
  }
  const auto ramped = run.runner("ramped")->sendLimit();
  CHECK(ramped.ramping);
  CHECK(ramped.limit == 1);
  CHECK(ramped.rate > 0);
  const auto unramped = run.runner("unramped")->sendLimit();
  CHECK_FALSE(unramped.ramping);
  CHECK(unramped.limit == 4);
}

TEST_CASE("buffer.type: disk keeps the sink's batches in segment files under state_dir/buffers") {
  for (const char* sync : {"always", "interval, sync_interval: 5ms"}) {
    CAPTURE(sync);
    WatchedRunner w(
        std::string("  - {name: s, type: console, encoding: raw, buffer: {type: disk, sync: ") + sync + "}}\n",
        sinks::Outcome::Retriable);
    w.offer(numbered(5));
    // Safe on disk: the source may move on though the destination refuses everything.
    REQUIRE(waitUntil([&] { return w.cursor->committed() == 5; }));
    CHECK(w.runner->diskBufferStats()->syncs > 0);
    CHECK(w.runner->diskBufferStats()->records == 5);
    bool segment = false;
    for (const auto& e : fs::directory_iterator(w.dir / "state" / "buffers" / "s")) {
      segment = segment || e.path().extension() == ".seg";
    }
    CHECK(segment);
  }
}

TEST_CASE("the batch keys shape a sink's batches") {
  SUBCASE("max_records") {
    WatchedRunner w("  - {name: s, type: console, encoding: raw, batch: {max_records: 2, linger: 1s}}\n");
    w.offer(numbered(6));
    REQUIRE(waitUntil([&] { return w.sink->sends() == 3; }));
    for (const auto& b : w.sink->batches()) CHECK(b.size() == 2);
  }
  SUBCASE("max_bytes") {
    WatchedRunner w("  - {name: s, type: console, encoding: raw, batch: {max_bytes: 1KiB, linger: 1s}}\n");
    w.offer(numbered(6, 400));
    REQUIRE(waitUntil([&] { return w.sink->sends() == 3; }));
    for (const auto bytes : w.sink->encodedBytes()) CHECK(bytes <= 1024);
  }
  SUBCASE("linger") {
    WatchedRunner w("  - {name: s, type: console, encoding: raw, batch: {linger: 1h}}\n");
    w.offer(numbered(1));
    // The default of 100 ms would have sent it by now.
    std::this_thread::sleep_for(1s);
    CHECK(w.sink->sends() == 0);
  }
}

TEST_CASE("workers and timeout shape a sink's sends") {
  SUBCASE("workers") {
    // One source's records keep to one worker, in order: many files, to keep every worker busy. The
    // records view these sources: they outlive the runner.
    std::vector<base::Source> files(32);
    WatchedRunner w("  - {name: s, type: console, workers: 4, batch: {max_records: 1, linger: 1ms}}\n");
    w.sink->hold(true);
    for (std::size_t k = 0; k < files.size(); ++k) {
      files[k].input = "app";
      files[k].path = "/var/log/" + std::to_string(k) + ".log";
      w.offer({"record of " + files[k].path}, &files[k]);
    }
    CHECK(waitUntil([&] { return w.sink->maxInFlight() == 4; }));
    w.sink->hold(false);
  }
  SUBCASE("timeout") {
    WatchedRunner w("  - {name: s, type: console, timeout: 250ms, batch: {linger: 1ms}}\n");
    w.offer(numbered(1));
    REQUIRE(waitUntil([&] { return w.sink->sends() == 1; }));
    CHECK(w.sink->deadlines().at(0) <= 250ms);
  }
}

TEST_CASE("the retry keys pace a sink's retries") {
  const std::string base = "  - {name: s, type: console, batch: {linger: 1ms}, breaker: {failure_threshold: 1000000}, ";
  SUBCASE("max_attempts") {
    WatchedRunner w(base + "retry: {max_attempts: 1, initial_backoff: 1ms, max_backoff: 1ms}}\n",
                    sinks::Outcome::Retriable);
    w.offer(numbered(1));
    REQUIRE(waitUntil([&] { return w.sink->sends() >= 5; }));
    // Each send is a batch's first attempt: it goes back to the buffer after one.
    CHECK(w.runner->stats().retries.load() == 0);
  }
  SUBCASE("initial_backoff") {
    WatchedRunner w(base + "retry: {initial_backoff: 1h, max_backoff: 2h}}\n", sinks::Outcome::Retriable);
    w.offer(numbered(1));
    REQUIRE(waitUntil([&] { return w.sink->sends() == 1; }));
    std::this_thread::sleep_for(1s);  // the default 100 ms would have retried by now
    CHECK(w.sink->sends() == 1);
  }
  SUBCASE("max_backoff") {
    WatchedRunner w(base + "retry: {max_attempts: 1000, initial_backoff: 1ms, max_backoff: 1ms}}\n",
                    sinks::Outcome::Retriable);
    w.offer(numbered(1));
    // Capped at 1 ms, a hundred retries take well under 2 s; the default cap lets the wait grow to 5 s.
    CHECK(waitUntil([&] { return w.sink->sends() >= 100; }, 2s));
  }
}

TEST_CASE("the buffer keys decide what an open breaker keeps") {
  SUBCASE("on_open") {
    WatchedRunner w("  - {name: s, type: console, batch: {linger: 1ms}, buffer: {on_open: drop}}\n");
    w.runner->breaker().forceOpen();
    w.offer(numbered(5));
    CHECK(waitUntil([&] { return w.runner->stats().droppedFor(agent::DropReason::BreakerOpen) == 5; }));
  }
  SUBCASE("max_bytes and when_full") {
    WatchedRunner w(
        "  - {name: s, type: console, encoding: raw, batch: {max_records: 1, max_bytes: 16KiB, linger: 1ms}, "
        "buffer: {max_bytes: 64KiB, when_full: drop_newest}}\n");
    w.runner->breaker().forceOpen();
    w.offer(numbered(200, 1024));
    // 64 KiB holds some 60 of them; the default 16 MiB would hold all.
    REQUIRE(waitUntil([&] { return w.runner->stats().droppedFor(agent::DropReason::BufferFull) > 0; }));
    w.runner->breaker().reset();
    REQUIRE(waitUntil([&] { return w.runner->bufferStats().records == 0; }));
    // drop_newest keeps the oldest: the first record is sent (the default drop_oldest drops it).
    const auto batches = w.sink->batches();
    REQUIRE_FALSE(batches.empty());
    CHECK(batches.front().front().starts_with("0."));
  }
}

TEST_CASE("dead_letter.max_bytes caps the dead letter") {
  WatchedRunner w("  - {name: s, type: console, batch: {linger: 1ms}, dead_letter: {max_bytes: 0}}\n",
                  sinks::Outcome::Permanent);
  w.offer(numbered(3));
  CHECK(waitUntil([&] { return w.runner->stats().droppedFor(agent::DropReason::DeadLetterFull) == 3; }));
  CHECK(w.runner->stats().deadLettered.load() == 0);
}

TEST_CASE("fallback sends an open sink's batches to another sink until a reload removes it") {
  TempDir files("logcapture-keys-fallback");
  const std::string inputs = expand(
      "inputs:\n"
      "  - {name: app, type: file, start_at: beginning, paths: ['{dir}/app.log']}\n",
      files.path);
  const std::string primary =
      expand("  - {name: primary, type: console, path: '{dir}/primary.out', batch: {linger: 1ms}", files.path);
  const std::string spare = expand(
      "  - {name: spare, type: console, inputs: [], encoding: raw, path: '{dir}/spare.out', batch: {linger: 1ms}}\n",
      files.path);
  Running run(inputs + "sinks:\n" + primary + ", fallback: spare}\n" + spare, /*start=*/false);
  const auto runner = run.runner("primary");
  runner->breaker().forceOpen();
  appendFile(files / "app.log", "one\ntwo\n");
  REQUIRE(run.pipeline->start());
  run.started = true;
  REQUIRE(waitUntil([&] { return testing::fileLines(files / "spare.out").size() == 2; }, 10s));
  // Re-encoded for the fallback: raw lines, where the primary writes JSON.
  CHECK(testing::fileLines(files / "spare.out") == std::vector<std::string>{"one", "two"});
  CHECK(waitUntil([&] { return runner->stats().failedOverFor(agent::FailoverReason::ForcedOpen) == 2; }));

  // Without the key (and the fallback sink) the batches wait in the open sink, which is kept as it was.
  const auto next =
      loadConfig("agent: {state_dir: '{dir}/state'}\n" + inputs + "sinks:\n" + primary + "}\n", run.dir.path);
  REQUIRE(run.pipeline->reload(next, std::chrono::steady_clock::now() + 5s).applied);
  CHECK(run.runner("primary") == runner);
  appendFile(files / "app.log", "three\n");
  REQUIRE(waitUntil([&] { return runner->bufferStats().records == 1; }, 10s));
  CHECK(testing::fileLines(files / "spare.out").size() == 2);
  runner->breaker().reset();
  REQUIRE(waitUntil([&] { return testing::fileLines(files / "primary.out").size() == 1; }, 10s));
  CHECK(jsonLines(files / "primary.out")[0].value("message", "") == "three");
}

TEST_CASE("the http keys reach the request") {
  CapturingServer server;
  TempDir files("logcapture-keys-http");
  appendFile(files / "app.log", "hello\n");
  const std::string url = server.base();
  Running run(expand(
      "inputs: [{name: app, type: file, start_at: beginning, paths: ['{dir}/app.log']}]\n"
      "sinks:\n"
      "  - {name: a, type: http, url: '" +
          url +
          "/in/a', method: PUT, compression: gzip, headers: {X-Audit: 'yes'}, "
          "auth: {strategy: basic, user: u1, password: p1}, batch: {linger: 1ms}}\n"
          "  - {name: b, type: http, url: '" +
          url +
          "/_bulk', format: es_bulk, index: audit-idx, auth: {strategy: bearer, token: t1}, batch: {linger: 1ms}}\n"
          "  - {name: c, type: http, url: '" +
          url + "', format: loki, labels: {job: audit-job}, batch: {linger: 1ms}}\n",
      files.path));

  const auto a = server.first("PUT", "/in/a");  // url, method
  REQUIRE(a);
  CHECK(header(*a, "Content-Encoding") == "gzip");         // compression (the server inflates the body)
  CHECK(header(*a, "X-Audit") == "yes");                   // headers
  CHECK(header(*a, "Authorization") == "Basic dTE6cDE=");  // auth: basic, user, password

  const auto b = server.first("POST", "/_bulk");  // format: es_bulk
  REQUIRE(b);
  CHECK(header(*b, "Authorization") == "Bearer t1");          // auth: bearer, token
  CHECK(b->body.find("\"audit-idx\"") != std::string::npos);  // index

  const auto c = server.first("POST", "/loki/api/v1/push");  // format: loki
  REQUIRE(c);
  CHECK(c->body.find("\"job\":\"audit-job\"") != std::string::npos);  // labels
  run.stop();
}

TEST_CASE("an http sink probes its health_url") {
  // Kept apart from the other http keys: this sink's first send must fail to reach the probe.
  CapturingServer server;
  TempDir files("logcapture-keys-probe");
  const std::string url = server.base();
  server.failNext(1);
  Running run(
      expand("inputs: [{name: app, type: file, start_at: beginning, paths: ['{dir}/app.log']}]\n"
             "sinks:\n"
             "  - {name: d, type: http, url: '" +
                 url + "/in/d', health_url: '" + url +
                 "/health-d', batch: {linger: 1ms}, retry: {max_attempts: 1}, "
                 "breaker: {failure_threshold: 1, success_threshold: 1, half_open_max_calls: 1, "
                 "open_timeout: 10ms, max_open_timeout: 10ms, jitter: 0, probe: true}}\n",
             files.path));
  appendFile(files / "app.log", "hello\n");
  CHECK(server.first("GET", "/health-d"));
}

TEST_CASE("the tls keys reach the TLS set-up") {
  TempDir dir("logcapture-keys-tls");
  // A certificate and key that load, for the sink whose key file does not.
  const auto made =
      testing::runProcess({"/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=audit",
                           "-days", "1", "-keyout", (dir / "key.pem").string(), "-out", (dir / "cert.pem").string()});
  REQUIRE_MESSAGE(made.exitCode == 0, made.err);
  // A plain TCP server on the https port: each sink fails while setting up TLS, and says why.
  SilentListener listener;
  const std::string url = "https://127.0.0.1:" + std::to_string(listener.port()) + "/";
  const std::string sinks = expand(
      "  - {name: no-verify, type: http, url: '" + url + "', tls: {verify: false}}\n" +
          "  - {name: bad-ca, type: http, url: '" + url + "', timeout: 1s, tls: {ca_file: '{dir}/missing-ca.pem'}}\n" +
          "  - {name: bad-cert, type: http, url: '" + url +
          "', timeout: 1s, tls: {cert_file: '{dir}/missing-cert.pem', key_file: '{dir}/key.pem'}}\n" +
          "  - {name: bad-key, type: http, url: '" + url +
          "', timeout: 1s, tls: {cert_file: '{dir}/cert.pem', key_file: '{dir}/missing-key.pem'}}\n",
      dir.path);
  const auto config = testing::writeAgentConfig(
      dir, expand("  - {name: app, type: file, start_at: beginning, paths: ['{dir}/app.log']}\n", dir.path), sinks);
  appendFile(dir / "app.log", "hello\n");
  ChildProcess agent({LOGCAPTURE_BINARY, "run", "-c", config});
  // tls.verify: false is announced when the sink starts.
  CHECK(agent.waitForStderr("tls_verify_off", 20s));
  // tls.ca_file, tls.cert_file, tls.key_file: the sends fail on the file that does not load.
  for (const char* file : {"missing-ca.pem", "missing-cert.pem", "missing-key.pem"}) {
    CAPTURE(file);
    CHECK(agent.waitForStderr(file, 20s));
  }
  // Nothing can be delivered: the agent is killed rather than left to its shutdown deadline.
}

TEST_CASE("the redis keys reach the redis server") {
  // Small stream nodes, so that XADD MAXLEN ~ trims a short stream too.
  testing::RedisServer redis({.password = "server-pw", .extraArgs = {"--stream-node-max-entries", "2"}});
  testing::RedisServer open;  // the test's subscriber has no password
  REQUIRE_FALSE(redis.command({"ACL", "SETUSER", "audit", "on", ">audit-pw", "~*", "&*", "+@all"}).isError());
  SilentListener silent;
  TempDir files("logcapture-keys-redis");
  const std::string common =
      "address: '" + redis.address() + "', username: audit, password: audit-pw, batch: {linger: 1ms}";
  Running run(expand(
      "inputs: [{name: app, type: file, start_at: beginning, paths: ['{dir}/app.log']}]\n"
      "sinks:\n"
      "  - {name: l, type: redis, " +
          common +
          ", db: 3, key: audit-list}\n"
          "  - {name: s, type: redis, " +
          common +
          ", mode: stream, key: audit-stream, maxlen: 2}\n"
          "  - {name: p, type: redis, address: '" +
          open.address() +
          "', mode: pubsub, channel: audit-channel, batch: {linger: 1ms}}\n"
          "  - {name: t, type: redis, address: '127.0.0.1:" +
          std::to_string(silent.port()) + "', password: x, connect_timeout: 200ms, key: k, batch: {linger: 1ms}}\n",
      files.path));
  testing::RedisSubscriber subscriber(open, "audit-channel");
  for (int i = 0; i < 10; ++i) appendFile(files / "app.log", "line " + std::to_string(i) + "\n");
  // address, username, password, db, mode: list, key.
  CHECK(waitUntil([&] { return redis.command({"LLEN", "audit-list"}, 3).integer == 10; }, 10s));
  CHECK(redis.command({"LLEN", "audit-list"}, 0).integer == 0);
  // mode: stream, key, maxlen: trimmed near 2 (the default keeps all 10).
  REQUIRE(waitUntil([&] { return run.runner("s")->stats().delivered.load() == 10; }, 10s));
  const auto length = redis.command({"XLEN", "audit-stream"}).integer;
  CHECK(length > 0);
  CHECK(length < 10);
  // mode: pubsub, channel.
  CHECK(subscriber.next(10s));
  // connect_timeout: AUTH to a server that never answers fails after 200 ms, not after the default 5 s.
  CHECK(waitUntil([&] { return run.runner("t")->breaker().snapshot().totals.failures > 0; }, 3s));
}

TEST_CASE("the kafka keys reach the topic") {
  testing::KafkaBroker kafka({.brokers = 1, .topics = {"audit-topic"}});
  TempDir files("logcapture-keys-kafka");
  appendFile(files / "app.log", "short\n" + std::string(2000, 'z') + "\n");
  Running run(
      expand("inputs: [{name: app, type: file, start_at: beginning, paths: ['{dir}/app.log']}]\n"
             "sinks:\n"
             "  - {name: k, type: kafka, brokers: ['" +
                 kafka.bootstrap() +
                 "'], topic: audit-topic, key: 'key-{{input}}', encoding: raw, "
                 "properties: {message.max.bytes: '1000'}, batch: {linger: 1ms}}\n",
             files.path));
  // brokers, topic, key.
  const auto messages = kafka.read("audit-topic", 1, 15s);
  REQUIRE(messages.size() >= 1);
  CHECK(messages[0].value == "short");
  CHECK(messages[0].key == std::optional<std::string>("key-app"));
  // properties: message.max.bytes 1000 refuses the 2000-byte record (the default takes 1 MB).
  CHECK(waitUntil([&] { return run.runner("k")->stats().deadLettered.load() == 1; }, 15s));
}
