#pragma once

// The file input: follows the files matching an input's glob patterns, through renames,
// copytruncate and deletion, resuming from checkpoints.
//
// Where a file is read from: at the input's very first start (no checkpoint state for it yet), the files
// present then start at start_at; every other file not seen before starts at its first byte. A
// checkpointed file resumes at its checkpoint, found by its identity (device, inode, fingerprint) under
// the glob or, renamed by a rotation while the agent was down, in its old directory (for a file followed
// through a symlink, also in the directory of the symlink's target); one now shorter
// than its checkpoint, or starting with other bytes, was truncated and is read from its start.
// Under max_open_files, a file found renamed (at start, or after it was closed while idle) waits for a
// place as a matched file does, ahead of those waiting as long, and is read to its end once it has one.
//
// Lines: a line goes out when its newline is read. An incomplete last line goes out on its own only
// once every byte of the file is read and the file has not grown for partial_line (a full queue
// holding the reader back never cuts a line); at stop it stays out of the checkpoint and is read again,
// whole, after the restart.
//
// NOTE on threads: one thread per file input runs run(); it alone touches files_, the decoders and the
// bookkeeping of problems and watches. start() (which scans once on the caller's thread, before the
// thread exists) and stop() come from the pipeline's thread. Acks finish on sink threads and reach the
// CheckpointStore (its own mutex) through each file's SourceCursor. stopping_ is the only state shared
// with stop(); wakeup_ interrupts the thread's poll. stats_ are relaxed atomics read by metrics.

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "agent/inputs/checkpoint/checkpoint.h"
#include "agent/inputs/decode/decoder.h"
#include "agent/inputs/input.h"
#include "agent/inputs/line_splitter.h"
#include "agent/pipeline/ack.h"
#include "agent/pipeline/queue.h"
#include "config/config.h"

namespace logcapture::agent {

// Timings of the tailer; tests shorten them.
struct TailerTimings {
  std::chrono::milliseconds rescan{1000};    // glob again for new files (inotify wakes us earlier)
  std::chrono::milliseconds statCheck{250};  // look for rotation, truncation, deletion
  std::chrono::milliseconds poll{250};       // longest sleep without inotify events
  // A rotated or deleted file idle this long is closed; a rotated one not before its records are finished with.
  std::chrono::milliseconds releaseIdle{5000};
  std::chrono::milliseconds partialLine{5000};      // an incomplete last line is flushed after this
  std::chrono::milliseconds checkpointTouch{1000};  // mark open files present, expire entries of gone ones
};

class FileTailer final : public Input {
 public:
  FileTailer(const config::InputConfig& cfg, RecordQueue& queue, checkpoint::CheckpointStore& checkpoints,
             TailerTimings timings = {});
  ~FileTailer() override;

  const std::string& name() const override { return cfg_.name; }
  bool start() override;
  void stop(base::Deadline deadline) override;
  bool settled() const override;
  const InputStats& stats() const override { return stats_; }
  const decode::DecodeStats* decodeStats() const override { return &decodeStats_; }

 private:
  struct TailedFile;
  using FileKey = std::pair<std::uint64_t, std::uint64_t>;  // device, inode
  // Why a matched path is not followed; each is logged and counted once per path and state.
  enum class Problem { Open, NotRegular, Read };

