#pragma once

// The fan-out: takes chunks from the queue and hands each to every sink its input is routed to.
// A chunk no sink takes is finished at once and counted (its input has no sink).
//
// NOTE on threads: one thread runs the loop between start() and stop(); it alone calls offer() on the
// runners, holding routesMutex_ from routing a chunk until every runner took it. replaceRunners()
// (the reload thread) takes routesMutex_ between two chunks, so a chunk goes entirely to the old set
// of runners or entirely to the new one. stop() closes the queue, lets the thread drain it until the
// deadline, then abandons what is left (unfinished: read again after a restart); it is never called
// concurrently with replaceRunners().

#include <atomic>
#include <map>
#include <mutex>
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
  // From the next chunk on, routes to `runners` instead (they must outlive the fan-out, or the next
  // replaceRunners()). Waits for the chunk being handed out; when a runner dropped from the set holds
  // it back past the deadline, that runner's intake is abandoned (its records stay unfinished, read
  // again after a restart). False when a runner that stays holds it back past the deadline: nothing
  // changed then.
  bool replaceRunners(std::vector<SinkRunner*> runners, Deadline deadline);
  std::uint64_t unrouted() const { return unrouted_.load(std::memory_order_relaxed); }

 private:
  void run();
  const std::vector<SinkRunner*>& routesOf(const std::string& input);

  RecordQueue& queue_;
  std::mutex routesMutex_;
  std::vector<SinkRunner*> runners_;                        // guarded by routesMutex_
  std::map<std::string, std::vector<SinkRunner*>> routes_;  // guarded by routesMutex_; a cache of runners_
  std::atomic<std::uint64_t> unrouted_{0};
  std::atomic<bool> done_{false};      // stop() was called
  std::atomic<bool> finished_{false};  // the thread has drained the queue and returned
  std::thread thread_;
};

}  // namespace logcapture::agent
