// The disk buffer under faults and hand-overs: a failed sync or read, a split batch half evicted, a
// reload between memory and disk, a clean stop and restart. No line is lost; none is sent twice beyond
// what was in flight.

#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "agent/runner/buffer_segment.h"
#include "agent/runner/disk_buffer.h"
#include "agent/runner/sender.h"
#include "agent/runner/sink_runner.h"
#include "base/log.h"
#include "tests/support/fixtures.h"
#include "tests/support/http_receiver.h"
#include "tests/support/process.h"
#include "tests/support/scripted_sink.h"

// fdatasync fails (EIO) this many times, then works again: a disk that has one bad moment.
static std::atomic<int> gFailingSyncs{0};
extern "C" int fdatasync(int fd) {
  if (gFailingSyncs.load() > 0) {
    gFailingSyncs.fetch_sub(1);
    errno = EIO;
    return -1;
  }
  return static_cast<int>(::syscall(SYS_fdatasync, fd));
}

namespace {

using namespace logcapture;
using namespace logcapture::agent;
using namespace std::chrono_literals;
using testing::Feed;
using testing::ScriptedSink;
using testing::waitUntil;
namespace fs = std::filesystem;

config::SinkConfig recoveryDiskConfig() { return testing::scriptedDiskSinkConfig(); }

struct Runner : testing::ScriptedRunner {
  Runner(const fs::path& stateDir, ScriptedSink::Script script, const config::SinkConfig& cfg = recoveryDiskConfig(),
         bool held = false)
      : ScriptedRunner(stateDir, std::move(script), cfg, held) {}
};

// A batch as a batcher forms it: every record of a delivery of feed records [from, to), one claim.
PendingBatch formed(Feed& feed, int from, int to) {
  PendingBatch pb;
  DeliveryRef d = feed.delivery(from, to);
  for (const base::Record& r : d->records()) {
    pb.batch.encoded += r.message;
    pb.batch.seal(&r);
  }
  pb.claims.emplace_back(d);
  pb.formedAt = std::chrono::steady_clock::now();
  return pb;
}

// Feed records [0, n) written to `buffer` as one batch, synced (their checkpoint moved), and read back.
PendingBatch readBack(DiskBuffer& buffer, Feed& feed, std::uint64_t n) {
  std::vector<PendingBatch> evicted;
  PendingBatch pb = formed(feed, 0, static_cast<int>(n));
  REQUIRE(buffer.push(pb, evicted, [] { return false; }) == SinkBuffer::PushResult::Accepted);
  REQUIRE(waitUntil([&] { return feed.committed() == n; }));
  PendingBatch out;
  REQUIRE(buffer.pop(0, out, std::chrono::steady_clock::now() + 1s));
  return out;
}

// What a disk buffer in `where` replays when it is opened again (a restart).
std::uint64_t replayedAfterRestart(const config::SinkConfig& cfg, const fs::path& where) {
  DiskBuffer reopened(cfg, where.string());
  reopened.open();
  const std::uint64_t replayed = reopened.diskStats().replayed;
  reopened.drain();
  return replayed;
}

}  // namespace

TEST_CASE("batches delivered before a clean stop are not sent again after the restart") {
  testing::TempDir dir("logcapture-disk-recovery");
  Feed feed;
  {
    Runner up(dir.path, testing::acceptAll);
    feed.offer(*up.runner, 0, 50);
    REQUIRE(waitUntil([&] { return up.sink->accepted().size() == 50 && feed.committed() == 50; }));
    REQUIRE(waitUntil([&] { return up.runner->diskBufferStats()->records == 0; }));
  }
  Runner again(dir.path, testing::acceptAll);
  std::this_thread::sleep_for(300ms);
  CHECK(again.runner->diskBufferStats()->replayed == 0);
  CHECK(again.sink->accepted().empty());
}

