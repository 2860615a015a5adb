// The cost of guarding one sink call with the breaker: a permit plus a success report.
// Targets (issue 3): <= 25 ns uncontended in closed state, <= 150 ns per operation with two
// threads on one breaker. The windowed variants show the price of the mutex a window takes.
//
//   logcapture_bench_breaker --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// Reading threads:2 rows: Time is wall time over the operations of both threads (the inverse of
// throughput); CPU is what one operation costs the thread that makes it.

#include <benchmark/benchmark.h>

#include <chrono>

#include "agent/runner/breaker_options.h"
#include "circuit/breaker.h"
#include "config/config.h"

namespace {

using namespace std::chrono_literals;
using logcapture::circuit::Breaker;
using logcapture::circuit::Outcome;
using logcapture::circuit::SteadyClock;

logcapture::circuit::Options shippedOptions() { return logcapture::agent::optionsFrom({}); }

logcapture::circuit::Options windowedOptions() {
  logcapture::config::BreakerConfig c;
  c.window = logcapture::config::WindowConfig{};  // count window of 100 calls
  return logcapture::agent::optionsFrom(c);
}

void guardedCalls(benchmark::State& state, Breaker& breaker) {
  for (auto _ : state) {
    const auto permit = breaker.tryAcquire();
    benchmark::DoNotOptimize(permit);
    breaker.onResult(permit, Outcome::Success, 1ms);
  }
  state.SetItemsProcessed(state.iterations());
}

// One breaker per benchmark, shared by its threads: that is the contention being measured.
void BM_PermitAndSuccess(benchmark::State& state) {
  static Breaker breaker(shippedOptions(), SteadyClock::instance());
  guardedCalls(state, breaker);
}
BENCHMARK(BM_PermitAndSuccess)->Threads(1)->Threads(2)->UseRealTime();

void BM_PermitAndSuccessWithWindow(benchmark::State& state) {
  static Breaker breaker(windowedOptions(), SteadyClock::instance());
  guardedCalls(state, breaker);
}
BENCHMARK(BM_PermitAndSuccessWithWindow)->Threads(1)->Threads(2)->UseRealTime();

// What a broken sink's traffic costs: a rejected permit while open.
Breaker& openBreaker() {
  static Breaker breaker = [] {
    logcapture::config::BreakerConfig c;
    c.openTimeout = 24h;
    return Breaker(logcapture::agent::optionsFrom(c), SteadyClock::instance());
  }();
  while (breaker.state() != logcapture::circuit::State::Open) {
    breaker.onResult(breaker.tryAcquire(), Outcome::Retriable, 1ms);
  }
  return breaker;
}

void BM_RejectWhileOpen(benchmark::State& state) {
  static Breaker& breaker = openBreaker();
  for (auto _ : state) benchmark::DoNotOptimize(breaker.tryAcquire());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RejectWhileOpen)->Threads(1)->Threads(2)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
