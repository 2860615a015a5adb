#include "agent/service_notify.h"

#include <systemd/sd-daemon.h>

#include <cstdlib>

namespace logcapture::agent {
namespace {

void send(const std::string& state) {
  // unset_environment = 0: the reloads and watchdog ticks after READY=1 need NOTIFY_SOCKET still.
  sd_notify(0, state.c_str());
}

// One line: systemd shows STATUS= as is, and a newline would start a new assignment.
std::string oneLine(std::string s) {
  for (char& c : s) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return s;
}

}  // namespace

ServiceNotify::ServiceNotify() : enabled_(std::getenv("NOTIFY_SOCKET") != nullptr) {
  std::uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0) watchdog_ = std::chrono::microseconds(usec);
}

void ServiceNotify::ready(const std::string& status) const { send("READY=1\nSTATUS=" + oneLine(status)); }

void ServiceNotify::reloading() const { send("RELOADING=1\nSTATUS=reloading the config"); }

void ServiceNotify::reloaded(const std::string& status) const { send("READY=1\nSTATUS=" + oneLine(status)); }

void ServiceNotify::stopping() const { send("STOPPING=1\nSTATUS=stopping: draining and flushing"); }

void ServiceNotify::status(const std::string& line) const { send("STATUS=" + oneLine(line)); }

std::optional<std::chrono::steady_clock::time_point> ServiceNotify::nextTick() const {
  if (watchdog_.count() == 0) return std::nullopt;
  return lastWatchdog_ + watchdog_ / 2;
}

void ServiceNotify::tick(std::chrono::steady_clock::time_point now) {
  if (watchdog_.count() == 0 || now - lastWatchdog_ < watchdog_ / 2) return;
  lastWatchdog_ = now;
  send("WATCHDOG=1");
}

}  // namespace logcapture::agent
