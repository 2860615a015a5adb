// The file tailer against real files in a temporary directory.

#include "agent/inputs/file_tailer.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <thread>

#include "tests/support/fixtures.h"

namespace {

using namespace logcapture::agent;
using namespace logcapture::base;
using namespace logcapture;
using namespace std::chrono_literals;
using logcapture::testing::numberedLines;
using logcapture::testing::numberedMessages;
namespace fs = std::filesystem;

TailerTimings fastTimings() {
  TailerTimings t;
  t.rescan = 50ms;
  t.statCheck = 20ms;
  t.poll = 20ms;
  t.releaseIdle = 200ms;
  t.partialLine = 300ms;
  t.checkpointTouch = 50ms;
  return t;
}

// Tailers sharing one checkpoint store, with a consumer that finishes every chunk and keeps the messages.
class Harness {
 public:
  explicit Harness(fs::path dir, config::QueueConfig q = {}, TailerTimings timings = fastTimings())
      : dir_(std::move(dir)), queue_(q), timings_(timings) {
    fs::create_directories(dir_ / "state");
    consumer_ = std::thread([this] {
      Chunk c;
      while (!done_) {
        if (paused_) {
          pauseSeen_ = pauseEpoch_.load();
          std::this_thread::sleep_for(5ms);
          continue;
        }
        if (!queue_.pop(c, 20ms)) continue;
        std::lock_guard lock(mutex_);
        for (auto& r : c.records) {
          messages_.emplace_back(r.message);
          records_.push_back(r);
        }
        c.ack.finish();
        chunks_.push_back(std::move(c));  // records_ view them
        c = Chunk{};
      }
    });
  }
  ~Harness() {
    stopTailer();
    done_ = true;
    queue_.close();
    consumer_.join();
  }

  config::InputConfig input(std::vector<std::string> patterns, config::StartAt startAt = config::StartAt::Beginning) {
    config::InputConfig cfg;
    cfg.name = "files";
    cfg.type = config::InputType::File;
    cfg.paths = std::move(patterns);
    cfg.startAt = startAt;
    return cfg;
  }

  void startTailer(const config::InputConfig& cfg) { startTailers({cfg}); }
  void startTailers(const std::vector<config::InputConfig>& cfgs) {
    store_ = std::make_unique<checkpoint::CheckpointStore>(dir_ / "state", std::chrono::hours(24));
    store_->load();
    for (const auto& cfg : cfgs) {
      tailers_.push_back(std::make_unique<FileTailer>(cfg, queue_, *store_, timings_));
      REQUIRE(tailers_.back()->start());
    }
  }
  // Stops one input's tailer; the others and the store go on.
  void stopInput(const std::string& name) {
    const auto it = std::find_if(tailers_.begin(), tailers_.end(), [&](const auto& t) { return t->name() == name; });
    REQUIRE(it != tailers_.end());
    (*it)->stop(std::chrono::steady_clock::now() + 5s);
    tailers_.erase(it);
  }
  // Stops the tailers and saves their checkpoints, as the pipeline does at shutdown.
  void stopTailer() {
    for (auto& t : tailers_) t->stop(std::chrono::steady_clock::now() + 5s);
    tailers_.clear();
    if (store_) store_->save();
    store_.reset();
  }

  // Waits (with a deadline) until `n` messages arrived.
  bool waitFor(std::size_t n, std::chrono::milliseconds timeout = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      {
        std::lock_guard lock(mutex_);
        if (messages_.size() >= n) return true;
      }
      std::this_thread::sleep_for(5ms);
    }
    return false;
  }
  std::vector<std::string> messages() {
    std::lock_guard lock(mutex_);
    return messages_;
  }
  std::vector<Record> records() {
    std::lock_guard lock(mutex_);
    return records_;
  }
  std::vector<std::string> messagesOf(const std::string& input) {
    std::lock_guard lock(mutex_);
    std::vector<std::string> out;
    for (const auto& r : records_) {
      if (r.source->input == input) out.emplace_back(r.message);
    }
    return out;
  }
  // `input`'s checkpointed offset in `file`, or nullopt without an entry.
  std::optional<std::uint64_t> checkpointOf(const std::string& input, const fs::path& file) {
    for (const auto& e : store_->entries()) {
      if (e.input == input && e.path == file.string()) return e.offset;
    }
    return std::nullopt;
  }
  // Waits until every byte of the open files is read and finished with: whatever the tailer read (twice
  // or not) has reached the consumer by then. Call once the expected lines arrived.
  bool caughtUp(std::chrono::milliseconds timeout = 10s) {
    return testing::waitUntil([&] { return tailer().stats().lagBytes.load() == 0 && queue_.stats().records == 0; },
                              timeout);
  }
  // Waits until the tailer has scanned its globs twice more: a file created now is found at a scan,
  // and its line arriving proves the scan happened.
  bool rescanned(const fs::path& logs) {
    for (int i = 0; i < 2; ++i) {
      const auto before = messages().size();
      testing::appendFile(logs / ("witness-" + std::to_string(witnesses_++) + ".log"), "witness\n");
      if (!waitFor(before + 1)) return false;
    }
    return true;
  }
  // Returns once the consumer has seen it: a chunk pushed from then on stays in the queue, unfinished.
  void pauseConsumer() {
    paused_ = true;
    const int epoch = ++pauseEpoch_;
    REQUIRE(testing::waitUntil([&] { return pauseSeen_.load() == epoch; }));
  }
  void resumeConsumer() { paused_ = false; }
  FileTailer& tailer() { return *tailers_.front(); }
  RecordQueue& queue() { return queue_; }

 private:
  fs::path dir_;
  RecordQueue queue_;
  const TailerTimings timings_;
  std::atomic<bool> paused_{false};
  std::atomic<int> pauseEpoch_{0};  // pauses asked for
  std::atomic<int> pauseSeen_{0};   // the last pause the consumer saw
  int witnesses_ = 0;
  std::unique_ptr<checkpoint::CheckpointStore> store_;
  std::vector<std::unique_ptr<FileTailer>> tailers_;
  std::thread consumer_;
  std::atomic<bool> done_{false};
  std::mutex mutex_;
  std::vector<std::string> messages_;
  std::vector<Record> records_;
  std::vector<Chunk> chunks_;
};

