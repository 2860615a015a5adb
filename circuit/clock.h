#pragma once

// The breaker's only source of time. Production uses SteadyClock; tests drive a ManualClock so that
// open timeouts, time windows and backoff are checked without sleeping.
//
// Thread-safety: now() may be called from any thread at any time, on both clocks. ManualClock's
// advance() and set() may race with now(); readers see either the old or the new time.

#include <atomic>
#include <chrono>
#include <cstdint>

namespace logcapture::circuit {

class Clock {
 public:
  using duration = std::chrono::nanoseconds;
  using time_point = std::chrono::steady_clock::time_point;
  static_assert(std::is_same_v<std::chrono::steady_clock::duration, duration>,
                "the breaker packs times as nanoseconds since the steady clock's epoch");

  virtual ~Clock() = default;
  virtual time_point now() const noexcept = 0;
};

class SteadyClock final : public Clock {
 public:
  time_point now() const noexcept override { return std::chrono::steady_clock::now(); }

  // One shared instance is enough: the clock has no state.
  static SteadyClock& instance() noexcept {
    static SteadyClock clock;
    return clock;
  }
};

// Starts an hour past the epoch so that no test time is the zero time_point, which would read as "unset".
class ManualClock final : public Clock {
 public:
  ManualClock() = default;
  explicit ManualClock(time_point start) : ns_(start.time_since_epoch().count()) {}

  time_point now() const noexcept override { return time_point(duration(ns_.load(std::memory_order_acquire))); }
  void advance(duration d) noexcept { ns_.fetch_add(d.count(), std::memory_order_acq_rel); }
  void set(time_point t) noexcept { ns_.store(t.time_since_epoch().count(), std::memory_order_release); }

 private:
  std::atomic<std::int64_t> ns_{std::chrono::nanoseconds(std::chrono::hours(1)).count()};
};

}  // namespace logcapture::circuit
