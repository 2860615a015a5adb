// Start/stop order of the pipeline and the shutdown deadline, with signals injected by the test.

#include "agent/daemon.h"

#include <doctest/doctest.h>

#include <condition_variable>
#include <csignal>
#include <mutex>

namespace {

using namespace logcapture::agent;
namespace base = logcapture::base;
using namespace logcapture::base;
using namespace std::chrono_literals;

// A stage whose stop() blocks until the test releases it.
struct Gate {
  std::mutex m;
  std::condition_variable cv;
  bool open = false;
  void release() {
    std::lock_guard lock(m);
    open = true;
    cv.notify_all();
  }
  void wait() {
    std::unique_lock lock(m);
    cv.wait(lock, [&] { return open; });
  }
};

Stage recordingStage(const std::string& name, std::vector<std::string>& log, bool startOk = true) {
  return Stage{name,
               [&log, name, startOk] {
                 log.push_back("start " + name);
                 return startOk;
               },
               [&log, name](base::Deadline) { log.push_back("stop " + name); }};
}

SignalWait noSignals() {
  return [](std::chrono::milliseconds) { return 0; };
}

}  // namespace

TEST_CASE("stages start in order and stop in reverse order") {
  std::vector<std::string> log;
  Pipeline p;
  p.add(recordingStage("inputs", log));
  p.add(recordingStage("queue", log));
  p.add(recordingStage("sinks", log));
  REQUIRE(p.start());
  p.stop(std::chrono::steady_clock::now() + 1s);
  CHECK(log == std::vector<std::string>{"start inputs", "start queue", "start sinks", "stop sinks", "stop queue",
                                        "stop inputs"});
}

TEST_CASE("a stage that fails to start stops the ones already started") {
  std::vector<std::string> log;
  Pipeline p;
  p.add(recordingStage("inputs", log));
  p.add(recordingStage("queue", log, false));
  p.add(recordingStage("sinks", log));
  CHECK_FALSE(p.start());
  CHECK(log == std::vector<std::string>{"start inputs", "start queue", "stop inputs"});
}

TEST_CASE("a clean stop within the deadline exits 0") {
  std::vector<std::string> log;
  auto p = std::make_shared<Pipeline>();
  p->add(recordingStage("sinks", log));
  REQUIRE(p->start());
  const auto outcome = stopWithin(p, 5s, noSignals());
  CHECK(outcome.exitCode == kExitOk);
  CHECK(outcome.clean);
  CHECK(log.back() == "stop sinks");
}

TEST_CASE("a stop that outlives shutdown_timeout exits 4") {
  auto gate = std::make_shared<Gate>();
  auto p = std::make_shared<Pipeline>();
  p->add(Stage{"slow", [] { return true; }, [gate](base::Deadline) { gate->wait(); }});
  REQUIRE(p->start());
  auto outcome = stopWithin(p, 50ms, noSignals());
  CHECK(outcome.exitCode == kExitShutdownTimeout);
  CHECK_FALSE(outcome.clean);
  gate->release();  // let the stop finish
  outcome.stopper.join();
}

TEST_CASE("a second SIGTERM during shutdown exits at once with 143") {
  auto gate = std::make_shared<Gate>();
  auto p = std::make_shared<Pipeline>();
  p->add(Stage{"slow", [] { return true; }, [gate](base::Deadline) { gate->wait(); }});
  REQUIRE(p->start());
  auto outcome = stopWithin(p, 1h, [](std::chrono::milliseconds) { return SIGTERM; });
  CHECK(outcome.exitCode == 128 + SIGTERM);
  CHECK_FALSE(outcome.clean);
  gate->release();
  outcome.stopper.join();
}

TEST_CASE("SIGHUP during shutdown does not cut it short") {
  std::vector<std::string> log;
  auto p = std::make_shared<Pipeline>();
  p->add(recordingStage("sinks", log));
  REQUIRE(p->start());
  const auto outcome = stopWithin(p, 5s, [](std::chrono::milliseconds) { return SIGHUP; });
  CHECK(outcome.exitCode == kExitOk);
}
