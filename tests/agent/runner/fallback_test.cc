// A sink's fallback (agent/runner/fallback.h), with scripted sinks: while the sink's breaker is open its
// batches go to the fallback's runner, in order per source, their checkpoints (and disk frames) moving
// once the fallback is done with them; a fallback that is open too leaves them where they were.

#include "agent/runner/fallback.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>

#include "agent/pipeline/pipeline.h"
#include "agent/runner/sink_runner.h"
#include "config/loader.h"
#include "tests/support/fixtures.h"
#include "tests/support/scripted_sink.h"

namespace {

using namespace logcapture;
using namespace logcapture::agent;
using namespace std::chrono_literals;
using testing::Feed;
using testing::ScriptedSink;
using testing::waitUntil;

const auto ok = testing::acceptAll;
const auto down = testing::refuseAll;

// A started runner on a scripted sink, shared as the pipeline shares its runners (a link holds one).
struct Runner {
  ScriptedSink* sink = nullptr;
  std::shared_ptr<SinkRunner> runner;
  Runner(const std::filesystem::path& stateDir, const config::SinkConfig& cfg, ScriptedSink::Script script) {
    auto s = std::make_unique<ScriptedSink>(std::move(script));
    sink = s.get();
    runner = std::make_shared<SinkRunner>(cfg, std::move(s), stateDir.string(), circuit::SteadyClock::instance());
    REQUIRE_FALSE(runner->start());
  }
  ~Runner() { stop(); }
  void stop() {
    if (!runner) return;
    runner->fallBackTo(nullptr);
    runner->stop(std::chrono::steady_clock::now() + 1s);
  }
  const SinkStats& stats() const { return runner->stats(); }
};

config::SinkConfig twoLanes(const std::string& name) {
  auto cfg = testing::scriptedSinkConfig(name);
  cfg.workers = 2;
  return cfg;
}

// The messages of `accepted` that belong to `feed`, in the order they came.
std::vector<std::string> of(const Feed& feed, const std::vector<std::string>& accepted) {
  std::vector<std::string> out;
  for (const auto& m : accepted) {
    if (m.starts_with(feed.source().path + " ")) out.push_back(m);
  }
  return out;
}

// Holds the sends of a scripted sink until opened.
class Gate {
 public:
  void open() {
    {
      std::lock_guard lock(mutex_);
      open_ = true;
    }
    changed_.notify_all();
  }
  sinks::SendResult pass() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return open_; });
    return sinks::SendResult::success();
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  bool open_ = false;
};

}  // namespace