// Each test's files live under logs/, its state under state/.
struct TempDir : testing::TempDir {
  TempDir() : testing::TempDir("logcapture-tailer") { fs::create_directories(path / "logs"); }
  fs::path logs() const { return path / "logs"; }
};

void append(const fs::path& file, const std::string& text) { testing::appendFile(file, text); }
using testing::waitUntil;

}  // namespace

TEST_CASE("start_at beginning reads a file's existing lines") {
  TempDir dir;
  append(dir.logs() / "a.log", numberedLines(0, 3));
  Harness h(dir.path);
  h.startTailer(h.input({(dir.logs() / "*.log").string()}));
  REQUIRE(h.waitFor(3));
  CHECK(h.messages() == numberedMessages(0, 3));
  const auto r = h.records();
  CHECK(r[0].source->path == (dir.logs() / "a.log").string());
  CHECK(r[0].source->input == "files");
  CHECK(r[2].offset == fs::file_size(dir.logs() / "a.log"));
}

TEST_CASE("start_at end skips existing lines and reads new ones") {
  TempDir dir;
  append(dir.logs() / "a.log", numberedLines(0, 3));
  Harness h(dir.path);
  h.startTailer(h.input({(dir.logs() / "*.log").string()}, config::StartAt::End));
  REQUIRE(waitUntil([&] { return h.tailer().stats().filesOpen.load() == 1; }));
  append(dir.logs() / "a.log", numberedLines(3, 5));
  REQUIRE(h.waitFor(2));
  CHECK(h.messages() == numberedMessages(3, 5));
}

TEST_CASE("start_at end delivers whole the line being written at the first start") {
  TempDir dir;
  append(dir.logs() / "a.log", numberedLines(0, 3) + "half of a li");
  TailerTimings timings = fastTimings();
  timings.partialLine = 10min;  // the writer finishing its line late does not make it two
  Harness h(dir.path, {}, timings);
  h.startTailer(h.input({(dir.logs() / "*.log").string()}, config::StartAt::End));
  REQUIRE(waitUntil([&] { return h.tailer().stats().filesOpen.load() == 1; }));
  append(dir.logs() / "a.log", "ne\n" + numberedLines(3, 5));
  REQUIRE(h.waitFor(3));
  REQUIRE(h.caughtUp());
  CHECK(h.messages() == std::vector<std::string>{"half of a line", "line 3", "line 4"});
}

TEST_CASE("a file created after start-up is read from its first byte") {
  TempDir dir;
  Harness h(dir.path);
  h.startTailer(h.input({(dir.logs() / "*.log").string()}, config::StartAt::End));
  append(dir.logs() / "new.log", numberedLines(0, 4));
  REQUIRE(h.waitFor(4));
  CHECK(h.messages() == numberedMessages(0, 4));
}

TEST_CASE("excluded files are not read") {
  TempDir dir;
  append(dir.logs() / "a.log", "keep\n");
  append(dir.logs() / "b.log.gz", "skip\n");
  Harness h(dir.path);
  auto cfg = h.input({(dir.logs() / "*").string()});
  cfg.exclude = {"*.gz"};
  h.startTailer(cfg);
  CHECK(h.tailer().stats().filesOpen.load() == 1);  // start() scanned: the excluded file was never opened
  REQUIRE(h.waitFor(1));
  REQUIRE(h.caughtUp());
  CHECK(h.messages() == std::vector<std::string>{"keep"});
}

TEST_CASE("rotation by rename under continuous writes loses and repeats nothing") {
  TempDir dir;
  const auto file = dir.logs() / "app.log";
  append(file, "");
  Harness h(dir.path);
  h.startTailer(h.input({file.string()}));
  constexpr int kLines = 20000;
  std::thread writer([&] {
    std::ofstream out(file, std::ios::app);
    for (int i = 0; i < kLines; ++i) {
      out << "line " << i << "\n";
      if (i % 5000 == 4999) {
        out.flush();
        out.close();
        fs::rename(file, dir.logs() / ("app.log." + std::to_string(i)));
        out.open(file, std::ios::app);
      }
      if (i % 500 == 0) {
        out.flush();
        // Paced like a busy service (~100k lines/s) rather than a tight loop, so each new file is
        // discovered before it is rotated away, as with any real rotation interval.
        std::this_thread::sleep_for(5ms);
      }
    }
  });
  writer.join();
  const bool all = h.waitFor(kLines, 20s);
  // The rotated files drained and closed, the last one read to its end and finished with.
  const bool settled = waitUntil([&] { return h.tailer().stats().filesOpen.load() == 1; }) && h.caughtUp();
  const auto got = h.messages();
  // What the tailer saw, to tell a reader that stopped from lines that were lost.
  const auto& st = h.tailer().stats();
  const auto queued = h.queue().stats();
  INFO("received " << got.size() << " lines; tailer read " << st.bytes.load() << " bytes, " << st.records.load()
                   << " records, " << st.rotations.load() << " rotations, " << st.filesOpen.load()
                   << " files open; queue holds " << queued.records << " records, " << queued.blockedPushes
                   << " blocked pushes");
  REQUIRE(all);
  REQUIRE(settled);
  CHECK(got == numberedMessages(0, kLines));
  CHECK(st.rotations.load() >= 3);
}

TEST_CASE("a rotated file its glob still matches is not read again while its lines are in flight") {
  TempDir dir;
  const auto file = dir.logs() / "app.log";
  append(file, numberedLines(0, 5));
  Harness h(dir.path);
  h.startTailer(h.input({(dir.logs() / "app.log*").string()}));
  REQUIRE(h.waitFor(5));
  REQUIRE(h.caughtUp());
  h.pauseConsumer();  // the sinks fall behind: what is read from now on stays in flight
  append(file, numberedLines(5, 10));
  REQUIRE(waitUntil([&] { return h.tailer().stats().records.load() == 10; }));
  fs::rename(file, dir.logs() / "app.log.1");  // logrotate's name, which the glob matches too
  append(file, numberedLines(10, 12));
  REQUIRE(waitUntil([&] { return h.tailer().stats().records.load() == 12; }));
  // Well past releaseIdle and many rescans: a rotated file closed now is found again by the glob, and
  // whatever it read since its checkpoint would be read a second time.
  CHECK_FALSE(waitUntil([&] { return h.tailer().stats().records.load() > 12; }, 1s));
  h.resumeConsumer();
  REQUIRE(h.waitFor(12));
  REQUIRE(h.caughtUp());
  CHECK(h.messages() == numberedMessages(0, 12));
}

