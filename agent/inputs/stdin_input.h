#pragma once

// The stdin input: reads standard input until EOF, then reports finished().
//
// NOTE on threads: one reader thread runs run(); start(), stop() and reconfigure() come from the pipeline's
// thread. stopping_, abandon_ and finished_ are atomics; next_ (guarded by nextMutex_) carries new settings
// to the reader, which alone uses cfg_, the decoder and the splitter; wakeup_ interrupts the reader's poll.
//
// Stdin cannot be read again, so a reload never rebuilds this input: reconfigure() hands the reader new
// settings, and the line in progress continues under them. stop() waits for the reader until its deadline
// (the queue may hold it back); what it still could not queue then is lost, and logged with its count.

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>

#include "agent/inputs/decode/decoder.h"
#include "agent/inputs/input.h"
#include "agent/inputs/line_splitter.h"
#include "agent/pipeline/queue.h"
#include "config/config.h"

namespace logcapture::agent {

class StdinInput final : public Input {
 public:
  // `fd` is standard input in the agent; tests pass a pipe. An incomplete line is sent on its own once
  // nothing more came for `partialLine` (and nothing waits to be read).
  StdinInput(const config::InputConfig& cfg, RecordQueue& queue, int fd = 0,
             std::chrono::milliseconds partialLine = std::chrono::seconds(5));
  ~StdinInput() override;

  const std::string& name() const override { return name_; }
  bool start() override;
  void stop(base::Deadline deadline) override;
  bool reconfigure(const config::InputConfig& next) override;
  bool finished() const override { return finished_.load(); }
  // Called on the reader thread once finished() turned true. Set before start().
  void onFinished(std::function<void()> listener) { finishedListener_ = std::move(listener); }
  const InputStats& stats() const override { return stats_; }
  const decode::DecodeStats* decodeStats() const override { return &decodeStats_; }

 private:
  void run();
  void push(Chunk&& chunk);
  // On the reader: the decoder's held records go out, then the new settings apply.
  void applyNext();

  const std::string name_;
  config::InputConfig cfg_;
  RecordQueue& queue_;
  const int fd_;
  const std::chrono::milliseconds partialLine_;
  InputStats stats_;
  decode::DecodeStats decodeStats_;
  std::unique_ptr<decode::Decoder> decoder_;
  LineSplitter splitter_;
  Wakeup wakeup_;
  std::mutex nextMutex_;
  std::optional<config::InputConfig> next_;
  std::atomic<bool> hasNext_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> abandon_{false};  // stop()'s deadline passed: a push waiting for room gives up
  std::atomic<bool> finished_{false};
  std::function<void()> finishedListener_;
  std::atomic<bool> ended_{false};  // run() returned
  std::thread thread_;
};

}  // namespace logcapture::agent
