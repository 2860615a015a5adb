#pragma once

// The console sink: one line per record, to standard output or appended to a file (`path`).
// It is how a user tries inputs and decoding before wiring real sinks, and how the end-to-end tests
// observe the pipeline through the binary.
//
// Thread-safety: send() may be called by several runner threads; mutex_ keeps each batch's lines
// together and in order.

#include <mutex>

#include "config/config.h"
#include "sinks/sink.h"

namespace logcapture::sinks::console {

class ConsoleSink final : public Sink {
 public:
  explicit ConsoleSink(const config::SinkConfig& cfg);
  ~ConsoleSink() override;

  std::optional<std::string> start() override;
  SendResult send(const Batch& batch, base::Deadline deadline) override;
  void stop(base::Deadline deadline) override;

 private:
  std::string path_;
  std::mutex mutex_;
  int fd_ = -1;
  bool ownsFd_ = false;
};

}  // namespace logcapture::sinks::console
