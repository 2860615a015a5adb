#include "agent/inputs/file_tailer.h"

#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <glob.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>

#include "base/log.h"

namespace logcapture::agent {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::size_t kReadBytes = 256 * 1024;
// A read at least this large becomes its chunk's storage, its lines viewed in place; a smaller one (a
// file being written slowly, or the last part of a file) is copied into a block its size, so a queue of
// chunks does not pin a read buffer each, most of it empty: with a file read to its end, one in flight per file.
constexpr std::size_t kAdoptBytes = kReadBytes * 3 / 4;

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

const char* fileType(mode_t mode) {
  if (S_ISDIR(mode)) return "directory";
  if (S_ISFIFO(mode)) return "fifo";
  if (S_ISSOCK(mode)) return "socket";
  if (S_ISCHR(mode) || S_ISBLK(mode)) return "device";
  return "other";
}

// Opens without blocking on a FIFO put in place of a file after it was looked at, and without taking a
// terminal as the controlling one.
int openForReading(const char* path) { return ::open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY); }

// Where the last line of the first `size` bytes starts: just past the last newline among its last
// `window` bytes. `size` when there is none there (or the read fails): a line longer than that is cut anyway.
std::uint64_t lastLineStart(int fd, std::uint64_t size, std::size_t window) {
  const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(size, window));
  if (want == 0) return size;
  std::string tail(want, '\0');
  ssize_t n = 0;
  do {
    n = ::pread(fd, tail.data(), want, static_cast<off_t>(size - want));
  } while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(want)) return size;
  const auto nl = tail.rfind('\n');
  return nl == std::string::npos ? size : size - want + nl + 1;
}

}  // namespace

struct FileTailer::TailedFile {
  std::string path;  // the path it was followed under; a file rotated away keeps its old one
  int fd = -1;
  int watch = -1;
  checkpoint::FileId id;
  std::uint64_t offset = 0;  // next byte to read
  std::uint64_t size = 0;    // at the last stat, or as far as read since
  LineSplitter splitter;
  std::unique_ptr<decode::Decoder> decoder;
  std::shared_ptr<CommitTarget> target;
  std::shared_ptr<SourceCursor> cursor;
  Clock::time_point lastData;  // when a read last returned bytes
  Clock::time_point nextCheck{};
  int readError = 0;      // errno of the failing reads, 0 while they work (logged once per failing spell)
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
  // Said here rather than where the eventfd was made: a constructor short of descriptors may not log.
  if (wakeup_.fd() < 0) {
    stats_.wakeupFailures.fetch_add(1, std::memory_order_relaxed);
    log::event(*logger, spdlog::level::warn, "wakeup_unavailable",
               {{"input", cfg_.name},
                {"error", std::strerror(wakeup_.error())},
                {"effect", "a stop is noticed at the next poll instead of at once"}});
  }
  inotifyFd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (inotifyFd_ < 0) {
    // Polling still finds everything, only later.
    stats_.watchFailures.fetch_add(1, std::memory_order_relaxed);
    log::event(*logger, spdlog::level::warn, "inotify_unavailable",
               {{"input", cfg_.name}, {"error", std::strerror(errno)}, {"fallback", "polling"}});
  }
  firstStart_ = !checkpoints_.beginInput(cfg_.name, std::chrono::system_clock::now());
  // The files present now are the start-up files (start_at applies to them at the first start); scanning
  // here rather than on the thread makes that a fact when start() returns.
  watchDirectories();
  scan(true);
  started_ = true;
  thread_ = std::thread([this] { log::guardThread("tailer", [this] { run(); }); });
  return true;
}

