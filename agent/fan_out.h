#pragma once

// The fan-out: takes chunks from the queue and hands each to every sink its input is routed to.
// A chunk no sink takes is finished at once and counted (its input has no sink).
//
// NOTE on threads: one thread runs the loop between start() and stop(); it alone calls offer() on the
// runners. stop() closes the queue, lets the thread drain it until the deadline, then abandons what is
// left (unfinished: read again after a restart).

#include <atomic>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "agent/pipeline.h"
#include "agent/queue.h"
#include "agent/sink_runner.h"

namespace logcapture::agent {

class FanOut {
 public:
  // The runners must outlive the fan-out.
  FanOut(RecordQueue& queue, std::vector<SinkRunner*> runners);
  ~FanOut();
  FanOut(const FanOut&) = delete;
  FanOut& operator=(const FanOut&) = delete;

  void start();
  void stop(Deadline deadline);
  std::uint64_t unrouted() const { return unrouted_.load(std::memory_order_relaxed); }

 private:
  void run();
  const std::vector<SinkRunner*>& routesOf(const std::string& input);

  RecordQueue& queue_;
  const std::vector<SinkRunner*> runners_;
  std::map<std::string, std::vector<SinkRunner*>> routes_;  // fan-out thread only
  std::atomic<std::uint64_t> unrouted_{0};
  std::atomic<bool> done_{false};      // stop() was called
  std::atomic<bool> finished_{false};  // the thread has drained the queue and returned
  std::thread thread_;
};

}  // namespace logcapture::agent
