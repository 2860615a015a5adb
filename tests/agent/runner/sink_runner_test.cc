// The sink runner with a scripted sink (tests/support/scripted_sink.h): breaker, retry, probes, buffer
// policies, dead letter, splits, acks, release and adoption by a replacement, retirement.

#include "agent/runner/sink_runner.h"

#include <doctest/doctest.h>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <thread>

#include "tests/support/fixtures.h"
#include "tests/support/scripted_sink.h"

namespace {

using namespace logcapture;
using namespace logcapture::agent;
using namespace logcapture::base;
using namespace std::chrono_literals;
using sinks::Outcome;
using testing::waitUntil;

using testing::Feed;
using testing::ScriptedSink;

const auto ok = testing::acceptAll;
const auto down = testing::refuseAll;
config::SinkConfig sinkConfig() { return testing::scriptedSinkConfig(); }

struct Fixture {
  testing::TempDir dir{"logcapture-runner"};
  ScriptedSink* sink = nullptr;
  std::unique_ptr<SinkRunner> runner;

  // `held`: a replacement that sends nothing until it adopts its predecessor's batches.
  explicit Fixture(config::SinkConfig cfg = sinkConfig(), ScriptedSink::Script script = ok, bool held = false) {
    auto s = std::make_unique<ScriptedSink>(std::move(script));
    sink = s.get();
    runner = std::make_unique<SinkRunner>(cfg, std::move(s), dir.path.string(), circuit::SteadyClock::instance());
    REQUIRE_FALSE(runner->start(held));
  }
  ~Fixture() { runner->stop(std::chrono::steady_clock::now() + 1s); }
  const SinkStats& stats() const { return runner->stats(); }
  std::vector<std::string> deadLetterLines() const {
    std::ifstream in(dir.path / "dead-letter" / "test.ndjson");
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
  }
};

// A feed of a file whose records take another lane, of `lanes`, than those of `other`.
std::unique_ptr<Feed> feedInAnotherLane(const Feed& other, std::uint32_t lanes) {
  Record theirs;
  theirs.source = &other.source();
  for (int i = 0;; ++i) {
    auto candidate = std::make_unique<Feed>("/var/log/other" + std::to_string(i) + ".log");
    Record mine;
    mine.source = &candidate->source();
    if (laneOf(mine, lanes) != laneOf(theirs, lanes)) return candidate;
  }
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
  void pass() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return open_; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  bool open_ = false;
};

}  // namespace

TEST_CASE("every record is delivered once, in order, and its checkpoint moves to the end") {
  Fixture f;
  Feed feed;
  feed.offer(*f.runner, 0, 100);
  REQUIRE(waitUntil([&] { return feed.committed() == 100; }));
  CHECK(f.sink->accepted() == feed.expected(0, 100));
  CHECK(f.stats().received == 100);
  CHECK(f.stats().delivered == 100);
}

TEST_CASE("batches hold at most max_records records") {
  auto cfg = sinkConfig();
  cfg.batch.maxRecords = 7;
  std::atomic<std::size_t> largest{0};
  Fixture f(cfg, [&](const sinks::Batch& b) {
    largest = std::max(largest.load(), b.size());
    return sinks::SendResult::success();
  });
  Feed feed;
  feed.offer(*f.runner, 0, 100, 50);
  REQUIRE(waitUntil([&] { return f.stats().delivered == 100; }));
  CHECK(largest == 7);
}

TEST_CASE("a sink that is down opens its breaker, buffers, and drains in order once it is back") {
  Fixture f(sinkConfig(), down);
  Feed feed;
  feed.offer(*f.runner, 0, 50);
  REQUIRE(waitUntil([&] { return f.runner->breaker().state() == circuit::State::Open; }));
  CHECK(f.runner->breaker().snapshot().totals.failures == 3);
  CHECK(f.stats().delivered == 0);
  CHECK(feed.committed() == 0);
  CHECK(f.runner->bufferStats().records > 0);
  f.sink->setScript(ok);
  REQUIRE(waitUntil([&] { return f.stats().delivered == 50; }));
  CHECK(f.sink->accepted() == feed.expected(0, 50));
  CHECK(f.runner->breaker().state() == circuit::State::Closed);
  REQUIRE(waitUntil([&] { return feed.committed() == 50; }));
}

