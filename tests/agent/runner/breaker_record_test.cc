// An open breaker saved across restarts: a restarted runner keeps a dead destination's breaker open for
// its time instead of sending it every worker's traffic; the record goes once the breaker closes.

#include "agent/runner/breaker_record.h"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "agent/runner/sink_runner.h"
#include "tests/support/fixtures.h"
#include "tests/support/scripted_sink.h"

namespace {

using namespace logcapture;
using namespace logcapture::agent;
using namespace std::chrono_literals;
using testing::Feed;
using testing::ScriptedSink;
using testing::waitUntil;
namespace fs = std::filesystem;

config::SinkConfig slowRetryConfig() {
  config::SinkConfig c = testing::scriptedSinkConfig();
  c.breaker.openTimeout = 30s;  // far beyond the test: a restored breaker must not try meanwhile
  return c;
}

using Run = testing::ScriptedRunner;

}  // namespace

TEST_CASE("a breaker open when its sink stops is open again after a restart, and sends nothing before its time") {
  testing::TempDir dir("logcapture-breaker-record");
  Feed feed;
  const fs::path record = dir.path / "breakers" / "test.json";
  {
    Run down(dir.path, testing::refuseAll, slowRetryConfig());
    feed.offer(*down.runner, 0, 20);
    REQUIRE(waitUntil([&] { return down.runner->breaker().state() == circuit::State::Open; }));
    CHECK(waitUntil([&] { return fs::exists(record); }));  // written as the transition is delivered
  }
  Run again(dir.path, testing::acceptAll, slowRetryConfig());
  CHECK(again.runner->breaker().state() == circuit::State::Open);
  CHECK(again.runner->breaker().snapshot().transitionCount(circuit::State::Closed, circuit::State::Open) == 1);
  feed.offer(*again.runner, 20, 40);
  std::this_thread::sleep_for(300ms);
  CHECK(again.sink->sends() == 0);  // the destination is not tried before the saved trial time
  again.runner->breaker().reset();  // an operator closes it: the record goes, records flow
  CHECK(waitUntil([&] { return again.sink->accepted().size() >= 20; }));
  CHECK_FALSE(fs::exists(record));
}

TEST_CASE("a breaker record that cannot be read is ignored and the breaker starts closed") {
  testing::TempDir dir("logcapture-breaker-record");
  fs::create_directories(dir.path / "breakers");
  std::ofstream(dir.path / "breakers" / "test.json") << "{\"state\": \"open\", \"next_retry_unix_ms\": ";
  Run r(dir.path, testing::acceptAll, slowRetryConfig());
  CHECK(r.runner->breaker().state() == circuit::State::Closed);
  Feed feed;
  feed.offer(*r.runner, 0, 10);
  CHECK(waitUntil([&] { return r.sink->accepted().size() == 10; }));
}

TEST_CASE("a metrics-only breaker open when its sink stops is open again after a restart, and its sink sends at once") {
  testing::TempDir dir("logcapture-breaker-record");
  Feed feed;
  auto cfg = slowRetryConfig();
  cfg.breaker.mode = config::BreakerMode::MetricsOnly;
  {
    Run down(dir.path, testing::refuseAll, cfg);
    feed.offer(*down.runner, 0, 20);
    REQUIRE(waitUntil([&] { return down.runner->breaker().state() == circuit::State::Open; }));
    REQUIRE(waitUntil([&] { return fs::exists(dir.path / "breakers" / "test.json"); }));
  }
  Run again(dir.path, testing::acceptAll, cfg);
  CHECK(again.runner->breaker().state() == circuit::State::Open);  // reported as an enforcing one would be
  feed.offer(*again.runner, 20, 40);
  CHECK(waitUntil([&] { return again.sink->accepted().size() == 20; }));  // long before the saved trial time
  CHECK(again.runner->breaker().state() == circuit::State::Open);
}
