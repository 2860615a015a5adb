#pragma once

// The file input: follows the files matching an input's glob patterns, through renames,
// copytruncate and deletion, resuming from checkpoints.
//
// NOTE on threads: one thread per file input runs run(); it alone touches files_ and the decoders.
// start()/stop() come from the pipeline's thread. Acks finish on sink threads and reach the
// CheckpointStore (its own mutex) through each file's SourceCursor. stopping_ is the only state
// shared with stop(); wakeup_ interrupts the thread's poll.

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "agent/ack.h"
#include "agent/checkpoint/checkpoint.h"
#include "agent/decode/decoder.h"
#include "agent/input.h"
#include "agent/line_splitter.h"
#include "agent/queue.h"
#include "config/config.h"

namespace logcapture::agent {

// Timings of the tailer; tests shorten them.
struct TailerTimings {
  std::chrono::milliseconds rescan{1000};           // glob again for new files (inotify wakes us earlier)
  std::chrono::milliseconds statCheck{250};         // look for rotation, truncation, deletion
  std::chrono::milliseconds poll{250};              // longest sleep without inotify events
  std::chrono::milliseconds releaseIdle{5000};      // a rotated or deleted file idle this long is closed
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
  void stop(Deadline deadline) override;
  bool settled() const override;
  const InputStats& stats() const override { return stats_; }
  const decode::DecodeStats* decodeStats() const override { return &decodeStats_; }

 private:
  struct TailedFile;
  using FileKey = std::pair<std::uint64_t, std::uint64_t>;  // device, inode

  void run();
  void scan(bool startup);
  void open(const std::string& path, bool startup);
  bool readSome(TailedFile& f);
  void checkFile(TailedFile& f, std::chrono::steady_clock::time_point now);
  void release(TailedFile& f);
  void flushHeld(TailedFile& f, bool force, std::chrono::steady_clock::time_point now);
  void push(TailedFile& f, Chunk&& chunk);
  bool excluded(const std::string& path) const;
  void waitForEvents(std::chrono::milliseconds timeout);
  void watchDirectories();
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
  Wakeup wakeup_;
  bool rescanNow_ = false;  // inotify saw a new directory entry
  std::atomic<bool> stopping_{false};
  std::thread thread_;
  bool started_ = false;
};

}  // namespace logcapture::agent
