// The disk buffer behind a sink runner (agent/disk_buffer.h), with a scripted sink: records finished
// at their source once synced, replay after a restart, segments deleted once delivered, bounds and
// drops, and damage found at open.

#include "agent/runner/disk_buffer.h"

#include <doctest/doctest.h>
#include <sys/mount.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "agent/runner/buffer_segment.h"
#include "agent/runner/sink_runner.h"
#include "tests/support/fixtures.h"
#include "tests/support/scripted_sink.h"

namespace {

using namespace logcapture;
using namespace logcapture::agent;
using namespace std::chrono_literals;
using testing::Feed;
using testing::ScriptedSink;
using testing::waitUntil;
namespace fs = std::filesystem;

config::SinkConfig diskConfig() { return testing::scriptedDiskSinkConfig(); }

// A runner on a disk buffer in `stateDir`.
struct DiskRunner : testing::ScriptedRunner {
  DiskRunner(const fs::path& stateDir, ScriptedSink::Script script, const config::SinkConfig& cfg = diskConfig())
      : ScriptedRunner(stateDir, std::move(script), cfg) {}
};

std::vector<fs::path> segmentsIn(const fs::path& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.path().extension() == ".seg") out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST_CASE("records are finished at their source once their batch is synced to the disk buffer") {
  testing::TempDir dir("logcapture-disk");
  DiskRunner r(dir.path, testing::refuseAll);
  Feed feed;
  feed.offer(*r.runner, 0, 50);
  // The destination is down: the checkpoint moves on anyway, the records being safe on disk.
  REQUIRE(waitUntil([&] { return feed.committed() == 50; }));
  CHECK(r.runner->stats().delivered.load() == 0);
  CHECK(r.disk().records == 50);
  CHECK(r.disk().syncs > 0);
  CHECK(r.disk().oldest.has_value());
  CHECK_FALSE(segmentsIn(dir / "buffers" / "test").empty());
}

TEST_CASE("a disk buffer is sent first after a restart, in the order written, before new records") {
  testing::TempDir dir("logcapture-disk");
  Feed feed;
  {
    DiskRunner down(dir.path, testing::refuseAll);
    feed.offer(*down.runner, 0, 60);
    REQUIRE(waitUntil([&] { return feed.committed() == 60; }));
  }
  DiskRunner up(dir.path, testing::acceptAll);
  CHECK(up.disk().replayed == 60);
  feed.offer(*up.runner, 60, 80);
  REQUIRE(waitUntil([&] { return up.sink->accepted().size() >= 80; }));
  CHECK(up.sink->accepted() == feed.expected(0, 80));
  REQUIRE(waitUntil([&] { return up.disk().records == 0; }));
}

TEST_CASE("segments are deleted once every batch in them is delivered") {
  testing::TempDir dir("logcapture-disk");
  config::SinkConfig cfg = diskConfig();
  cfg.buffer.maxBytes = config::Bytes{256 * 1024};  // segments of 32 KiB
  cfg.buffer.whenFull = config::WhenFull::Block;
  DiskRunner r(dir.path, testing::acceptAll, cfg);
  Feed feed("/var/log/" + std::string(200, 'a') + ".log");
  feed.offer(*r.runner, 0, 5000, 50);  // some 1 MiB on disk in all
  REQUIRE(waitUntil([&] { return r.sink->accepted().size() == 5000; }, 20s));
  CHECK(r.sink->accepted() == feed.expected(0, 5000));
  REQUIRE(waitUntil([&] { return r.disk().records == 0; }));
  // Only the segment being written may stay.
  CHECK(r.disk().segments <= 1);
  CHECK(segmentsIn(dir / "buffers" / "test").size() <= 1);
}

TEST_CASE("drop_newest drops and counts the batches that do not fit in max_bytes on disk") {
  testing::TempDir dir("logcapture-disk");
  config::SinkConfig cfg = diskConfig();
  cfg.buffer.maxBytes = config::Bytes{64 * 1024};
  cfg.buffer.whenFull = config::WhenFull::DropNewest;
  DiskRunner r(dir.path, testing::refuseAll, cfg);
  Feed feed("/var/log/" + std::string(500, 'b') + ".log");
  feed.offer(*r.runner, 0, 1000);  // some 500 KiB
  REQUIRE(waitUntil([&] { return feed.committed() == 1000; }));
  const std::uint64_t dropped = r.runner->stats().droppedFor(DropReason::BufferFull);
  CHECK(dropped > 0);
  CHECK(dropped + r.disk().records == 1000);
  CHECK(r.disk().bytes <= 64 * 1024);
}

TEST_CASE("drop_oldest makes room on disk by dropping the oldest batches, counted") {
  testing::TempDir dir("logcapture-disk");
  config::SinkConfig cfg = diskConfig();
  cfg.buffer.maxBytes = config::Bytes{64 * 1024};
  cfg.buffer.whenFull = config::WhenFull::DropOldest;
  Feed feed("/var/log/" + std::string(500, 'c') + ".log");
  {
    DiskRunner r(dir.path, testing::refuseAll, cfg);
    feed.offer(*r.runner, 0, 1000);
    REQUIRE(waitUntil([&] { return feed.committed() == 1000; }));
    const std::uint64_t dropped = r.runner->stats().droppedFor(DropReason::BufferFull);
    CHECK(dropped > 0);
    CHECK(dropped + r.disk().records == 1000);
    CHECK(r.disk().bytes <= 64 * 1024 + 16 * 1024);
  }
  // What stayed is the newest, and it is sent after a restart.
  DiskRunner up(dir.path, testing::acceptAll, cfg);
  REQUIRE(waitUntil([&] { return up.disk().records == 0 && !up.sink->accepted().empty(); }));
  const auto got = up.sink->accepted();
  CHECK(got.back() == feed.expected(999, 1000).front());
}

TEST_CASE("a torn last frame, a corrupt frame and a garbage segment are skipped and counted at open") {
  testing::TempDir dir("logcapture-disk");
  Feed feed;
  {
    DiskRunner down(dir.path, testing::refuseAll);
    for (int i = 0; i < 40; i += 10) {
      down.runner->offer(feed.claim(i, i + 10));  // one batch each: batch.max_records is 10
      REQUIRE(waitUntil([&] { return feed.committed() == std::uint64_t(i + 10); }));
    }
  }
  const fs::path buffers = dir / "buffers" / "test";
  auto segments = segmentsIn(buffers);
  REQUIRE(segments.size() == 1);
  std::string data;
  {
    std::ifstream in(segments[0], std::ios::binary);
    data.assign(std::istreambuf_iterator<char>(in), {});
  }
  // The second frame gets a flipped bit; the fourth is cut short as by a power loss.
  std::size_t at = disk::kSegmentMagic.size();
  std::vector<std::size_t> starts;
  while (at < data.size()) {
    starts.push_back(at);
    std::uint32_t length = 0;
    std::memcpy(&length, data.data() + at, 4);
    at += disk::kFrameHeaderBytes + length;
  }
  REQUIRE(starts.size() == 4);
  data[starts[1] + disk::kFrameHeaderBytes + 30] ^= 0x01;
  data.resize(data.size() - 7);
  {
    std::ofstream out(segments[0], std::ios::binary | std::ios::trunc);
    out << data;
  }
  {
    std::ofstream out(buffers / "00000000000000000000.seg", std::ios::binary);  // garbage, named as a segment
    out << std::string(1000, 'z');
  }
  fs::rename(buffers / "00000000000000000000.seg", buffers / "00000000000000000009.seg");

  DiskRunner up(dir.path, testing::acceptAll);
  REQUIRE(waitUntil([&] { return up.sink->accepted().size() >= 20; }));
  auto expected = feed.expected(0, 10);
  const auto third = feed.expected(20, 30);
  expected.insert(expected.end(), third.begin(), third.end());
  CHECK(up.sink->accepted() == expected);
  CHECK(up.disk().corrupt == 3);
  CHECK(fs::exists(buffers / "00000000000000000009.seg.corrupt"));
}

TEST_CASE("a disk buffer whose directory is missing makes it and goes on") {
  testing::TempDir dir("logcapture-disk");
  DiskRunner r(dir.path / "not" / "there", testing::acceptAll);
  Feed feed;
  feed.offer(*r.runner, 0, 20);
  REQUIRE(waitUntil([&] { return r.sink->accepted().size() == 20; }));
  CHECK(fs::is_directory(dir / "not" / "there" / "buffers" / "test"));
}

TEST_CASE("a buffer directory no disk sink claims is left in place") {
  testing::TempDir dir("logcapture-disk");
  Feed feed;
  {
    DiskRunner down(dir.path, testing::refuseAll);
    feed.offer(*down.runner, 0, 10);
    REQUIRE(waitUntil([&] { return feed.committed() == 10; }));
  }
  warnUnclaimedBuffers(dir.path.string(), {});
  CHECK(segmentsIn(dir / "buffers" / "test").size() == 1);
}

namespace {

// A small tmpfs mounted for the test (root only): a disk that fills up. `mounted` false: say why and skip.
struct SmallDisk {
  fs::path path;
  bool mounted = false;
  std::string why;
  SmallDisk(const fs::path& where, const char* size) : path(where) {
    fs::create_directories(where);
    const std::string options = std::string("size=") + size;
    mounted = ::mount("tmpfs", where.c_str(), "tmpfs", 0, options.c_str()) == 0;
    if (!mounted) why = std::string("mounting a tmpfs needs root (CAP_SYS_ADMIN): ") + std::strerror(errno);
  }
  ~SmallDisk() {
    if (mounted) ::umount2(path.c_str(), MNT_DETACH);
  }
};

config::SinkConfig fullDiskConfig(config::WhenFull whenFull) {
  config::SinkConfig cfg = diskConfig();
  cfg.buffer.maxBytes = config::Bytes{64 * 1024 * 1024};  // far more than the disk holds
  cfg.buffer.whenFull = whenFull;
  cfg.batch.maxBytes = config::Bytes{4096};  // a memory part of 16 KiB
  return cfg;
}

// Records the runner holds or has dropped: all it received once the breaker holds every batch in the buffer.
std::uint64_t accountedFor(const SinkRunner& r) {
  return r.stats().droppedFor(DropReason::BufferFull) + r.bufferStats().records;
}

}  // namespace

TEST_CASE("a full disk with when_full: drop_newest drops and counts what does not fit, and the sink goes on") {
  testing::TempDir dir("logcapture-disk-full");
  SmallDisk disk(dir / "state", "256k");
  if (!disk.mounted) {
    MESSAGE("skipped: " << disk.why);
    return;
  }
  DiskRunner r(disk.path, testing::refuseAll, fullDiskConfig(config::WhenFull::DropNewest));
  Feed feed("/var/log/" + std::string(500, 'f') + ".log");
  feed.offer(*r.runner, 0, 4000);  // some 2 MiB on disk: eight times what it holds
  REQUIRE(waitUntil([&] { return r.disk().writeErrors > 0 && accountedFor(*r.runner) == 4000; }, 20s));
  const std::uint64_t dropped = r.runner->stats().droppedFor(DropReason::BufferFull);
  CHECK(dropped > 0);
  CHECK(r.disk().records > 0);
  // The destination comes back: what the disk and memory held arrives, and new records flow again.
  r.sink->setScript(testing::acceptAll);
  feed.offer(*r.runner, 4000, 4100);
  CHECK(waitUntil(
      [&] { return r.runner->stats().delivered.load() + r.runner->stats().droppedFor(DropReason::BufferFull) == 4100; },
      20s));
  CHECK(waitUntil([&] { return feed.committed() == 4100; }));
}

TEST_CASE("a full disk with when_full: drop_oldest drops the oldest, counted, and keeps the newest") {
  testing::TempDir dir("logcapture-disk-full");
  SmallDisk disk(dir / "state", "256k");
  if (!disk.mounted) {
    MESSAGE("skipped: " << disk.why);
    return;
  }
  DiskRunner r(disk.path, testing::refuseAll, fullDiskConfig(config::WhenFull::DropOldest));
  Feed feed("/var/log/" + std::string(500, 'g') + ".log");
  feed.offer(*r.runner, 0, 4000);
  REQUIRE(waitUntil([&] { return r.disk().writeErrors > 0 && accountedFor(*r.runner) == 4000; }, 20s));
  CHECK(r.runner->stats().droppedFor(DropReason::BufferFull) > 0);
  r.sink->setScript(testing::acceptAll);
  // Every record finished: delivered or dropped. (An empty buffer with nothing in flight is not enough:
  // a batch out of the buffer may wait for a retry or for its turn to send.)
  REQUIRE(waitUntil([&] { return feed.committed() == 4000; }, 20s));
  // The newest record is among those that stayed.
  const auto got = r.sink->accepted();
  REQUIRE_FALSE(got.empty());
  CHECK(std::find(got.begin(), got.end(), feed.expected(3999, 4000).front()) != got.end());
  CHECK(waitUntil([&] { return feed.committed() == 4000; }));
}

TEST_CASE("a full disk with when_full: block holds the records back, drops none, and sends them all once healed") {
  testing::TempDir dir("logcapture-disk-full");
  SmallDisk disk(dir / "state", "256k");
  if (!disk.mounted) {
    MESSAGE("skipped: " << disk.why);
    return;
  }
  DiskRunner r(disk.path, testing::refuseAll, fullDiskConfig(config::WhenFull::Block));
  Feed feed("/var/log/" + std::string(500, 'h') + ".log");
  feed.offer(*r.runner, 0, 4000);
  REQUIRE(waitUntil([&] { return r.disk().writeErrors > 0; }, 20s));
  std::this_thread::sleep_for(300ms);
  CHECK(r.runner->stats().droppedFor(DropReason::BufferFull) == 0);
  CHECK(feed.committed() < 4000);  // held back, at their source
  r.sink->setScript(testing::acceptAll);
  CHECK(waitUntil([&] { return r.sink->accepted().size() >= 4000; }, 30s));
  CHECK(waitUntil([&] { return feed.committed() == 4000; }));
  auto got = r.sink->accepted();
  std::sort(got.begin(), got.end());
  got.erase(std::unique(got.begin(), got.end()), got.end());
  CHECK(got.size() == 4000);
}

TEST_CASE("a sink that keeps up writes nothing to its disk buffer") {
  testing::TempDir dir("logcapture-disk");
  config::SinkConfig cfg = diskConfig();
  cfg.buffer.syncInterval = 200ms;
  DiskRunner r(dir.path, testing::acceptAll, cfg);
  Feed feed;
  feed.offer(*r.runner, 0, 2000);
  REQUIRE(waitUntil([&] { return r.sink->accepted().size() == 2000 && feed.committed() == 2000; }));
  CHECK(r.disk().spilled == 0);
  CHECK(segmentsIn(dir / "buffers" / "test").empty());
}