void FileTailer::stop(base::Deadline) {
  stopping_ = true;
  wakeup_.signal();
  // A queue the sinks hold full (when_full: block on a sink that is down) would keep the thread, and
  // the reload or shutdown joining it, waiting for ever: what it could not push is read again from
  // the checkpoints.
  queue_.wakeProducers();
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

int FileTailer::watch(const std::string& path, std::uint32_t mask) {
  const int wd = inotify_add_watch(inotifyFd_, path.c_str(), mask);
  if (wd >= 0) return wd;
  const int error = errno;
  stats_.watchFailures.fetch_add(1, std::memory_order_relaxed);
  // Once per kind of failure: when fs.inotify.max_user_watches is reached (ENOSPC), every file would say so.
  if (watchErrorsLogged_.insert(error).second) {
    log::event(*log::component("tailer"), spdlog::level::warn, "inotify_watch_failed",
               {{"input", cfg_.name},
                {"path", path},
                {"error", std::strerror(error)},
                {"fallback", "polling"},
                {"hint", error == ENOSPC ? "raise fs.inotify.max_user_watches" : ""}});
  }
  return -1;
}

void FileTailer::watchDirectories() {
  if (inotifyFd_ < 0) return;
  for (const auto& pattern : cfg_.paths) {
    const std::string dir = fixedDirectory(pattern);
    const auto it = directoryWatches_.find(dir);
    if (it != directoryWatches_.end() && it->second >= 0) continue;
    const bool failedBefore = it != directoryWatches_.end();
    // A directory that does not exist yet is watched once it does; its failures count once, not per rescan.
    const int wd = failedBefore ? inotify_add_watch(inotifyFd_, dir.c_str(), IN_CREATE | IN_MOVED_TO | IN_ONLYDIR)
                                : watch(dir, IN_CREATE | IN_MOVED_TO | IN_ONLYDIR);
    directoryWatches_[dir] = wd;
  }
}

void FileTailer::noteProblem(const std::string& path, Problem problem, const std::string& detail) {
  static constexpr const char* kEvents[] = {"file_open_failed", "file_not_regular", "file_read_failed"};
  const std::string state = std::string(kEvents[static_cast<int>(problem)]) + ": " + detail;
  auto& logged = problems_[path];
  if (logged == state) return;
  logged = state;
  switch (problem) {
    case Problem::Open:
      stats_.openFailures.fetch_add(1, std::memory_order_relaxed);
      break;
    case Problem::NotRegular:
      stats_.notRegular.fetch_add(1, std::memory_order_relaxed);
      break;
    case Problem::Read:
      stats_.readErrors.fetch_add(1, std::memory_order_relaxed);
      break;
  }
  log::event(*log::component("tailer"), spdlog::level::warn, kEvents[static_cast<int>(problem)],
             {{"input", cfg_.name},
              {"path", path},
              {problem == Problem::NotRegular ? "type" : "error", detail},
              {"effect", "not read; looked at again at each rescan, logged again when this changes"}});
}

void FileTailer::noteReadError(TailedFile& f, int error) {
  if (f.readError == error) return;
  f.readError = error;
  stats_.readErrors.fetch_add(1, std::memory_order_relaxed);
  log::event(*log::component("tailer"), spdlog::level::warn, "file_read_failed",
             {{"input", cfg_.name},
              {"path", f.path},
              {"offset", f.offset},
              {"error", std::strerror(error)},
              {"effect", "reading stops here and is tried again at each poll; the checkpoint stays"}});
}

void FileTailer::scan(bool startup) {
  std::set<std::string> matched;
  for (const auto& pattern : cfg_.paths) {
    glob_t g{};
    const int rc = glob(pattern.c_str(), GLOB_NOSORT | GLOB_BRACE, nullptr, &g);
    if (rc == 0) {
      for (std::size_t i = 0; i < g.gl_pathc; ++i) {
        if (!excluded(g.gl_pathv[i])) matched.emplace(g.gl_pathv[i]);
      }
    } else if (rc != GLOB_NOMATCH) {
      // Without GLOB_ERR an unreadable directory is skipped, so only running out of memory gets here.
      noteProblem(pattern, Problem::Read, rc == GLOB_NOSPACE ? "glob: out of memory" : "glob failed");
      matched.insert(pattern);  // keeps the problem from being forgotten (and logged again) below
    }
    globfree(&g);
  }
  // Problems of paths no longer matched are forgotten: such a path that comes back is news again.
  std::erase_if(problems_, [&](const auto& kv) { return !matched.contains(kv.first); });

  std::vector<std::pair<std::string, FileKey>> candidates;
  std::set<FileKey> present;
  for (const auto& path : matched) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      // Gone between glob and stat (a rotation): nothing to say. Anything else is worth knowing once.
      if (errno != ENOENT) noteProblem(path, Problem::Open, std::strerror(errno));
      continue;
    }
    if (!S_ISREG(st.st_mode)) {
      noteProblem(path, Problem::NotRegular, fileType(st.st_mode));
      continue;
    }
    const FileKey key{st.st_dev, st.st_ino};
    present.insert(key);
    if (files_.contains(key)) {
      problems_.erase(path);  // followed, maybe through another path
      continue;
    }
    // Closed while idle and not grown since: nothing to read (a file shorter now is read again: open()
    // sees the truncation against its checkpoint).
    if (const auto closed = closedIdle_.find(key);
        closed != closedIdle_.end() && static_cast<std::uint64_t>(st.st_size) == closed->second) {
      continue;
    }
    candidates.emplace_back(path, key);
  }
  refreshRenamed(present);
  if (startup) {
    findRenamed(present);
  } else {
    // A file closed while idle that no glob matches now was renamed (rotated) meanwhile, maybe after it grew.
    std::set<FileKey> renamed;
    for (const auto& [key, size] : closedIdle_) {
      if (!present.contains(key)) renamed.insert(key);
    }
    if (!renamed.empty()) findRenamed(present, &renamed);
    for (const auto& key : renamed) closedIdle_.erase(key);
  }
  // Renamed files come first among those waiting as long: a rotated file is read before its successor.
  std::vector<std::pair<std::string, FileKey>> waitingFiles;
  waitingFiles.reserve(renamed_.size() + candidates.size());
  for (const auto& [key, r] : renamed_) waitingFiles.emplace_back(std::string(), key);
  waitingFiles.insert(waitingFiles.end(), candidates.begin(), candidates.end());
  // The longest waiting first, so that every file gets its turn when more match than max_open_files.
  const auto now = Clock::now();
  for (const auto& [path, key] : waitingFiles) waitingSince_.try_emplace(key, now);
  std::stable_sort(waitingFiles.begin(), waitingFiles.end(),
                   [&](const auto& a, const auto& b) { return waitingSince_[a.second] < waitingSince_[b.second]; });
  std::erase_if(waitingSince_,
                [&](const auto& kv) { return !present.contains(kv.first) && !renamed_.contains(kv.first); });
  waiting_.assign(std::make_move_iterator(waitingFiles.begin()), std::make_move_iterator(waitingFiles.end()));
  admitWaiting(startup);
  stats_.filesUnreadable.store(problems_.size(), std::memory_order_relaxed);
}

