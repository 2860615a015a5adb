#include "agent/admin/breaker_view.h"

#include "agent/runner/sink_runner.h"
#include "base/json_text.h"
#include "circuit/breaker.h"
#include "config/units.h"

namespace logcapture::agent::admin {
namespace {

double seconds(std::chrono::nanoseconds d) { return std::chrono::duration<double>(d).count(); }

Json windowConfig(const config::WindowConfig& w) {
  Json size;
  if (const auto* calls = std::get_if<std::uint64_t>(&w.size.value)) {
    size = *calls;
  } else {
    size = config::formatDuration(std::get<config::Duration>(w.size.value));
  }
  return Json{{"type", config::enumName(w.type)}, {"size", size},
              {"min_calls", w.minCalls},          {"failure_rate", w.failureRate},
              {"slow_call_rate", w.slowCallRate}, {"slow_call_duration", config::formatDuration(w.slowCallDuration)}};
}

// The options as configured (the breaker clamps nothing a valid config holds).
Json breakerConfig(const config::BreakerConfig& c) {
  return Json{{"failure_threshold", c.failureThreshold},
              {"success_threshold", c.successThreshold},
              {"open_timeout", config::formatDuration(c.openTimeout)},
              {"max_open_timeout", config::formatDuration(c.maxOpenTimeout)},
              {"backoff_multiplier", c.backoffMultiplier},
              {"jitter", c.jitter},
              {"half_open_max_calls", c.halfOpenMaxCalls},
              {"trip_on_throttle", c.tripOnThrottle},
              {"probe", c.probe},
              {"window", c.window ? windowConfig(*c.window) : Json(nullptr)}};
}

Json windowStats(const circuit::WindowStats& w) {
  return Json{{"calls", w.calls},
              {"failures", w.failures},
              {"slow", w.slow},
              {"failure_rate", w.failureRate()},
              {"slow_call_rate", w.slowCallRate()}};
}

}  // namespace

std::string rfc3339(std::chrono::system_clock::time_point t) {
  std::string quoted;
  base::appendJsonTimestamp(quoted, t);
  return quoted.substr(1, quoted.size() - 2);
}

namespace {

// What waits in the sink's buffer; for a disk buffer also its files and what it found damaged.
Json bufferView(const SinkRunner& runner, const SinkBufferStats& buffer, std::chrono::system_clock::time_point now) {
  Json view{{"type", config::enumName(runner.config().buffer.type)},
            {"batches", buffer.batches},
            {"records", buffer.records},
            {"bytes", buffer.bytes},
            {"max_bytes", runner.config().buffer.maxBytes.value}};
  if (const auto disk = runner.diskBufferStats()) {
    view["disk"] = {{"bytes", disk->bytes},
                    {"segments", disk->segments},
                    {"records", disk->records},
                    {"oldest_record_age_seconds",
                     disk->oldest ? std::max(0.0, std::chrono::duration<double>(now - *disk->oldest).count()) : 0.0},
                    {"syncs", disk->syncs},
                    {"corrupt_records", disk->corrupt},
                    {"write_errors", disk->writeErrors},
                    {"read_errors", disk->readErrors},
                    {"spilled_records", disk->spilled},
                    {"replayed_records", disk->replayed}};
  }
  return view;
}

}  // namespace

Json breakerView(SinkRunner& runner) {
  const circuit::Snapshot s = runner.breaker().snapshot();
  const SinkStats& st = runner.stats();
  const SinkBufferStats buffer = runner.bufferStats();
  const auto load = [](const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  const auto steadyNow = std::chrono::steady_clock::now();
  const auto wallNow = std::chrono::system_clock::now();

  Json transitions = Json::array();
  for (std::size_t from = 0; from < circuit::kStateCount; ++from) {
    for (std::size_t to = 0; to < circuit::kStateCount; ++to) {
      if (s.transitions[from][to] == 0) continue;
      transitions.push_back({{"from", circuit::stateName(circuit::State(from))},
                             {"to", circuit::stateName(circuit::State(to))},
                             {"count", s.transitions[from][to]}});
    }
  }
  Json dropped = Json::object();
  std::uint64_t droppedTotal = 0;
  for (std::size_t r = 0; r < kDropReasons; ++r) {
    const std::uint64_t n = st.droppedFor(DropReason(r));
    dropped[std::string(dropReasonName(DropReason(r)))] = n;
    droppedTotal += n;
  }
  dropped["total"] = droppedTotal;
  // Records handed to the fallback sink while the breaker was open, by why it was open.
  Json failedOver = Json::object();
  std::uint64_t failedOverTotal = 0;
  for (std::size_t r = 0; r < kFailoverReasons; ++r) {
    const std::uint64_t n = st.failedOverFor(FailoverReason(r));
    failedOver[std::string(failoverReasonName(FailoverReason(r)))] = n;
    failedOverTotal += n;
  }
  failedOver["total"] = failedOverTotal;
  const std::string fallbackName = runner.fallbackName();
  const SendLimit::Figures limit = runner.sendLimit();

  Json nextRetry = nullptr;
  if (s.nextRetryAt) {
    nextRetry =
        rfc3339(wallNow + std::chrono::duration_cast<std::chrono::system_clock::duration>(*s.nextRetryAt - steadyNow));
  }
  const circuit::Totals& t = s.totals;
  Json stateSeconds = Json::object();
  for (std::size_t i = 0; i < circuit::kStateCount; ++i) {
    stateSeconds[std::string(circuit::stateName(circuit::State(i)))] = seconds(s.stateTimes[i]);
  }
  return Json{
      {"sink", runner.name()},
      {"type", config::enumName(runner.config().type)},
      {"state", circuit::stateName(s.state)},
      {"mode", circuit::modeName(runner.breaker().options().mode)},
      {"time_in_state_seconds", seconds(s.timeInState)},
      {"state_seconds", stateSeconds},
      {"since", rfc3339(wallNow - std::chrono::duration_cast<std::chrono::system_clock::duration>(s.timeInState))},
      {"next_retry_at", nextRetry},
      {"open_for_seconds", seconds(s.openFor)},
      {"consecutive_failures", s.consecutiveFailures},
      {"trial_successes", s.trialSuccesses},
      {"trials_admitted", s.trialsAdmitted},
      {"opens", s.opens()},
      {"generation", s.generation},
      {"config", breakerConfig(runner.config().breaker)},
      {"totals",
       {{"calls", t.calls},
        {"successes", t.successes},
        {"failures", t.failures},
        {"throttled", t.throttled},
        {"permanent", t.permanent},
        {"rejected", t.rejected},
        {"bypassed", t.bypassed},
        {"slow", t.slow},
        {"stale", t.stale}}},
      {"window", s.window ? windowStats(*s.window) : Json(nullptr)},
      {"transitions", transitions},
      {"sink_stats",
       {{"received", load(st.received)},
        {"delivered", load(st.delivered)},
        {"dead_lettered", load(st.deadLettered)},
        {"dropped", dropped},
        {"fallback", fallbackName.empty() ? Json(nullptr) : Json(fallbackName)},
        {"failed_over", failedOver},
        {"buffer", bufferView(runner, buffer, wallNow)},
        {"batches_in_flight", load(st.batchesInFlight)},
        {"concurrency_limit", limit.limit},
        {"ramping", limit.ramping},
        {"sends", load(st.sends)},
        {"retries", load(st.retries)}}},
  };
}

}  // namespace logcapture::agent::admin
