// The file tailer against real files in a temporary directory.

#include "agent/file_tailer.h"

#include <doctest/doctest.h>
#include <sys/stat.h>
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
  explicit Harness(fs::path dir, config::QueueConfig q = {}) : dir_(std::move(dir)), queue_(q) {
    fs::create_directories(dir_ / "state");
    consumer_ = std::thread([this] {
      Chunk c;
      while (!done_) {
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
      tailers_.push_back(std::make_unique<FileTailer>(cfg, queue_, *store_, fastTimings()));
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
  FileTailer& tailer() { return *tailers_.front(); }
  RecordQueue& queue() { return queue_; }

 private:
  fs::path dir_;
  RecordQueue queue_;
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
  REQUIRE(h.waitFor(1));
  std::this_thread::sleep_for(200ms);
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
  std::this_thread::sleep_for(100ms);
  const auto got = h.messages();
  // What the tailer saw, to tell a reader that stopped from lines that were lost.
  const auto& st = h.tailer().stats();
  const auto queued = h.queue().stats();
  INFO("received " << got.size() << " lines; tailer read " << st.bytes.load() << " bytes, " << st.records.load()
                   << " records, " << st.rotations.load() << " rotations, " << st.filesOpen.load()
                   << " files open; queue holds " << queued.records << " records, " << queued.blockedPushes
                   << " blocked pushes");
  REQUIRE(all);
  CHECK(got == numberedMessages(0, kLines));
  CHECK(st.rotations.load() >= 3);
}

TEST_CASE("copytruncate restarts the file from the top") {
  TempDir dir;
  const auto file = dir.logs() / "app.log";
  append(file, numberedLines(0, 5));
  Harness h(dir.path);
  h.startTailer(h.input({file.string()}));
  REQUIRE(h.waitFor(5));
  fs::resize_file(file, 0);
  // Wait until the tailer noticed the truncation before writing new lines.
  REQUIRE(waitUntil([&] { return h.tailer().stats().truncations.load() == 1; }));
  append(file, numberedLines(5, 8));
  REQUIRE(h.waitFor(8));
  CHECK(h.messages() == numberedMessages(0, 8));
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
  REQUIRE(h.waitFor(3));
  std::this_thread::sleep_for(200ms);
  CHECK(h.messages() == numberedMessages(0, 3));
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
  std::this_thread::sleep_for(200ms);
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
  h.startTailer(cfg);
  REQUIRE(h.waitFor(2));
  CHECK(h.tailer().stats().filesOpen.load() == 2);
  CHECK(h.tailer().stats().filesWaiting.load() == 1);
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
