#include "agent/file_tailer.h"

#include <fcntl.h>
#include <fnmatch.h>
#include <glob.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <set>

#include "agent/log.h"

namespace logcapture::agent {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::size_t kReadBytes = 256 * 1024;
// A read at least this large becomes its chunk's storage, its lines viewed in place; a smaller one (a
// file being written slowly) is copied into a block its size, so a queue of small chunks does not pin
// a read buffer each.
constexpr std::size_t kAdoptBytes = kReadBytes / 4;

// The identity a cursor commits under; the fingerprint grows while the file is shorter than it.
struct CommitTarget {
  std::mutex mutex;
  checkpoint::FileId id;
  std::string path;
};

// The directory part of a glob pattern before its first wildcard, for inotify.
std::string fixedDirectory(const std::string& pattern) {
  const auto wildcard = pattern.find_first_of("*?[{");
  const std::string fixed = pattern.substr(0, wildcard);
  if (wildcard == std::string::npos) return std::filesystem::path(fixed).parent_path().string();
  const auto slash = fixed.rfind('/');
  return slash == std::string::npos ? "." : fixed.substr(0, slash == 0 ? 1 : slash);
}

}  // namespace

struct FileTailer::TailedFile {
  std::string path;
  int fd = -1;
  int watch = -1;
  checkpoint::FileId id;
  std::uint64_t offset = 0;  // next byte to read
  std::uint64_t size = 0;    // at the last stat, or as far as read since
  LineSplitter splitter;
  std::unique_ptr<decode::Decoder> decoder;
  std::shared_ptr<CommitTarget> target;
  std::shared_ptr<SourceCursor> cursor;
  Clock::time_point lastData;
  Clock::time_point partialSince{};
  Clock::time_point nextCheck{};
  bool released = false;  // renamed away or deleted: drain, then let go
  bool closed = false;

  explicit TailedFile(std::size_t maxLineBytes) : splitter(maxLineBytes) {}
};

FileTailer::FileTailer(const config::InputConfig& cfg, RecordQueue& queue, checkpoint::CheckpointStore& checkpoints,
                       TailerTimings timings)
    : cfg_(cfg),
      queue_(queue),
      checkpoints_(checkpoints),
      timings_(timings),
      fields_(std::make_shared<const std::map<std::string, std::string>>(cfg.fields)) {}

FileTailer::~FileTailer() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
  for (auto& [key, f] : files_) {
    if (f->fd >= 0) ::close(f->fd);
  }
  if (inotifyFd_ >= 0) ::close(inotifyFd_);
}

bool FileTailer::start() {
  auto logger = log::component("tailer");
  inotifyFd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (inotifyFd_ < 0) {
    // Polling still finds everything, only later.
    log::event(*logger, spdlog::level::warn, "inotify_unavailable",
               {{"input", cfg_.name}, {"error", std::strerror(errno)}, {"fallback", "polling"}});
  }
  // The files present now are the start-up files (start_at applies to them); scanning here rather than
  // on the thread makes that a fact when start() returns.
  watchDirectories();
  scan(true);
  started_ = true;
  thread_ = std::thread([this] { run(); });
  return true;
}

void FileTailer::stop(Deadline) {
  stopping_ = true;
  wakeup_.signal();
  if (thread_.joinable()) thread_.join();
}

bool FileTailer::settled() const {
  return std::all_of(cursors_.begin(), cursors_.end(), [](const std::weak_ptr<SourceCursor>& c) {
    const auto cursor = c.lock();
    return !cursor || cursor->idle();
  });
}

bool FileTailer::excluded(const std::string& path) const {
  const std::string base = std::filesystem::path(path).filename().string();
  return std::any_of(cfg_.exclude.begin(), cfg_.exclude.end(), [&](const std::string& pattern) {
    return fnmatch(pattern.c_str(), path.c_str(), FNM_PATHNAME) == 0 || fnmatch(pattern.c_str(), base.c_str(), 0) == 0;
  });
}

void FileTailer::watchDirectories() {
  if (inotifyFd_ < 0) return;
  for (const auto& pattern : cfg_.paths) {
    const std::string dir = fixedDirectory(pattern);
    inotify_add_watch(inotifyFd_, dir.c_str(), IN_CREATE | IN_MOVED_TO | IN_ONLYDIR);
  }
}

