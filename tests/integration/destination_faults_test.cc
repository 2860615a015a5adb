// Faults of the destination or of our credentials, end to end through the logcapture binary: each sink
// is refused for a few seconds for a reason that is not the records' (a token the endpoint rejects, a
// topic the producer may not write, a password the server does not take, a server at its maxclients),
// then the fault is fixed. The breaker opens, the records wait, and every line arrives exactly once with
// nothing in the dead letter. Breaker timings are short so each case takes seconds.

#include <doctest/doctest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/support/fixtures.h"
#include "tests/support/http_receiver.h"
#include "tests/support/kafka_broker.h"
#include "tests/support/process.h"
#include "tests/support/redis_server.h"
#include "tests/support/running_agent.h"

namespace {

using logcapture::testing::appendFile;
using logcapture::testing::fileLines;
using logcapture::testing::HttpReceiver;
using logcapture::testing::KafkaBroker;
using logcapture::testing::numberedLines;
using logcapture::testing::numberedMessages;
using logcapture::testing::RedisServer;
using logcapture::testing::RedisServerOptions;
using logcapture::testing::TempDir;
using logcapture::testing::waitUntil;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr int kLines = 5000;
// How long each destination refuses: long enough for the breaker to open several times.
constexpr auto kFaultFor = 4s;

// Three failures in a row open the breaker for 200 ms, at most 400 ms; sends give up after 2 s.
const std::string kCommon =
    "encoding: raw, timeout: 2s, batch: {max_records: 1000, linger: 10ms}, "
    "retry: {max_attempts: 3, initial_backoff: 10ms, max_backoff: 100ms}, "
    "breaker: {failure_threshold: 3, success_threshold: 1, half_open_max_calls: 1, open_timeout: 200ms, "
    "max_open_timeout: 400ms, jitter: 0}";

// A config tailing dir/app.log into the one sink dest, `sink` being its mapping's body without braces.
std::string oneSinkConfig(const TempDir& dir, const std::string& sink) {
  return logcapture::testing::writeAgentConfig(
      dir, "  - {name: app, type: file, start_at: beginning, paths: [" + (dir / "app.log").string() + "]}\n",
      "  - {name: dest, " + sink + ", " + kCommon + "}\n");
}

// The agent run with dir's config file `config`, whose sink is named dest.
class Agent : public logcapture::testing::RunningAgent {
 public:
  Agent(const TempDir& dir, const std::string& config)
      : RunningAgent(config), deadLetter_(dir / "state" / "dead-letter" / "dest.ndjson") {}

  std::vector<std::string> deadLettered() const { return fileLines(deadLetter_); }
  bool logged(const std::string& event) const { return RunningAgent::logged(event, "dest"); }

 private:
  fs::path deadLetter_;
};

}  // namespace

TEST_CASE("an http endpoint refusing our token for seconds gets every line once the token is accepted") {
  TempDir dir("logcapture-faults");
  HttpReceiver receiver;
  receiver.control({{"status", 401}, {"for_ms", std::chrono::milliseconds(kFaultFor).count()}});
  appendFile(dir / "app.log", numberedLines(0, kLines));
  Agent agent(dir, oneSinkConfig(dir, "type: http, url: \"" + receiver.base() + "/ingest\", format: ndjson"));
  CHECK(agent.until([&] { return agent.logged("breaker_open"); }, 15s));
  CHECK(agent.until([&] { return receiver.stats()["records"] == kLines; }, 30s));
  REQUIRE(agent.stop() == 0);
  CHECK(receiver.records() == numberedMessages(0, kLines));
  CHECK(receiver.stats()["failed_requests"].get<int>() > 0);
  CHECK(agent.deadLettered().empty());
}

