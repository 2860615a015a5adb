// The sink runner with a scripted sink: breaker, retry, buffer policies, dead letter, splits, acks.
// The sink here is a stand-in for a destination, not for a client library; the real sinks are tested
// against real servers in tests/integration/.

#include "agent/sink_runner.h"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <thread>

#include "tests/support/fixtures.h"

namespace {

using namespace logcapture;
using namespace logcapture::agent;
using namespace std::chrono_literals;
using circuit::Outcome;
using testing::waitUntil;

// Answers each send with `script` and keeps the messages it accepted.
class ScriptedSink final : public sinks::Sink {
 public:
  using Script = std::function<sinks::SendResult(const sinks::Batch&)>;
  explicit ScriptedSink(Script script) : script_(std::move(script)) {}

  sinks::SendResult send(const sinks::Batch& batch, sinks::Deadline) override {
    Script script;
    {
      std::lock_guard lock(mutex_);
      script = script_;
      ++sends_;
    }
    sinks::SendResult r = script(batch);
    if (r.outcome == Outcome::Success) {
      std::lock_guard lock(mutex_);
      std::vector<bool> failed(batch.size(), false);
      for (const auto& f : r.failures) failed[f.index] = true;
      for (std::size_t i = 0; i < batch.size(); ++i) {
        if (!failed[i]) accepted_.emplace_back(batch.record(i).message);
      }
    }
    return r;
  }
  void setScript(Script script) {
    std::lock_guard lock(mutex_);
    script_ = std::move(script);
  }
  std::vector<std::string> accepted() const {
    std::lock_guard lock(mutex_);
    return accepted_;
  }
  int sends() const {
    std::lock_guard lock(mutex_);
    return sends_;
  }

 private:
  mutable std::mutex mutex_;
  Script script_;
  std::vector<std::string> accepted_;
  int sends_ = 0;
};

sinks::SendResult ok(const sinks::Batch&) { return sinks::SendResult::success(); }
sinks::SendResult down(const sinks::Batch&) {
  return sinks::SendResult::failure(Outcome::Retriable, "connection refused");
}

config::SinkConfig sinkConfig() {
  config::SinkConfig c;
  c.name = "test";
  c.type = config::SinkType::Console;
  c.settings = sinks::console::ConsoleConfig{};
  c.encoding = config::Encoding::Raw;
  c.batch.maxRecords = 10;
  c.batch.linger = 1ms;
  c.workers = 1;
  c.timeout = 1s;
  c.retry.maxAttempts = 2;
  c.retry.initialBackoff = 1ms;
  c.retry.maxBackoff = 2ms;
  c.breaker.failureThreshold = 3;
  c.breaker.successThreshold = 1;
  c.breaker.halfOpenMaxCalls = 1;
  c.breaker.openTimeout = 50ms;
  c.breaker.maxOpenTimeout = 100ms;
  c.breaker.jitter = 0;
  return c;
}

// Feeds numbered records of one or more sources and tracks each source's committed offset.
class Feed {
 public:
  explicit Feed(std::string path = "/var/log/a.log") {
    source_ = std::make_shared<Source>();
    source_->input = "app";
    source_->path = std::move(path);
    cursor_ = std::make_shared<SourceCursor>(0, [this](std::uint64_t offset) { committed_ = offset; });
  }
  // A delivery of records [from, to) for `claims` sinks; record i ends at offset i + 1.
  DeliveryRef delivery(int from, int to, int claims = 1) {
    Chunk c;
    for (int i = from; i < to; ++i) {
      Record r;
      r.message = c.storage.copy(source_->path + " " + std::to_string(i));
      r.source = source_.get();
      r.offset = static_cast<std::uint64_t>(i + 1);
      c.bytes += r.message.size();
      c.records.push_back(std::move(r));
    }
    c.ack = Ack(cursor_, cursor_->open(static_cast<std::uint64_t>(to)));
    return std::make_shared<Delivery>(std::move(c), claims);
  }
  void offer(SinkRunner& runner, int from, int to, int perChunk = 5) {
    for (int i = from; i < to; i += perChunk) runner.offer(delivery(i, std::min(to, i + perChunk)));
  }
  std::uint64_t committed() const { return committed_.load(); }
  std::vector<std::string> expected(int from, int to) const {
    std::vector<std::string> out;
    for (int i = from; i < to; ++i) out.push_back(source_->path + " " + std::to_string(i));
    return out;
  }

 private:
  std::shared_ptr<Source> source_;
  std::shared_ptr<SourceCursor> cursor_;
  std::atomic<std::uint64_t> committed_{0};
};

struct Fixture {
  testing::TempDir dir{"logcapture-runner"};
  ScriptedSink* sink = nullptr;
  std::unique_ptr<SinkRunner> runner;

  explicit Fixture(config::SinkConfig cfg = sinkConfig(), ScriptedSink::Script script = ok) {
    auto s = std::make_unique<ScriptedSink>(std::move(script));
    sink = s.get();
    runner = std::make_unique<SinkRunner>(cfg, std::move(s), dir.path.string(), circuit::SteadyClock::instance());
    REQUIRE_FALSE(runner->start());
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
  auto d = feed.delivery(0, 10, 2);
  a.runner->offer(d);
  b.runner->offer(d);
  d.reset();
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

TEST_CASE("a slow but healthy sink is waited for, not dropped from, whatever its when_full") {
  auto cfg = sinkConfig();
  cfg.buffer.maxBytes = config::Bytes{200};
  cfg.buffer.whenFull = config::WhenFull::DropOldest;
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