void FileTailer::admitWaiting(bool startup) {
  while (!waiting_.empty() && files_.size() < cfg_.maxOpenFiles) {
    const auto [path, key] = std::move(waiting_.front());
    waiting_.pop_front();
    if (files_.contains(key)) continue;  // two matched paths of one file
    if (path.empty()) {
      openRenamed(key);
    } else {
      open(path, key, startup);
    }
    if (files_.contains(key)) {
      waitingSince_.erase(key);
      closedIdle_.erase(key);
    }
  }
  std::erase_if(waiting_, [&](const auto& w) { return files_.contains(w.second); });
  stats_.filesWaiting.store(waiting_.size(), std::memory_order_relaxed);
}

void FileTailer::refreshRenamed(const std::set<FileKey>& matched) {
  std::set<FileKey> moved;
  for (auto it = renamed_.begin(); it != renamed_.end();) {
    const auto& [key, r] = *it;
    struct stat st {};
    if (matched.contains(key) || files_.contains(key)) {
      it = renamed_.erase(it);  // a candidate like any matched file, or followed already
      continue;
    }
    if (::stat(r.foundAt.c_str(), &st) != 0 || FileKey{st.st_dev, st.st_ino} != key) moved.insert(key);
    ++it;
  }
  if (moved.empty()) return;
  // Renamed again while waiting (logrotate shifts app.log.1 to app.log.2), or deleted: its bytes are lost then.
  for (const auto& key : moved) renamed_.erase(key);
  findRenamed(matched, &moved);
}