TEST_CASE("on_open: drop drops and counts what arrives while the breaker is open") {
  auto cfg = sinkConfig();
  cfg.buffer.onOpen = config::OnOpen::Drop;
  Fixture f(cfg, down);
  Feed feed;
  feed.offer(*f.runner, 0, 100);
  REQUIRE(waitUntil([&] { return feed.committed() == 100; }));
  CHECK(f.stats().delivered + f.stats().droppedFor(DropReason::BreakerOpen) == 100);
  CHECK(f.stats().droppedFor(DropReason::BreakerOpen) > 0);
}

TEST_CASE("a metrics-only breaker on a sink that is down opens, and every batch is still sent and kept") {
  auto cfg = sinkConfig();
  cfg.breaker.mode = config::BreakerMode::MetricsOnly;
  cfg.breaker.openTimeout = 1h;  // an enforcing breaker would send nothing more for the whole test
  cfg.breaker.maxOpenTimeout = 1h;
  cfg.buffer.onOpen = config::OnOpen::Drop;  // and would drop what comes while it is open
  Fixture f(cfg, down);
  Feed feed;
  feed.offer(*f.runner, 0, 50);
  REQUIRE(waitUntil([&] { return f.runner->breaker().state() == circuit::State::Open; }));
  const auto atOpen = f.sink->sends();
  CHECK(waitUntil([&] { return f.sink->sends() >= atOpen + 20; }));
  CHECK(f.runner->breaker().state() == circuit::State::Open);
  CHECK(f.stats().droppedFor(DropReason::BreakerOpen) == 0);
  f.sink->setScript(ok);
  REQUIRE(waitUntil([&] { return f.stats().delivered == 50; }));
  CHECK(f.sink->accepted() == feed.expected(0, 50));
  CHECK(f.runner->breaker().state() == circuit::State::Open);
}

TEST_CASE("a metrics-only sink whose breaker is open keeps its full buffer as a closed one does, dropping nothing") {
  auto cfg = sinkConfig();
  cfg.breaker.mode = config::BreakerMode::MetricsOnly;
  cfg.breaker.openTimeout = 1h;
  cfg.breaker.maxOpenTimeout = 1h;
  cfg.buffer.maxBytes = config::Bytes{200};  // about one batch: the batcher meets a full buffer at once
  cfg.buffer.whenFull = config::WhenFull::DropNewest;
  Fixture f(cfg, down);
  Feed feed;
  feed.offer(*f.runner, 0, 300);
  REQUIRE(waitUntil([&] { return f.runner->breaker().state() == circuit::State::Open; }));
  const auto atOpen = f.sink->sends();
  REQUIRE(waitUntil([&] { return f.sink->sends() >= atOpen + 10; }));
  // Enforcing, the open breaker would let the drop policy drop; here no other sink waits, so it waits.
  CHECK(f.stats().droppedFor(DropReason::BufferFull) == 0);
  f.sink->setScript(ok);
  REQUIRE(waitUntil([&] { return feed.committed() == 300; }, 20s));
  CHECK(f.sink->accepted() == feed.expected(0, 300));
  CHECK(f.stats().droppedFor(DropReason::BufferFull) == 0);
}

TEST_CASE("a full buffer drops the newest batches with drop_newest, the oldest with drop_oldest") {
  for (auto policy : {config::WhenFull::DropNewest, config::WhenFull::DropOldest}) {
    CAPTURE(config::enumName(policy));
    auto cfg = sinkConfig();
    cfg.buffer.maxBytes = config::Bytes{200};  // a few batches of ~15-byte records
    cfg.buffer.whenFull = policy;
    Fixture f(cfg, down);
    Feed feed;
    feed.offer(*f.runner, 0, 200);
    REQUIRE(waitUntil([&] { return f.stats().droppedFor(DropReason::BufferFull) > 0; }));
    f.sink->setScript(ok);
    REQUIRE(waitUntil([&] { return feed.committed() == 200; }));
    CHECK(f.stats().delivered + f.stats().droppedFor(DropReason::BufferFull) == 200);
    const auto got = f.sink->accepted();
    REQUIRE_FALSE(got.empty());
    if (policy == config::WhenFull::DropOldest) {
      CHECK(got.back() == feed.expected(199, 200).front());  // the newest survived
    } else {
      CHECK(got.front() == feed.expected(0, 1).front());  // the oldest survived
    }
  }
}

