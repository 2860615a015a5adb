#pragma once

// A sink's open breaker saved across restarts, under state_dir/breakers/<sink>.json: when it opens, its
// backoff level and next trial time are written there; when it closes (or an operator disables or
// resets it) the file goes. A restarted agent reopens the breaker from it, so a destination that was
// down gets one trial at its time, not every worker's traffic; a small random delay is added to that
// first trial, so that a fleet restarting together does not arrive at once. A metrics-only breaker is
// restored too, to report what an enforcing one would, but it holds nothing back: its sink sends at once.
//
// Any thread: the listener runs on whichever thread made the transition. A file that cannot be read
// or written is logged once and otherwise ignored: the breaker then starts closed, as without it.

#include <atomic>
#include <chrono>
#include <filesystem>
#include <string>

#include "circuit/breaker.h"

namespace logcapture::agent {

class BreakerRecord {
 public:
  BreakerRecord(const std::string& stateDir, std::string sink);

  // Reopens `breaker` (closed, just built) from the saved file, if any. Returns true when it did.
  bool restore(circuit::Breaker& breaker) const;
  // Saves and removes the file as the breaker's state changes. The record must outlive the breaker.
  circuit::Breaker::Listener listener();

  const std::filesystem::path& path() const { return path_; }

 private:
  void save(const circuit::Transition& t);
  void remove();
  void noteFailure(const std::string& what) const;

  const std::string sink_;
  const std::filesystem::path path_;
  mutable std::atomic<bool> failureLogged_{false};
};

}  // namespace logcapture::agent
