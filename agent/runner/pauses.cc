#include "agent/runner/pauses.h"

#include <algorithm>

namespace logcapture::agent {

bool Pauses::pause(std::chrono::nanoseconds delay) {
  const auto until = std::min(Clock::now() + delay, hardDeadline());
  std::unique_lock lock(mutex_);
  const std::uint64_t epoch = epoch_;
  changed_.wait_until(lock, until, [&] { return pastHardDeadline() || epoch_ != epoch; });
  return !pastHardDeadline();
}

void Pauses::pauseWhile(const std::function<bool()>& holds) {
  std::unique_lock lock(mutex_);
  const auto over = [&] { return pastHardDeadline() || !holds(); };
  while (!over()) {
    const auto deadline = hardDeadline();
    if (deadline == Clock::time_point::max()) {
      changed_.wait(lock);
    } else {
      changed_.wait_until(lock, deadline);
    }
  }
}

void Pauses::wake() {
  {
    std::lock_guard lock(mutex_);
    ++epoch_;
  }
  changed_.notify_all();
}

void Pauses::setHardDeadline(Clock::time_point deadline) {
  hardDeadlineNs_ = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.time_since_epoch()).count();
  wake();
}

Pauses::Clock::time_point Pauses::hardDeadline() const {
  return Clock::time_point(std::chrono::nanoseconds(hardDeadlineNs_.load()));
}

}  // namespace logcapture::agent