TEST_CASE("when_full: block holds the intake until the sink drains, losing nothing") {
  auto cfg = sinkConfig();
  cfg.buffer.maxBytes = config::Bytes{200};
  cfg.buffer.whenFull = config::WhenFull::Block;
  Fixture f(cfg, down);
  Feed feed;
  std::thread producer([&] { feed.offer(*f.runner, 0, 300); });
  REQUIRE(waitUntil([&] { return f.runner->breaker().state() == circuit::State::Open; }));
  f.sink->setScript(ok);
  producer.join();
  REQUIRE(waitUntil([&] { return feed.committed() == 300; }));
  CHECK(f.sink->accepted() == feed.expected(0, 300));
  CHECK(f.stats().droppedFor(DropReason::BufferFull) == 0);
}

TEST_CASE("permanent failures go to the dead letter and never open the breaker") {
  Fixture f(sinkConfig(), [](const sinks::Batch&) {
    return sinks::SendResult::failure(Outcome::Permanent, "HTTP 400: mapping error");
  });
  Feed feed;
  feed.offer(*f.runner, 0, 30);
  REQUIRE(waitUntil([&] { return feed.committed() == 30; }));
  CHECK(f.stats().deadLettered == 30);
  CHECK(f.runner->breaker().state() == circuit::State::Closed);
  const auto lines = f.deadLetterLines();
  REQUIRE(lines.size() == 30);
  CHECK(lines[0].find("\"sink\":\"test\"") != std::string::npos);
  CHECK(lines[0].find("\"error\":\"HTTP 400: mapping error\"") != std::string::npos);
  CHECK(lines[0].find("\"record\":\"/var/log/a.log 0\"") != std::string::npos);
}

TEST_CASE("a full dead letter drops and counts the records past its cap") {
  auto cfg = sinkConfig();
  cfg.deadLetter.maxBytes = config::Bytes{1000};
  Fixture f(cfg, [](const sinks::Batch&) { return sinks::SendResult::failure(Outcome::Permanent, "bad"); });
  Feed feed;
  feed.offer(*f.runner, 0, 50);
  REQUIRE(waitUntil([&] { return feed.committed() == 50; }));
  CHECK(f.stats().deadLettered > 0);
  CHECK(f.stats().deadLettered + f.stats().droppedFor(DropReason::DeadLetterFull) == 50);
  CHECK(std::filesystem::file_size(f.dir.path / "dead-letter" / "test.ndjson") <= 1000);
}

TEST_CASE("a full dead letter moved away takes the next refused records in a new file") {
  auto cfg = sinkConfig();
  cfg.deadLetter.maxBytes = config::Bytes{1000};
  Fixture f(cfg, [](const sinks::Batch&) { return sinks::SendResult::failure(Outcome::Permanent, "bad"); });
  Feed feed;
  feed.offer(*f.runner, 0, 50);
  REQUIRE(waitUntil([&] { return feed.committed() == 50; }));
  REQUIRE(f.stats().droppedFor(DropReason::DeadLetterFull) > 0);
  const auto written = f.stats().deadLettered.load();
  // What dead_letter_full advises: move the file away.
  const auto path = f.dir.path / "dead-letter" / "test.ndjson";
  std::filesystem::rename(path, f.dir.path / "dead-letter" / "test.ndjson.1");
  feed.offer(*f.runner, 50, 55);
  REQUIRE(waitUntil([&] { return feed.committed() == 55; }));
  CHECK(f.stats().deadLettered == written + 5);
  CHECK(f.deadLetterLines().size() == 5);
}

TEST_CASE("a dead letter already at its cap when the agent starts takes no more records") {
  auto cfg = sinkConfig();
  cfg.deadLetter.maxBytes = config::Bytes{1000};
  testing::TempDir state{"logcapture-runner"};
  const auto path = state.path / "dead-letter" / "test.ndjson";
  std::filesystem::create_directories(path.parent_path());
  {
    std::ofstream out(path);
    out << std::string(999, 'x') << "\n";  // left by an earlier run, at the cap
  }
  auto sink = std::make_unique<ScriptedSink>(
      [](const sinks::Batch&) { return sinks::SendResult::failure(Outcome::Permanent, "bad"); });
  Feed feed;
  SinkRunner runner(cfg, std::move(sink), state.path.string(), circuit::SteadyClock::instance());
  REQUIRE_FALSE(runner.start());
  feed.offer(runner, 0, 5);
  REQUIRE(waitUntil([&] { return feed.committed() == 5; }));
  CHECK(runner.stats().droppedFor(DropReason::DeadLetterFull) == 5);
  CHECK(runner.stats().deadLettered == 0);
  CHECK(std::filesystem::file_size(path) == 1000);
  runner.stop(std::chrono::steady_clock::now() + 1s);
}

