// Where workers wait: pauseWhile() ends when its condition turns false and wake() follows, or at the
// hard deadline.

#include "agent/runner/pauses.h"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace {

using namespace logcapture::agent;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

}  // namespace

TEST_CASE("a pause while held ends when the hold is lifted, whether before or during the wait") {
  Pauses pauses;
  std::atomic<bool> held{false};
  pauses.pauseWhile([&] { return held.load(); });  // not held: returns at once
  held = true;
  std::thread lifter([&] {
    std::this_thread::sleep_for(50ms);
    held = false;
    pauses.wake();
  });
  pauses.pauseWhile([&] { return held.load(); });
  CHECK_FALSE(held.load());
  lifter.join();
}

TEST_CASE("a pause while held ends at the hard deadline although the hold stays") {
  Pauses pauses;
  std::thread stopper([&] {
    std::this_thread::sleep_for(50ms);
    pauses.setHardDeadline(Clock::now());
  });
  const auto started = Clock::now();
  pauses.pauseWhile([] { return true; });
  CHECK(pauses.pastHardDeadline());
  CHECK(Clock::now() - started < 5s);
  stopper.join();
}
