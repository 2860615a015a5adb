// log::Throttle: the first event in full, then one summary per interval with exact counts.

#include <doctest/doctest.h>

#include "base/log.h"

namespace {

using logcapture::log::Throttle;
using namespace std::chrono_literals;

const Throttle::Clock::time_point t0{std::chrono::hours(1)};

}  // namespace

TEST_CASE("a throttle logs the first occurrence and holds back the rest of its interval") {
  Throttle throttle(10s);
  CHECK(throttle.note(t0, 5, "first"));
  CHECK_FALSE(throttle.note(t0 + 1s, 7, "second"));
  CHECK_FALSE(throttle.note(t0 + 2s, 3, "third"));
  CHECK(throttle.holding());
  CHECK(throttle.takeDue(t0 + 9s).occurrences == 0);  // the interval has not passed
  const auto summary = throttle.takeDue(t0 + 10s);
  CHECK(summary.occurrences == 2);
  CHECK(summary.count == 10);
  CHECK(summary.lastDetail == "third");
  CHECK_FALSE(throttle.holding());
}

TEST_CASE("a throttle summarises at most once per interval while occurrences keep coming") {
  Throttle throttle(10s);
  CHECK(throttle.note(t0, 1, "e"));
  CHECK_FALSE(throttle.note(t0 + 5s, 1, "e"));
  CHECK(throttle.takeDue(t0 + 10s).occurrences == 1);
  CHECK_FALSE(throttle.note(t0 + 11s, 1, "e"));        // within the interval the summary started
  CHECK(throttle.takeDue(t0 + 15s).occurrences == 0);  // too early for the next summary
  CHECK(throttle.takeDue(t0 + 20s).occurrences == 1);
}

TEST_CASE("after a quiet interval the next occurrence is logged in full again") {
  Throttle throttle(10s);
  CHECK(throttle.note(t0, 1, "e"));
  CHECK(throttle.note(t0 + 30s, 1, "e"));
  CHECK_FALSE(throttle.holding());
}