TEST_CASE("records replayed from a disk buffer are counted as received by the sink that sends them") {
  testing::TempDir dir("logcapture-disk-recovery");
  Feed feed;
  {
    Runner down(dir.path, testing::refuseAll);
    feed.offer(*down.runner, 0, 30);
    REQUIRE(waitUntil([&] { return feed.committed() == 30; }));
  }
  Runner up(dir.path, testing::acceptAll);
  REQUIRE(waitUntil([&] { return up.runner->stats().delivered.load() == 30; }));
  // received = delivered + dead_lettered + dropped + buffered + in flight + unsent
  CHECK(up.runner->stats().received.load() == up.runner->stats().delivered.load());
}

TEST_CASE("records whose fdatasync failed keep their checkpoint until delivered, and later batches sync on") {
  testing::TempDir dir("logcapture-disk-recovery");
  Runner r(dir.path, testing::refuseAll);
  Feed feed;
  gFailingSyncs = 1;
  feed.offer(*r.runner, 0, 10);
  REQUIRE(waitUntil([&] { return r.runner->diskBufferStats()->writeErrors >= 1; }));
  REQUIRE(gFailingSyncs.load() == 0);
  feed.offer(*r.runner, 10, 20);
  REQUIRE(waitUntil([&] { return r.runner->diskBufferStats()->records == 20; }));
  REQUIRE(waitUntil([&] { return r.runner->diskBufferStats()->syncs >= 1; }));  // the second batch's sync worked
  // A second fdatasync after a failed one may report success for pages the kernel dropped: the first
  // batch is not taken as safe on disk, its checkpoint waits for its delivery.
  std::this_thread::sleep_for(100ms);
  CHECK(feed.committed() == 0);
  r.sink->setScript(testing::acceptAll);
  CHECK(waitUntil([&] { return feed.committed() == 20; }, 5s));
}

TEST_CASE("drop_oldest evicting one half of a split batch leaves the other half on disk") {
  testing::TempDir dir("logcapture-disk-recovery");
  config::SinkConfig cfg = recoveryDiskConfig();
  cfg.buffer.maxBytes = config::Bytes{64 * 1024};  // segments of 8 KiB: one frame of ~5.5 KiB each
  cfg.buffer.whenFull = config::WhenFull::DropOldest;
  Feed feed("/var/log/" + std::string(500, 'd') + ".log");
  const fs::path where = dir.path / "buffers" / "test";
  std::uint64_t evictedRecords = 0;
  int total = 0;
  {
    DiskBuffer buffer(cfg, where.string());
    buffer.open();
    const std::function<bool()> mayDrop = [] { return true; };
    std::vector<PendingBatch> evicted;
    PendingBatch first = formed(feed, 0, 10);
    REQUIRE(buffer.push(first, evicted, mayDrop) == SinkBuffer::PushResult::Accepted);
    PendingBatch sending;
    REQUIRE(buffer.pop(0, sending, std::chrono::steady_clock::now() + 1s));
    // As Sender::run does on an HTTP 413: the tail waits at the head of the lane, the head is sent.
    PendingBatch tail{subBatch(sending.batch, {5, 6, 7, 8, 9}),
                      {},
                      sending.lane,
                      sending.sequence,
                      0,
                      sending.rounds,
                      sending.formedAt,
                      sending.retained,
                      sending.frame};
    sending.batch = subBatch(sending.batch, {0, 1, 2, 3, 4});
    buffer.pushFront(std::move(tail));
    // Newer batches fill the disk: the oldest waiting batch, the tail, is evicted.
    int next = 10;
    for (; evicted.empty() && next < 500; next += 10) {
      PendingBatch pb = formed(feed, next, next + 10);
      REQUIRE(buffer.push(pb, evicted, mayDrop) == SinkBuffer::PushResult::Accepted);
    }
    REQUIRE_FALSE(evicted.empty());
    REQUIRE(evicted.front().batch.size() == 5);  // the tail, the oldest waiting batch
    for (auto& e : evicted) {
      evictedRecords += e.batch.size();
      e.finish();  // dropped, as the runner does: its claims are released
    }
    evicted.clear();
    // The head's send fails (retriable): back at the head of its lane, then the agent stops.
    buffer.pushFront(std::move(sending));
    total = next;
    REQUIRE(waitUntil([&] { return feed.committed() == std::uint64_t(total); }));  // all released: "safe on disk"
    buffer.drain();
  }
  DiskBuffer after(cfg, where.string());
  after.open();
  // Each record is either counted as dropped or still on disk. The evicted tail's frame is the head's too,
  // which was never sent: it comes back whole, the tail's 5 records with it (sent, though counted dropped).
  CHECK(evictedRecords + after.diskStats().replayed >= std::uint64_t(total));
  CHECK(evictedRecords + after.diskStats().replayed <= std::uint64_t(total) + 5);
  after.drain();
}