TEST_CASE("copytruncate restarts the file from the top") {
  TempDir dir;
  const auto file = dir.logs() / "app.log";
  append(file, numberedLines(0, 5));
  Harness h(dir.path);
  h.startTailer(h.input({file.string()}));
  REQUIRE(h.waitFor(5));
  // Truncated and written again at once, as a busy service does right after logrotate's copytruncate.
  fs::resize_file(file, 0);
  append(file, numberedLines(5, 8));
  REQUIRE(h.waitFor(8));
  REQUIRE(h.caughtUp());
  CHECK(h.messages() == numberedMessages(0, 8));
  CHECK(h.tailer().stats().truncations.load() == 1);
}

TEST_CASE("a copytruncate that grew back past the read offset before the tailer looked is read from its new start") {
  TempDir dir;
  const auto file = dir.logs() / "app.log";
  append(file, numberedLines(0, 5));
  Harness h(dir.path);
  h.startTailer(h.input({file.string()}));
  REQUIRE(h.waitFor(5));
  REQUIRE(h.caughtUp());
  // The file never looks shorter: the new content, longer than the old, replaces it in one write.
  const std::string next = numberedLines(0, 8, "after ");
  REQUIRE(next.size() > fs::file_size(file));
  const int fd = ::open(file.c_str(), O_WRONLY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  REQUIRE(::pwrite(fd, next.data(), next.size(), 0) == static_cast<ssize_t>(next.size()));
  ::close(fd);
  REQUIRE(h.waitFor(13));
  REQUIRE(h.caughtUp());
  auto expected = numberedMessages(0, 5);
  for (const auto& m : numberedMessages(0, 8, "after ")) expected.push_back(m);
  CHECK(h.messages() == expected);
  CHECK(h.tailer().stats().truncations.load() == 1);
}

TEST_CASE("a deleted file still open is drained, then closed") {
  TempDir dir;
  const auto file = dir.logs() / "gone.log";
  append(file, numberedLines(0, 3));
  Harness h(dir.path);
  h.startTailer(h.input({file.string()}));
  REQUIRE(h.waitFor(3));
  {
    std::ofstream out(file, std::ios::app);
    fs::remove(file);
    out << numberedLines(3, 6);  // written after the unlink, through the still-open file
  }
  REQUIRE(h.waitFor(6));
  CHECK(h.messages() == numberedMessages(0, 6));
  CHECK(waitUntil([&] { return h.tailer().stats().filesOpen.load() == 0; }));
}

TEST_CASE("the same file reached by a symlink and its own path is read once") {
  TempDir dir;
  const auto file = dir.logs() / "real.log";
  append(file, numberedLines(0, 3));
  fs::create_symlink(file, dir.logs() / "link.log");
  Harness h(dir.path);
  h.startTailer(h.input({(dir.logs() / "*.log").string()}));
  CHECK(h.tailer().stats().filesOpen.load() == 1);  // start() scanned both paths and opened one file
  REQUIRE(h.waitFor(3));
  REQUIRE(h.rescanned(dir.logs()));
  CHECK(h.tailer().stats().filesOpen.load() == 3);  // and the witnesses; no second open of real.log
  CHECK(h.messagesOf("files").size() == 5);
  REQUIRE(h.caughtUp());
  auto got = h.messages();
  std::erase(got, "witness");
  CHECK(got == numberedMessages(0, 3));
}

TEST_CASE("lines longer than max_line_bytes are truncated and flagged") {
  TempDir dir;
  const auto file = dir.logs() / "long.log";
  append(file, std::string(5000, 'x') + "\nshort\n");
  Harness h(dir.path);
  auto cfg = h.input({file.string()});
  cfg.maxLineBytes = config::Bytes{1024};
  h.startTailer(cfg);
  REQUIRE(h.waitFor(2));
  const auto r = h.records();
  CHECK(r[0].message == std::string(1024, 'x'));
  CHECK(r[0].truncated);
  CHECK(r[1].message == "short");
  CHECK(h.tailer().stats().truncated.load() == 1);
}

TEST_CASE("a trailing line without newline is held, then flushed after the timeout") {
  TempDir dir;
  const auto file = dir.logs() / "p.log";
  append(file, "complete\npart");
  Harness h(dir.path);
  h.startTailer(h.input({file.string()}));
  REQUIRE(h.waitFor(1));
  CHECK(h.messages() == std::vector<std::string>{"complete"});
  append(file, "ial\n");
  REQUIRE(h.waitFor(2));
  CHECK(h.messages().back() == "partial");
  append(file, "no newline");
  REQUIRE(h.waitFor(3));  // after partialLine (300ms here)
  CHECK(h.messages().back() == "no newline");
  CHECK(h.tailer().stats().partialLines.load() == 1);
}

TEST_CASE("after a restart reading resumes at the checkpoint: nothing lost, nothing twice") {
  TempDir dir;
  const auto file = dir.logs() / "r.log";
  append(file, numberedLines(0, 100));
  Harness h(dir.path);
  h.startTailer(h.input({file.string()}, config::StartAt::End));
  // start_at: end, but the file was never seen: existing lines are skipped.
  append(file, numberedLines(100, 150));
  REQUIRE(h.waitFor(50));
  h.stopTailer();
  append(file, numberedLines(150, 200));  // written while the agent is down
  h.startTailer(h.input({file.string()}, config::StartAt::End));
  REQUIRE(h.waitFor(100));
  REQUIRE(h.caughtUp());
  CHECK(h.messages() == numberedMessages(100, 200));
}

TEST_CASE("two inputs whose globs overlap each resume at their own offset in the shared file after a restart") {
  TempDir dir;
  const auto file = dir.logs() / "app.log";
  append(file, numberedLines(0, 100));
  Harness h(dir.path);
  auto all = h.input({(dir.logs() / "*.log").string()});
  all.name = "all";
  auto app = h.input({file.string()});
  app.name = "app";
  h.startTailers({all, app});
  auto size = fs::file_size(file);
  REQUIRE(waitUntil([&] { return h.checkpointOf("all", file) == size && h.checkpointOf("app", file) == size; }, 10s));
  // "all" stops here while "app" reads on: their offsets in the one file now differ.
  h.stopInput("all");
  append(file, numberedLines(100, 150));
  size = fs::file_size(file);
  REQUIRE(waitUntil([&] { return h.checkpointOf("app", file) == size; }, 10s));
  h.stopTailer();

  append(file, numberedLines(150, 200));  // written while the agent is down
  h.startTailers({all, app});
  size = fs::file_size(file);
  // Both at the end: whatever either input read again or skipped has reached the consumer by now.
  REQUIRE(waitUntil([&] { return h.checkpointOf("all", file) == size && h.checkpointOf("app", file) == size; }, 10s));
  h.stopTailer();
  CHECK(h.messagesOf("all") == numberedMessages(0, 200));
  CHECK(h.messagesOf("app") == numberedMessages(0, 200));
}

TEST_CASE("a glob gaining files in a new directory picks them up") {
  TempDir dir;
  Harness h(dir.path);
  h.startTailer(h.input({(dir.logs() / "*" / "*.log").string()}));
  fs::create_directories(dir.logs() / "pod-a");
  append(dir.logs() / "pod-a" / "0.log", numberedLines(0, 2));
  REQUIRE(h.waitFor(2));
  CHECK(h.messages() == numberedMessages(0, 2));
}

TEST_CASE("max_open_files caps open files and counts the ones waiting") {
  TempDir dir;
  for (int i = 0; i < 3; ++i) append(dir.logs() / ("f" + std::to_string(i) + ".log"), "x\n");
  Harness h(dir.path);
  auto cfg = h.input({(dir.logs() / "*.log").string()});
  cfg.maxOpenFiles = 2;
  // While their lines are not finished with, the files open keep their places.
  h.pauseConsumer();
  h.startTailer(cfg);
  REQUIRE(waitUntil([&] { return h.tailer().stats().filesWaiting.load() == 1; }));
  std::this_thread::sleep_for(200ms);
  CHECK(h.tailer().stats().filesOpen.load() == 2);
  CHECK(h.tailer().stats().filesWaiting.load() == 1);
  // Then one of them gives its place to the one waiting.
  h.resumeConsumer();
  REQUIRE(h.waitFor(3));
  REQUIRE(waitUntil([&] { return h.tailer().stats().filesWaiting.load() == 0; }));
  CHECK(h.tailer().stats().filesOpen.load() <= 2);
}

TEST_CASE("a full queue in block mode pauses reading and loses nothing") {
  TempDir dir;
  const auto file = dir.logs() / "big.log";
  append(file, numberedLines(0, 5000));
  config::QueueConfig q;
  q.maxRecords = 10;
  q.whenFull = config::WhenFull::Block;
  Harness h(dir.path, q);
  h.startTailer(h.input({file.string()}));
  REQUIRE(h.waitFor(5000, 20s));
  CHECK(h.messages() == numberedMessages(0, 5000));
}

namespace {

// Lines of `width` bytes with their newline ("000000042\n" for width 10), so where a read ends is known.
std::string fixedLines(int from, int to, int width) {
  std::string out;
  for (int i = from; i < to; ++i) {
    std::string n = std::to_string(i);
    out += std::string(static_cast<std::size_t>(width - 1) - n.size(), '0') + n + "\n";
  }
  return out;
}

std::vector<std::string> fixedMessages(int from, int to, int width) {
  std::vector<std::string> out;
  const std::string text = fixedLines(from, to, width);
  for (std::size_t pos = 0; pos < text.size(); pos += static_cast<std::size_t>(width)) {
    out.push_back(text.substr(pos, static_cast<std::size_t>(width - 1)));
  }
  return out;
}

TailerTimings noPartialTimeout() {
  TailerTimings t = fastTimings();
  t.partialLine = 10min;
  return t;
}

// Drops the capabilities that let root read any file from this thread's effective set, so permissions
// apply as they do to any user; threads started meanwhile (the tailer's) inherit that. Restored at the end.
class WithoutFileCapabilities {
 public:
  WithoutFileCapabilities() {
    header_.version = _LINUX_CAPABILITY_VERSION_3;
    header_.pid = 0;
    REQUIRE(::syscall(SYS_capget, &header_, saved_) == 0);
    __user_cap_data_struct dropped[2] = {saved_[0], saved_[1]};
    for (const int cap : {CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH}) {
      dropped[cap / 32].effective &= ~(1U << (cap % 32));
    }
    REQUIRE(::syscall(SYS_capset, &header_, dropped) == 0);
  }
  ~WithoutFileCapabilities() { ::syscall(SYS_capset, &header_, saved_); }
  WithoutFileCapabilities(const WithoutFileCapabilities&) = delete;
  WithoutFileCapabilities& operator=(const WithoutFileCapabilities&) = delete;

 private:
  __user_cap_header_struct header_{};
  __user_cap_data_struct saved_[2]{};
};

}  // namespace

TEST_CASE("a file created while the input was stopped is read from its first byte with start_at end") {
  TempDir dir;
  Harness h(dir.path);
  const auto cfg = h.input({(dir.logs() / "*.log").string()}, config::StartAt::End);
  h.startTailer(cfg);  // the input's first start, with no file yet
  h.stopTailer();
  append(dir.logs() / "app.log", numberedLines(0, 100));  // written while the agent is down
  h.startTailer(cfg);
  REQUIRE(h.waitFor(100));
  REQUIRE(h.caughtUp());
  CHECK(h.messages() == numberedMessages(0, 100));
}

TEST_CASE("a file rotated while the input was stopped is read to its end, then its successor from its start") {
  TempDir dir;
  const auto file = dir.logs() / "app.log";
  append(file, numberedLines(0, 50));  // before the first start: start_at end skips these
  Harness h(dir.path);
  const auto cfg = h.input({(dir.logs() / "*.log").string()}, config::StartAt::End);
  h.startTailer(cfg);
  append(file, numberedLines(50, 200));
  REQUIRE(h.waitFor(150));
  REQUIRE(h.caughtUp());
  h.stopTailer();
  // While the agent is down: more lines, then logrotate renames the file and a new one starts.
  append(file, numberedLines(200, 300));
  fs::rename(file, dir.logs() / "app.log.1");
  append(file, numberedLines(300, 400));
  h.startTailer(cfg);
  REQUIRE(h.waitFor(350));
  REQUIRE(h.caughtUp());
  CHECK(h.messages() == numberedMessages(50, 400));
  CHECK(h.tailer().stats().rotations.load() == 1);
}

TEST_CASE("a file followed through a symlink and rotated while the input was stopped is read to its end") {
  // Kubernetes' layout: the glob matches /var/log/containers/*.log, symlinks to the kubelet's files,
  // which the kubelet rotates in their own directory (0.log -> 0.log.<time>).
  TempDir dir;
  const auto pod = dir.path / "pods" / "ns_app_uid" / "app";
  fs::create_directories(pod);
  const auto file = pod / "0.log";
  append(file, numberedLines(0, 50));
  fs::create_symlink(file, dir.logs() / "app_ns_app.log");
  Harness h(dir.path);
  const auto cfg = h.input({(dir.logs() / "*.log").string()});
  h.startTailer(cfg);
  REQUIRE(h.waitFor(50));
  REQUIRE(h.caughtUp());
  h.stopTailer();
  // While the agent is down: more lines, then the kubelet rotates; the symlink names the new file.
  append(file, numberedLines(50, 100));
  fs::rename(file, pod / "0.log.20260101-000000");
  append(file, numberedLines(100, 150));
  h.startTailer(cfg);
  REQUIRE(h.waitFor(150));
  REQUIRE(h.caughtUp());
  CHECK(h.messages() == numberedMessages(0, 150));
}

TEST_CASE("a file shorter than its checkpoint after a restart is read from its start") {
  TempDir dir;
  const auto file = dir.logs() / "app.log";
  append(file, numberedLines(0, 100));
  Harness h(dir.path);
  const auto cfg = h.input({file.string()}, config::StartAt::End);
  h.startTailer(cfg);
  append(file, numberedLines(100, 110));
  REQUIRE(h.waitFor(10));
  REQUIRE(h.caughtUp());
  h.stopTailer();
  // Truncated in place while the agent is down, and three lines written since.
  const int fd = ::open(file.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  REQUIRE(fd >= 0);
  const std::string next = numberedLines(0, 3, "new ");
  REQUIRE(::write(fd, next.data(), next.size()) == static_cast<ssize_t>(next.size()));
  ::close(fd);
  h.startTailer(cfg);
  REQUIRE(h.waitFor(13));
  REQUIRE(h.caughtUp());
  auto expected = numberedMessages(100, 110);
  for (const auto& m : numberedMessages(0, 3, "new ")) expected.push_back(m);
  CHECK(h.messages() == expected);
  CHECK(h.tailer().stats().truncations.load() == 1);
}

TEST_CASE("a queue full for longer than the partial-line timeout splits no line") {
  TempDir dir;
  const auto file = dir.logs() / "big.log";
  constexpr int kWidth = 10;
  constexpr int kLines = 80000;  // 800,000 bytes: three reads of 256 KiB and a rest
  const std::string content = fixedLines(0, kLines, kWidth);
  REQUIRE(content[2 * 256 * 1024 - 1] != '\n');  // the second read ends inside a line
  append(file, content);
  config::QueueConfig q;
  q.maxRecords = 10;
  q.whenFull = config::WhenFull::Block;
  Harness h(dir.path, q);
  h.pauseConsumer();
  h.startTailer(h.input({file.string()}));
  // The first read's chunk fills the queue; the second read ends mid-line and its push waits.
  REQUIRE(waitUntil([&] { return h.queue().blocked(); }));
  std::this_thread::sleep_for(3 * fastTimings().partialLine);  // held back for longer than the timeout
  h.resumeConsumer();
  REQUIRE(h.waitFor(kLines, 20s));
  REQUIRE(h.caughtUp());
  CHECK(h.messages() == fixedMessages(0, kLines, kWidth));
  CHECK(h.tailer().stats().partialLines.load() == 0);
}

TEST_CASE("a stop in the middle of a line and a restart deliver that line once and whole") {
  TempDir dir;
  const auto file = dir.logs() / "app.log";
  append(file, "complete\nhalf of a li");
  Harness h(dir.path, {}, noPartialTimeout());
  const auto cfg = h.input({file.string()});
  h.startTailer(cfg);
  REQUIRE(h.waitFor(1));
  REQUIRE(waitUntil([&] { return h.tailer().stats().bytes.load() == fs::file_size(file); }));
  h.stopTailer();
  append(file, "ne\n");
  h.startTailer(cfg);
  REQUIRE(waitUntil([&] { return h.checkpointOf("files", file) == fs::file_size(file); }));
  CHECK(h.messages() == std::vector<std::string>{"complete", "half of a line"});
}

TEST_CASE("an over-long line being skipped at a stop is not delivered in pieces after the restart") {
  TempDir dir;
  const auto file = dir.logs() / "long.log";
  append(file, "short\n" + std::string(5000, 'x'));
  Harness h(dir.path, {}, noPartialTimeout());
  auto cfg = h.input({file.string()});
  cfg.maxLineBytes = config::Bytes{1024};
  h.startTailer(cfg);
  REQUIRE(h.waitFor(1));
  REQUIRE(waitUntil([&] { return h.tailer().stats().bytes.load() == fs::file_size(file); }));
  h.stopTailer();
  append(file, std::string(3000, 'x') + "\nafter\n");
  h.startTailer(cfg);
  REQUIRE(waitUntil([&] { return h.checkpointOf("files", file) == fs::file_size(file); }));
  const auto r = h.records();
  REQUIRE(r.size() == 3);
  CHECK(r[0].message == "short");
  CHECK(r[1].message == std::string(1024, 'x'));
  CHECK(r[1].truncated);
  CHECK(r[2].message == "after");
}

TEST_CASE("a multi-megabyte line is cut at max_line_bytes, its rest skipped, and the next line arrives") {
  TempDir dir;
  const auto file = dir.logs() / "huge.log";
  append(file, "before\n" + std::string(5 * 1024 * 1024, 'y') + "\ngood\n");
  Harness h(dir.path);
  h.startTailer(h.input({file.string()}));  // max_line_bytes: 256 KiB by default
  REQUIRE(h.waitFor(3));
  REQUIRE(h.caughtUp());
  const auto r = h.records();
  REQUIRE(r.size() == 3);
  CHECK(r[0].message == "before");
  CHECK(r[1].message == std::string(256 * 1024, 'y'));
  CHECK(r[1].truncated);
  CHECK(r[2].message == "good");
  CHECK(h.tailer().stats().truncated.load() == 1);
}

TEST_CASE("a file that cannot be opened is reported once, then read once it can be") {
  TempDir dir;
  append(dir.logs() / "a.log", "readable\n");
  const auto secret = dir.logs() / "secret.log";
  append(secret, "secret\n");
  fs::permissions(secret, fs::perms::none);
  WithoutFileCapabilities asAnyUser;  // as root, permissions would not apply
  Harness h(dir.path);
  h.startTailer(h.input({(dir.logs() / "*.log").string()}));
  REQUIRE(h.waitFor(1));
  REQUIRE(h.rescanned(dir.logs()));
  const auto& st = h.tailer().stats();
  CHECK(st.openFailures.load() == 1);  // once, not at every rescan
  CHECK(st.filesUnreadable.load() == 1);
  fs::permissions(secret, fs::perms::owner_read);
  REQUIRE(h.waitFor(4));
  CHECK(h.messages().back() == "secret");
  REQUIRE(waitUntil([&] { return st.filesUnreadable.load() == 0; }));
  CHECK(st.openFailures.load() == 1);
}

TEST_CASE("a FIFO matching the glob is skipped without blocking and reported once") {
  TempDir dir;
  append(dir.logs() / "a.log", "line\n");
  REQUIRE(::mkfifo((dir.logs() / "pipe.log").c_str(), 0644) == 0);
  Harness h(dir.path);
  h.startTailer(h.input({(dir.logs() / "*.log").string()}));
  REQUIRE(h.waitFor(1));
  REQUIRE(h.rescanned(dir.logs()));
  CHECK(h.tailer().stats().notRegular.load() == 1);
  CHECK(h.tailer().stats().filesUnreadable.load() == 1);
}

TEST_CASE("a file replaced by a directory is drained, then the directory is skipped and reported once") {
  TempDir dir;
  const auto file = dir.logs() / "app.log";
  append(file, numberedLines(0, 3));
  Harness h(dir.path);
  h.startTailer(h.input({(dir.logs() / "*.log").string()}));
  REQUIRE(h.waitFor(3));
  {
    std::ofstream out(file, std::ios::app);
    fs::remove(file);
    fs::create_directory(file);
    out << numberedLines(3, 5);  // through the still-open file
  }
  REQUIRE(h.waitFor(5));
  REQUIRE(h.rescanned(dir.logs()));
  REQUIRE(h.rescanned(dir.logs()));
  CHECK(h.tailer().stats().notRegular.load() == 1);
  auto got = h.messages();
  std::erase(got, "witness");
  CHECK(got == numberedMessages(0, 5));
}

TEST_CASE("a file whose reads fail is reported once and the other files go on") {
  TempDir dir;
  append(dir.logs() / "a.log", "line\n");
  Harness h(dir.path);
  // A regular file by its mode whose every read at offset 0 fails (EIO): nothing is mapped there.
  h.startTailer(h.input({(dir.logs() / "*.log").string(), "/proc/self/mem"}));
  REQUIRE(h.waitFor(1));
  REQUIRE(h.rescanned(dir.logs()));
  CHECK(h.tailer().stats().readErrors.load() == 1);
  CHECK(h.tailer().stats().filesUnreadable.load() == 1);
}

TEST_CASE("a glob directory missing at start is one watch failure, and its files are found once it exists") {
  TempDir dir;
  Harness h(dir.path);
  h.startTailer(h.input({(dir.logs() / "later" / "*.log").string()}));
  CHECK(h.tailer().stats().watchFailures.load() == 1);
  fs::create_directories(dir.logs() / "later");
  append(dir.logs() / "later" / "a.log", numberedLines(0, 2));
  REQUIRE(h.waitFor(2));
  REQUIRE(h.rescanned(dir.logs() / "later"));
  CHECK(h.tailer().stats().watchFailures.load() == 1);  // not once per rescan
}

// Not under the sanitizers: they need descriptors of their own while the tailer is made short of them
// (UBSan's checks of the constructor's member accesses fail there).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

TEST_CASE("without an eventfd the tailer says so once, reads, and still stops" * doctest::skip(kSanitized)) {
  TempDir dir;
  fs::create_directories(dir.path / "state");
  append(dir.logs() / "a.log", "line\n");
  RecordQueue queue(config::QueueConfig{});
  checkpoint::CheckpointStore store(dir.path / "state", std::chrono::hours(24));
  store.load();
  config::InputConfig cfg;
  cfg.name = "files";
  cfg.paths = {(dir.logs() / "*.log").string()};
  cfg.startAt = config::StartAt::Beginning;
  rlimit saved{};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &saved) == 0);
  const int lowest = ::dup(0);  // the lowest free descriptor: with the limit there, no new one can be made
  REQUIRE(lowest >= 0);
  ::close(lowest);
  rlimit tight = saved;
  tight.rlim_cur = static_cast<rlim_t>(lowest);
  REQUIRE(::setrlimit(RLIMIT_NOFILE, &tight) == 0);
  // Only the construction (which makes the eventfd) runs short of descriptors: the sanitizers need some.
  auto tailer = std::make_unique<FileTailer>(cfg, queue, store, fastTimings());
  REQUIRE(::setrlimit(RLIMIT_NOFILE, &saved) == 0);
  REQUIRE(tailer->start());
  CHECK(tailer->stats().wakeupFailures.load() == 1);
  Chunk c;
  REQUIRE(queue.pop(c, 5s));
  REQUIRE(c.records.size() == 1);
  CHECK(c.records[0].message == "line");
  c.ack.finish();
  const auto before = std::chrono::steady_clock::now();
  tailer->stop(before + 5s);
  CHECK(std::chrono::steady_clock::now() - before < 2s);  // seen at the next poll (20 ms here)
}