void FileTailer::scan(bool startup) {
  std::set<std::string> matched;
  for (const auto& pattern : cfg_.paths) {
    glob_t g{};
    if (glob(pattern.c_str(), GLOB_NOSORT | GLOB_BRACE, nullptr, &g) == 0) {
      for (std::size_t i = 0; i < g.gl_pathc; ++i) {
        if (!excluded(g.gl_pathv[i])) matched.emplace(g.gl_pathv[i]);
      }
    }
    globfree(&g);
  }
  std::uint64_t waiting = 0;
  for (const auto& path : matched) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    const FileKey key{st.st_dev, st.st_ino};
    if (files_.contains(key)) continue;  // already followed, maybe through another path
    if (files_.size() >= cfg_.maxOpenFiles) {
      ++waiting;
      continue;
    }
    open(path, startup);
  }
  stats_.filesWaiting.store(waiting, std::memory_order_relaxed);
}

void FileTailer::open(const std::string& path, bool startup) {
  auto logger = log::component("tailer");
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    log::event(*logger, spdlog::level::warn, "file_open_failed",
               {{"input", cfg_.name}, {"path", path}, {"error", std::strerror(errno)}});
    return;
  }
  struct stat st {};
  auto id = checkpoint::identify(fd);
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || !id) {
    ::close(fd);
    return;
  }
  const auto size = static_cast<std::uint64_t>(st.st_size);
  std::uint64_t offset = 0;
  if (auto entry = checkpoints_.find(cfg_.name, fd, st.st_dev, st.st_ino)) {
    offset = entry->offset <= size ? entry->offset : 0;  // shorter than the checkpoint: truncated while we were down
  } else if (startup && cfg_.startAt == config::StartAt::End) {
    offset = size;
  }

  // A new file at a followed path means the old one was rotated: let it know before reading either.
  for (auto& [key, other] : files_) {
    if (other->path == path && !other->released) checkFile(*other, Clock::now());
  }
  auto f = std::make_unique<TailedFile>(cfg_.maxLineBytes.value);
  f->path = path;
  f->fd = fd;
  f->id = *id;
  f->offset = offset;
  f->size = size;
  f->lastData = Clock::now();
  auto source = std::make_shared<Source>();
  source->input = cfg_.name;
  source->path = path;
  source->fields = fields_;
  decode::fillKubernetesMetadata(path, *source);
  f->decoder = std::make_unique<decode::Decoder>(cfg_, std::move(source), decodeStats_);
  f->target = std::make_shared<CommitTarget>();
  f->target->id = *id;
  f->target->path = path;
  f->cursor = std::make_shared<SourceCursor>(
      offset, [store = &checkpoints_, target = f->target, input = cfg_.name](std::uint64_t committed) {
        std::lock_guard lock(target->mutex);
        store->update(input, target->id, target->path, committed, std::chrono::system_clock::now());
      });
  std::erase_if(cursors_, [](const std::weak_ptr<SourceCursor>& c) { return c.expired(); });
  cursors_.push_back(f->cursor);
  // Record the start point at once: a restart before the first line must not apply start_at again.
  checkpoints_.update(cfg_.name, *id, path, offset, std::chrono::system_clock::now());
  if (inotifyFd_ >= 0) {
    f->watch = inotify_add_watch(inotifyFd_, path.c_str(), IN_MODIFY | IN_ATTRIB | IN_MOVE_SELF | IN_DELETE_SELF);
  }
  log::event(*logger, spdlog::level::info, "file_opened",
             {{"input", cfg_.name}, {"path", path}, {"offset", offset}, {"size", size}});
  files_.emplace(FileKey{st.st_dev, st.st_ino}, std::move(f));
  stats_.filesOpen.store(files_.size(), std::memory_order_relaxed);
}

void FileTailer::push(TailedFile& f, Chunk&& chunk) { pushRecords(queue_, stats_, std::move(chunk), f.cursor); }

