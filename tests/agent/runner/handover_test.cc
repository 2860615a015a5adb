// The hand-over at a reload alone: what a predecessor released is re-formed for its replacement.

#include "agent/runner/handover.h"

#include <doctest/doctest.h>

#include "agent/runner/batcher.h"
#include "tests/support/scripted_sink.h"

namespace {

using namespace logcapture;
using namespace logcapture::agent;
using testing::Feed;

// The batches a one-lane raw sink formed of `feeds`, `perBatch` records each, feed after feed.
std::vector<PendingBatch> released(std::vector<std::unique_ptr<Feed>>& feeds, int perBatch) {
  config::BatchConfig cfg;
  cfg.maxRecords = static_cast<std::uint32_t>(perBatch);
  Batcher batcher(cfg, config::Encoding::Raw, 1);
  std::vector<PendingBatch> out;
  const auto take = [&](PendingBatch&& pb) { out.push_back(std::move(pb)); };
  for (int round = 0; round < 3; ++round) {
    for (auto& feed : feeds) {
      auto claim = feed->claim(round * perBatch, (round + 1) * perBatch);
      batcher.add(claim, {}, take);
    }
  }
  return out;
}

}  // namespace

TEST_CASE("released batches are re-encoded for the replacement, each file in one lane and in order") {
  std::vector<std::unique_ptr<Feed>> feeds;
  for (int i = 0; i < 5; ++i) feeds.push_back(std::make_unique<Feed>("/var/log/f" + std::to_string(i) + ".log"));
  auto byLane = reformForAdoption(released(feeds, 4), config::Encoding::Json, 3);
  REQUIRE(byLane.size() == 3);
  for (auto& feed : feeds) {
    base::Record mine;
    mine.source = &feed->source();
    const auto lane = laneOf(mine, 3);
    std::vector<std::string> got;
    for (std::uint32_t l = 0; l < 3; ++l) {
      for (const auto& pb : byLane[l]) {
        for (std::size_t i = 0; i < pb.batch.size(); ++i) {
          if (pb.batch.record(i).source != &feed->source()) continue;
          CHECK(l == lane);
          CHECK(pb.lane == lane);
          CHECK(pb.batch.encodedRecord(i).front() == '{');
          got.emplace_back(pb.batch.record(i).message);
        }
      }
    }
    CHECK(got == feed->expected(0, 12));
  }
  // Claims moved with the records: finishing every batch finishes every file.
  for (auto& lane : byLane) {
    for (auto& pb : lane) pb.finish();
  }
  for (auto& feed : feeds) CHECK(feed->committed() == 12);
}

TEST_CASE("a released batch without records is finished, not handed over") {
  Feed feed;
  std::vector<PendingBatch> batches(1);
  batches[0].claims.push_back(feed.claim(0, 3));
  const auto byLane = reformForAdoption(std::move(batches), config::Encoding::Raw, 2);
  CHECK(byLane[0].empty());
  CHECK(byLane[1].empty());
  CHECK(feed.committed() == 3);
}
