#pragma once

// The one-line summary of a running agent (systemd's STATUS=, `systemctl status`): the rate records
// are read at and which breakers are not closed.
//
// Thread-safety: one thread at a time (the daemon's main loop, or the reloader while it holds the
// loop.s turn); summary() keeps the previous count to compute the rate.

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace logcapture::agent {

class Pipeline;

class StatusLine {
 public:
  static constexpr std::chrono::seconds kInterval{5};

  explicit StatusLine(const Pipeline& pipeline);
  // True when kInterval has passed since the last summary.
  bool due(std::chrono::steady_clock::time_point now) const;
  // When due() turns true.
  std::chrono::steady_clock::time_point dueAt() const;
  // E.g. "1200 records/s read; breakers: 2 closed, redis open".
  std::string summary(std::chrono::steady_clock::time_point now);

 private:
  const Pipeline& pipeline_;
  mutable std::mutex mutex_;  // the main loop and the reloader both summarise
  std::uint64_t lastRecords_ = 0;
  std::chrono::steady_clock::time_point lastAt_;
};

}  // namespace logcapture::agent