TEST_CASE("a kafka topic our producer may not write for seconds gets every line once the grant comes") {
  TempDir dir("logcapture-faults");
  KafkaBroker broker({.topics = {"logs:1"}});
  // Each refused produce request answers TOPIC_AUTHORIZATION_FAILED for every record in it; librdkafka
  // then refuses the topic's records itself until its next metadata refresh, about a second.
  REQUIRE(broker.command("error produce TOPIC_AUTHORIZATION_FAILED 6") == "ok");
  appendFile(dir / "app.log", numberedLines(0, kLines));
  std::string brokers;
  for (const auto& b : broker.brokerList()) brokers += (brokers.empty() ? "" : ", ") + b;
  Agent agent(dir, oneSinkConfig(dir, "type: kafka, brokers: [" + brokers + "], topic: logs"));
  CHECK(agent.until([&] { return agent.logged("breaker_open"); }, 30s));
  CHECK(agent.until([&] { return broker.messageCount("logs") >= kLines; }, 60s));
  REQUIRE(agent.stop() == 0);
  std::vector<std::string> values;
  for (const auto& m : broker.read("logs", kLines, 30s)) values.push_back(m.value);
  CHECK(values == numberedMessages(0, kLines));
  CHECK(agent.deadLettered().empty());
}

TEST_CASE("a redis server refusing our password for seconds gets every line once it takes it") {
  TempDir dir("logcapture-faults");
  RedisServer server(RedisServerOptions{.password = "old", .extraArgs = {}});
  appendFile(dir / "app.log", numberedLines(0, kLines));
  Agent agent(dir, oneSinkConfig(dir, "type: redis, address: \"" + server.address() +
                                          "\", password: s3cret, mode: list, key: logs"));
  CHECK(agent.until([&] { return agent.logged("breaker_open"); }, 15s));
  agent.wait(kFaultFor);
  CHECK(server.command({"LLEN", "logs"}).integer == 0);
  // The fixture's connection is already authenticated and stays so.
  REQUIRE_FALSE(server.command({"CONFIG", "SET", "requirepass", "s3cret"}).isError());
  CHECK(agent.until([&] { return server.command({"LLEN", "logs"}).integer == kLines; }, 30s));
  REQUIRE(agent.stop() == 0);
  CHECK(server.command({"LRANGE", "logs", "0", "-1"}).strings() == numberedMessages(0, kLines));
  CHECK(agent.deadLettered().empty());
}

TEST_CASE("a redis server at its maxclients for seconds gets every line once it takes more clients") {
  TempDir dir("logcapture-faults");
  RedisServer server(RedisServerOptions{.password = "", .extraArgs = {"--maxclients", "1"}});
  REQUIRE(server.command({"PING"}).text == "PONG");  // the fixture holds the one connection allowed
  appendFile(dir / "app.log", numberedLines(0, kLines));
  Agent agent(dir, oneSinkConfig(dir, "type: redis, address: \"" + server.address() + "\", mode: list, key: logs"));
  CHECK(agent.until([&] { return agent.logged("breaker_open"); }, 15s));
  agent.wait(kFaultFor);
  REQUIRE_FALSE(server.command({"CONFIG", "SET", "maxclients", "100"}).isError());
  CHECK(agent.until([&] { return server.command({"LLEN", "logs"}).integer == kLines; }, 30s));
  REQUIRE(agent.stop() == 0);
  CHECK(server.command({"LRANGE", "logs", "0", "-1"}).strings() == numberedMessages(0, kLines));
  CHECK(agent.deadLettered().empty());
}

TEST_CASE("records a redis pubsub sink published to no subscriber are counted in the metrics") {
  TempDir dir("logcapture-faults");
  RedisServer server;
  appendFile(dir / "app.log", numberedLines(0, 100));
  const auto port = logcapture::testing::freePort();
  {
    std::ofstream out(dir / "capture.yaml");
    out << "agent:\n  state_dir: " << (dir / "state").string() << "\n  admin: {listen: \"127.0.0.1:" << port
        << "\"}\n  shutdown_timeout: 20s\n"
        << "inputs:\n  - {name: app, type: file, start_at: beginning, paths: [" << (dir / "app.log").string() << "]}\n"
        << "sinks:\n  - {name: dest, type: redis, address: \"" << server.address()
        << "\", mode: pubsub, channel: live, " << kCommon << "}\n";
  }
  Agent agent(dir, (dir / "capture.yaml").string());
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/metrics";
  const std::string sample = "logcapture_sink_published_unheard_records_total{sink=\"dest\"} 100\n";
  CHECK(agent.until([&] { return logcapture::testing::httpRequest(url).find(sample) != std::string::npos; }, 15s));
  CHECK(agent.until([&] { return agent.logged("redis_publish_unheard"); }, 5s));
  REQUIRE(agent.stop() == 0);
}
