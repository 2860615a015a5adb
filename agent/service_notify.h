#pragma once

// systemd's service notification protocol (Type=notify): READY=1 once started, WATCHDOG=1 while the
// main loop runs, RELOADING=1 around reloads, STOPPING=1 on shutdown, and a one-line STATUS=.
// Without NOTIFY_SOCKET in the environment (not run by systemd) every call does nothing.
//
// Thread-safety: ready(), tick() and stopping() are called by the daemon's main thread;
// reloading()/reloaded() by the reloader thread. sd_notify() itself is safe from any thread.

#include <chrono>
#include <optional>
#include <string>

namespace logcapture::agent {

class ServiceNotify {
 public:
  ServiceNotify();

  void ready(const std::string& status) const;
  void reloading() const;
  void reloaded(const std::string& status) const;
  void stopping() const;
  void status(const std::string& line) const;
  // Sends WATCHDOG=1 when half the watchdog interval has passed since the last one; call it from the
  // main loop, so that a loop that stops turning lets systemd restart the agent.
  void tick(std::chrono::steady_clock::time_point now);
  // When tick() sends the next WATCHDOG=1; empty without a watchdog.
  std::optional<std::chrono::steady_clock::time_point> nextTick() const;
  // True under systemd (NOTIFY_SOCKET set): otherwise every call does nothing, and STATUS lines need not
  // be made.
  bool enabled() const { return enabled_; }
  // The watchdog interval systemd asked for (WATCHDOG_USEC), zero when it did not.
  std::chrono::microseconds watchdogInterval() const { return watchdog_; }

 private:
  bool enabled_ = false;
  std::chrono::microseconds watchdog_{0};
  std::chrono::steady_clock::time_point lastWatchdog_{};
};

}  // namespace logcapture::agent