TEST_CASE("with more matching files than max_open_files every file is read to its end") {
  TempDir dir;
  constexpr int kFiles = 12;
  constexpr int kLines = 50;
  std::vector<std::string> expected;
  for (int f = 0; f < kFiles; ++f) {
    const std::string prefix = "file" + std::to_string(f) + " ";
    append(dir.logs() / ("f" + std::to_string(f) + ".log"), numberedLines(0, kLines, prefix));
    for (const auto& m : numberedMessages(0, kLines, prefix)) expected.push_back(m);
  }
  Harness h(dir.path);
  auto cfg = h.input({(dir.logs() / "*.log").string()});
  cfg.maxOpenFiles = 3;
  h.startTailer(cfg);
  REQUIRE(h.waitFor(kFiles * kLines, 30s));
  CHECK(h.tailer().stats().filesOpen.load() <= 3);
  // More lines in every file, the closed ones included: each is opened again and read from where it stopped.
  for (int f = 0; f < kFiles; ++f) {
    const std::string prefix = "file" + std::to_string(f) + " ";
    append(dir.logs() / ("f" + std::to_string(f) + ".log"), numberedLines(kLines, 2 * kLines, prefix));
    for (const auto& m : numberedMessages(kLines, 2 * kLines, prefix)) expected.push_back(m);
  }
  REQUIRE(h.waitFor(2 * kFiles * kLines, 30s));
  auto got = h.messages();
  std::sort(got.begin(), got.end());
  std::sort(expected.begin(), expected.end());
  CHECK(got == expected);  // each line once
  REQUIRE(waitUntil([&] { return h.tailer().stats().filesWaiting.load() == 0; }));
}

