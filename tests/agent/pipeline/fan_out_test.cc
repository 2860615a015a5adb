// The fan-out between the queue and the sink runners, with scripted sinks: routing, isolation of a
// slow sink, and the runner set a reload swaps in, accepted or refused.

#include "agent/pipeline/fan_out.h"

#include <doctest/doctest.h>

#include <thread>

#include "tests/support/fixtures.h"
#include "tests/support/scripted_sink.h"

namespace {

using namespace logcapture;
using namespace logcapture::agent;
using namespace logcapture::base;
using namespace std::chrono_literals;
using sinks::Outcome;
using testing::Feed;
using testing::ScriptedSink;
using testing::waitUntil;

config::QueueConfig queueConfig() {
  config::QueueConfig q;
  q.maxRecords = 1000000;
  q.maxBytes = config::Bytes{1ull << 30};
  q.whenFull = config::WhenFull::Block;
  return q;
}

// A queue, runners with scripted sinks, and the fan-out between them, stopped in that order's reverse.
struct Rig {
  testing::TempDir dir{"logcapture-fan-out"};
  RecordQueue queue{queueConfig()};
  std::vector<std::unique_ptr<SinkRunner>> runners;
  std::vector<ScriptedSink*> sinks;
  std::unique_ptr<FanOut> fanOut;

  SinkRunner& add(const config::SinkConfig& cfg, ScriptedSink::Script script = testing::acceptAll, bool held = false) {
    auto sink = std::make_unique<ScriptedSink>(std::move(script));
    sinks.push_back(sink.get());
    runners.push_back(
        std::make_unique<SinkRunner>(cfg, std::move(sink), dir.path.string(), circuit::SteadyClock::instance()));
    REQUIRE_FALSE(runners.back()->start(held));
    return *runners.back();
  }
  void start(std::vector<SinkRunner*> routed) {
    fanOut = std::make_unique<FanOut>(queue, std::move(routed));
    fanOut->start();
  }
  // Chunks of `perChunk` records [from, to) of `feed` into the queue.
  void push(Feed& feed, int from, int to, int perChunk = 100) {
    for (int i = from; i < to; i += perChunk) {
      REQUIRE(queue.push(feed.chunk(i, std::min(to, i + perChunk))) == RecordQueue::PushResult::Accepted);
    }
  }
  ~Rig() {
    if (fanOut) fanOut->stop(std::chrono::steady_clock::now() + 1s);
    for (auto& r : runners) r->stop(std::chrono::steady_clock::now() + 1s);
  }
};

config::SinkConfig sinkConfig(const std::string& name) {
  auto c = testing::scriptedSinkConfig(name);
  c.batch.maxRecords = 100;
  return c;
}

// A sink whose buffer holds one batch and blocks when full (when_full: block).
config::SinkConfig blockingConfig(const std::string& name) {
  auto c = sinkConfig(name);
  c.buffer.maxBytes = config::Bytes{200};
  c.buffer.whenFull = config::WhenFull::Block;
  return c;
}

// More records than a runner's intake holds (4096) while its buffer blocks.
constexpr int kPastIntake = 10000;

}  // namespace

TEST_CASE("a chunk goes to every sink its input is routed to, and finishes once each has it") {
  Rig rig;
  auto onlyOther = sinkConfig("other");
  onlyOther.inputs = std::vector<std::string>{"other"};
  SinkRunner& all = rig.add(sinkConfig("all"));
  SinkRunner& other = rig.add(onlyOther);
  rig.start({&all, &other});
  Feed app("/var/log/app.log", "app");
  Feed elsewhere("/var/log/other.log", "other");
  Feed nowhere("/var/log/nowhere.log", "nowhere");
  rig.push(app, 0, 500);
  rig.push(elsewhere, 0, 300);
  REQUIRE(waitUntil([&] { return app.committed() == 500 && elsewhere.committed() == 300; }));
  CHECK(rig.sinks[0]->accepted().size() == 800);
  CHECK(rig.sinks[1]->accepted() == elsewhere.expected(0, 300));

  // All sinks routed away from an input: its records are finished and counted.
  REQUIRE(rig.fanOut->replaceRunners({&other}, std::chrono::steady_clock::now() + 5s));
  rig.push(nowhere, 0, 50);
  rig.push(app, 500, 600);
  REQUIRE(waitUntil([&] { return nowhere.committed() == 50 && app.committed() == 600; }));
  CHECK(rig.fanOut->unrouted() == 150);
}

TEST_CASE("a slow sink with a drop policy does not hold back the other sinks") {
  Rig rig;
  auto slowConfig = sinkConfig("slow");
  slowConfig.buffer.maxBytes = config::Bytes{200};
  slowConfig.buffer.whenFull = config::WhenFull::DropNewest;
  SinkRunner& slow = rig.add(slowConfig, [](const sinks::Batch&) {
    std::this_thread::sleep_for(100ms);
    return sinks::SendResult::success();
  });
  SinkRunner& fast = rig.add(sinkConfig("fast"));
  rig.start({&slow, &fast});
  Feed feed;
  rig.push(feed, 0, 2 * kPastIntake);
  CHECK(waitUntil([&] { return fast.stats().delivered == 2 * kPastIntake; }, 5s));
  CHECK(slow.stats().delivered < 2 * kPastIntake);
  REQUIRE(waitUntil([&] { return feed.committed() == 2 * kPastIntake; }, 10s));
  CHECK(slow.stats().delivered + slow.stats().droppedFor(DropReason::BufferFull) == 2 * kPastIntake);
  CHECK(slow.breaker().state() == circuit::State::Closed);
}

