#include "agent/runner/sink_report.h"

namespace logcapture::agent {
namespace {

using Clock = std::chrono::steady_clock;

}  // namespace

void SinkReport::dropped(std::uint64_t records, DropReason reason) {
  if (records == 0) return;
  stats_.dropped[std::size_t(reason)].fetch_add(records, std::memory_order_relaxed);
  if (!drops_[std::size_t(reason)].note(Clock::now(), records, {})) {
    hold();
    return;
  }
  log::event(*log::component("sink"), spdlog::level::warn, "sink_records_dropped",
             {{"sink", sink_},
              {"reason", dropReasonName(reason)},
              {"records", records},
              {"breaker", circuit::stateName(breaker_.state())},
              {"hint", "further drops are summarised every 10s and counted in the metrics"}});
}

void SinkReport::sendFailed(const sinks::SendResult& result, std::uint64_t records, std::uint32_t attempt) {
  const std::string& error =
      result.error.empty() && !result.failures.empty() ? result.failures.front().error : result.error;
  const bool partial = !result.failures.empty() && !result.tooLarge;
  if (!sendFailures_.note(Clock::now(), partial ? result.failures.size() : records, error)) {
    hold();
    return;
  }
  log::event(*log::component("sink"), spdlog::level::warn, "sink_send_failed",
             {{"sink", sink_},
              {"outcome", partial ? std::string_view("partial") : sinks::outcomeName(result.outcome)},
              {"error", error},
              {"records", partial ? result.failures.size() : records},
              {"attempt", attempt},
              {"breaker", circuit::stateName(breaker_.state())},
              {"hint", "further failures are summarised every 10s"}});
}

void SinkReport::hold() {
  // Relaxed is enough: the throttle's lock orders what it holds, and onHeld_ wakes under its own.
  if (!held_.exchange(true, std::memory_order_relaxed) && onHeld_) onHeld_();
}

std::optional<Clock::time_point> SinkReport::nextSummaryAt() {
  // The throttles themselves, not held_: summarise() clears that for a moment while it works.
  std::optional<Clock::time_point> next = sendFailures_.dueAt();
  for (auto& d : drops_) {
    if (const auto due = d.dueAt(); due && (!next || *due < *next)) next = due;
  }
  return next;
}

void SinkReport::summarise(bool final) {
  if (!held_.exchange(false, std::memory_order_relaxed)) return;
  // At the end, whatever is held back is due.
  const auto now = final ? Clock::time_point::max() : Clock::now();
  bool held = false;
  if (auto s = sendFailures_.takeDue(now); s.occurrences > 0) {
    log::event(*log::component("sink"), spdlog::level::warn, "sink_send_failures",
               {{"sink", sink_},
                {"failures", s.occurrences},
                {"records", s.count},
                {"last_error", s.lastDetail},
                {"breaker", circuit::stateName(breaker_.state())}});
  }
  held = held || sendFailures_.holding();
  for (std::size_t r = 0; r < kDropReasons; ++r) {
    if (auto s = drops_[r].takeDue(now); s.occurrences > 0) {
      log::event(*log::component("sink"), spdlog::level::warn, "sink_records_dropped",
                 {{"sink", sink_},
                  {"reason", dropReasonName(DropReason(r))},
                  {"records", s.count},
                  {"batches", s.occurrences},
                  {"breaker", circuit::stateName(breaker_.state())}});
    }
    held = held || drops_[r].holding();
  }
  if (held) held_.store(true, std::memory_order_relaxed);
}

void SinkReport::leftAtStop(std::string_view event, std::uint64_t records, std::string_view hint) const {
  if (records == 0) return;
  log::event(
      *log::component("sink"), spdlog::level::warn, event,
      {{"sink", sink_}, {"records", records}, {"breaker", circuit::stateName(breaker_.state())}, {"hint", hint}});
}

}  // namespace logcapture::agent
