#pragma once

// The logcapture binary run on a config file for an end-to-end test, its stderr read while the test
// polls so that it never blocks on a full pipe. Test code only (doctest's macros report its failures).

#include <doctest/doctest.h>
#include <signal.h>

#include <chrono>
#include <string>

#include "tests/support/fixtures.h"
#include "tests/support/process.h"

namespace logcapture::testing {

class RunningAgent {
 public:
  // Starts `logcapture run -c config` and waits for agent_started (the test fails if it does not come).
  explicit RunningAgent(const std::string& config) : process_({LOGCAPTURE_BINARY, "run", "-c", config}) {
    if (!process_.waitForStderr("agent_started", std::chrono::seconds(20))) {
      FAIL("the agent did not start, stderr:\n" << process_.err());
    }
  }

  // Polls `done` until the timeout, reading the agent's output meanwhile.
  template <class Predicate>
  bool until(Predicate done, std::chrono::milliseconds timeout) {
    return waitUntil(
        [&] {
          process_.readOutput();
          return done();
        },
        timeout);
  }
  // Lets time pass (a fault lasting), reading the agent's output meanwhile.
  void wait(std::chrono::milliseconds d) {
    until([] { return false; }, d);
  }

  // Offset into stderr where later events are looked for.
  std::size_t mark() {
    process_.readOutput();
    return process_.err().size();
  }
  // Whether the event `name` (breaker_open, ...) of `sink` was logged after `from`.
  bool logged(const std::string& name, const std::string& sink, std::size_t from = 0) const {
    return process_.err().find(name + " sink=" + sink, from) != std::string::npos;
  }
  bool waitForEvent(const std::string& name, const std::string& sink, std::size_t from,
                    std::chrono::milliseconds timeout) {
    return until([&] { return logged(name, sink, from); }, timeout);
  }
  const std::string& err() const { return process_.err(); }

  // SIGTERM: the agent drains what it holds and exits; its stderr is shown when it does not exit 0
  // (a sanitizer's report, a shutdown timeout).
  int stop() {
    process_.signal(SIGTERM);
    const auto result = process_.wait(std::chrono::seconds(30));
    if (result.exitCode != 0) MESSAGE("agent exited " << result.exitCode << ", stderr:\n" << result.err);
    return result.exitCode;
  }

 private:
  ChildProcess process_;
};

}  // namespace logcapture::testing
