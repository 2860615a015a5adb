#include "agent/pipeline/reload.h"

#include "base/log.h"

namespace logcapture::agent {

Reloader::Reloader(Reload reload) : reload_(std::move(reload)) {
  thread_ = std::thread([this] { log::guardThread("agent", [this] { run(); }); });
}

Reloader::~Reloader() { stop(); }

void Reloader::request() {
  {
    std::lock_guard lock(mutex_);
    ++requested_;
  }
  changed_.notify_all();
}

ReloadOutcome Reloader::requestAndWait() {
  std::unique_lock lock(mutex_);
  const std::uint64_t ticket = ++requested_;
  changed_.notify_all();
  changed_.wait(lock, [&] { return served_ >= ticket || stopping_; });
  if (served_ < ticket) return ReloadOutcome{.applied = false, .error = "the agent is stopping", .changes = {}};
  return last_;
}

void Reloader::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::uint64_t Reloader::completed() const {
  std::lock_guard lock(mutex_);
  return completed_;
}

void Reloader::run() {
  std::unique_lock lock(mutex_);
  while (true) {
    changed_.wait(lock, [&] { return requested_ > served_ || stopping_; });
    if (stopping_) return;
    const std::uint64_t serving = requested_;
    lock.unlock();
    ReloadOutcome outcome;
    try {
      outcome = reload_();
    } catch (const std::exception& e) {
      // The pipeline may be half changed: the agent stops (and restarts from its checkpoints), and the
      // request waiting for this reload is answered rather than left hanging.
      log::noteThreadFailure("agent", e.what(), true);
      outcome = ReloadOutcome{.applied = false, .error = std::string("the reload failed: ") + e.what(), .changes = {}};
    }
    lock.lock();
    last_ = std::move(outcome);
    served_ = serving;
    ++completed_;
    changed_.notify_all();
  }
}

}  // namespace logcapture::agent
