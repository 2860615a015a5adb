// End-to-end delivery through the logcapture binary: one tailed file fanned out to a real redis-server,
// the Kafka test broker and the HTTP receiver, each behind its own breaker, with one destination failing,
// refusing or stalling at a time. Breaker timings are short so each case takes seconds.

#include <doctest/doctest.h>
#include <httplib.h>
#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "tests/support/fixtures.h"
#include "tests/support/http_receiver.h"
#include "tests/support/kafka_broker.h"
#include "tests/support/process.h"
#include "tests/support/redis_server.h"
#include "tests/support/running_agent.h"

namespace {

using logcapture::testing::appendFile;
using logcapture::testing::HttpReceiver;
using logcapture::testing::KafkaBroker;
using logcapture::testing::RedisServer;
using Agent = logcapture::testing::RunningAgent;
using logcapture::testing::TempDir;
using logcapture::testing::waitUntil;
using namespace std::chrono_literals;
using logcapture::testing::numberedLines;
using logcapture::testing::numberedMessages;
namespace fs = std::filesystem;

const std::string kBinary = LOGCAPTURE_BINARY;
constexpr const char* kRedisSink = "cache";
constexpr const char* kKafkaSink = "events";
constexpr const char* kHttpSink = "search";

// What a case changes; the rest is the same short-timed setup for every sink.
struct SinkTuning {
  std::string redis = "";  // extra keys of the redis sink's mapping, e.g. "buffer: {on_open: drop}, "
  std::string http = "";   // the same for the http sink
  std::string httpTimeout = "2s";
  std::string batch = "{max_records: 1000, linger: 10ms}";  // of every sink
  bool admin = false;                                       // the admin server on a free port, for metrics()
};

// The three destinations and a file, with the agent's config written for them.
class Stack {
 public:
  Stack() : kafka_({.topics = {"logs:1"}}), adminPort_(logcapture::testing::freePort()) {
    fs::create_directories(dir_ / "logs");
  }

  RedisServer& redis() { return redis_; }
  KafkaBroker& kafka() { return kafka_; }
  HttpReceiver& http() { return http_; }
  fs::path log() const { return dir_ / "logs" / "app.log"; }
  fs::path deadLetter(const std::string& sink) const { return dir_ / "state" / "dead-letter" / (sink + ".ndjson"); }

  std::string writeConfig(const SinkTuning& tuning = {}) const {
    // Failures surface within a send of 2 s; three in a row open a breaker for 200 ms, at most 400 ms;
    // after a close the backlog ramps up for 500 ms (the same times, scaled down).
    const std::string common =
        "encoding: raw, batch: " + tuning.batch +
        ", "
        "retry: {max_attempts: 3, initial_backoff: 10ms, max_backoff: 100ms}, "
        "breaker: {failure_threshold: 3, success_threshold: 1, half_open_max_calls: 1, open_timeout: 200ms, "
        "max_open_timeout: 400ms, jitter: 0, ramp: 500ms}";
    std::string brokers;
    for (const auto& b : kafka_.brokerList()) brokers += (brokers.empty() ? "" : ", ") + b;
    std::ofstream out(dir_ / "capture.yaml");
    const std::string admin = tuning.admin ? "127.0.0.1:" + std::to_string(adminPort_) : "";
    out << "agent:\n  state_dir: " << (dir_ / "state").string() << "\n  admin: {listen: \"" << admin
        << "\"}\n  shutdown_timeout: 20s\n"
        << "inputs:\n  - {name: app, type: file, start_at: beginning, paths: [" << log().string() << "]}\n"
        << "sinks:\n"
        << "  - {name: " << kRedisSink << ", type: redis, address: \"" << redis_.address()
        << "\", mode: list, key: logs, " << tuning.redis << "timeout: 2s, " << common << "}\n"
        << "  - {name: " << kKafkaSink << ", type: kafka, brokers: [" << brokers << "], topic: logs, timeout: 2s, "
        << common << "}\n"
        << "  - {name: " << kHttpSink << ", type: http, url: \"" << http_.base() << "/ingest\", format: ndjson, "
        << tuning.http << "timeout: " << tuning.httpTimeout << ", " << common << "}\n";
    return (dir_ / "capture.yaml").string();
  }

