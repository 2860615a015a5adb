#pragma once

// The fan-out: takes chunks from the queue and hands each to every sink its input is routed to.
// A chunk no sink takes is finished at once and counted (its input has no sink).
//
// NOTE on threads: one thread runs the loop between start() and stop() under log::guardThread; it alone
// calls offer() on the runners, and it alone reads its routes. replaceRunners() (the reload thread)
// posts the new set under mutex_ and the loop applies it between two chunks, so a chunk goes entirely
// to the old set of runners or entirely to the new one. mutex_ guards the set posted, the set in force
// (runners_: written by the loop, read by the loop without the lock) and the count of sets applied.
// waitingOn_ names the runner whose offer() the loop is in, for replaceRunners() to see what holds it.
// stop() closes the queue, lets the thread drain it until the deadline, then abandons what is left
// (unfinished: read again after a restart); it is never called concurrently with replaceRunners().

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agent/pipeline/queue.h"
#include "agent/runner/sink_runner.h"
#include "base/deadline.h"

namespace logcapture::agent {

class FanOut {
 public:
  // The runners must outlive the fan-out.
  FanOut(RecordQueue& queue, std::vector<SinkRunner*> runners);
  ~FanOut();
  FanOut(const FanOut&) = delete;
  FanOut& operator=(const FanOut&) = delete;

  void start();
  void stop(base::Deadline deadline);
  // From the next chunk on, routes to `runners` instead (they must outlive the fan-out, or the next
  // replaceRunners()), re-reading every runner's routes. Waits for the chunk being handed out. When a
  // runner leaving the set holds it back (its intake is full), that runner takes the chunk whatever
  // its bound (SinkRunner::holdBackIntake), so nothing is lost and the reload need not wait for it:
  // the caller then hands over or retires what the runner holds. False when a runner that stays holds
  // it back until the deadline: nothing changed then, every runner as it was.
  bool replaceRunners(std::vector<SinkRunner*> runners, base::Deadline deadline);
  std::uint64_t unrouted() const { return unrouted_.load(std::memory_order_relaxed); }
  // The runner whose offer() the loop is in (its intake full, it holds the loop back); nullptr when none.
  const SinkRunner* waitingOn() const { return waitingOn_.load(std::memory_order_acquire); }

 private:
  void run();
  // Applies a set replaceRunners() posted, if any. Loop thread only.
  void applyPosted();
  const std::vector<SinkRunner*>& routesOf(const std::string& input);
  // The sinks this loop feeds: a sink with `inputs: []` (only a fallback) is held back by none of its waits.
  std::size_t fedSinks();

  RecordQueue& queue_;
  std::mutex mutex_;
  std::condition_variable applied_;
  std::vector<SinkRunner*> runners_;                        // written under mutex_ by the loop (or before start)
  std::optional<std::vector<SinkRunner*>> posted_;          // guarded by mutex_
  std::uint64_t postedCount_ = 0;                           // guarded by mutex_
  std::uint64_t appliedCount_ = 0;                          // guarded by mutex_
  std::atomic<bool> postedFlag_{false};                     // posted_ is set: the loop looks cheaply
  std::map<std::string, std::vector<SinkRunner*>> routes_;  // loop thread only; a cache of runners_
  std::optional<std::size_t> fed_;                          // loop thread only; a cache of runners_
  std::atomic<SinkRunner*> waitingOn_{nullptr};
  std::atomic<std::uint64_t> unrouted_{0};
  std::atomic<bool> done_{false};      // stop() was called
  std::atomic<bool> running_{false};   // the loop runs and applies what is posted
  std::atomic<bool> finished_{false};  // the thread has drained the queue and returned
  std::thread thread_;
};

}  // namespace logcapture::agent