void FileTailer::findRenamed(const std::set<FileKey>& matched, const std::set<FileKey>* only) {
  std::map<std::string, std::vector<checkpoint::Entry>> byDirectory;
  for (auto& e : checkpoints_.entries()) {
    const FileKey key{e.id.device, e.id.inode};
    if (e.input != cfg_.name || matched.contains(key) || files_.contains(key) || renamed_.contains(key)) continue;
    if (only != nullptr && !only->contains(key)) continue;
    const std::string directory = std::filesystem::path(e.path).parent_path().string();
    // A file followed through a symlink (Kubernetes' /var/log/containers) is rotated beside its target.
    std::error_code ec;
    const auto target = std::filesystem::canonical(e.path, ec);
    if (!ec && target.parent_path() != std::filesystem::path(directory)) {
      byDirectory[target.parent_path().string()].push_back(e);
    }
    byDirectory[directory].push_back(std::move(e));
  }
  for (const auto& [directory, entries] : byDirectory) {
    DIR* dir = ::opendir(directory.empty() ? "." : directory.c_str());
    if (dir == nullptr) continue;  // gone with its files: their entries expire
    const int dirFd = ::dirfd(dir);
    errno = 0;
    while (const dirent* d = ::readdir(dir)) {
      struct stat st {};
      if (::fstatat(dirFd, d->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) continue;
      const auto e = std::find_if(entries.begin(), entries.end(), [&](const checkpoint::Entry& x) {
        return x.id.device == static_cast<std::uint64_t>(st.st_dev) &&
               x.id.inode == static_cast<std::uint64_t>(st.st_ino);
      });
      if (e == entries.end() || static_cast<std::uint64_t>(st.st_size) <= e->offset) continue;  // nothing left to read
      // Found in both the symlink's directory and its target's: the first one counts.
      renamed_.try_emplace(FileKey{e->id.device, e->id.inode},
                           RenamedFile{*e, (std::filesystem::path(directory) / d->d_name).string()});
    }
    ::closedir(dir);
  }
}

void FileTailer::openRenamed(const FileKey& key) {
  const auto it = renamed_.find(key);
  if (it == renamed_.end()) return;
  const int fd = openForReading(it->second.foundAt.c_str());
  if (fd < 0) {
    const int error = errno;
    if (error == ENOENT) return;  // renamed again since it was found: the next scan looks for it (refreshRenamed)
    noteProblem(it->second.foundAt, Problem::Open, std::strerror(error));
    renamed_.erase(it);
    return;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    noteProblem(it->second.foundAt, Problem::Read, std::strerror(errno));
    ::close(fd);
    renamed_.erase(it);
    return;
  }
  if (FileKey{st.st_dev, st.st_ino} != key) {
    ::close(fd);
    return;  // another file at that path now: as above
  }
  const RenamedFile r = std::move(it->second);
  renamed_.erase(it);
  const auto found = checkpoints_.find(cfg_.name, fd, key.first, key.second);
  const auto id = checkpoint::identify(fd);
  if (found.kind != checkpoint::Lookup::Kind::Same || !id) {
    ::close(fd);  // another file on that inode now, or unreadable: the entry is not this file's
    return;
  }
  stats_.rotations.fetch_add(1, std::memory_order_relaxed);
  log::event(*log::component("tailer"), spdlog::level::info, "file_found_renamed",
             {{"input", cfg_.name},
              {"path", r.entry.path},
              {"now_at", r.foundAt},
              {"offset", found.entry.offset},
              {"size", st.st_size}});
  // Followed under its old path, as a file rotated while running is: drained before its successor.
  follow(r.entry.path, fd, *id, found.entry.offset, static_cast<std::uint64_t>(st.st_size), true, r.foundAt);
}

void FileTailer::open(const std::string& path, const FileKey& expected, bool startup) {
  auto logger = log::component("tailer");
  const int fd = openForReading(path.c_str());
  if (fd < 0) {
    // Gone since it was matched (a rotation): nothing to say, the next scan finds where it went.
    if (errno != ENOENT) {
      noteProblem(path, Problem::Open, std::strerror(errno));
    } else {
      rescanNow_ = true;
    }
    return;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    noteProblem(path, Problem::Read, std::strerror(errno));
    ::close(fd);
    return;
  }
  if (FileKey{st.st_dev, st.st_ino} != expected) {
    // Another file at the path since it was matched (a rotation while it waited for a place): neither
    // is taken here. The one followed already stays as it is; the next scan finds where each one went.
    ::close(fd);
    rescanNow_ = true;
    return;
  }
  if (!S_ISREG(st.st_mode)) {  // replaced since it was looked at
    noteProblem(path, Problem::NotRegular, fileType(st.st_mode));
    ::close(fd);
    return;
  }
  const auto id = checkpoint::identify(fd);
  if (!id) {
    noteProblem(path, Problem::Read, std::strerror(errno));
    ::close(fd);
    return;
  }
  const auto size = static_cast<std::uint64_t>(st.st_size);
  std::uint64_t offset = 0;
  const auto found = checkpoints_.find(cfg_.name, fd, st.st_dev, st.st_ino);
  switch (found.kind) {
    case checkpoint::Lookup::Kind::Same:
    case checkpoint::Lookup::Kind::Replaced:
      if (found.kind == checkpoint::Lookup::Kind::Same && found.entry.offset <= size) {
        offset = found.entry.offset;
      } else if (size < found.entry.offset) {
        // Truncated while we were down (its first bytes may be new too): what is there now is unread.
        stats_.truncations.fetch_add(1, std::memory_order_relaxed);
        log::event(*logger, spdlog::level::info, "file_truncated",
                   {{"input", cfg_.name}, {"path", path}, {"size", size}, {"checkpoint", found.entry.offset}});
      } else {
        log::event(*logger, spdlog::level::info, "file_replaced",
                   {{"input", cfg_.name},
                    {"path", path},
                    {"checkpoint_path", found.entry.path},
                    {"reason", "its inode starts with other bytes than the checkpointed file"}});
      }
      break;
    case checkpoint::Lookup::Kind::Error:
      noteProblem(path, Problem::Read, "reading its first bytes failed");
      ::close(fd);
      return;
    case checkpoint::Lookup::Kind::New:
      // start_at is for the files present at the input's first start only: after that, a file never
      // seen was written while we were not looking, and all of it is unread.
      // The line being written then is not skipped in part: it is read whole once its newline comes.
      if (startup && firstStart_ && cfg_.startAt == config::StartAt::End) {
        offset = lastLineStart(fd, size, cfg_.maxLineBytes.value);
      }
      break;
  }
  problems_.erase(path);

  // A new file at a followed path means the old one was rotated: let it know before reading either.
  for (auto& [key, other] : files_) {
    if (other->path == path && !other->released) checkFile(*other, Clock::now());
  }
  follow(path, fd, *id, offset, size, false);
}

void FileTailer::follow(const std::string& path, int fd, const checkpoint::FileId& id, std::uint64_t offset,
                        std::uint64_t size, bool released, const std::string& foundAt) {
  auto f = std::make_unique<TailedFile>(cfg_.maxLineBytes.value);
  f->path = path;
  f->fd = fd;
  f->id = id;
  f->offset = offset;
  f->size = size;
  f->released = released;
  f->lastData = Clock::now();
  auto source = std::make_shared<base::Source>();
  source->input = cfg_.name;
  source->path = path;
  source->fields = fields_;
  decode::fillKubernetesMetadata(path, *source);
  f->decoder = std::make_unique<decode::Decoder>(cfg_, std::move(source), decodeStats_);
  f->target = std::make_shared<CommitTarget>();
  f->target->id = id;
  f->target->path = path;
  f->cursor = std::make_shared<SourceCursor>(
      offset, [store = &checkpoints_, target = f->target, input = cfg_.name](std::uint64_t committed) {
        std::lock_guard lock(target->mutex);
        store->update(input, target->id, target->path, committed, std::chrono::system_clock::now());
      });
  std::erase_if(cursors_, [](const std::weak_ptr<SourceCursor>& c) { return c.expired(); });
  cursors_.push_back(f->cursor);
  // Record the start point at once: a restart before the first line must find the file known.
  checkpoints_.update(cfg_.name, id, path, offset, std::chrono::system_clock::now());
  if (inotifyFd_ >= 0) {
    f->watch = watch(foundAt.empty() ? path : foundAt, IN_MODIFY | IN_ATTRIB | IN_MOVE_SELF | IN_DELETE_SELF);
  }
  log::event(*log::component("tailer"), spdlog::level::info, "file_opened",
             {{"input", cfg_.name}, {"path", path}, {"offset", offset}, {"size", size}});
  files_.emplace(FileKey{id.device, id.inode}, std::move(f));
  stats_.filesOpen.store(files_.size(), std::memory_order_relaxed);
}

void FileTailer::push(TailedFile& f, Chunk&& chunk) {
  pushRecords(queue_, stats_, std::move(chunk), f.cursor, &stopping_);
}

bool FileTailer::readSome(TailedFile& f) {
  if (!buffer_) buffer_ = std::make_unique_for_overwrite<char[]>(kReadBytes);
  ssize_t n = 0;
  do {
    n = ::pread(f.fd, buffer_.get(), kReadBytes, static_cast<off_t>(f.offset));
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    noteReadError(f, errno);
    return false;
  }
  if (f.readError != 0) {
    log::event(*log::component("tailer"), spdlog::level::info, "file_read_recovered",
               {{"input", cfg_.name}, {"path", f.path}, {"offset", f.offset}});
    f.readError = 0;
  }
  if (n == 0) return false;
  const auto now = Clock::now();
  if (f.offset > 0) {
    // The bytes before the offset must still be the ones read: a copytruncate that grew back past the
    // offset between two looks at the file leaves it no shorter, only with other first bytes.
    switch (checkpoint::compare(f.fd, f.id)) {
      case checkpoint::Match::Same:
      case checkpoint::Match::OtherFile:  // cannot happen on an open descriptor
        break;
      case checkpoint::Match::Reused:
        restartFromTop(f, "rewritten from its start", now);
        return true;
      case checkpoint::Match::Error:
        noteReadError(f, errno);
        return false;
    }
  }
  const auto size = static_cast<std::size_t>(n);
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

bool FileTailer::atEnd(TailedFile& f) {
  struct stat st {};
  if (::fstat(f.fd, &st) != 0) {
    noteReadError(f, errno);
    return false;
  }
  return static_cast<std::uint64_t>(st.st_size) <= f.offset;
}

void FileTailer::flushLine(TailedFile& f, Clock::time_point now, Chunk& chunk) {
  if (!f.splitter.holding()) return;
  stats_.partialLines.fetch_add(1, std::memory_order_relaxed);
  const auto readTime = std::chrono::system_clock::now();
  f.splitter.flush(f.offset, [&](std::string_view line, std::uint64_t end, bool truncated) {
    if (truncated) stats_.truncated.fetch_add(1, std::memory_order_relaxed);
    f.decoder->line(line, end, truncated, readTime, now, chunk);
  });
}

void FileTailer::flushTimedOut(TailedFile& f, Clock::time_point now) {
  const bool lineDue = f.splitter.holding() && now - f.lastData >= timings_.partialLine;
  const auto deadline = f.decoder->deadline();
  const bool recordDue = deadline && *deadline <= now;
  // While bytes wait in the file (the queue held the reader back), they may complete what is held.
  if ((!lineDue && !recordDue) || !atEnd(f)) return;
  Chunk chunk;
  if (lineDue) flushLine(f, now, chunk);
  if (recordDue) f.decoder->flush(now, false, chunk);
  push(f, std::move(chunk));
}

void FileTailer::flushAll(TailedFile& f, Clock::time_point now) {
  Chunk chunk;
  flushLine(f, now, chunk);
  f.decoder->flush(now, true, chunk);
  push(f, std::move(chunk));
}

void FileTailer::restartFromTop(TailedFile& f, std::string_view why, Clock::time_point now) {
  // The content read so far is gone: what is held of it goes out, then the file is read from the top.
  flushAll(f, now);
  f.splitter.reset();
  f.offset = 0;
  if (auto id = checkpoint::identify(f.fd)) {
    f.id = *id;
    std::lock_guard lock(f.target->mutex);
    f.target->id = *id;
  }
  f.cursor->restart(0);
  stats_.truncations.fetch_add(1, std::memory_order_relaxed);
  log::event(*log::component("tailer"), spdlog::level::info, "file_truncated",
             {{"input", cfg_.name}, {"path", f.path}, {"size", f.size}, {"how", why}});
}

void FileTailer::checkFile(TailedFile& f, Clock::time_point now) {
  auto logger = log::component("tailer");
  f.nextCheck = now + timings_.statCheck;
  struct stat st {};
  if (::fstat(f.fd, &st) != 0) {
    noteReadError(f, errno);
    return;
  }
  const auto size = static_cast<std::uint64_t>(st.st_size);
  f.size = size;
  if (size < f.offset) {
    restartFromTop(f, "shrank below the read offset", now);
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
    flushAll(f, now);
    // A renamed file may still match the glob (app.log.1 under app.log*): closed while its records are
    // in flight, it would be opened again at its checkpoint and they would be read twice. A deleted one
    // cannot be opened again.
    if (st.st_nlink == 0 || f.cursor->idle()) release(f);
  }
}

bool FileTailer::closeIfDone(TailedFile& f, Clock::time_point now) {
  if (f.released || f.offset < f.size || f.splitter.holding() || f.decoder->deadline()) return false;
  const bool othersWait = stats_.filesWaiting.load(std::memory_order_relaxed) > 0;
  if (!othersWait && now - f.lastData < cfg_.closeInactive) return false;
  if (!f.cursor->idle()) return false;  // its records are in flight: reopened, they would be read twice
  struct stat st {};
  if (::fstat(f.fd, &st) != 0 || st.st_nlink == 0 || static_cast<std::uint64_t>(st.st_size) != f.offset) {
    return false;  // grew since the last look, or deleted: read on
  }
  closeDescriptor(f);
  log::event(*log::component("tailer"), spdlog::level::debug, "file_closed",
             {{"input", cfg_.name},
              {"path", f.path},
              {"offset", f.offset},
              {"reason", othersWait ? "read to its end while files wait for a place" : "inactive"}});
  return true;
}

void FileTailer::closeDescriptor(TailedFile& f) {
  // EINVAL: the watch went with its file (deleted); there is nothing else to undo.
  if (f.watch >= 0 && inotifyFd_ >= 0) inotify_rm_watch(inotifyFd_, f.watch);
  ::close(f.fd);
  f.fd = -1;
  f.closed = true;
}

void FileTailer::release(TailedFile& f) {
  flushAll(f, Clock::now());
  closeDescriptor(f);
  log::event(*log::component("tailer"), spdlog::level::info, "file_closed",
             {{"input", cfg_.name}, {"path", f.path}, {"offset", f.offset}});
}

void FileTailer::waitForEvents(std::chrono::milliseconds timeout) {
  pollfd fds[2] = {{wakeup_.fd(), POLLIN, 0}, {inotifyFd_, POLLIN, 0}};
  const int count = inotifyFd_ >= 0 ? 2 : 1;
  const int ready = ::poll(fds, count, static_cast<int>(std::max<std::int64_t>(timeout.count(), 0)));
  if (ready < 0 && errno != EINTR) {
    if (!pollFailed_) {
      pollFailed_ = true;
      log::event(*log::component("tailer"), spdlog::level::err, "poll_failed",
                 {{"input", cfg_.name}, {"error", std::strerror(errno)}, {"fallback", "sleeping the poll interval"}});
    }
    std::this_thread::sleep_for(timeout);  // never a busy loop
    return;
  }
  if (ready <= 0) return;
  alignas(inotify_event) char events[4096];
  if (fds[0].revents & POLLIN) wakeup_.clear();
  if (count == 2 && (fds[1].revents & POLLIN)) {
    ssize_t n = 0;
    while ((n = ::read(inotifyFd_, events, sizeof events)) > 0) {
      for (ssize_t i = 0; i < n;) {
        const auto* e = reinterpret_cast<const inotify_event*>(events + i);
        if (e->mask & (IN_CREATE | IN_MOVED_TO | IN_Q_OVERFLOW)) rescanNow_ = true;  // a directory gained an entry
        if (e->mask & IN_IGNORED) {
          // A watched directory went away: watch it again once it is back.
          for (auto& [dir, wd] : directoryWatches_) {
            if (wd == e->wd) wd = -1;
          }
        }
        i += static_cast<ssize_t>(sizeof(inotify_event) + e->len);
      }
    }
    if (n < 0 && errno != EAGAIN && errno != EINTR && !pollFailed_) {
      pollFailed_ = true;
      rescanNow_ = true;
      log::event(*log::component("tailer"), spdlog::level::err, "inotify_read_failed",
                 {{"input", cfg_.name}, {"error", std::strerror(errno)}, {"fallback", "polling"}});
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

Clock::time_point FileTailer::nextWake(Clock::time_point now, Clock::time_point nextScan,
                                       Clock::time_point nextTouch) const {
  auto wake = std::min(nextScan, nextTouch);
  // Without an event for each change (no inotify, a watch refused, no eventfd for stop()), poll.
  bool polling = inotifyFd_ < 0 || pollFailed_ || wakeup_.fd() < 0;
  const auto soonest = [&](Clock::time_point due) {
    // A due time already past did not resolve (the file is not read to its end yet, its records are in
    // flight): the file's next check looks again, rather than a busy loop.
    if (due > now) wake = std::min(wake, due);
  };
  for (const auto& [key, f] : files_) {
    if (f->watch < 0) polling = true;
    wake = std::min(wake, f->nextCheck);
    if (f->splitter.holding()) soonest(f->lastData + timings_.partialLine);
    if (const auto deadline = f->decoder->deadline()) soonest(*deadline);
    soonest(f->lastData + cfg_.closeInactive);
  }
  if (polling) wake = std::min(wake, now + timings_.poll);
  return wake;
}

void FileTailer::run() {
  const auto started = Clock::now();
  auto nextScan = started + timings_.rescan;
  auto nextTouch = started + timings_.checkpointTouch;
  while (!stopping_.load()) {
    // The periodic tasks are due from the turn's start, so that tasks of one period stay in one wake-up.
    const auto turn = Clock::now();
    if (turn >= nextScan || rescanNow_) {
      rescanNow_ = false;
      watchDirectories();
      scan(false);
      // A scan for an inotify event leaves the periodic one where it is, in step with the touch.
      if (turn >= nextScan) nextScan = turn + timings_.rescan;
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
    const auto now = Clock::now();
    for (auto& [key, f] : files_) {
      if (now >= f->nextCheck) checkFile(*f, now);
      if (!f->closed) flushTimedOut(*f, now);
      if (!f->closed && closeIfDone(*f, now)) closedIdle_[key] = f->offset;
    }
    // A place freed while files wait is given at once rather than at the next periodic scan.
    if (std::erase_if(files_, [](const auto& kv) { return kv.second->closed; }) > 0 && !waiting_.empty()) {
      admitWaiting(false);
      more = true;  // what was opened is read before any wait
    }
    stats_.filesOpen.store(files_.size(), std::memory_order_relaxed);
    updateLag();
    if (turn >= nextTouch) {
      // Open files are present even when idle; entries of files gone past the retention are dropped.
      // The pipeline's CheckpointSaver writes them: a slow fsync never holds up reading.
      const auto wall = std::chrono::system_clock::now();
      for (const auto& [key, f] : files_) checkpoints_.touch(cfg_.name, key.first, key.second, wall);
      for (const auto& [key, size] : closedIdle_) checkpoints_.touch(cfg_.name, key.first, key.second, wall);
      for (const auto& [key, r] : renamed_) checkpoints_.touch(cfg_.name, key.first, key.second, wall);
      checkpoints_.touchInput(cfg_.name, wall);
      checkpoints_.expire(wall);
      nextTouch = turn + timings_.checkpointTouch;
    }
    if (!more && !rescanNow_) {
      // Sleeps until an inotify event, a stop, or the next task due: an idle input wakes only for its
      // periodic scan and checkpoint touch while every file is closed.
      const auto wakeAt = nextWake(Clock::now(), nextScan, nextTouch);
      waitForEvents(std::chrono::ceil<std::chrono::milliseconds>(wakeAt - Clock::now()));
    }
  }
  // What is held stays out of the checkpoints: after a restart (or by this input's replacement at a
  // reload) it is read again, whole. Only a deleted file's bytes cannot be read again, so they go out.
  // What the sinks finish from here on reaches the file through the store's owner (the pipeline saves
  // last, after the sinks).
  const auto now = Clock::now();
  for (auto& [key, f] : files_) {
    struct stat st {};
    if (::fstat(f->fd, &st) == 0 && st.st_nlink == 0) flushAll(*f, now);
  }
}

}  // namespace logcapture::agent