  std::int64_t redisCount() {
    if (!redis_.running()) return -1;
    const auto reply = redis_.command({"LLEN", "logs"});
    return reply.type == logcapture::testing::RedisValue::Type::Integer ? reply.integer : -1;
  }
  std::int64_t kafkaCount() { return kafka_.messageCount("logs"); }
  // A sample of the agent's /metrics (with SinkTuning::admin): `line` is "name{label=\"value\",...}" as
  // the exposition writes it; -1 when absent or unreachable.
  double metric(const std::string& line) {
    httplib::Client client("127.0.0.1", adminPort_);
    client.set_connection_timeout(2s);
    const auto res = client.Get("/metrics");
    if (!res || res->status != 200) return -1;
    const auto at = res->body.find("\n" + line + " ");
    if (at == std::string::npos) return -1;
    return std::stod(res->body.substr(at + line.size() + 2));
  }
  std::int64_t httpCount() { return http_.stats()["records"].get<std::int64_t>(); }

  std::vector<std::string> redisLines() { return redis_.command({"LRANGE", "logs", "0", "-1"}).strings(); }
  std::vector<std::string> kafkaLines(std::size_t n) {
    std::vector<std::string> values;
    for (const auto& m : kafka_.read("logs", n, 30s)) values.push_back(m.value);
    return values;
  }

  // Every destination holds exactly `lines`, in order (the agent has stopped, so nothing is on its way).
  void checkDeliveredExactly(const std::vector<std::string>& lines) {
    const auto n = static_cast<std::int64_t>(lines.size());
    CHECK(redisCount() == n);
    CHECK(redisLines() == lines);
    CHECK(kafkaCount() == n);
    CHECK(kafkaLines(lines.size()) == lines);
    CHECK(httpCount() == n);
    CHECK(http_.records() == lines);
  }

 private:
  TempDir dir_{"logcapture-delivery"};
  RedisServer redis_;
  KafkaBroker kafka_;
  HttpReceiver http_;
  std::uint16_t adminPort_;
};

}  // namespace

TEST_CASE("every line of a 100000-line file arrives exactly once and in order at redis, kafka and http") {
  Stack stack;
  constexpr int kLines = 100000;
  appendFile(stack.log(), numberedLines(0, kLines));
  Agent agent(stack.writeConfig());
  const auto started = std::chrono::steady_clock::now();
  CHECK(agent.until(
      [&] { return stack.redisCount() >= kLines && stack.httpCount() >= kLines && stack.kafkaCount() >= kLines; },
      60s));
  MESSAGE("100000 lines at all three sinks after "
          << std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count()
          << " ms");
  REQUIRE(agent.stop() == 0);
  stack.checkDeliveredExactly(numberedMessages(0, kLines));
  CHECK_FALSE(agent.logged("breaker_open", kRedisSink));
  CHECK_FALSE(agent.logged("breaker_open", kKafkaSink));
  CHECK_FALSE(agent.logged("breaker_open", kHttpSink));
}

TEST_CASE("redis stopped mid-stream opens its breaker alone and every line arrives exactly once after it returns") {
  Stack stack;
  appendFile(stack.log(), numberedLines(0, 5000));
  Agent agent(stack.writeConfig());
  REQUIRE(agent.until([&] { return stack.redisCount() == 5000; }, 30s));
  // No persistence in the fixture: SAVE so the list outlives the restart; nothing is in flight now.
  REQUIRE(stack.redis().command({"SAVE"}).text == "OK");
  stack.redis().stop();

  appendFile(stack.log(), numberedLines(5000, 15000));
  CHECK(agent.waitForEvent("breaker_open", kRedisSink, 0, 15s));
  // The other sinks go on while redis is down.
  CHECK(agent.until([&] { return stack.kafkaCount() == 15000 && stack.httpCount() == 15000; }, 30s));
  CHECK_FALSE(stack.redis().running());
  CHECK_FALSE(agent.logged("breaker_open", kKafkaSink));
  CHECK_FALSE(agent.logged("breaker_open", kHttpSink));

  const std::size_t restarted = agent.mark();
  stack.redis().start();
  CHECK(agent.waitForEvent("breaker_half_open", kRedisSink, restarted, 15s));
  CHECK(agent.waitForEvent("breaker_closed", kRedisSink, restarted, 15s));
  CHECK(agent.until([&] { return stack.redisCount() >= 15000; }, 30s));
  REQUIRE(agent.stop() == 0);
  stack.checkDeliveredExactly(numberedMessages(0, 15000));
}

