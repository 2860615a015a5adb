#include "agent/pipeline/queue.h"

#include <doctest/doctest.h>

#include <atomic>
#include <thread>

namespace {

using namespace logcapture::agent;
namespace base = logcapture::base;
using namespace logcapture::base;
using namespace logcapture::config;
using namespace std::chrono_literals;

Chunk chunkOf(std::size_t records, std::size_t bytesEach, std::shared_ptr<SourceCursor> cursor = nullptr,
              std::uint64_t endOffset = 0) {
  Chunk c;
  for (std::size_t i = 0; i < records; ++i) {
    Record r;
    r.message = c.storage.copy(std::string(bytesEach, 'x'));
    c.records.push_back(std::move(r));
    c.bytes += bytesEach;
  }
  if (cursor) c.ack = Ack(cursor, cursor->open(endOffset));
  return c;
}

QueueConfig bounds(std::uint64_t records, std::uint64_t bytes, WhenFull whenFull) {
  QueueConfig q;
  q.maxRecords = records;
  q.maxBytes = Bytes{bytes};
  q.whenFull = whenFull;
  return q;
}

}  // namespace

TEST_CASE("the queue hands chunks out in order and tracks records and bytes") {
  RecordQueue q(bounds(100, 1 << 20, WhenFull::Block));
  REQUIRE(q.push(chunkOf(2, 10)) == RecordQueue::PushResult::Accepted);
  REQUIRE(q.push(chunkOf(3, 10)) == RecordQueue::PushResult::Accepted);
  CHECK(q.stats().records == 5);
  CHECK(q.stats().bytes == 50);
  Chunk out;
  REQUIRE(q.pop(out, 0ms));
  CHECK(out.records.size() == 2);
  REQUIRE(q.pop(out, 0ms));
  CHECK(out.records.size() == 3);
  CHECK_FALSE(q.pop(out, 0ms));
  CHECK(q.stats().records == 0);
}

TEST_CASE("an oversized chunk is admitted when the queue is empty") {
  RecordQueue q(bounds(2, 100, WhenFull::DropNewest));
  CHECK(q.push(chunkOf(5, 100)) == RecordQueue::PushResult::Accepted);
  CHECK(q.push(chunkOf(1, 1)) == RecordQueue::PushResult::Dropped);
}

TEST_CASE("drop_newest drops the incoming chunk, counts it and finishes it at its source") {
  std::uint64_t committed = 0;
  auto cursor = std::make_shared<SourceCursor>(0, [&](std::uint64_t o) { committed = o; });
  RecordQueue q(bounds(3, 1 << 20, WhenFull::DropNewest));
  REQUIRE(q.push(chunkOf(3, 1, cursor, 30)) == RecordQueue::PushResult::Accepted);
  CHECK(q.push(chunkOf(2, 1, cursor, 50)) == RecordQueue::PushResult::Dropped);
  CHECK(q.stats().droppedNewest == 2);
  CHECK(committed == 0);  // the first chunk is not finished yet, so the offset cannot pass it
  Chunk out;
  REQUIRE(q.pop(out, 0ms));
  out.ack.finish();
  CHECK(committed == 50);
}

TEST_CASE("drop_oldest evicts the oldest chunks until the new one fits") {
  RecordQueue q(bounds(4, 1 << 20, WhenFull::DropOldest));
  REQUIRE(q.push(chunkOf(2, 1)) == RecordQueue::PushResult::Accepted);
  REQUIRE(q.push(chunkOf(2, 1)) == RecordQueue::PushResult::Accepted);
  REQUIRE(q.push(chunkOf(3, 1)) == RecordQueue::PushResult::Accepted);
  const auto s = q.stats();
  CHECK(s.droppedOldest == 4);
  CHECK(s.records == 3);
}

TEST_CASE("the byte bound applies as well as the record bound") {
  RecordQueue q(bounds(1000, 100, WhenFull::DropNewest));
  REQUIRE(q.push(chunkOf(1, 80)) == RecordQueue::PushResult::Accepted);
  CHECK(q.push(chunkOf(1, 30)) == RecordQueue::PushResult::Dropped);
  CHECK(q.push(chunkOf(1, 20)) == RecordQueue::PushResult::Accepted);
}