TEST_CASE("a file closed while inactive is opened again when it grows, and read from where it stopped") {
  TempDir dir;
  const auto file = dir.logs() / "app.log";
  append(file, numberedLines(0, 3));
  Harness h(dir.path);
  auto cfg = h.input({(dir.logs() / "*.log").string()});
  cfg.closeInactive = 100ms;
  h.startTailer(cfg);
  const auto lines = [&] {
    auto got = h.messages();
    std::erase(got, "witness");  // rescanned() writes those
    return got;
  };
  const auto waitForLines = [&](std::size_t n) { return waitUntil([&] { return lines().size() >= n; }); };
  REQUIRE(waitForLines(3));
  REQUIRE(waitUntil([&] { return h.tailer().stats().filesOpen.load() == 0; }));
  REQUIRE(h.rescanned(dir.logs()));
  append(file, numberedLines(3, 5));
  REQUIRE(waitForLines(5));
  // Closed again, then rotated away after it grew: the rest of it is read under its new name.
  REQUIRE(waitUntil([&] { return h.tailer().stats().filesOpen.load() == 0; }));
  append(file, numberedLines(5, 7));
  fs::rename(file, dir.logs() / "app.log.1");
  REQUIRE(waitForLines(7));
  REQUIRE(h.rescanned(dir.logs()));
  CHECK(lines() == numberedMessages(0, 7));  // each once
}

