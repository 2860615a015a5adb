#pragma once

// The stdin input: reads standard input until EOF, then reports finished().
//
// NOTE on threads: one reader thread runs run(); start()/stop() come from the pipeline's thread.
// stopping_ and finished_ are atomics; wakeup_ interrupts the reader's poll.

#include <atomic>
#include <chrono>
#include <thread>

#include "agent/decode/decoder.h"
#include "agent/input.h"
#include "agent/line_splitter.h"
#include "agent/queue.h"
#include "config/config.h"

namespace logcapture::agent {

class StdinInput final : public Input {
 public:
  // `fd` is standard input in the agent; tests pass a pipe. An incomplete line is sent on its own once
  // nothing more came for `partialLine` (and nothing waits to be read).
  StdinInput(const config::InputConfig& cfg, RecordQueue& queue, int fd = 0,
             std::chrono::milliseconds partialLine = std::chrono::seconds(5));
  ~StdinInput() override;

  const std::string& name() const override { return cfg_.name; }
  bool start() override;
  void stop(base::Deadline deadline) override;
  bool finished() const override { return finished_.load(); }
  const InputStats& stats() const override { return stats_; }
  const decode::DecodeStats* decodeStats() const override { return &decodeStats_; }

 private:
  void run();
  void push(Chunk&& chunk);

  config::InputConfig cfg_;
  RecordQueue& queue_;
  const int fd_;
  const std::chrono::milliseconds partialLine_;
  InputStats stats_;
  decode::DecodeStats decodeStats_;
  std::unique_ptr<decode::Decoder> decoder_;
  LineSplitter splitter_;
  Wakeup wakeup_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> finished_{false};
  std::thread thread_;
};

}  // namespace logcapture::agent
