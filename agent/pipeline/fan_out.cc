#include "agent/pipeline/fan_out.h"

#include <algorithm>

#include "base/log.h"

namespace logcapture::agent {

FanOut::FanOut(RecordQueue& queue, std::vector<SinkRunner*> runners) : queue_(queue), runners_(std::move(runners)) {}

FanOut::~FanOut() {
  if (thread_.joinable()) stop(std::chrono::steady_clock::now());
}

void FanOut::start() {
  running_ = true;
  thread_ = std::thread([this] {
    log::guardThread("fan-out", [this] { run(); });
    {
      // Also after a failure: a reload waiting for the loop to apply its set must not wait for nothing.
      std::lock_guard lock(mutex_);
      running_ = false;
    }
    applied_.notify_all();
    finished_ = true;
  });
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

std::size_t FanOut::fedSinks() {
  if (!fed_) {
    fed_ = static_cast<std::size_t>(std::count_if(runners_.begin(), runners_.end(), [](const SinkRunner* r) {
      const auto inputs = r->inputs();
      return !inputs || !inputs->empty();
    }));
  }
  return *fed_;
}

void FanOut::applyPosted() {
  if (!postedFlag_.load(std::memory_order_acquire)) return;
  {
    std::lock_guard lock(mutex_);
    if (posted_) {
      runners_ = std::move(*posted_);
      posted_.reset();
      routes_.clear();
      fed_.reset();
      appliedCount_ = postedCount_;
    }
    postedFlag_ = false;
  }
  applied_.notify_all();
}

void FanOut::run() {
  static const std::string kNoInput;
  Chunk chunk;
  // pop() waits without a timeout, so an idle agent does not turn this loop; it returns false once the
  // queue is closed and drained, or when a reload posted new runners (replaceRunners wakes it).
  while (true) {
    applyPosted();
    if (!queue_.pop(chunk)) {
      if (queue_.stats().records == 0 && done_.load()) break;
      continue;
    }
    applyPosted();
    if (chunk.records.empty()) {
      chunk.ack.finish();
      continue;
    }
    const auto& source = chunk.records.front().source;
    const auto& routed = routesOf(source ? source->input : kNoInput);
    if (routed.empty()) {
      unrouted_.fetch_add(chunk.records.size(), std::memory_order_relaxed);
      chunk.ack.finish();
      continue;
    }
    auto delivery = std::make_shared<Delivery>(std::move(chunk));
    chunk = Chunk{};
    Claim handingOut(delivery);  // until every sink has its own claim
    for (SinkRunner* r : routed) {
      waitingOn_.store(r, std::memory_order_release);
      r->offer(Claim(delivery), fedSinks() > 1);
    }
    waitingOn_.store(nullptr, std::memory_order_release);
    handingOut.release();
  }
}

bool FanOut::replaceRunners(std::vector<SinkRunner*> runners, base::Deadline deadline) {
  const auto leaving = [&runners](SinkRunner* r) {
    return std::find(runners.begin(), runners.end(), r) == runners.end();
  };
  std::vector<SinkRunner*> letThrough;  // leaving runners that held the loop back
  bool applied = true;
  {
    std::unique_lock lock(mutex_);
    const std::uint64_t ticket = ++postedCount_;
    posted_ = runners;
    postedFlag_ = true;
    // After the flag: the loop's pop returns and applyPosted() sees it.
    queue_.wakeConsumer();
    while (appliedCount_ < ticket) {
      if (!running_) {
        // No loop to apply it (not started, or ended): nothing reads the routes now.
        runners_ = std::move(*posted_);
        posted_.reset();
        postedFlag_ = false;
        routes_.clear();
        fed_.reset();
        appliedCount_ = ticket;
        break;
      }
      SinkRunner* waiting = waitingOn_.load(std::memory_order_acquire);
      if (waiting != nullptr && leaving(waiting) &&
          std::find(letThrough.begin(), letThrough.end(), waiting) == letThrough.end()) {
        waiting->holdBackIntake(false);
        letThrough.push_back(waiting);
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        posted_.reset();
        postedFlag_ = false;
        applied = false;
        break;
      }
      applied_.wait_for(lock, std::chrono::milliseconds(5));
    }
  }
  // Refused: the runners stay, and so do their bounds.
  if (!applied) {
    for (SinkRunner* r : letThrough) r->holdBackIntake(true);
  }
  return applied;
}

void FanOut::stop(base::Deadline deadline) {
  if (!thread_.joinable()) return;
  done_ = true;
  queue_.close();
  // Drain what the inputs left in the queue; at the deadline stop waiting on sinks that hold us back.
  while (!finished_.load() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (!finished_.load()) {
    std::lock_guard lock(mutex_);
    for (SinkRunner* r : runners_) r->abandonIntake();
  }
  thread_.join();
}

}  // namespace logcapture::agent