TEST_CASE("a slow sink with a drop policy that is the only sink holds back the inputs instead of dropping") {
  Rig rig;
  auto slowConfig = sinkConfig("slow");
  slowConfig.buffer.maxBytes = config::Bytes{200};
  slowConfig.buffer.whenFull = config::WhenFull::DropOldest;
  SinkRunner& slow = rig.add(slowConfig, [](const sinks::Batch&) {
    std::this_thread::sleep_for(1ms);
    return sinks::SendResult::success();
  });
  rig.start({&slow});
  Feed feed;
  rig.push(feed, 0, 2 * kPastIntake);
  REQUIRE(waitUntil([&] { return feed.committed() == 2 * kPastIntake; }, 60s));
  CHECK(slow.stats().delivered == 2 * kPastIntake);
  CHECK(slow.stats().droppedFor(DropReason::BufferFull) == 0);
}

TEST_CASE("a reload refused because a sink that stays holds back every input leaves every sink taking records") {
  Rig rig;
  SinkRunner& staying = rig.add(blockingConfig("staying"), testing::refuseAll);
  SinkRunner& leaving = rig.add(sinkConfig("leaving"));
  rig.start({&staying, &leaving});
  Feed feed;
  rig.push(feed, 0, kPastIntake);
  REQUIRE(waitUntil([&] { return staying.breaker().state() == circuit::State::Open; }));
  REQUIRE(waitUntil([&] { return staying.stats().received >= 4096; }));
  // Received in full is not enough: between two chunks the loop would apply the new set at once.
  REQUIRE(waitUntil([&] { return rig.fanOut->waitingOn() == &staying; }));

  CHECK_FALSE(rig.fanOut->replaceRunners({&staying}, std::chrono::steady_clock::now() + 300ms));

  // Nothing changed: once the staying sink is back, both sinks take every record, old and new.
  rig.sinks[0]->setScript(testing::acceptAll);
  rig.push(feed, kPastIntake, kPastIntake + 1000);
  REQUIRE(waitUntil([&] { return feed.committed() == kPastIntake + 1000; }, 10s));
  CHECK(rig.sinks[1]->accepted() == feed.expected(0, kPastIntake + 1000));
  CHECK(leaving.stats().received == kPastIntake + 1000);
}

TEST_CASE(
    "a reload while a sink that leaves holds back every input applies at once, and that sink keeps what it took") {
  Rig rig;
  SinkRunner& leaving = rig.add(blockingConfig("leaving"), testing::refuseAll);
  SinkRunner& staying = rig.add(sinkConfig("staying"));
  rig.start({&leaving, &staying});
  Feed feed;
  rig.push(feed, 0, kPastIntake);
  REQUIRE(waitUntil([&] { return leaving.breaker().state() == circuit::State::Open; }));
  REQUIRE(waitUntil([&] { return leaving.stats().received >= 4096; }));

  // Its replacement takes new records while it waits for the backlog.
  SinkRunner& replacement = rig.add(sinkConfig("leaving"), testing::acceptAll, /*held=*/true);
  const auto started = std::chrono::steady_clock::now();
  REQUIRE(rig.fanOut->replaceRunners({&replacement, &staying}, std::chrono::steady_clock::now() + 10s));
  CHECK(std::chrono::steady_clock::now() - started < 2s);
  replacement.adopt(leaving.release());

  REQUIRE(waitUntil([&] { return feed.committed() == kPastIntake; }, 10s));
  CHECK(rig.sinks[2]->accepted() == feed.expected(0, kPastIntake));
  CHECK(rig.sinks[1]->accepted() == feed.expected(0, kPastIntake));
  CHECK(leaving.stats().received + replacement.stats().received >= kPastIntake);
}

TEST_CASE("at the shutdown deadline the fan-out leaves what a blocked sink did not take unfinished") {
  Rig rig;
  SinkRunner& blocked = rig.add(blockingConfig("blocked"), testing::refuseAll);
  rig.start({&blocked});
  Feed feed;
  rig.push(feed, 0, kPastIntake);
  REQUIRE(waitUntil([&] { return blocked.stats().received >= 4096; }));
  const auto started = std::chrono::steady_clock::now();
  rig.fanOut->stop(std::chrono::steady_clock::now() + 100ms);
  CHECK(std::chrono::steady_clock::now() - started < 2s);
  blocked.stop(std::chrono::steady_clock::now() + 100ms);
  CHECK(feed.committed() == 0);
  CHECK(blocked.stats().unsentAtShutdown == blocked.stats().received);
}
