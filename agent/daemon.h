#pragma once

// The `run` command's lifecycle: prepare the state directory, start the pipeline, wait for a
// signal (reloading on SIGHUP), then stop within agent.shutdown_timeout.
//
// Signals: SIGTERM and SIGINT stop the agent gracefully; a second one exits at once. SIGHUP reloads
// the config file (agent/pipeline/reload.h): an invalid file is reported and the running config stays. The
// daemon blocks these signals in every thread (blockSignals() must run before any thread starts) and
// waits for them on the main thread, which otherwise sleeps up to a second between turns; it also blocks
// SIGRTMIN, which other threads send the main thread when an input finished or a thread failed. Under systemd it
// reports READY, WATCHDOG, RELOADING, STOPPING and a STATUS line (agent/service_notify.h).

#include <chrono>
#include <functional>
#include <memory>
#include <thread>

#include "agent/pipeline/pipeline.h"
#include "base/log.h"
#include "config/config.h"

namespace logcapture::agent {

// Exit codes of the logcapture command, documented in README.md.
enum ExitCode : int {
  kExitOk = 0,               // stopped cleanly
  kExitConfig = 1,           // the config is invalid (or `check` found errors)
  kExitUsage = 2,            // bad command line
  kExitStartFailed = 3,      // the agent could not start (state_dir, a stage)
  kExitShutdownTimeout = 4,  // shutdown_timeout passed before everything was flushed
  kExitThreadFailed = 5,     // a thread of the agent failed (thread_failed in the log); restart it
  // A second SIGINT/SIGTERM exits at once with 128 + the signal number (130, 143).
};

// Blocks SIGTERM, SIGINT, SIGHUP and SIGRTMIN in the calling thread and the threads it starts later.
void blockSignals();

// Waits up to `timeout` for one of the blocked signals; returns it, or 0 when none came.
using SignalWait = std::function<int(std::chrono::milliseconds timeout)>;
SignalWait waitForProcessSignal();

struct StopOutcome {
  int exitCode = kExitOk;
  bool clean = true;  // false: the pipeline is still stopping, on `stopper`
  // The thread still stopping the pipeline when the outcome is not clean. The caller either ends the
  // process (std::_Exit, no destructors) or joins it once the stop can finish.
  std::thread stopper;
};

// Stops the pipeline on a dedicated thread and waits for it, for a second stop signal or the deadline.
StopOutcome stopWithin(std::shared_ptr<Pipeline> pipeline, std::chrono::milliseconds timeout,
                       const SignalWait& waitSignal);

// Runs the agent until a stop signal; returns the exit code.
int runDaemon(const config::Config& config, const SignalWait& waitSignal);

// The logging of agent.log, in the terms of base/log.h.
log::Settings logSettings(const config::LogConfig& cfg);

}  // namespace logcapture::agent