TEST_CASE("a corrupt frame length in the middle of a segment loses and counts only that frame") {
  testing::TempDir dir("logcapture-disk-recovery");
  Feed feed;
  std::vector<DeliveryRef> deliveries;
  std::string data(disk::kSegmentMagic);
  std::vector<std::size_t> starts;
  for (int i = 0; i < 50; i += 10) {
    deliveries.push_back(feed.delivery(i, i + 10));
    std::vector<const base::Record*> records;
    for (const auto& r : deliveries.back()->records()) records.push_back(&r);
    starts.push_back(data.size());
    disk::appendFrame(data, records, std::chrono::system_clock::now());
  }
  data[starts[1] + 2] ^= 0x40;  // one bit of the second frame's length
  const fs::path path = dir.path / "00000000000000000001.seg";
  {
    std::ofstream out(path, std::ios::binary);
    out << data;
  }
  const disk::SegmentScan scan = disk::scanSegment(path.string());
  CHECK(scan.frames.size() == 4);
  CHECK(scan.corrupt == 1);
}

TEST_CASE("batches a disk sink adopted from a memory predecessor are handed over again by the next reload") {
  testing::TempDir dir("logcapture-disk-recovery");
  config::SinkConfig memory = testing::scriptedSinkConfig();
  Feed feed;
  auto first = std::make_unique<Runner>(dir.path, testing::refuseAll, memory);
  feed.offer(*first->runner, 0, 20);
  REQUIRE(waitUntil([&] { return first->runner->breaker().state() == circuit::State::Open; }));
  // Reload 1: the sink becomes buffer.type: disk; reload 2: another change to it.
  Runner second(dir.path, testing::refuseAll, recoveryDiskConfig(), /*held=*/true);
  second.runner->adopt(first->runner->release());
  REQUIRE(second.runner->stats().received.load() == 20);  // it holds them all
  Runner third(dir.path, testing::acceptAll, recoveryDiskConfig(), /*held=*/true);
  third.runner->adopt(second.runner->release());
  CHECK(waitUntil([&] { return third.sink->accepted().size() == 20; }, 3s));
  // A record is finished at its source just after the sink accepted it, not with it.
  CHECK(waitUntil([&] { return feed.committed() == 20; }, 3s));
}

TEST_CASE("a reload that turns a disk buffer into a memory one leaves its records on disk for the next disk buffer") {
  testing::TempDir dir("logcapture-disk-recovery");
  Feed feed;
  auto first = std::make_unique<Runner>(dir.path, testing::refuseAll);
  feed.offer(*first->runner, 0, 20);
  REQUIRE(waitUntil([&] { return feed.committed() == 20; }));  // on disk, finished at the source
  auto second = std::make_unique<Runner>(dir.path, testing::acceptAll, testing::scriptedSinkConfig(), /*held=*/true);
  second->runner->adopt(first->runner->release());
  std::this_thread::sleep_for(200ms);
  CHECK(second->sink->accepted().empty());  // a memory buffer does not read the directory
  CHECK_FALSE(fs::is_empty(dir.path / "buffers" / "test"));
  Runner third(dir.path, testing::acceptAll, recoveryDiskConfig(), /*held=*/true);
  third.runner->adopt(second->runner->release());
  CHECK(waitUntil([&] { return third.sink->accepted().size() == 20; }, 3s));
}

