#pragma once

// Where a runner's workers wait: a retry's backoff, the breaker's next trial, a replacement held until it
// adopts its predecessor's batches. Every wait ends early on wake() (a breaker transition, an adoption, a
// stop), and none lasts past the hard deadline, which a stop sets.
//
// Thread-safety: every member may be called from any thread.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>

namespace logcapture::agent {

class Pauses {
 public:
  using Clock = std::chrono::steady_clock;

  // Waits up to `delay`, cut short by wake() or the hard deadline; false when the deadline has passed.
  bool pause(std::chrono::nanoseconds delay);
  // Waits while `holds()` is true, with no timeout but the hard deadline. `holds` is looked at under
  // this object's lock, and whoever makes it false calls wake() after: that wake-up cannot be missed.
  void pauseWhile(const std::function<bool()>& holds);
  // Ends every wait under way; the waiters look again at what they wait for.
  void wake();
  // From now on no wait lasts past `deadline` (a stop's); waits under way end.
  void setHardDeadline(Clock::time_point deadline);
  Clock::time_point hardDeadline() const;  // far away while the runner runs
  bool pastHardDeadline() const { return Clock::now() >= hardDeadline(); }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::uint64_t epoch_ = 0;                              // guarded by mutex_; bumped on each wake()
  std::atomic<std::int64_t> hardDeadlineNs_{INT64_MAX};  // steady ns
};

}  // namespace logcapture::agent