  void run();
  void scan(bool startup);
  // Opens the next of waiting_ while there are places under max_open_files.
  void admitWaiting(bool startup);
  // Follows the file at `path` when it is still the file `expected` that a scan matched there.
  void open(const std::string& path, const FileKey& expected, bool startup);
  // Finds the checkpointed files of this input that no glob matches any more (renamed while the agent
  // was down) by their identity in their directory, and puts those with bytes left to read in renamed_,
  // where they wait for a place like any matched file.
  // `only`: look for these files alone (closed while idle, or renamed again, no longer matched), not every entry.
  void findRenamed(const std::set<FileKey>& matched, const std::set<FileKey>* only = nullptr);
  // Forgets the renamed files matched or followed again, and looks again for those moved since they were found.
  void refreshRenamed(const std::set<FileKey>& matched);
  // Opens a file of renamed_ where it was found, to read it to its end, and forgets it there.
  void openRenamed(const FileKey& key);
  // Closes a file that is read to its end, holds nothing and whose records are all finished with, when
  // it has been idle for close_inactive or files wait for its place; its checkpoint is where it stopped.
  // True when it closed it.
  bool closeIfDone(TailedFile& f, std::chrono::steady_clock::time_point now);
  // `foundAt`: where a renamed file is now (watched there), when it is followed under its old `path`.
  void follow(const std::string& path, int fd, const checkpoint::FileId& id, std::uint64_t offset, std::uint64_t size,
              bool released, const std::string& foundAt = {});
  bool readSome(TailedFile& f);
  void checkFile(TailedFile& f, std::chrono::steady_clock::time_point now);
  void restartFromTop(TailedFile& f, std::string_view why, std::chrono::steady_clock::time_point now);
  void release(TailedFile& f);
  // Unwatches and closes the file's descriptor and marks it closed (run() then forgets it).
  void closeDescriptor(TailedFile& f);
  // What is held goes out once nothing in the file can complete it (see the note at the top).
  void flushTimedOut(TailedFile& f, std::chrono::steady_clock::time_point now);
  // Everything held goes out: no more bytes will come (rotated and drained, deleted, truncated).
  void flushAll(TailedFile& f, std::chrono::steady_clock::time_point now);
  void flushLine(TailedFile& f, std::chrono::steady_clock::time_point now, Chunk& chunk);
  bool atEnd(TailedFile& f);
  void push(TailedFile& f, Chunk&& chunk);
  bool excluded(const std::string& path) const;
  void waitForEvents(std::chrono::milliseconds timeout);
  // When run() must turn next without an event: the periodic scan or touch, a file's check or flush.
  std::chrono::steady_clock::time_point nextWake(std::chrono::steady_clock::time_point now,
                                                 std::chrono::steady_clock::time_point nextScan,
                                                 std::chrono::steady_clock::time_point nextTouch) const;
  void watchDirectories();
  int watch(const std::string& path, std::uint32_t mask);
  void noteProblem(const std::string& path, Problem problem, const std::string& detail);
  void noteReadError(TailedFile& f, int error);
  void updateLag();

  config::InputConfig cfg_;
  RecordQueue& queue_;
  checkpoint::CheckpointStore& checkpoints_;
  const TailerTimings timings_;
  std::shared_ptr<const std::map<std::string, std::string>> fields_;
  InputStats stats_;
  decode::DecodeStats decodeStats_;
  std::map<FileKey, std::unique_ptr<TailedFile>> files_;
  // Every cursor this tailer opened, released files' too: their records may still be in flight.
  // Written by the tailer thread; read by settled() once the thread has stopped.
  std::vector<std::weak_ptr<SourceCursor>> cursors_;
  // The next read's buffer: a chunk that views its lines takes it along, and the next read allocates another.
  std::unique_ptr<char[]> buffer_;
  std::size_t bytesPerRecord_ = 128;  // as in the last read, to size the next chunk's records
  int inotifyFd_ = -1;
  std::map<std::string, int> directoryWatches_;  // the glob's fixed directories: watch descriptor, -1 while failing
  std::set<int> watchErrorsLogged_;              // errno values of inotify_add_watch already logged
  std::map<std::string, std::string> problems_;  // matched paths not followed: what was logged of them
  // Files closed by closeIfDone(): the size they had then. Opened again when they have grown; touched in
  // the checkpoints as long as they are present, so an idle file's entry never expires.
  std::map<FileKey, std::uint64_t> closedIdle_;
  // A checkpointed file found renamed away from the globs with bytes left to read: its entry (under
  // its old path), and the path it was found at.
  struct RenamedFile {
    checkpoint::Entry entry;
    std::string foundAt;
  };
  // Renamed files waiting for a place under max_open_files; touched in the checkpoints while they wait.
  std::map<FileKey, RenamedFile> renamed_;
  // Matched and renamed files waiting for a place under max_open_files, and since when: the longest
  // waiting opens first.
  std::map<FileKey, std::chrono::steady_clock::time_point> waitingSince_;
  // The files the last scan left waiting, in the order they get a place (a renamed file with an empty
  // path). A place freed between scans goes to the next of them: with thousands of files, a scan of
  // every path for each freed place cost more than reading them.
  std::deque<std::pair<std::string, FileKey>> waiting_;
  bool firstStart_ = false;  // no checkpoint state of this input before this start
  bool pollFailed_ = false;  // poll() or reading inotify events failed (logged once)
  Wakeup wakeup_;
  bool rescanNow_ = false;  // inotify saw a new directory entry, or lost events
  std::atomic<bool> stopping_{false};
  std::thread thread_;
  bool started_ = false;
};

}  // namespace logcapture::agent
