// The buffer's waits: a pop without a timeout, and wake(), which no worker may miss.

#include "agent/runner/sink_buffer.h"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace {

using namespace logcapture::agent;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

PendingBatch batchIn(std::uint32_t lane) {
  PendingBatch pb;
  pb.lane = lane;
  return pb;
}

}  // namespace

TEST_CASE("a wake of the buffer before a pop makes that pop return at once, and only that one") {
  // A worker that looked at its state just before the wake must not sleep through it.
  SinkBuffer buffer(2, 1 << 20, logcapture::config::WhenFull::Block);
  buffer.wake();
  PendingBatch out;
  const auto started = Clock::now();
  CHECK_FALSE(buffer.pop(0, out, Clock::now() + 10s));
  CHECK_FALSE(buffer.pop(1, out, Clock::now() + 10s));
  CHECK(Clock::now() - started < 5s);
  // Seen: the next pop waits again, until its own timeout.
  const auto again = Clock::now();
  CHECK_FALSE(buffer.pop(0, out, again + 50ms));
  CHECK(Clock::now() - again >= 50ms);
}

TEST_CASE("a pop without a timeout returns for a batch of its lane and for a wake") {
  SinkBuffer buffer(2, 1 << 20, logcapture::config::WhenFull::Block);
  PendingBatch out;
  std::thread pusher([&] {
    std::this_thread::sleep_for(50ms);
    buffer.admit(batchIn(1));
  });
  CHECK(buffer.pop(1, out, Clock::time_point::max()));
  CHECK(out.lane == 1);
  pusher.join();
  std::thread waker([&] {
    std::this_thread::sleep_for(50ms);
    buffer.wake();
  });
  CHECK_FALSE(buffer.pop(0, out, Clock::time_point::max()));
  waker.join();
}

TEST_CASE("a wake of the buffer is not used up by a pop that returns a batch") {
  // The batcher's last wake may come while a worker takes its lane's last batch: once that is sent, the
  // worker must still see the wake rather than wait for a batch that will never come.
  SinkBuffer buffer(1, 1 << 20, logcapture::config::WhenFull::Block);
  buffer.admit(batchIn(0));
  buffer.wake();
  PendingBatch out;
  CHECK(buffer.pop(0, out, Clock::now() + 10s));
  const auto started = Clock::now();
  CHECK_FALSE(buffer.pop(0, out, Clock::now() + 10s));
  CHECK(Clock::now() - started < 5s);
}

namespace {

// A batch of `bytes` encoded bytes and no records.
PendingBatch sizedBatchIn(std::uint32_t lane, std::size_t bytes) {
  PendingBatch pb = batchIn(lane);
  pb.batch.encoded.assign(bytes, 'x');
  return pb;
}

}  // namespace

TEST_CASE("a push blocked on a full buffer is told once it fits when its lane's worker has nothing to send") {
  // Eight batches fill lane 0; one taken frees an eighth, short of the quarter that wakes a push in
  // general, but the push waits for lane 1, which is empty: its worker would sit idle.
  constexpr std::size_t kBatch = 1000;
  SinkBuffer buffer(2, 8 * heldBytes(sizedBatchIn(0, kBatch)), logcapture::config::WhenFull::Block);
  std::vector<PendingBatch> evicted;
  for (int i = 0; i < 8; ++i) {
    PendingBatch pb = sizedBatchIn(0, kBatch);
    REQUIRE(buffer.push(pb, evicted, [] { return false; }) == SinkBuffer::PushResult::Accepted);
  }
  std::atomic<bool> pushed{false};
  std::thread pusher([&] {
    PendingBatch pb = sizedBatchIn(1, kBatch);
    buffer.push(pb, evicted, [] { return false; });
    pushed = true;
  });
  std::this_thread::sleep_for(50ms);
  CHECK_FALSE(pushed.load());
  PendingBatch out;
  REQUIRE(buffer.pop(0, out, Clock::now() + 1s));
  const auto deadline = Clock::now() + 5s;
  while (!pushed && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
  CHECK(pushed.load());
  buffer.close();
  pusher.join();
}

TEST_CASE("a memory buffer counts the lines its batches were encoded from against max_bytes") {
  // Two batches of 10,000 encoded bytes and 100 records each hold about 2 x 26,000 bytes: their
  // encodings, their lines and their records' fields. A bound of 40,000 takes one of them, not both.
  SinkBuffer buffer(1, 40000, logcapture::config::WhenFull::DropNewest);
  const logcapture::base::Record record;
  auto batch = [&] {
    PendingBatch pb = sizedBatchIn(0, 10000);
    pb.batch.records.assign(100, &record);
    return pb;
  };
  std::vector<PendingBatch> evicted;
  PendingBatch first = batch();
  REQUIRE(buffer.push(first, evicted, [] { return true; }) == SinkBuffer::PushResult::Accepted);
  CHECK(buffer.stats().bytes == 2 * 10000 + 60 * 100);
  PendingBatch second = batch();
  CHECK(buffer.push(second, evicted, [] { return true; }) == SinkBuffer::PushResult::Dropped);
  PendingBatch out;
  REQUIRE(buffer.pop(0, out, Clock::now()));
  CHECK(buffer.stats().bytes == 0);
}