TEST_CASE("a partial failure dead-letters the permanent records and retries only the retriable ones") {
  std::atomic<int> calls{0};
  Fixture f(sinkConfig(), [&](const sinks::Batch& b) {
    sinks::SendResult r;
    if (calls++ == 0) {
      // First call: record 0 is refused for good, record 1 may go again.
      r.failures.push_back({0, Outcome::Permanent, "mapper_parsing_exception"});
      r.failures.push_back({1, Outcome::Retriable, "es_rejected_execution_exception"});
    }
    (void)b;
    return r;
  });
  Feed feed;
  feed.offer(*f.runner, 0, 5, 5);
  REQUIRE(waitUntil([&] { return feed.committed() == 5; }));
  CHECK(f.stats().deadLettered == 1);
  CHECK(f.stats().delivered == 4);
  auto got = f.sink->accepted();
  std::sort(got.begin(), got.end());
  CHECK(got == feed.expected(1, 5));
}

TEST_CASE("a batch refused for its size is halved until it fits, and one record too large is dead-lettered") {
  Fixture f(sinkConfig(), [](const sinks::Batch& b) {
    if (b.size() <= 2) return sinks::SendResult::success();
    sinks::SendResult r = sinks::SendResult::failure(Outcome::Permanent, "HTTP 413");
    r.tooLarge = true;
    return r;
  });
  Feed feed;
  feed.offer(*f.runner, 0, 10, 10);
  REQUIRE(waitUntil([&] { return feed.committed() == 10; }));
  CHECK(f.sink->accepted() == feed.expected(0, 10));
  CHECK(f.stats().splits > 0);
  CHECK(f.stats().deadLettered == 0);

  Fixture single(sinkConfig(), [](const sinks::Batch&) {
    sinks::SendResult r = sinks::SendResult::failure(Outcome::Permanent, "HTTP 413");
    r.tooLarge = true;
    return r;
  });
  Feed one;
  one.offer(*single.runner, 0, 1);
  REQUIRE(waitUntil([&] { return one.committed() == 1; }));
  CHECK(single.stats().deadLettered == 1);
}

TEST_CASE("Retry-After keeps the breaker open at least that long") {
  auto cfg = sinkConfig();
  cfg.breaker.failureThreshold = 1;
  cfg.breaker.maxOpenTimeout = 10s;
  Fixture f(cfg, [](const sinks::Batch&) {
    sinks::SendResult r = sinks::SendResult::failure(Outcome::Retriable, "HTTP 503");
    r.retryAfter = 2s;
    return r;
  });
  Feed feed;
  const auto before = std::chrono::steady_clock::now();
  feed.offer(*f.runner, 0, 1);
  REQUIRE(waitUntil([&] { return f.runner->breaker().state() == circuit::State::Open; }));
  const auto retryAt = f.runner->breaker().nextRetryAt();
  REQUIRE(retryAt);
  CHECK(*retryAt - before >= 1900ms);
}

TEST_CASE("a delivery shared by two sinks finishes only when both are done with it") {
  Fixture a;
  Fixture b(sinkConfig(), down);
  Feed feed;
  auto d = feed.delivery(0, 10);
  Claim forA(d);
  Claim forB(d);
  d.reset();
  a.runner->offer(std::move(forA));
  b.runner->offer(std::move(forB));
  REQUIRE(waitUntil([&] { return a.stats().delivered == 10; }));
  REQUIRE(waitUntil([&] { return b.runner->breaker().state() == circuit::State::Open; }));
  CHECK(feed.committed() == 0);
  b.sink->setScript(ok);
  REQUIRE(waitUntil([&] { return feed.committed() == 10; }));
}

TEST_CASE("with several workers each file still arrives in order") {
  auto cfg = sinkConfig();
  cfg.workers = 4;
  Fixture f(cfg);
  std::vector<std::unique_ptr<Feed>> feeds;
  for (int i = 0; i < 6; ++i) feeds.push_back(std::make_unique<Feed>("/var/log/f" + std::to_string(i) + ".log"));
  for (int round = 0; round < 20; ++round) {
    for (auto& feed : feeds) feed->offer(*f.runner, round * 10, round * 10 + 10);
  }
  REQUIRE(waitUntil([&] { return f.stats().delivered == 6 * 200; }));
  const auto got = f.sink->accepted();
  for (auto& feed : feeds) {
    const auto want = feed->expected(0, 200);
    std::vector<std::string> mine;
    for (const auto& m : got) {
      if (m.rfind(want.front().substr(0, want.front().find(' ') + 1), 0) == 0) mine.push_back(m);
    }
    CHECK(mine == want);
  }
}