TEST_CASE("files rotated while the input was stopped wait for a place under max_open_files and are read to their end") {
  TempDir dir;
  constexpr int kFiles = 5;
  const auto prefix = [](int f) { return "file" + std::to_string(f) + " "; };
  const auto file = [&](int f) { return dir.logs() / ("f" + std::to_string(f) + ".log"); };
  for (int f = 0; f < kFiles; ++f) append(file(f), numberedLines(0, 20, prefix(f)));
  Harness h(dir.path);
  auto cfg = h.input({(dir.logs() / "*.log").string()});
  h.startTailer(cfg);
  REQUIRE(h.waitFor(kFiles * 20));
  REQUIRE(h.caughtUp());
  h.stopTailer();
  // While the agent is down each file gets more lines, then is renamed beside itself (as logrotate does)
  // to a name the glob does not match, and a successor starts at its path.
  for (int f = 0; f < kFiles; ++f) {
    append(file(f), numberedLines(20, 60, prefix(f)));
    fs::rename(file(f), dir.logs() / ("f" + std::to_string(f) + ".log.1"));
    append(file(f), numberedLines(60, 80, prefix(f)));
  }
  cfg.maxOpenFiles = 2;
  h.startTailer(cfg);
  REQUIRE(h.waitFor(kFiles * 80, 30s));
  REQUIRE(h.caughtUp());
  const auto got = h.messages();
  CHECK(got.size() == kFiles * 80);  // each line once
  for (int f = 0; f < kFiles; ++f) {
    std::vector<std::string> ofFile;
    std::copy_if(got.begin(), got.end(), std::back_inserter(ofFile),
                 [&](const std::string& m) { return m.starts_with(prefix(f)); });
    CHECK(ofFile == numberedMessages(0, 80, prefix(f)));  // in order, across the rotation
  }
  CHECK(h.tailer().stats().rotations.load() == kFiles);
  CHECK(h.tailer().stats().filesOpen.load() <= 2);
}