TEST_CASE("the agent restarted after SIGTERM sends none of the lines it delivered before") {
  testing::TempDir dir("logcapture-disk-recovery-bin");
  testing::HttpReceiver http;
  const std::string sink = "  - {name: search, type: http, url: \"" + http.base() +
                           "/ingest\", format: ndjson, encoding: raw, batch: {max_records: 50, linger: 10ms},"
                           " buffer: {type: disk, max_bytes: 64MiB}}\n";
  const std::string config = testing::writeAgentConfig(dir, "  - {name: pipe, type: stdin}\n", sink);
  {
    testing::ChildProcess agent({LOGCAPTURE_BINARY, "run", "-c", config}, {}, /*pipeStdin=*/true);
    if (!agent.waitForStderr("agent_started", 20s)) FAIL("the agent did not start, stderr:\n" << agent.err());
    REQUIRE(agent.writeStdin(testing::numberedLines(0, 1000)));
    REQUIRE(waitUntil(
        [&] {
          agent.readOutput();
          return http.stats()["records"].get<int>() >= 1000;
        },
        30s));
    agent.signal(SIGTERM);
    REQUIRE(agent.wait(30s).exitCode == 0);
  }
  testing::ChildProcess agent({LOGCAPTURE_BINARY, "run", "-c", config}, {}, /*pipeStdin=*/true);
  if (!agent.waitForStderr("agent_started", 20s)) FAIL("the agent did not start, stderr:\n" << agent.err());
  std::this_thread::sleep_for(1s);
  agent.readOutput();
  agent.signal(SIGTERM);
  CHECK(agent.wait(30s).exitCode == 0);
  CHECK(http.stats()["records"].get<int>() == 1000);
}

