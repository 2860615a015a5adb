// The executor alone, on the test's thread: what it does with a batch after each answer, with no
// batcher, no workers and no waiting but the backoff's.

#include "agent/runner/sender.h"

#include <doctest/doctest.h>

#include "agent/runner/batcher.h"
#include "agent/runner/breaker_options.h"
#include "tests/support/fixtures.h"
#include "tests/support/scripted_sink.h"

namespace {

using namespace logcapture;
using namespace logcapture::agent;
using testing::Feed;
using testing::ScriptedSink;

// A one-lane runner's parts around a scripted sink, with the breaker on a manual clock.
struct Bench {
  explicit Bench(ScriptedSink::Script script, config::SinkConfig c = testing::scriptedSinkConfig())
      : cfg(std::move(c)),
        sink(std::move(script)),
        breaker(optionsFrom(cfg.breaker), clock),
        report(cfg.name, breaker),
        buffer(1, cfg.buffer.maxBytes.value, cfg.buffer.whenFull),
        deadLetter(dir.path.string(), cfg),
        sender({sink, breaker, clock, buffer, deadLetter, report, pauses, gate}, DeliveryRules::of(cfg), cfg.timeout) {}

  // One batch of `feed`'s records [from, to).
  PendingBatch batch(Feed& feed, int from, int to) {
    config::BatchConfig b;
    b.maxRecords = static_cast<std::uint32_t>(to - from);
    Batcher batcher(b, config::Encoding::Raw, 1);
    std::vector<PendingBatch> out;
    auto claim = feed.claim(from, to);
    batcher.add(claim, {}, [&](PendingBatch&& pb) { out.push_back(std::move(pb)); });
    REQUIRE(out.size() == 1);
    return std::move(out.front());
  }

  // The batches back in the lane, in order.
  std::vector<PendingBatch> waiting() {
    buffer.close();
    return buffer.drain();
  }

  testing::TempDir dir;
  config::SinkConfig cfg;
  ScriptedSink sink;
  circuit::ManualClock clock;
  circuit::Breaker breaker;
  SinkReport report;
  SinkBuffer buffer;
  DeadLetter deadLetter;
  Pauses pauses;
  SendGate gate{SendLimitOptions{.maxLimit = 1}};
  Sender sender;
};

}  // namespace

TEST_CASE("the sender finishes a batch the destination accepts, and its file's checkpoint moves") {
  Bench bench(testing::acceptAll);
  Feed feed;
  bench.sender.run(bench.batch(feed, 0, 4));
  CHECK(bench.sink.accepted() == feed.expected(0, 4));
  CHECK(bench.report.stats().delivered == 4);
  CHECK(bench.report.stats().sends == 1);
  CHECK(feed.committed() == 4);
  CHECK(bench.waiting().empty());
}

TEST_CASE("the sender retries a refused batch, then puts it back at its lane's head when the attempts run out") {
  Bench bench(testing::refuseAll);  // retry.max_attempts: 2
  Feed feed;
  bench.sender.run(bench.batch(feed, 0, 4));
  CHECK(bench.sink.sends() == 2);
  CHECK(bench.report.stats().retries == 1);
  CHECK(feed.committed() == 0);
  auto waiting = bench.waiting();
  REQUIRE(waiting.size() == 1);
  CHECK(waiting[0].batch.size() == 4);
  CHECK(waiting[0].rounds == 1);
  CHECK(waiting[0].attempts == 0);
  CHECK(waiting[0].claims.size() == 1);  // the claim kept: nothing finished, nothing lost
}

TEST_CASE("the sender halves a batch the destination finds too large, both halves back at the head in order") {
  Bench bench([](const sinks::Batch&) {
    auto r = sinks::SendResult::failure(sinks::Outcome::Permanent, "413 Request Entity Too Large");
    r.tooLarge = true;
    return r;
  });
  Feed feed;
  bench.sender.run(bench.batch(feed, 0, 6));
  CHECK(bench.report.stats().splits == 1);
  auto waiting = bench.waiting();
  REQUIRE(waiting.size() == 2);
  CHECK(waiting[0].batch.size() == 3);
  CHECK(waiting[1].batch.size() == 3);
  CHECK(waiting[0].batch.record(0).message == feed.expected(0, 1)[0]);
  CHECK(waiting[1].batch.record(0).message == feed.expected(3, 4)[0]);
}

TEST_CASE("the sender dead-letters the records the destination refused for good and finishes the rest") {
  Bench bench([](const sinks::Batch&) {
    sinks::SendResult r;
    r.failures.push_back({1, sinks::Outcome::Permanent, "mapper_parsing_exception"});
    return r;
  });
  Feed feed;
  bench.sender.run(bench.batch(feed, 0, 3));
  CHECK(bench.report.stats().delivered == 2);
  CHECK(bench.report.stats().deadLettered == 1);
  CHECK(feed.committed() == 3);
  CHECK(bench.waiting().empty());
}

TEST_CASE("with on_open: drop the sender drops a batch the open breaker refuses, counted, its checkpoint moving") {
  auto cfg = testing::scriptedSinkConfig();
  cfg.buffer.onOpen = config::OnOpen::Drop;
  Bench bench(testing::acceptAll, cfg);
  bench.breaker.forceOpen();
  Feed feed;
  bench.sender.run(bench.batch(feed, 0, 4));
  CHECK(bench.sink.sends() == 0);
  CHECK(bench.report.stats().droppedFor(DropReason::BreakerOpen) == 4);
  CHECK(feed.committed() == 4);
  CHECK(bench.waiting().empty());
}

TEST_CASE("past the stop's deadline the sender sends nothing and keeps the batch with its claims") {
  Bench bench(testing::acceptAll);
  bench.pauses.setHardDeadline(std::chrono::steady_clock::now());
  Feed feed;
  bench.sender.run(bench.batch(feed, 0, 4));
  CHECK(bench.sink.sends() == 0);
  CHECK(feed.committed() == 0);
  auto waiting = bench.waiting();
  REQUIRE(waiting.size() == 1);
  CHECK(waiting[0].claims.size() == 1);
}