TEST_CASE(
    "a kafka broker down mid-stream opens its breaker alone and every line arrives exactly once after it returns") {
  Stack stack;
  appendFile(stack.log(), numberedLines(0, 5000));
  Agent agent(stack.writeConfig());
  REQUIRE(agent.until([&] { return stack.kafkaCount() == 5000; }, 30s));
  REQUIRE(stack.kafka().command("down 1") == "ok");

  appendFile(stack.log(), numberedLines(5000, 15000));
  // librdkafka retries inside message.timeout.ms (the sink's 2 s timeout), so each failure takes 2 s.
  CHECK(agent.waitForEvent("breaker_open", kKafkaSink, 0, 30s));
  CHECK(agent.until([&] { return stack.redisCount() == 15000 && stack.httpCount() == 15000; }, 30s));
  CHECK_FALSE(agent.logged("breaker_open", kRedisSink));
  CHECK_FALSE(agent.logged("breaker_open", kHttpSink));

  const std::size_t restarted = agent.mark();
  REQUIRE(stack.kafka().command("up 1") == "ok");
  CHECK(agent.waitForEvent("breaker_half_open", kKafkaSink, restarted, 15s));
  CHECK(agent.waitForEvent("breaker_closed", kKafkaSink, restarted, 20s));
  CHECK(agent.until([&] { return stack.kafkaCount() >= 15000; }, 30s));
  REQUIRE(agent.stop() == 0);
  stack.checkDeliveredExactly(numberedMessages(0, 15000));
}

TEST_CASE("an http endpoint answering 503 opens its breaker and every line arrives once it answers 200") {
  Stack stack;
  appendFile(stack.log(), numberedLines(0, 5000));
  Agent agent(stack.writeConfig());
  REQUIRE(agent.until([&] { return stack.httpCount() == 5000; }, 30s));
  stack.http().control({{"status", 503}});

  appendFile(stack.log(), numberedLines(5000, 15000));
  CHECK(agent.waitForEvent("breaker_open", kHttpSink, 0, 15s));
  CHECK(agent.until([&] { return stack.redisCount() == 15000 && stack.kafkaCount() == 15000; }, 30s));
  CHECK(stack.httpCount() == 5000);

  const std::size_t recovered = agent.mark();
  stack.http().control({{"status", 200}});
  CHECK(agent.waitForEvent("breaker_half_open", kHttpSink, recovered, 15s));
  CHECK(agent.waitForEvent("breaker_closed", kHttpSink, recovered, 15s));
  CHECK(agent.until([&] { return stack.httpCount() >= 15000; }, 30s));
  REQUIRE(agent.stop() == 0);
  stack.checkDeliveredExactly(numberedMessages(0, 15000));
  CHECK_FALSE(agent.logged("breaker_open", kRedisSink));
  CHECK_FALSE(agent.logged("breaker_open", kKafkaSink));
}

TEST_CASE("records an http endpoint refuses with 400 go to the dead letter and its breaker stays closed") {
  Stack stack;
  appendFile(stack.log(), numberedLines(0, 1000));
  Agent agent(stack.writeConfig());
  REQUIRE(agent.until([&] { return stack.httpCount() == 1000; }, 30s));
  stack.http().control({{"status", 400}});

  appendFile(stack.log(), numberedLines(1000, 6000));
  const auto deadLettered = [&] {
    std::vector<nlohmann::json> records;
    std::ifstream in(stack.deadLetter(kHttpSink));
    for (std::string line; std::getline(in, line);) records.push_back(nlohmann::json::parse(line, nullptr, false));
    return records;
  };
  CHECK(agent.until([&] { return deadLettered().size() >= 5000; }, 30s));
  CHECK(agent.until([&] { return stack.redisCount() == 6000 && stack.kafkaCount() == 6000; }, 30s));

  // The endpoint takes records again, and the breaker never stood in the way.
  stack.http().control({{"status", 200}});
  appendFile(stack.log(), numberedLines(6000, 7000));
  CHECK(agent.until([&] { return stack.httpCount() == 2000 && stack.redisCount() == 7000; }, 30s));
  REQUIRE(agent.stop() == 0);

  const auto dead = deadLettered();
  REQUIRE(dead.size() == 5000);
  for (std::size_t i = 0; i < dead.size(); ++i) {
    REQUIRE_FALSE(dead[i].is_discarded());
    CHECK(dead[i]["sink"] == kHttpSink);
    CHECK(dead[i]["record"] == "line " + std::to_string(1000 + i));
    CHECK(dead[i]["error"].get<std::string>().find("400") != std::string::npos);
  }
  auto delivered = numberedMessages(0, 1000);
  const auto after = numberedMessages(6000, 7000);
  delivered.insert(delivered.end(), after.begin(), after.end());
  CHECK(stack.http().records() == delivered);
  CHECK_FALSE(agent.logged("breaker_open", kHttpSink));
  CHECK(stack.redisLines() == numberedMessages(0, 7000));
  // At least five 1000-record batches failed: the first is logged in full, the rest summarised (at
  // the latest when the sink stops), not logged one by one.
  const std::string failed = "sink_send_failed sink=" + std::string(kHttpSink);
  CHECK(logcapture::testing::occurrences(agent.err(), failed) == 1);
  CHECK(agent.logged("sink_send_failures", kHttpSink));
}