TEST_CASE("records left unsent at the shutdown deadline stay unfinished and are counted") {
  Fixture f(sinkConfig(), down);
  Feed feed;
  feed.offer(*f.runner, 0, 20);
  REQUIRE(waitUntil([&] { return f.runner->breaker().state() == circuit::State::Open; }));
  f.runner->stop(std::chrono::steady_clock::now() + 100ms);
  CHECK(feed.committed() == 0);
  CHECK(f.stats().unsentAtShutdown == 20);
}

TEST_CASE("a slow sink that other sinks wait on drops by its policy, counted, and never holds back its intake") {
  for (auto policy : {config::WhenFull::DropNewest, config::WhenFull::DropOldest}) {
    CAPTURE(config::enumName(policy));
    auto cfg = sinkConfig();
    cfg.buffer.maxBytes = config::Bytes{200};
    cfg.buffer.whenFull = policy;
    // Healthy but slow: sending everything would take minutes.
    Fixture f(cfg, [](const sinks::Batch&) {
      std::this_thread::sleep_for(100ms);
      return sinks::SendResult::success();
    });
    Feed feed;
    const auto started = std::chrono::steady_clock::now();
    // Far past the intake's 4096 records and what the open batches hold, so that offer() has to wait, as a
    // fan-out feeding others would.
    feed.offer(*f.runner, 0, 20000, 50, /*othersWait=*/true);
    CHECK(std::chrono::steady_clock::now() - started < 5s);
    CHECK(waitUntil([&] { return f.stats().droppedFor(DropReason::BufferFull) > 0; }, 5s));
    // With no one waiting any more, the rest of the intake waits for the sink: made fast, it finishes.
    f.sink->setScript(testing::acceptAll);
    REQUIRE(waitUntil([&] { return feed.committed() == 20000; }, 20s));
    // The counters follow the checkpoint's move by a moment.
    CHECK(waitUntil([&] { return f.stats().delivered + f.stats().droppedFor(DropReason::BufferFull) == 20000; }));
    CHECK(f.runner->breaker().state() == circuit::State::Closed);
  }
}

TEST_CASE("a slow sink that no other sink waits on holds back its intake and loses nothing, whatever its when_full") {
  for (auto policy : {config::WhenFull::Block, config::WhenFull::DropNewest, config::WhenFull::DropOldest}) {
    CAPTURE(config::enumName(policy));
    auto cfg = sinkConfig();
    cfg.buffer.maxBytes = config::Bytes{200};
    cfg.buffer.whenFull = policy;
    Fixture f(cfg, [](const sinks::Batch&) {
      std::this_thread::sleep_for(2ms);
      return sinks::SendResult::success();
    });
    Feed feed;
    feed.offer(*f.runner, 0, 300);
    REQUIRE(waitUntil([&] { return feed.committed() == 300; }, 20s));
    CHECK(f.sink->accepted() == feed.expected(0, 300));
    CHECK(f.stats().droppedFor(DropReason::BufferFull) == 0);
  }
}

TEST_CASE("a probe answered with a refusal or a throttle re-opens the breaker, so probes come once per open period") {
  for (auto answer : {Outcome::Throttled, Outcome::Permanent, Outcome::Retriable}) {
    CAPTURE(sinks::outcomeName(answer));
    auto cfg = sinkConfig();
    cfg.breaker.probe = true;
    cfg.breaker.failureThreshold = 1;
    cfg.breaker.openTimeout = 50ms;
    cfg.breaker.maxOpenTimeout = 100ms;
    Fixture f(cfg, down);
    f.sink->setProbe([answer] { return sinks::SendResult::failure(answer, "HTTP 401"); });
    Feed feed;
    feed.offer(*f.runner, 0, 10);
    REQUIRE(waitUntil([&] { return f.runner->breaker().state() == circuit::State::Open; }));
    std::this_thread::sleep_for(1s);
    // One probe per open period of 50 to 100 ms: about 10 in a second, not thousands.
    CHECK(f.sink->probes() >= 3);
    CHECK(f.sink->probes() <= 25);
    CHECK(f.stats().probes == std::uint64_t(f.sink->probes()));
    CHECK(f.runner->breaker().snapshot().transitionCount(circuit::State::HalfOpen, circuit::State::Open) >= 3);
    CHECK(f.sink->sends() == 1);  // no batch risked while the probe fails

    f.sink->setProbe({});
    f.sink->setScript(ok);
    REQUIRE(waitUntil([&] { return feed.committed() == 10; }));
  }
}