TEST_SUITE("fallback") {
  TEST_CASE(
      "a sink whose breaker is open hands its batches to its fallback, each file in order, and the checkpoints move "
      "once the fallback delivered them") {
    testing::TempDir dir("logcapture-fallback");
    auto spareCfg = twoLanes("spare");
    spareCfg.encoding = config::Encoding::Json;  // re-encoded for it: the primary writes raw lines
    Runner spare(dir.path, spareCfg, ok);
    Runner primary(dir.path, twoLanes("primary"), down);
    primary.runner->fallBackTo(spare.runner);
    Feed a("/var/log/a.log");
    Feed b("/var/log/b.log");
    for (int i = 0; i < 200; i += 10) {
      a.offer(*primary.runner, i, i + 10);
      b.offer(*primary.runner, i, i + 10);
    }
    REQUIRE(waitUntil([&] { return a.committed() == 200 && b.committed() == 200; }, 10s));
    CHECK(primary.sink->accepted().empty());
    CHECK(primary.runner->breaker().state() != circuit::State::Closed);
    const auto got = spare.sink->accepted();
    CHECK(of(a, got) == a.expected(0, 200));
    CHECK(of(b, got) == b.expected(0, 200));
    CHECK(waitUntil([&] { return primary.stats().failedOverFor(FailoverReason::BreakerOpen) == 400; }));
    CHECK(primary.stats().delivered == 0);
    CHECK(spare.stats().received == 400);
    CHECK(spare.stats().delivered == 400);
  }

  TEST_CASE("when the fallback's breaker is open too the batches stay buffered with the sink, and none is lost") {
    testing::TempDir dir("logcapture-fallback");
    Runner spare(dir.path, testing::scriptedSinkConfig("spare"), ok);
    spare.runner->breaker().forceOpen();
    Runner primary(dir.path, testing::scriptedSinkConfig("primary"), down);
    primary.runner->fallBackTo(spare.runner);
    Feed feed;
    feed.offer(*primary.runner, 0, 50);
    REQUIRE(waitUntil([&] { return primary.runner->breaker().state() == circuit::State::Open; }));
    REQUIRE(waitUntil([&] { return primary.runner->bufferStats().records == 50; }));
    CHECK(spare.sink->sends() == 0);
    CHECK(spare.stats().received == 0);
    CHECK(feed.committed() == 0);
    CHECK(primary.stats().failedOverFor(FailoverReason::BreakerOpen) == 0);
    // The fallback comes back while the sink is still down: what waited goes over, in order.
    spare.runner->breaker().reset();
    REQUIRE(waitUntil([&] { return feed.committed() == 50; }, 10s));
    CHECK(spare.sink->accepted() == feed.expected(0, 50));
    CHECK(waitUntil([&] { return primary.stats().failedOverFor(FailoverReason::BreakerOpen) == 50; }));
  }

  TEST_CASE("a sink forced open by an operator fails over, and sends to its own destination again once resumed") {
    testing::TempDir dir("logcapture-fallback");
    Runner spare(dir.path, testing::scriptedSinkConfig("spare"), ok);
    Runner primary(dir.path, testing::scriptedSinkConfig("primary"), ok);
    primary.runner->fallBackTo(spare.runner);
    primary.runner->breaker().forceOpen();
    Feed feed;
    feed.offer(*primary.runner, 0, 20);
    REQUIRE(waitUntil([&] { return feed.committed() == 20; }));
    CHECK(spare.sink->accepted() == feed.expected(0, 20));
    CHECK(waitUntil([&] { return primary.stats().failedOverFor(FailoverReason::ForcedOpen) == 20; }));
    primary.runner->breaker().resumeAuto();
    feed.offer(*primary.runner, 20, 40);
    REQUIRE(waitUntil([&] { return feed.committed() == 40; }));
    CHECK(primary.sink->accepted() == feed.expected(20, 40));
    CHECK(spare.sink->accepted().size() == 20);
  }

  TEST_CASE("a fallback whose breaker is open passes the batches on to its own fallback") {
    testing::TempDir dir("logcapture-fallback");
    Runner last(dir.path, testing::scriptedSinkConfig("last"), ok);
    Runner spare(dir.path, testing::scriptedSinkConfig("spare"), ok);
    spare.runner->fallBackTo(last.runner);
    spare.runner->breaker().forceOpen();
    Runner primary(dir.path, testing::scriptedSinkConfig("primary"), down);
    primary.runner->fallBackTo(spare.runner);
    Feed feed;
    feed.offer(*primary.runner, 0, 30);
    REQUIRE(waitUntil([&] { return feed.committed() == 30; }, 10s));
    CHECK(last.sink->accepted() == feed.expected(0, 30));
    CHECK(spare.sink->sends() == 0);
    CHECK(waitUntil([&] { return primary.stats().failedOverFor(FailoverReason::BreakerOpen) == 30; }));
    CHECK(waitUntil([&] { return spare.stats().failedOverFor(FailoverReason::ForcedOpen) == 30; }));
  }

  TEST_CASE("a batch read back from the sink's disk buffer is finished there only once its fallback has delivered it") {
    testing::TempDir dir("logcapture-fallback");
    Gate gate;
    Runner spare(dir.path, testing::scriptedSinkConfig("spare"), [&](const sinks::Batch&) { return gate.pass(); });
    spare.runner->breaker().forceOpen();
    Feed feed;
    {
      Runner primary(dir.path, testing::scriptedDiskSinkConfig("primary"), down);
      primary.runner->fallBackTo(spare.runner);
      feed.offer(*primary.runner, 0, 40);
      // On the primary's disk: the file's checkpoint has moved past them.
      REQUIRE(waitUntil([&] { return feed.committed() == 40 && primary.runner->diskBufferStats()->records == 40; }));
      spare.runner->breaker().reset();
      REQUIRE(waitUntil([&] { return spare.stats().received == 40; }, 10s));
      // Taken over but not yet delivered: still on the primary's disk.
      CHECK(primary.runner->diskBufferStats()->records == 40);
      gate.open();
      REQUIRE(waitUntil([&] { return spare.stats().delivered == 40; }));
      REQUIRE(waitUntil([&] { return primary.runner->diskBufferStats()->records == 0; }));
      CHECK(spare.sink->accepted() == feed.expected(0, 40));
    }
    // Started again on the same directory: nothing is left to send.
    Runner again(dir.path, testing::scriptedDiskSinkConfig("primary"), ok);
    CHECK(again.runner->diskBufferStats()->replayed == 0);
  }

  TEST_CASE("a reload that rebuilds the fallback sink links the failing sink to the new one") {
    testing::TempDir dir("logcapture-fallback");
    const auto configWith = [&](const std::string& spareOut) {
      const std::string yaml = "agent: {state_dir: '" + (dir.path / "state").string() + "'}\n" +
                               "inputs: [{name: app, type: file, start_at: beginning, paths: ['" +
                               (dir.path / "app.log").string() + "']}]\n" +
                               "sinks:\n"
                               "  - {name: primary, type: console, path: '" +
                               (dir.path / "primary.out").string() +
                               "', batch: {linger: 1ms}, fallback: spare}\n"
                               "  - {name: spare, type: console, inputs: [], encoding: raw, path: '" +
                               (dir.path / spareOut).string() + "', batch: {linger: 1ms}}\n";
      return config::loadString(yaml, "fallback.yaml", dir.path).config;
    };
    auto pipeline = Pipeline::build(configWith("spare-a.out"));
    REQUIRE(pipeline);
    const auto primary = pipeline->runners().at(0);
    primary->breaker().forceOpen();
    testing::appendFile(dir.path / "app.log", "one\n");
    REQUIRE(pipeline->start());
    REQUIRE(waitUntil([&] { return testing::fileLines(dir.path / "spare-a.out").size() == 1; }, 10s));

    // The spare is rebuilt (its path changed); the primary stays, and its link follows the new spare.
    const auto oldSpare = pipeline->runners().at(1);
    REQUIRE(pipeline->reload(configWith("spare-b.out"), std::chrono::steady_clock::now() + 5s).applied);
    CHECK(pipeline->runners().at(0) == primary);
    CHECK(pipeline->runners().at(1) != oldSpare);
    CHECK(primary->fallbackName() == "spare");
    testing::appendFile(dir.path / "app.log", "two\n");
    REQUIRE(waitUntil([&] { return testing::fileLines(dir.path / "spare-b.out").size() == 1; }, 10s));
    CHECK(testing::fileLines(dir.path / "spare-b.out") == std::vector<std::string>{"two"});
    CHECK(testing::fileLines(dir.path / "spare-a.out") == std::vector<std::string>{"one"});
    CHECK(waitUntil([&] { return primary->stats().failedOverFor(FailoverReason::ForcedOpen) == 2; }));
    pipeline->stop(std::chrono::steady_clock::now() + 5s);
  }
}