TEST_CASE("a file renamed while closed idle waits for a place under max_open_files and is read to its end") {
  TempDir dir;
  const auto a = dir.logs() / "a.log";
  const auto b = dir.logs() / "b.log";
  append(a, numberedLines(0, 10, "a "));
  append(b, numberedLines(0, 10, "b "));
  Harness h(dir.path);
  auto cfg = h.input({(dir.logs() / "*.log").string()});
  cfg.maxOpenFiles = 1;
  cfg.closeInactive = 100ms;
  h.startTailer(cfg);
  REQUIRE(h.waitFor(20));
  REQUIRE(waitUntil([&] { return h.tailer().stats().filesOpen.load() == 0; }));
  // b grows and takes the only place; its lines not finished with, it keeps it.
  h.pauseConsumer();
  append(b, numberedLines(10, 20, "b "));
  REQUIRE(waitUntil([&] { return h.queue().stats().records >= 10; }));
  // a grows while closed and waits; then it is rotated away from the glob and c appears: the scan that
  // finds c also found a renamed, by its identity, and both wait.
  append(a, numberedLines(10, 30, "a "));
  REQUIRE(waitUntil([&] { return h.tailer().stats().filesWaiting.load() == 1; }));
  fs::rename(a, dir.logs() / "a.log.1");
  append(dir.logs() / "c.log", numberedLines(0, 10, "c "));
  REQUIRE(waitUntil([&] { return h.tailer().stats().filesWaiting.load() == 2; }));
  h.resumeConsumer();
  REQUIRE(h.waitFor(60));
  REQUIRE(waitUntil([&] { return h.tailer().stats().filesWaiting.load() == 0; }));
  const auto got = h.messages();
  CHECK(got.size() == 60);  // each line once
  std::vector<std::string> ofA;
  std::copy_if(got.begin(), got.end(), std::back_inserter(ofA),
               [](const std::string& m) { return m.starts_with("a "); });
  CHECK(ofA == numberedMessages(0, 30, "a "));
}