TEST_CASE("a probe that throws fails the trial, and the breaker still closes once the sink is back") {
  auto cfg = sinkConfig();
  cfg.breaker.probe = true;
  cfg.breaker.failureThreshold = 1;
  Fixture f(cfg, down);
  f.sink->setProbe([]() -> sinks::SendResult { throw std::runtime_error("probe exploded"); });
  Feed feed;
  feed.offer(*f.runner, 0, 10);
  REQUIRE(waitUntil([&] { return f.stats().sendExceptions >= 2; }));
  CHECK(f.runner->breaker().snapshot().transitionCount(circuit::State::HalfOpen, circuit::State::Open) >= 1);
  // The trial slot went back with the failure: a later trial is admitted and closes the breaker.
  f.sink->setProbe({});
  f.sink->setScript(ok);
  REQUIRE(waitUntil([&] { return feed.committed() == 10; }));
  CHECK(f.runner->breaker().state() == circuit::State::Closed);
}

TEST_CASE("a send that throws is a retriable failure: counted, the breaker opens, and nothing is lost") {
  Fixture f(sinkConfig(), [](const sinks::Batch&) -> sinks::SendResult { throw std::runtime_error("boom"); });
  Feed feed;
  feed.offer(*f.runner, 0, 20);
  REQUIRE(waitUntil([&] { return f.runner->breaker().state() == circuit::State::Open; }));
  CHECK(f.stats().sendExceptions >= 3);
  CHECK(f.runner->breaker().snapshot().totals.failures >= 3);
  f.sink->setScript(ok);
  REQUIRE(waitUntil([&] { return feed.committed() == 20; }));
  CHECK(f.sink->accepted() == feed.expected(0, 20));
}

TEST_CASE("a Retry-After longer than max_open_timeout holds a batch back no longer than max_open_timeout") {
  auto cfg = sinkConfig();
  cfg.breaker.maxOpenTimeout = 200ms;
  std::atomic<int> calls{0};
  // Throttled does not trip the breaker: only the runner's own wait holds the batch.
  Fixture f(cfg, [&](const sinks::Batch&) {
    if (calls++ > 0) return sinks::SendResult::success();
    sinks::SendResult r = sinks::SendResult::failure(Outcome::Throttled, "HTTP 429");
    r.retryAfter = std::chrono::hours(24);
    return r;
  });
  Feed feed;
  const auto started = std::chrono::steady_clock::now();
  feed.offer(*f.runner, 0, 5);
  REQUIRE(waitUntil([&] { return feed.committed() == 5; }, 3s));
  CHECK(std::chrono::steady_clock::now() - started >= 150ms);
  CHECK(calls == 2);
}

TEST_CASE("a batch whose every record fails as retriable in a partial answer opens the breaker") {
  auto cfg = sinkConfig();
  cfg.breaker.openTimeout = 1s;
  // The call succeeds for the breaker as a whole, yet the destination takes none of the records.
  Fixture f(cfg, [](const sinks::Batch& b) {
    sinks::SendResult r;
    for (std::uint32_t i = 0; i < b.size(); ++i) r.failures.push_back({i, Outcome::Retriable, "es_rejected"});
    return r;
  });
  Feed feed;
  feed.offer(*f.runner, 0, 5);
  REQUIRE(waitUntil([&] { return f.runner->breaker().state() == circuit::State::Open; }));
  CHECK(f.stats().delivered == 0);
  const int sends = f.sink->sends();
  std::this_thread::sleep_for(300ms);
  CHECK(f.sink->sends() == sends);  // held back by the breaker, not retried in a loop
  CHECK(f.runner->oldestBatchAge(std::chrono::steady_clock::now()) >= 300ms);
  CHECK(feed.committed() == 0);
}

