#include "base/log.h"

#include <doctest/doctest.h>

#include <stdexcept>
#include <thread>

namespace logcapture {

TEST_CASE("an exception escaping a guarded thread is counted and faults the process") {
  const auto before = log::threadFailures();
  std::thread t([] { log::guardThread("test", [] { throw std::runtime_error("boom"); }); });
  t.join();
  CHECK(log::threadFailures() == before + 1);
  CHECK(log::faulted());
}

TEST_CASE("a guarded thread that returns normally is not counted") {
  const auto before = log::threadFailures();
  bool ran = false;
  log::guardThread("test", [&] { ran = true; });
  CHECK(ran);
  CHECK(log::threadFailures() == before);
}

TEST_CASE("a failure a component recovered from is counted without faulting by itself") {
  const auto before = log::threadFailures();
  log::noteThreadFailure("test", "recovered", false);
  CHECK(log::threadFailures() == before + 1);
}

}  // namespace logcapture
