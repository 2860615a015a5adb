// The batcher alone: deliveries in, batches out by count, size and linger, each file in one lane, and
// every delivery finished only once every batch holding its records is.

#include "agent/runner/batcher.h"

#include <doctest/doctest.h>

#include "tests/support/scripted_sink.h"

namespace {

using namespace logcapture;
using namespace logcapture::agent;
using namespace std::chrono_literals;
using testing::Feed;
using Clock = std::chrono::steady_clock;

config::BatchConfig batchConfig(std::uint32_t maxRecords = 1000, std::uint64_t maxBytes = 1 << 20,
                                std::chrono::milliseconds linger = 100ms) {
  config::BatchConfig c;
  c.maxRecords = maxRecords;
  c.maxBytes = config::Bytes{maxBytes};
  c.linger = linger;
  return c;
}

// Collects the batches the batcher closes.
struct Closed {
  std::vector<PendingBatch> batches;
  Batcher::Closed take() {
    return [this](PendingBatch&& pb) { batches.push_back(std::move(pb)); };
  }
  std::vector<std::string> messages(std::size_t i) const {
    std::vector<std::string> out;
    for (std::size_t r = 0; r < batches[i].batch.size(); ++r) out.emplace_back(batches[i].batch.record(r).message);
    return out;
  }
};

const Clock::time_point t0 = Clock::time_point(std::chrono::hours(1));

}  // namespace

TEST_CASE("a batch closes when it holds max_records records") {
  Batcher batcher(batchConfig(4), config::Encoding::Raw, 1);
  Closed closed;
  Feed feed;
  auto claim = feed.claim(0, 10);
  batcher.add(claim, t0, closed.take());
  REQUIRE(closed.batches.size() == 2);
  CHECK(closed.messages(0) == feed.expected(0, 4));
  CHECK(closed.messages(1) == feed.expected(4, 8));
  CHECK(closed.batches[0].sequence < closed.batches[1].sequence);
  batcher.closeDue(Clock::time_point::max(), closed.take());
  REQUIRE(closed.batches.size() == 3);
  CHECK(closed.messages(2) == feed.expected(8, 10));
}

TEST_CASE("a record that would take a batch past max_bytes starts the next batch") {
  // Raw records of "/var/log/a.log N" are 16 bytes: two fit in 40 bytes, three do not.
  Batcher batcher(batchConfig(1000, 40), config::Encoding::Raw, 1);
  Closed closed;
  Feed feed;
  auto claim = feed.claim(0, 5);
  batcher.add(claim, t0, closed.take());
  batcher.closeDue(Clock::time_point::max(), closed.take());
  REQUIRE(closed.batches.size() == 3);
  for (const auto& pb : closed.batches) CHECK(pb.batch.bytes() <= 40);
  CHECK(closed.messages(0) == feed.expected(0, 2));
  CHECK(closed.messages(1) == feed.expected(2, 4));
  CHECK(closed.messages(2) == feed.expected(4, 5));
  CHECK(closed.batches[1].batch.encodedRecord(0) == "/var/log/a.log 2");
}

TEST_CASE("a batch closes once its first record has waited linger, and not before") {
  Batcher batcher(batchConfig(1000, 1 << 20, 100ms), config::Encoding::Raw, 1);
  Closed closed;
  Feed feed;
  CHECK_FALSE(batcher.nextDue());
  auto first = feed.claim(0, 3);
  batcher.add(first, t0, closed.take());
  auto second = feed.claim(3, 5);
  batcher.add(second, t0 + 60ms, closed.take());
  CHECK(batcher.nextDue() == t0 + 100ms);
  batcher.closeDue(t0 + 99ms, closed.take());
  CHECK(closed.batches.empty());
  batcher.closeDue(t0 + 100ms, closed.take());
  REQUIRE(closed.batches.size() == 1);
  CHECK(closed.messages(0) == feed.expected(0, 5));
  CHECK(closed.batches[0].formedAt == t0);
  CHECK_FALSE(batcher.nextDue());
}

TEST_CASE("the records of one file all take one lane, in order, whatever the number of lanes") {
  Batcher batcher(batchConfig(3), config::Encoding::Raw, 4);
  Closed closed;
  std::vector<std::unique_ptr<Feed>> feeds;
  for (int i = 0; i < 6; ++i) feeds.push_back(std::make_unique<Feed>("/var/log/f" + std::to_string(i) + ".log"));
  for (int round = 0; round < 4; ++round) {
    for (auto& feed : feeds) {
      auto claim = feed->claim(round * 5, round * 5 + 5);
      batcher.add(claim, t0, closed.take());
    }
  }
  batcher.closeDue(Clock::time_point::max(), closed.take());
  for (auto& feed : feeds) {
    base::Record mine;
    mine.source = &feed->source();
    std::vector<std::string> got;
    for (std::size_t i = 0; i < closed.batches.size(); ++i) {
      for (const auto& m : closed.messages(i)) {
        if (m.rfind(feed->source().path + " ", 0) == 0) {
          got.push_back(m);
          CHECK(closed.batches[i].lane == laneOf(mine, 4));
        }
      }
    }
    CHECK(got == feed->expected(0, 20));
  }
}

TEST_CASE("a delivery is finished only once every batch holding its records is finished") {
  Batcher batcher(batchConfig(4), config::Encoding::Raw, 1);
  Closed closed;
  Feed feed;
  auto claim = feed.claim(0, 10);
  batcher.add(claim, t0, closed.take());
  CHECK_FALSE(claim.delivery());  // the batcher released the claim it was handed
  batcher.closeDue(Clock::time_point::max(), closed.take());
  REQUIRE(closed.batches.size() == 3);
  closed.batches[2].finish();
  closed.batches[0].finish();
  CHECK(feed.committed() == 0);
  closed.batches[1].finish();
  CHECK(feed.committed() == 10);
}

TEST_CASE("a delivery without records is finished at once") {
  Batcher batcher(batchConfig(), config::Encoding::Raw, 1);
  Closed closed;
  Feed feed;
  auto claim = feed.claim(0, 0);
  batcher.add(claim, t0, closed.take());
  CHECK(closed.batches.empty());
  CHECK_FALSE(claim.delivery());
}