TEST_CASE("a batch that always fails holds back its own lane only: the other lanes keep delivering") {
  auto cfg = sinkConfig();
  cfg.workers = 2;
  cfg.breaker.failureThreshold = 1;
  cfg.breaker.successThreshold = 2;
  cfg.breaker.halfOpenMaxCalls = 2;
  cfg.breaker.openTimeout = 50ms;
  cfg.breaker.maxOpenTimeout = 2s;
  cfg.breaker.backoffMultiplier = 2;
  // The breaker flaps on the stuck batch; a ramp after each close would pace the good lane too, which is
  // the ramp's business (send_limit_test.cc), not this test's.
  cfg.breaker.ramp = 0s;
  // Two files in different lanes.
  Feed stuck("/var/log/stuck.log");
  const auto good = feedInAnotherLane(stuck, 2);
  Fixture f(cfg, [](const sinks::Batch& b) {
    for (std::size_t i = 0; i < b.size(); ++i) {
      if (b.record(i).message.find("stuck") != std::string_view::npos) {
        return sinks::SendResult::failure(Outcome::Retriable, "HTTP 500");
      }
    }
    return sinks::SendResult::success();
  });
  stuck.offer(*f.runner, 0, 5);
  REQUIRE(waitUntil([&] { return f.runner->breaker().state() == circuit::State::Open; }));
  const auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < 300; i += 10) {
    good->offer(*f.runner, i, i + 10, 10);
    std::this_thread::sleep_for(5ms);
  }
  CHECK(waitUntil([&] { return good->committed() == 300; }, 4s));
  MESSAGE("the good lane took "
          << std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count()
          << " ms; breaker opens " << f.runner->breaker().snapshot().opens());
  CHECK(good->committed() == 300);
  CHECK(stuck.committed() == 0);
  CHECK(f.runner->breaker().snapshot().opens() >= 2);
  CHECK(f.runner->oldestBatchAge(std::chrono::steady_clock::now()) > 0ns);
}

TEST_CASE("records refused for good while the dead letter cannot be written are dropped and counted apart") {
  for (const std::string how : {"a directory in its place", "a full disk"}) {
    CAPTURE(how);
    Fixture f(sinkConfig(), [](const sinks::Batch&) { return sinks::SendResult::failure(Outcome::Permanent, "bad"); });
    const auto path = f.dir.path / "dead-letter" / "test.ndjson";
    std::filesystem::create_directories(path.parent_path());
    if (how == "a full disk") {
      std::filesystem::create_symlink("/dev/full", path);  // every write fails with ENOSPC
    } else {
      std::filesystem::create_directory(path);  // open fails with EISDIR, even as root
    }
    Feed feed;
    feed.offer(*f.runner, 0, 30);
    REQUIRE(waitUntil([&] { return feed.committed() == 30; }));
    CHECK(f.stats().droppedFor(DropReason::DeadLetterFailed) == 30);
    CHECK(f.stats().droppedFor(DropReason::DeadLetterFull) == 0);
    CHECK(f.stats().deadLettered == 0);
    CHECK(f.runner->deadLetter().dropped() == 30);

    // Writable again: the next refused records are written.
    std::filesystem::remove(path);
    feed.offer(*f.runner, 30, 40);
    REQUIRE(waitUntil([&] { return feed.committed() == 40; }));
    CHECK(f.stats().deadLettered == 10);
    CHECK(f.deadLetterLines().size() == 10);
  }
}

TEST_CASE("a retired runner sends until its deadline, then drops what is left, counted, and finishes it") {
  Fixture f(sinkConfig(), down);
  Feed feed;
  feed.offer(*f.runner, 0, 20);
  REQUIRE(waitUntil([&] { return f.runner->breaker().state() == circuit::State::Open; }));
  f.runner->retire(std::chrono::steady_clock::now() + 100ms);
  CHECK(feed.committed() == 20);
  CHECK(f.stats().droppedFor(DropReason::SinkRemoved) == 20);
  CHECK(f.stats().unsentAtShutdown == 0);
}

TEST_CASE("a released runner hands its backlog to its replacement, which sends it before anything newer") {
  Fixture old(sinkConfig(), down);
  Feed feed;
  feed.offer(*old.runner, 0, 50);
  REQUIRE(waitUntil([&] { return old.runner->breaker().state() == circuit::State::Open; }));
  auto cfg = sinkConfig();
  cfg.encoding = config::Encoding::Json;
  std::atomic<bool> json{true};
  Fixture replacement(
      cfg,
      [&](const sinks::Batch& b) {
        if (b.encodedRecord(0).front() != '{') json = false;
        return sinks::SendResult::success();
      },
      /*held=*/true);
  feed.offer(*replacement.runner, 50, 60);  // newer, taken while it waits for the backlog
  std::this_thread::sleep_for(50ms);
  CHECK(replacement.sink->sends() == 0);
  replacement.runner->adopt(old.runner->release());
  feed.offer(*replacement.runner, 60, 100);
  REQUIRE(waitUntil([&] { return feed.committed() == 100; }));
  CHECK(replacement.sink->accepted() == feed.expected(0, 100));
  CHECK(json);  // re-encoded for the replacement
  CHECK(old.stats().delivered == 0);
  CHECK(old.stats().unsentAtShutdown == 0);
}