TEST_CASE("a batch read back while the agent is out of file descriptors is not thrown away") {
  testing::TempDir dir("logcapture-disk-recovery");
  config::SinkConfig cfg = recoveryDiskConfig();
  cfg.batch.maxBytes = config::Bytes{1024};        // a memory front of 4 KiB: the batches below are on disk only
  cfg.buffer.maxBytes = config::Bytes{64 * 1024};  // segments of 8 KiB: one batch each
  Feed feed("/var/log/" + std::string(500, 'e') + ".log");
  const fs::path where = dir.path / "buffers" / "test";
  {
    DiskBuffer buffer(cfg, where.string());
    buffer.open();
    std::vector<PendingBatch> evicted;
    for (int i = 0; i < 20; i += 10) {
      PendingBatch pb = formed(feed, i, i + 10);
      REQUIRE(buffer.push(pb, evicted, [] { return false; }) == SinkBuffer::PushResult::Accepted);
    }
    REQUIRE(waitUntil([&] { return feed.committed() == 20; }));
    REQUIRE(buffer.diskStats().segments == 2);
    // UBSan checks a member call's dynamic type with descriptors of its own the first time it meets the
    // type: the read-error event's logger is met here, before the process runs out of them.
    log::event(*log::component("sink"), spdlog::level::warn, "test_warm_up", {{"what", std::string("warm-up")}});
    // Many tailed files: the process is at RLIMIT_NOFILE for a moment.
    rlimit old{};
    REQUIRE(::getrlimit(RLIMIT_NOFILE, &old) == 0);
    rlimit low = old;
    low.rlim_cur = std::min<rlim_t>(old.rlim_cur, 512);
    REQUIRE(::setrlimit(RLIMIT_NOFILE, &low) == 0);
    std::vector<int> held;
    for (int fd; (fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;) held.push_back(fd);
    PendingBatch out;
    const bool popped = buffer.pop(0, out, std::chrono::steady_clock::now() + 50ms);
    for (int fd : held) ::close(fd);
    REQUIRE(::setrlimit(RLIMIT_NOFILE, &old) == 0);
    CHECK(buffer.diskStats().corrupt == 0);
    if (popped) buffer.pushFront(std::move(out));  // not sent: back to the head
    buffer.drain();
  }
  CHECK(replayedAfterRestart(cfg, where) == 20);
}

TEST_CASE("a batch taken from the disk buffer and dropped unfinished is sent again after a restart") {
  testing::TempDir dir("logcapture-disk-recovery");
  const config::SinkConfig cfg = recoveryDiskConfig();
  const fs::path where = dir.path / "buffers" / "test";
  Feed feed;
  {
    DiskBuffer buffer(cfg, where.string());
    buffer.open();
    PendingBatch out = readBack(buffer, feed, 10);
    { PendingBatch gone = std::move(out); }  // a worker unwinding with it: neither sent nor dropped
    buffer.drain();
  }
  CHECK(replayedAfterRestart(cfg, where) == 10);
}

TEST_CASE("one part of a batch read back from disk delivered, the other dropped unfinished: the frame is sent again") {
  // A split (or a fallback's lanes) makes two batches of one frame; at a stop one may be left unsent.
  testing::TempDir dir("logcapture-disk-recovery");
  const config::SinkConfig cfg = recoveryDiskConfig();
  const fs::path where = dir.path / "buffers" / "test";
  Feed feed;
  {
    DiskBuffer buffer(cfg, where.string());
    buffer.open();
    PendingBatch out = readBack(buffer, feed, 10);
    REQUIRE(out.frame != nullptr);
    PendingBatch tail = out.part(subBatch(out.batch, {5, 6, 7, 8, 9}), 0);
    out.batch = subBatch(out.batch, {0, 1, 2, 3, 4});
    out.finish();                             // delivered
    { PendingBatch gone = std::move(tail); }  // left unsent
    buffer.drain();
  }
  CHECK(replayedAfterRestart(cfg, where) == 10);
}

TEST_CASE("every part of a batch read back from disk delivered: the frame is finished") {
  testing::TempDir dir("logcapture-disk-recovery");
  const config::SinkConfig cfg = recoveryDiskConfig();
  const fs::path where = dir.path / "buffers" / "test";
  Feed feed;
  {
    DiskBuffer buffer(cfg, where.string());
    buffer.open();
    PendingBatch out = readBack(buffer, feed, 10);
    PendingBatch head = out.part(subBatch(out.batch, {0, 1, 2, 3, 4}), 0);
    PendingBatch tail = out.part(subBatch(out.batch, {5, 6, 7, 8, 9}), 1);
    out.replacedByParts();
    head.finish();
    tail.finish();
    buffer.drain();
  }
  CHECK(replayedAfterRestart(cfg, where) == 0);
}

TEST_CASE("a stop writes the batches still waiting in memory to the disk buffer, and the next start sends them") {
  testing::TempDir dir("logcapture-disk-recovery");
  config::SinkConfig cfg = recoveryDiskConfig();
  cfg.buffer.syncInterval = 200ms;  // longer than the test takes to stop: nothing has aged yet
  Feed feed;
  {
    Runner down(dir.path, testing::refuseAll, cfg);
    feed.offer(*down.runner, 0, 30);
    REQUIRE(waitUntil(
        [&] { return down.runner->bufferStats().records + down.runner->stats().batchesInFlight.load() * 10 >= 30; }));
  }
  CHECK(feed.committed() == 30);  // on disk and synced by the stop: safe at their source
  Runner up(dir.path, testing::acceptAll, cfg);
  CHECK(up.disk().replayed == 30);
  CHECK(waitUntil([&] { return up.sink->accepted() == feed.expected(0, 30); }));
}