TEST_CASE("a file found renamed that is renamed again while it waits for a place is still read to its end") {
  TempDir dir;
  const auto a = dir.logs() / "a.log";
  const auto b = dir.logs() / "b.log";
  append(a, numberedLines(0, 10, "a "));
  append(b, numberedLines(0, 10, "b "));
  Harness h(dir.path);
  auto cfg = h.input({(dir.logs() / "*.log").string()});
  h.startTailer(cfg);
  REQUIRE(h.waitFor(20));
  REQUIRE(h.caughtUp());
  h.stopTailer();
  append(a, numberedLines(10, 20, "a "));
  append(b, numberedLines(10, 20, "b "));
  fs::rename(a, dir.logs() / "a.log.1");
  fs::rename(b, dir.logs() / "b.log.1");
  // One place: the first renamed file keeps it while its lines are not finished with, the other waits.
  cfg.maxOpenFiles = 1;
  h.pauseConsumer();
  h.startTailer(cfg);
  REQUIRE(waitUntil([&] { return h.tailer().stats().filesWaiting.load() == 1; }));
  // logrotate shifts both on (app.log.1 -> app.log.2): the one waiting is looked for again.
  fs::rename(dir.logs() / "a.log.1", dir.logs() / "a.log.2");
  fs::rename(dir.logs() / "b.log.1", dir.logs() / "b.log.2");
  h.resumeConsumer();
  REQUIRE(h.waitFor(40));
  REQUIRE(waitUntil([&] { return h.tailer().stats().filesWaiting.load() == 0; }));
  const auto got = h.messages();
  CHECK(got.size() == 40);  // each line once
  for (const std::string prefix : {"a ", "b "}) {
    std::vector<std::string> ofFile;
    std::copy_if(got.begin(), got.end(), std::back_inserter(ofFile),
                 [&](const std::string& m) { return m.starts_with(prefix); });
    CHECK(ofFile == numberedMessages(0, 20, prefix));
  }
}

TEST_CASE("a place freed while files wait goes to one of them without waiting for the periodic rescan") {
  TempDir dir;
  for (int f = 0; f < 3; ++f) {
    append(dir.logs() / ("f" + std::to_string(f) + ".log"), numberedLines(0, 10, "file" + std::to_string(f) + " "));
  }
  auto timings = fastTimings();
  timings.rescan = std::chrono::minutes(10);  // never during the test
  Harness h(dir.path, {}, timings);
  auto cfg = h.input({(dir.logs() / "*.log").string()});
  cfg.maxOpenFiles = 1;
  h.startTailer(cfg);
  REQUIRE(h.waitFor(30));
  CHECK(h.messages().size() == 30);
  REQUIRE(waitUntil([&] { return h.tailer().stats().filesWaiting.load() == 0; }));
}

TEST_CASE("a file rotated while it waits for a place is read under its new name, and its successor too") {
  TempDir dir;
  const auto logs = dir.logs();
  // Two places: x.log and app.log (b) take them, app.log.1 (a) waits. b is long: it is still being read
  // when x's place is freed.
  constexpr int kLong = 20000;
  append(logs / "x.log", numberedLines(0, 10, "x "));
  append(logs / "app.log", numberedLines(0, kLong, "b "));
  append(logs / "app.log.1", numberedLines(0, 10, "a "));
  Harness h(dir.path);
  auto cfg = h.input({(logs / "*").string()});
  cfg.maxOpenFiles = 2;
  cfg.closeInactive = 100ms;
  h.pauseConsumer();  // the open files keep their places while their lines are not finished with
  h.startTailer(cfg);
  REQUIRE(waitUntil([&] { return h.tailer().stats().filesWaiting.load() == 1; }));
  // logrotate shifts both while a waits: the path it waited under now holds b, which is open.
  fs::rename(logs / "app.log.1", logs / "app.log.2");
  fs::rename(logs / "app.log", logs / "app.log.1");
  append(logs / "app.log", numberedLines(0, 10, "c "));
  h.resumeConsumer();
  REQUIRE(h.waitFor(30 + kLong, 30s));
  REQUIRE(h.caughtUp());
  const auto got = h.messages();
  CHECK(got.size() == 30 + kLong);  // each line once
  for (const std::string prefix : {"a ", "b ", "c ", "x "}) {
    std::vector<std::string> ofFile;
    std::copy_if(got.begin(), got.end(), std::back_inserter(ofFile),
                 [&](const std::string& m) { return m.starts_with(prefix); });
    CHECK(ofFile == numberedMessages(0, prefix == "b " ? kLong : 10, prefix));
  }
  // Every file closed as inactive in the end, and no descriptor of one left behind.
  REQUIRE(waitUntil([&] { return h.tailer().stats().filesOpen.load() == 0; }));
  std::size_t descriptors = 0;
  for (const auto& fd : fs::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    if (fs::read_symlink(fd.path(), ec).string().starts_with(logs.string())) ++descriptors;
  }
  CHECK(descriptors == 0);
}
