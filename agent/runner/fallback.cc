#include "agent/runner/fallback.h"

#include "agent/runner/sink_runner.h"
#include "base/log.h"

namespace logcapture::agent {
namespace {

// Longer than any chain a valid config has (check rejects loops); a bound should a reload link one anyway.
constexpr std::uint32_t kMaxHops = 16;

}  // namespace

void FallbackLink::link(std::shared_ptr<SinkRunner> to) {
  std::shared_ptr<SinkRunner> old;
  {
    std::lock_guard lock(mutex_);
    old = std::move(to_);
    to_ = std::move(to);
    linked_.store(to_ != nullptr, std::memory_order_relaxed);
  }
  // `old` is released here, outside the lock: it may be the last owner of a retired runner.
}

std::string FallbackLink::target() const {
  std::lock_guard lock(mutex_);
  return to_ ? to_->name() : std::string();
}

bool FallbackLink::handOver(PendingBatch& pb, FailoverReason reason, std::uint32_t hops) {
  if (hops >= kMaxHops) return false;
  std::shared_ptr<SinkRunner> to;
  {
    std::lock_guard lock(mutex_);
    to = to_;
  }
  if (!to) return false;
  const std::uint64_t records = pb.batch.size();
  if (!to->takeOver(pb, hops)) {
    if (!refusing_.exchange(true, std::memory_order_relaxed)) {
      log::event(*log::component("sink"), spdlog::level::warn, "sink_fallback_refused",
                 {{"sink", sink_},
                  {"fallback", to->name()},
                  {"hint", "the fallback's breaker is open too, or it is stopping or full; batches wait here"}});
    }
    return false;
  }
  stats_.failedOver[std::size_t(reason)].fetch_add(records, std::memory_order_relaxed);
  refusing_.store(false, std::memory_order_relaxed);
  if (!failingOver_.exchange(true, std::memory_order_relaxed)) {
    log::event(*log::component("sink"), spdlog::level::warn, "sink_failover_started",
               {{"sink", sink_}, {"fallback", to->name()}, {"reason", failoverReasonName(reason)}});
  }
  return true;
}

void FallbackLink::ended() {
  if (!failingOver_.exchange(false, std::memory_order_relaxed)) return;
  refusing_.store(false, std::memory_order_relaxed);
  std::uint64_t records = 0;
  for (const auto& n : stats_.failedOver) records += n.load(std::memory_order_relaxed);
  log::event(*log::component("sink"), spdlog::level::info, "sink_failover_ended",
             {{"sink", sink_}, {"fallback", target()}, {"records_handed_over_total", records}});
}

}  // namespace logcapture::agent