// A real outage (admin_test.cc accounts for drops through the metrics under a forced-open breaker):
// the destination shows fewer lines than written, none twice, in order, with every line written before
// the outage and after the breaker closed.
TEST_CASE("with on_open drop, batches are dropped while redis is down and nothing arrives twice") {
  Stack stack;
  appendFile(stack.log(), numberedLines(0, 5000));
  Agent agent(stack.writeConfig({.redis = "buffer: {on_open: drop}, "}));
  REQUIRE(agent.until([&] { return stack.redisCount() == 5000; }, 30s));
  REQUIRE(stack.redis().command({"SAVE"}).text == "OK");
  stack.redis().stop();

  appendFile(stack.log(), numberedLines(5000, 15000));
  CHECK(agent.waitForEvent("breaker_open", kRedisSink, 0, 15s));
  CHECK(agent.until([&] { return stack.kafkaCount() == 15000 && stack.httpCount() == 15000; }, 30s));

  // Only a batch can try the breaker: lines keep coming, one per look, until one closes it.
  const std::size_t restarted = agent.mark();
  stack.redis().start();
  int written = 15000;
  CHECK(agent.until(
      [&] {
        appendFile(stack.log(), numberedLines(written, written + 1));
        ++written;
        return agent.logged("breaker_closed", kRedisSink, restarted);
      },
      15s));
  const int closedAt = written;
  appendFile(stack.log(), numberedLines(written, written + 1000));
  written += 1000;
  CHECK(agent.until([&] { return stack.kafkaCount() == written && stack.httpCount() == written; }, 30s));
  REQUIRE(agent.stop() == 0);

  const auto lines = stack.redisLines();
  MESSAGE("written " << written << ", delivered to redis " << lines.size());
  CHECK(lines.size() < std::size_t(written));
  std::vector<int> numbers;
  for (const auto& l : lines) numbers.push_back(std::stoi(l.substr(5)));
  CHECK(std::is_sorted(numbers.begin(), numbers.end()));
  CHECK(std::adjacent_find(numbers.begin(), numbers.end()) == numbers.end());
  CHECK(std::set<int>(numbers.begin(), numbers.end()).size() == numbers.size());
  // Everything before the outage, and everything written after the breaker closed.
  CHECK(std::vector<std::string>(lines.begin(), lines.begin() + std::min<std::size_t>(lines.size(), 5000)) ==
        numberedMessages(0, 5000));
  const std::set<int> got(numbers.begin(), numbers.end());
  int missingAfterClose = 0;
  for (int i = closedAt; i < written; ++i) missingAfterClose += got.count(i) == 0 ? 1 : 0;
  CHECK(missingAfterClose == 0);
}

