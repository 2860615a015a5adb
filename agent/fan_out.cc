#include "agent/fan_out.h"

#include <algorithm>

namespace logcapture::agent {

FanOut::FanOut(RecordQueue& queue, std::vector<SinkRunner*> runners) : queue_(queue), runners_(std::move(runners)) {}

FanOut::~FanOut() {
  if (thread_.joinable()) stop(std::chrono::steady_clock::now());
}

void FanOut::start() {
  thread_ = std::thread([this] { run(); });
}

const std::vector<SinkRunner*>& FanOut::routesOf(const std::string& input) {
  auto it = routes_.find(input);
  if (it == routes_.end()) {
    std::vector<SinkRunner*> routed;
    for (SinkRunner* r : runners_) {
      if (r->routes(input)) routed.push_back(r);
    }
    it = routes_.emplace(input, std::move(routed)).first;
  }
  return it->second;
}

void FanOut::run() {
  static const std::string kNoInput;
  Chunk chunk;
  // pop() returns false only on a timeout or once the queue is closed and drained.
  while (true) {
    if (!queue_.pop(chunk, std::chrono::milliseconds(200))) {
      if (queue_.stats().records == 0 && done_.load()) break;
      continue;
    }
    if (chunk.records.empty()) {
      chunk.ack.finish();
      continue;
    }
    const auto& source = chunk.records.front().source;
    std::lock_guard lock(routesMutex_);
    const auto& routed = routesOf(source ? source->input : kNoInput);
    if (routed.empty()) {
      unrouted_.fetch_add(chunk.records.size(), std::memory_order_relaxed);
      chunk.ack.finish();
      continue;
    }
    auto delivery = std::make_shared<Delivery>(std::move(chunk), static_cast<int>(routed.size()));
    chunk = Chunk{};
    for (SinkRunner* r : routed) r->offer(delivery);
  }
  finished_ = true;
}

namespace {

// Polls rather than waiting on a timed mutex: reloads are rare, and a plain mutex is what the
// sanitizers understand.
bool lockBy(std::unique_lock<std::mutex>& lock, Deadline deadline) {
  while (!lock.try_lock()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

}  // namespace

bool FanOut::replaceRunners(std::vector<SinkRunner*> runners, Deadline deadline) {
  std::unique_lock lock(routesMutex_, std::defer_lock);
  if (!lockBy(lock, deadline)) {
    // Only runners leaving the set may be abandoned: the others keep receiving after the reload.
    // runners_ is read without the lock here: only this (reload) thread ever writes it.
    bool leavingHoldsBack = false;
    for (SinkRunner* r : runners_) {
      if (std::find(runners.begin(), runners.end(), r) == runners.end()) {
        r->abandonIntake();
        leavingHoldsBack = true;
      }
    }
    if (!leavingHoldsBack || !lockBy(lock, std::chrono::steady_clock::now() + std::chrono::seconds(1))) return false;
  }
  runners_ = std::move(runners);
  routes_.clear();
  return true;
}

void FanOut::stop(Deadline deadline) {
  if (!thread_.joinable()) return;
  done_ = true;
  queue_.close();
  // Drain what the inputs left in the queue; at the deadline stop waiting on sinks that hold us back.
  while (!finished_.load() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (!finished_.load()) {
    for (SinkRunner* r : runners_) r->abandonIntake();
  }
  thread_.join();
}

}  // namespace logcapture::agent