TEST_CASE("block makes the producer wait until a consumer makes room") {
  RecordQueue q(bounds(2, 1 << 20, WhenFull::Block));
  REQUIRE(q.push(chunkOf(2, 1)) == RecordQueue::PushResult::Accepted);
  std::atomic<bool> pushed{false};
  std::thread producer([&] {
    CHECK(q.push(chunkOf(1, 1)) == RecordQueue::PushResult::Accepted);
    pushed = true;
  });
  while (!q.blocked()) std::this_thread::yield();
  CHECK_FALSE(pushed.load());
  Chunk out;
  REQUIRE(q.pop(out, 1s));
  producer.join();
  CHECK(pushed.load());
  CHECK(q.stats().blockedPushes == 1);
}

TEST_CASE("closing the queue wakes a blocked producer without finishing its chunk") {
  std::uint64_t committed = 0;
  auto cursor = std::make_shared<SourceCursor>(0, [&](std::uint64_t o) { committed = o; });
  RecordQueue q(bounds(1, 1 << 20, WhenFull::Block));
  REQUIRE(q.push(chunkOf(1, 1)) == RecordQueue::PushResult::Accepted);
  std::thread producer([&] { CHECK(q.push(chunkOf(1, 1, cursor, 10)) == RecordQueue::PushResult::Closed); });
  while (!q.blocked()) std::this_thread::yield();
  q.close();
  producer.join();
  CHECK(committed == 0);  // read again after a restart
}

TEST_CASE("a closed queue still drains what it holds") {
  RecordQueue q(bounds(10, 1 << 20, WhenFull::Block));
  REQUIRE(q.push(chunkOf(1, 1)) == RecordQueue::PushResult::Accepted);
  q.close();
  Chunk out;
  CHECK(q.pop(out, 0ms));
  CHECK_FALSE(q.pop(out, 1s));
  CHECK(q.push(chunkOf(1, 1)) == RecordQueue::PushResult::Closed);
}

TEST_CASE("a cursor commits only the finished prefix, in order") {
  std::vector<std::uint64_t> commits;
  SourceCursor cursor(5, [&](std::uint64_t o) { commits.push_back(o); });
  const auto a = cursor.open(10);
  const auto b = cursor.open(20);
  const auto c = cursor.open(30);
  cursor.finish(b);
  CHECK(commits.empty());
  cursor.finish(a);
  CHECK(commits == std::vector<std::uint64_t>{20});
  cursor.finish(c);
  CHECK(commits.back() == 30);
  CHECK(cursor.committed() == 30);
}

TEST_CASE("a cursor restarted by truncation never commits past the restart point") {
  std::uint64_t committed = 0;
  SourceCursor cursor(0, [&](std::uint64_t o) { committed = o; });
  const auto old = cursor.open(500);
  cursor.restart(0);
  const auto fresh = cursor.open(40);
  cursor.finish(old);
  CHECK(committed == 0);
  cursor.finish(fresh);
  CHECK(committed == 40);
}

TEST_CASE("an ack destroyed unfinished commits nothing") {
  std::uint64_t committed = 0;
  auto cursor = std::make_shared<SourceCursor>(0, [&](std::uint64_t o) { committed = o; });
  { Ack ack(cursor, cursor->open(10)); }
  CHECK(committed == 0);
}

TEST_CASE("a source cursor is idle only once the checkpoint has the offset its last ticket committed") {
  // A file closed once its cursor is idle and opened again resumes from the stored offset: idle()
  // before the store had it would read the last records again.
  std::atomic<std::uint64_t> stored{0};
  auto cursor = std::make_shared<SourceCursor>(0, [&](std::uint64_t o) {
    std::this_thread::sleep_for(200ms);  // a slow store
    stored = o;
  });
  const auto ticket = cursor->open(100);
  std::thread finisher([&] { cursor->finish(ticket); });
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (cursor->committed() != 100 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
  REQUIRE(cursor->committed() == 100);  // the cursor moved; its commit is under way
  CHECK(cursor->idle());
  CHECK(stored.load() == 100);
  finisher.join();
}

TEST_CASE("a pop without a timeout returns for a chunk, for a wake of the consumer even one before it, and at close") {
  RecordQueue q(bounds(10, 1 << 20, WhenFull::Block));
  Chunk out;
  std::thread producer([&] {
    std::this_thread::sleep_for(50ms);
    CHECK(q.push(chunkOf(1, 1)) == RecordQueue::PushResult::Accepted);
  });
  CHECK(q.pop(out));
  producer.join();
  q.wakeConsumer();  // before the pop: it must not be lost
  CHECK_FALSE(q.pop(out));
  std::thread closer([&] {
    std::this_thread::sleep_for(50ms);
    q.close();
  });
  CHECK_FALSE(q.pop(out));
  closer.join();
}