// A slow destination is not a failing one: its breaker stays closed, and its buffer fills. Its
// when_full policy (here the default, drop_oldest) applies then, so the other sinks go on at their
// own pace; only when_full: block would hold them back with it.
TEST_CASE(
    "a slow http endpoint whose buffer overflows many times drops by its policy and does not hold back redis and "
    "kafka") {
  Stack stack;
  // Sends must outlast the endpoint's 2 s answers, so they succeed slowly instead of failing. The
  // smallest buffer (64 KiB, some 6,000 of these lines) is exceeded more than ten times over.
  Agent agent(stack.writeConfig({.http = "buffer: {max_bytes: 64KiB}, ",
                                 .httpTimeout = "5s",
                                 .batch = "{max_records: 1000, max_bytes: 32KiB, linger: 10ms}",
                                 .admin = true}));
  stack.http().control({{"delay_ms", 2000}});
  constexpr int kLines = 100000;
  appendFile(stack.log(), numberedLines(0, kLines));
  const auto started = std::chrono::steady_clock::now();
  // At most one 1000-record batch per 2 s gets through to http.
  CHECK(agent.until([&] { return stack.redisCount() == kLines && stack.kafkaCount() == kLines; }, 30s));
  const auto fastDone = std::chrono::steady_clock::now() - started;
  const auto httpThen = stack.httpCount();
  MESSAGE("redis and kafka complete after " << std::chrono::duration_cast<std::chrono::milliseconds>(fastDone).count()
                                            << " ms; http had " << httpThen << " of " << kLines);
  CHECK(httpThen < kLines / 10);

  stack.http().control({{"status", 200}});
  const std::string delivered = "logcapture_sink_delivered_records_total{sink=\"search\"}";
  const std::string dropped = "logcapture_sink_dropped_records_total{sink=\"search\",reason=\"buffer_full\"}";
  CHECK(agent.until([&] { return stack.metric(delivered) + stack.metric(dropped) == kLines; }, 30s));
  CHECK(stack.metric(dropped) > 0);
  CHECK(agent.until([&] { return stack.httpCount() == std::int64_t(stack.metric(delivered)); }, 10s));
  REQUIRE(agent.stop() == 0);

  CHECK(stack.redisLines() == numberedMessages(0, kLines));
  CHECK(stack.kafkaLines(kLines) == numberedMessages(0, kLines));
  // http holds some of the lines, each once and in order, and the newest ones (drop_oldest).
  std::vector<int> numbers;
  for (const auto& l : stack.http().records()) numbers.push_back(std::stoi(l.substr(5)));
  CHECK(std::adjacent_find(numbers.begin(), numbers.end(), std::greater_equal<int>()) == numbers.end());
  REQUIRE_FALSE(numbers.empty());
  CHECK(numbers.back() == kLines - 1);
  CHECK_FALSE(agent.logged("breaker_open", kHttpSink));
}

TEST_CASE("an agent started with its standard descriptors closed reads stdin as empty, not as a file it opened") {
  TempDir dir("logcapture-closed-std");
  HttpReceiver receiver;
  const auto config = logcapture::testing::writeAgentConfig(
      dir, "  - {name: pipe, type: stdin}\n",
      "  - {name: web, type: http, url: \"" + receiver.base() + "/ingest\", format: ndjson, encoding: raw}\n");
  // Stdin closed, stdout and stderr too: the agent's first files would take their numbers.
  const auto r = logcapture::testing::runProcess(
      {"/bin/sh", "-c", "exec \"$0\" run -c \"$1\" <&- >&- 2>&-", kBinary, config}, 30s);
  CHECK(r.exitCode == 0);  // stdin at its end at once: the agent drains and exits
  CHECK(receiver.records().empty());
}

TEST_CASE("each sink's own counters reach /metrics, with its name and kind") {
  Stack stack;
  Agent agent(stack.writeConfig({.admin = true}));
  constexpr int kLines = 300;
  appendFile(stack.log(), numberedLines(0, kLines));
  REQUIRE(agent.until(
      [&] { return stack.redisCount() == kLines && stack.kafkaCount() == kLines && stack.httpCount() == kLines; },
      30s));
  const auto sample = [](const std::string& name, const std::string& sink, const std::string& label = "") {
    return name + "{sink=\"" + sink + "\"" + (label.empty() ? "" : "," + label) + "}";
  };
  CHECK(
      agent.until([&] { return stack.metric(sample("logcapture_kafka_delivered_total", kKafkaSink)) == kLines; }, 10s));
  CHECK(stack.metric(sample("logcapture_kafka_produced_total", kKafkaSink)) == kLines);
  CHECK(stack.metric(sample("logcapture_kafka_in_flight", kKafkaSink)) == 0);
  CHECK(stack.metric(sample("logcapture_redis_commands_total", kRedisSink)) >= 1);
  CHECK(stack.metric(sample("logcapture_redis_errors_total", kRedisSink, "kind=\"connection\"")) == 0);
  CHECK(stack.metric(sample("logcapture_redis_connections", kRedisSink)) >= 1);
  CHECK(stack.metric(sample("logcapture_http_requests_total", kHttpSink)) >= 1);
  CHECK(stack.metric(sample("logcapture_http_failed_requests_total", kHttpSink, "class=\"retriable\"")) == 0);
  CHECK(stack.metric(sample("logcapture_http_sent_bytes_total", kHttpSink)) > 0);
  REQUIRE(agent.stop() == 0);
}
