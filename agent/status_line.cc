#include "agent/status_line.h"

#include "agent/inputs/input.h"
#include "agent/pipeline/pipeline.h"
#include "agent/runner/sink_runner.h"

namespace logcapture::agent {

StatusLine::StatusLine(const Pipeline& pipeline) : pipeline_(pipeline), lastAt_(std::chrono::steady_clock::now()) {}

bool StatusLine::due(std::chrono::steady_clock::time_point now) const {
  std::lock_guard lock(mutex_);
  return now - lastAt_ >= kInterval;
}

std::chrono::steady_clock::time_point StatusLine::dueAt() const {
  std::lock_guard lock(mutex_);
  return lastAt_ + kInterval;
}

std::string StatusLine::summary(std::chrono::steady_clock::time_point now) {
  std::uint64_t records = 0;
  for (const auto& in : pipeline_.inputs()) records += in->stats().records.load(std::memory_order_relaxed);
  std::size_t closed = 0;
  std::string notClosed;
  for (const auto& r : pipeline_.runners()) {
    const auto state = r->breaker().state();
    if (state == circuit::State::Closed) {
      ++closed;
    } else {
      notClosed += ", " + r->name() + " " + std::string(circuit::stateName(state));
    }
  }
  std::lock_guard lock(mutex_);
  const double seconds = std::chrono::duration<double>(now - lastAt_).count();
  // Records read since the last summary; a reload may replace inputs and restart their counts.
  const std::uint64_t delta = records >= lastRecords_ ? records - lastRecords_ : records;
  const auto rate = seconds > 0 ? static_cast<std::uint64_t>(double(delta) / seconds) : 0;
  lastRecords_ = records;
  lastAt_ = now;
  return std::to_string(rate) + " records/s read; breakers: " + std::to_string(closed) + " closed" + notClosed;
}

}  // namespace logcapture::agent
