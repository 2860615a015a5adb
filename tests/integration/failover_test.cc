// A sink's fallback end to end, through the logcapture binary: a redis sink whose redis-server is down
// hands its batches to an http sink (the in-tree receiver) that takes no input of its own, every line
// arrives there once, the files' checkpoints move, and once redis is back new lines go to it again.

#include <doctest/doctest.h>
#include <httplib.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/support/fixtures.h"
#include "tests/support/http_receiver.h"
#include "tests/support/process.h"
#include "tests/support/redis_server.h"
#include "tests/support/running_agent.h"

namespace {

using logcapture::testing::appendFile;
using logcapture::testing::HttpReceiver;
using logcapture::testing::numberedLines;
using logcapture::testing::numberedMessages;
using logcapture::testing::RedisServer;
using Agent = logcapture::testing::RunningAgent;
using logcapture::testing::TempDir;
using logcapture::testing::waitUntil;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

// A sample of /metrics: `line` as the exposition writes it, "name{label=\"value\",...}"; -1 when absent.
double metric(std::uint16_t port, const std::string& line) {
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(2s);
  const auto res = client.Get("/metrics");
  if (!res || res->status != 200) return -1;
  const auto at = res->body.find("\n" + line + " ");
  if (at == std::string::npos) return -1;
  return std::stod(res->body.substr(at + line.size() + 2));
}

}  // namespace

TEST_CASE(
    "a redis sink that is down fails over to an http sink, its checkpoints move, and new lines go to redis once it is "
    "back") {
  TempDir dir("logcapture-failover");
  RedisServer redis;
  redis.stop();
  HttpReceiver http;
  const std::uint16_t adminPort = logcapture::testing::freePort();
  const fs::path log = dir.path / "app.log";
  const fs::path config = dir.path / "capture.yaml";
  {
    const std::string shared =
        "encoding: raw, timeout: 2s, batch: {max_records: 100, linger: 10ms}, "
        "retry: {max_attempts: 2, initial_backoff: 10ms, max_backoff: 50ms}";
    std::ofstream out(config);
    out << "agent: {state_dir: " << (dir.path / "state").string() << ", admin: {listen: \"127.0.0.1:" << adminPort
        << "\"}, shutdown_timeout: 10s}\n"
        << "inputs:\n  - {name: app, type: file, start_at: beginning, paths: [" << log.string() << "]}\n"
        << "sinks:\n"
        << "  - {name: cache, type: redis, address: \"" << redis.address() << "\", mode: list, key: logs, " << shared
        << ", fallback: archive, breaker: {failure_threshold: 3, success_threshold: 1, half_open_max_calls: 1, "
           "open_timeout: 200ms, max_open_timeout: 400ms, jitter: 0}}\n"
        << "  - {name: archive, type: http, inputs: [], url: \"" << http.base() << "/ingest\", format: ndjson, "
        << shared << "}\n";
  }
  const auto httpCount = [&] { return http.stats()["records"].get<std::int64_t>(); };
  const std::string handed =
      "logcapture_sink_fallback_records_total{sink=\"cache\",fallback=\"archive\",reason=\"breaker_open\"}";

  appendFile(log, numberedLines(0, 1000));
  {
    Agent agent(config.string());
    REQUIRE(agent.until([&] { return httpCount() >= 1000; }, 30s));
    CHECK(http.records() == numberedMessages(0, 1000));
    CHECK(metric(adminPort, handed) == 1000);
    const auto view = nlohmann::json::parse(
        logcapture::testing::httpRequest("http://127.0.0.1:" + std::to_string(adminPort) + "/api/v1/breakers/cache"),
        nullptr, false);
    REQUIRE(view.is_object());
    CHECK(view["sink_stats"]["fallback"] == "archive");
    CHECK(view["sink_stats"]["failed_over"]["breaker_open"] == 1000);
    CHECK(agent.logged("sink_failover_started", "cache"));
    REQUIRE(agent.stop() == 0);
  }
  CHECK(httpCount() == 1000);

  // Started again, redis still down: the checkpoint had moved, so only the new line goes over; a line
  // read again would have come before it.
  appendFile(log, "after restart\n");
  {
    Agent agent(config.string());
    REQUIRE(agent.until([&] { return httpCount() >= 1001; }, 30s));
    CHECK(httpCount() == 1001);
    CHECK(http.records().back() == "after restart");

    // Redis back: a line written now and then reaches it once the breaker's trial closes the breaker.
    redis.start();
    int probes = 0;
    REQUIRE(agent.until(
        [&] {
          appendFile(log, "probe " + std::to_string(probes++) + "\n");
          return agent.logged("sink_failover_ended", "cache");
        },
        30s));
    // Every probe line has arrived, at one or the other.
    REQUIRE(agent.until([&] { return redis.command({"LLEN", "logs"}).integer + httpCount() - 1001 == probes; }, 10s));
    CHECK(redis.command({"LLEN", "logs"}).integer >= 1);
    const std::int64_t atHttp = httpCount();
    const std::int64_t atRedis = redis.command({"LLEN", "logs"}).integer;
    appendFile(log, numberedLines(0, 100, "back "));
    REQUIRE(agent.until([&] { return redis.command({"LLEN", "logs"}).integer >= atRedis + 100; }, 30s));
    const auto inRedis = redis.command({"LRANGE", "logs", "-100", "-1"}).strings();
    CHECK(inRedis == numberedMessages(0, 100, "back "));
    CHECK(httpCount() == atHttp);
    REQUIRE(agent.stop() == 0);
  }
}