TEST_SUITE("fallback") {
  TEST_CASE("a batch of the sink's one lane is split into the fallback's lanes, so that each file keeps one there") {
    testing::TempDir dir("logcapture-fallback");
    std::vector<std::unique_ptr<Feed>> feeds;  // before the runners: their workers finish its records
    std::set<std::uint32_t> lanes;
    for (int f = 0; f < 8; ++f) {
      feeds.push_back(std::make_unique<Feed>("/var/log/f" + std::to_string(f) + ".log"));
      base::Record r;
      r.source = &feeds.back()->source();
      lanes.insert(laneOf(r, 4));
    }
    REQUIRE(lanes.size() > 1);  // else there is nothing to split
    std::atomic<int> mixed{0};
    auto spareCfg = testing::scriptedSinkConfig("spare");
    spareCfg.workers = 4;
    Runner spare(dir.path, spareCfg, [&](const sinks::Batch& b) {
      for (std::size_t i = 1; i < b.size(); ++i) {
        if (laneOf(b.record(i), 4) != laneOf(b.record(0), 4)) {
          ++mixed;
          break;
        }
      }
      return sinks::SendResult::success();
    });
    auto primaryCfg = testing::scriptedSinkConfig("primary");  // one lane: files share its batches
    primaryCfg.batch.maxRecords = 80;
    primaryCfg.batch.linger = 20ms;
    Runner primary(dir.path, primaryCfg, down);
    primary.runner->breaker().forceOpen();
    primary.runner->fallBackTo(spare.runner);
    for (int i = 0; i < 100; i += 5) {
      for (auto& feed : feeds) feed->offer(*primary.runner, i, i + 5);
    }
    REQUIRE(waitUntil(
        [&] { return std::all_of(feeds.begin(), feeds.end(), [](const auto& f) { return f->committed() == 100; }); },
        10s));
    CHECK(mixed.load() == 0);
    const auto got = spare.sink->accepted();
    for (const auto& feed : feeds) CHECK(of(*feed, got) == feed->expected(0, 100));
    CHECK(primary.sink->sends() == 0);
  }
}