TEST_CASE("a runner released while when_full: block holds its intake hands over what it held and what it took") {
  auto cfg = sinkConfig();
  cfg.buffer.maxBytes = config::Bytes{200};
  cfg.buffer.whenFull = config::WhenFull::Block;
  Fixture old(cfg, down);
  Feed feed;
  std::atomic<bool> offered{false};
  std::thread producer([&] {
    feed.offer(*old.runner, 0, 10000, 10);  // past what the batcher and its intake hold (2 x 4096)
    offered = true;
  });
  REQUIRE(waitUntil([&] { return old.runner->breaker().state() == circuit::State::Open; }));
  std::this_thread::sleep_for(50ms);
  CHECK_FALSE(offered);  // held back by the full buffer
  old.runner->holdBackIntake(false);
  REQUIRE(waitUntil([&] { return offered.load(); }));
  producer.join();
  Fixture replacement(sinkConfig(), ok, /*held=*/true);
  replacement.runner->adopt(old.runner->release());
  REQUIRE(waitUntil([&] { return feed.committed() == 10000; }));
  CHECK(replacement.sink->accepted() == feed.expected(0, 10000));
  CHECK(old.stats().droppedFor(DropReason::BufferFull) == 0);
}

TEST_CASE("a runner released with nothing buffered hands over nothing, and a released runner takes no more") {
  Fixture old;
  Feed feed;
  feed.offer(*old.runner, 0, 10);
  REQUIRE(waitUntil([&] { return feed.committed() == 10; }));
  CHECK(old.runner->release().empty());
  // Its intake is closed: an offer returns at once and leaves the delivery unfinished.
  old.runner->offer(feed.claim(10, 20));
  CHECK(old.stats().received == 10);
  CHECK(feed.committed() == 10);
}

TEST_CASE("a delivered batch moves its file's checkpoint while the batcher waits for room in a full buffer") {
  auto cfg = sinkConfig();
  cfg.workers = 2;
  cfg.buffer.maxBytes = config::Bytes{200};  // one batch of ten ~24-byte records
  cfg.buffer.whenFull = config::WhenFull::Block;
  Feed held("/var/log/held-back.log");
  const auto quick = feedInAnotherLane(held, 2);
  Gate heldGate;
  Gate quickGate;
  Fixture f(cfg, [&](const sinks::Batch& b) {
    (b.record(0).source == &held.source() ? heldGate : quickGate).pass();
    return sinks::SendResult::success();
  });
  quick->offer(*f.runner, 0, 5);
  REQUIRE(waitUntil([&] { return f.sink->sends() == 1; }));  // its worker waits at the gate

  std::atomic<bool> offered{false};
  std::thread producer([&] {
    held.offer(*f.runner, 0, 10000, 10);
    offered = true;
  });
  // The intake holds at most 4096 records (4090 in chunks of ten): once it took this many, the batcher
  // has formed at least three batches of the held file, one sending, one buffered and one waiting for room.
  REQUIRE(waitUntil([&] { return f.stats().received >= 5 + 4090 + 30; }));
  CHECK_FALSE(offered);

  quickGate.open();
  CHECK(waitUntil([&] { return quick->committed() == 5; }, 2s));
  CHECK_FALSE(offered);  // the batcher still waits

  heldGate.open();
  producer.join();
  REQUIRE(waitUntil([&] { return held.committed() == 10000; }, 20s));
  CHECK(f.stats().delivered == 10005);
}

TEST_CASE("a runner idle for longer than any poll still sends a batch at once and stops at once") {
  // The workers wait for their lane without a timeout: the batch and the stop must each wake them.
  auto cfg = sinkConfig();
  cfg.workers = 2;
  Fixture f(cfg);
  Feed feed;
  feed.offer(*f.runner, 0, 10);
  REQUIRE(waitUntil([&] { return f.stats().delivered == 10; }));
  std::this_thread::sleep_for(300ms);  // idle: no batch, nothing due
  feed.offer(*f.runner, 10, 20);
  REQUIRE(waitUntil([&] { return f.stats().delivered == 20; }, 2s));
  std::this_thread::sleep_for(300ms);
  const auto started = std::chrono::steady_clock::now();
  f.runner->stop(started + 30s);
  CHECK(std::chrono::steady_clock::now() - started < 5s);
  CHECK(feed.committed() == 20);
}