bool FileTailer::readSome(TailedFile& f) {
  if (!buffer_) buffer_ = std::make_unique_for_overwrite<char[]>(kReadBytes);
  const ssize_t n = ::pread(f.fd, buffer_.get(), kReadBytes, static_cast<off_t>(f.offset));
  if (n <= 0) return false;
  const auto size = static_cast<std::size_t>(n);
  const auto now = Clock::now();
  const auto readTime = std::chrono::system_clock::now();
  const std::string_view bytes(buffer_.get(), size);
  Chunk chunk;
  if (size >= kAdoptBytes) {
    chunk.storage.adopt(std::move(buffer_), size);
  } else {
    chunk.storage.reserve(size);
  }
  chunk.records.reserve(size / bytesPerRecord_ + 16);
  f.splitter.feed(bytes, f.offset, [&](std::string_view line, std::uint64_t end, bool truncated) {
    if (truncated) stats_.truncated.fetch_add(1, std::memory_order_relaxed);
    f.decoder->line(line, end, truncated, readTime, now, chunk);
  });
  // No record views the buffer (every line was copied: decoded docker logs, a line held for joining).
  if (!buffer_) buffer_ = chunk.storage.reclaim();
  if (!chunk.records.empty()) bytesPerRecord_ = std::max<std::size_t>(size / chunk.records.size(), 16);
  f.offset += static_cast<std::uint64_t>(n);
  f.size = std::max(f.size, f.offset);
  f.lastData = now;
  stats_.bytes.fetch_add(static_cast<std::uint64_t>(n), std::memory_order_relaxed);
  if (f.splitter.holding()) {
    if (f.partialSince == Clock::time_point{}) f.partialSince = now;
  } else {
    f.partialSince = {};
  }
  if (f.id.fingerprintBytes < checkpoint::kFingerprintBytes) {
    if (auto id = checkpoint::identify(f.fd)) {
      f.id = *id;
      std::lock_guard lock(f.target->mutex);
      f.target->id = *id;
    }
  }
  push(f, std::move(chunk));
  return size == kReadBytes;
}

void FileTailer::flushHeld(TailedFile& f, bool force, Clock::time_point now) {
  Chunk chunk;
  if (f.splitter.holding() && (force || now - f.partialSince >= timings_.partialLine)) {
    const auto readTime = std::chrono::system_clock::now();
    f.splitter.flush(f.offset, [&](std::string_view line, std::uint64_t end, bool truncated) {
      f.decoder->line(line, end, truncated, readTime, now, chunk);
    });
    f.partialSince = {};
  }
  if (force) {
    f.decoder->flush(now, true, chunk);
  } else if (auto deadline = f.decoder->deadline(); deadline && *deadline <= now) {
    f.decoder->flush(now, false, chunk);
  }
  push(f, std::move(chunk));
}

void FileTailer::checkFile(TailedFile& f, Clock::time_point now) {
  auto logger = log::component("tailer");
  f.nextCheck = now + timings_.statCheck;
  struct stat st {};
  if (::fstat(f.fd, &st) != 0) return;
  const auto size = static_cast<std::uint64_t>(st.st_size);
  f.size = size;
  if (size < f.offset) {
    // copytruncate: the content we read is gone; start again from the top.
    flushHeld(f, true, now);
    f.splitter.reset();
    f.offset = 0;
    f.cursor->restart(0);
    stats_.truncations.fetch_add(1, std::memory_order_relaxed);
    log::event(*logger, spdlog::level::info, "file_truncated",
               {{"input", cfg_.name}, {"path", f.path}, {"size", size}});
    return;
  }
  if (!f.released) {
    struct stat byPath {};
    const bool moved = ::stat(f.path.c_str(), &byPath) != 0 || byPath.st_dev != st.st_dev || byPath.st_ino != st.st_ino;
    if (moved || st.st_nlink == 0) {
      f.released = true;
      if (moved && st.st_nlink > 0) stats_.rotations.fetch_add(1, std::memory_order_relaxed);
      log::event(*logger, spdlog::level::info, st.st_nlink == 0 ? "file_deleted" : "file_rotated",
                 {{"input", cfg_.name}, {"path", f.path}, {"offset", f.offset}, {"size", size}});
    }
  }
  if (f.released && f.offset >= size && now - f.lastData >= timings_.releaseIdle) {
    release(f);
  }
}

void FileTailer::release(TailedFile& f) {
  flushHeld(f, true, Clock::now());
  if (f.watch >= 0 && inotifyFd_ >= 0) inotify_rm_watch(inotifyFd_, f.watch);
  ::close(f.fd);
  f.fd = -1;
  f.closed = true;
  log::event(*log::component("tailer"), spdlog::level::info, "file_closed",
             {{"input", cfg_.name}, {"path", f.path}, {"offset", f.offset}});
}

void FileTailer::waitForEvents(std::chrono::milliseconds timeout) {
  pollfd fds[2] = {{wakeup_.fd(), POLLIN, 0}, {inotifyFd_, POLLIN, 0}};
  const int count = inotifyFd_ >= 0 ? 2 : 1;
  if (::poll(fds, count, static_cast<int>(std::max<std::int64_t>(timeout.count(), 0))) <= 0) return;
  alignas(inotify_event) char events[4096];
  if (fds[0].revents & POLLIN) wakeup_.clear();
  if (count == 2 && (fds[1].revents & POLLIN)) {
    ssize_t n = 0;
    while ((n = ::read(inotifyFd_, events, sizeof events)) > 0) {
      for (ssize_t i = 0; i < n;) {
        const auto* e = reinterpret_cast<const inotify_event*>(events + i);
        if (e->mask & (IN_CREATE | IN_MOVED_TO)) rescanNow_ = true;  // a directory gained an entry
        i += static_cast<ssize_t>(sizeof(inotify_event) + e->len);
      }
    }
  }
}

void FileTailer::updateLag() {
  std::uint64_t lag = 0;
  for (const auto& [key, f] : files_) {
    const std::uint64_t committed = f->cursor->committed();
    const std::uint64_t end = std::max(f->size, f->offset);
    if (end > committed) lag += end - committed;
  }
  stats_.lagBytes.store(lag, std::memory_order_relaxed);
}

void FileTailer::run() {
  auto nextScan = Clock::now() + timings_.rescan;
  auto nextTouch = Clock::now() + timings_.checkpointTouch;
  while (!stopping_.load()) {
    auto now = Clock::now();
    if (now >= nextScan || rescanNow_) {
      rescanNow_ = false;
      scan(false);
      nextScan = now + timings_.rescan;
    }
    // A rotated file is drained before its successor at the same path is read, so lines come out
    // in the order they were written across a rotation.
    bool more = false;
    std::set<std::string> draining;
    for (auto& [key, f] : files_) {
      if (f->released && readSome(*f)) {
        more = true;
        draining.insert(f->path);
      }
    }
    for (auto& [key, f] : files_) {
      if (stopping_.load()) break;
      if (!f->released && !draining.contains(f->path)) more |= readSome(*f);
    }
    now = Clock::now();
    for (auto& [key, f] : files_) {
      if (now >= f->nextCheck) checkFile(*f, now);
      if (!f->closed) flushHeld(*f, false, now);
    }
    std::erase_if(files_, [](const auto& kv) { return kv.second->closed; });
    stats_.filesOpen.store(files_.size(), std::memory_order_relaxed);
    updateLag();
    if (now >= nextTouch) {
      // Open files are present even when idle; entries of files gone past the retention are dropped.
      // The pipeline's CheckpointSaver writes them: a slow fsync never holds up reading.
      const auto wall = std::chrono::system_clock::now();
      for (const auto& [key, f] : files_) checkpoints_.touch(cfg_.name, key.first, key.second, wall);
      checkpoints_.expire(wall);
      nextTouch = now + timings_.checkpointTouch;
    }
    if (!more) {
      // Without inotify events, new lines and files are still found at the next poll.
      waitForEvents(timings_.poll);
    }
  }
  // What the sinks finish from here on reaches the file through the store's owner (the pipeline
  // saves last, after the sinks).
  const auto now = Clock::now();
  for (auto& [key, f] : files_) flushHeld(*f, true, now);
}

}  // namespace logcapture::agent
