#include "agent/daemon.h"

#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <future>
#include <thread>

#include "agent/admin/admin_server.h"
#include "agent/pipeline/reload.h"
#include "agent/service_notify.h"
#include "agent/status_line.h"
#include "base/log.h"
#include "config/loader.h"
#include "config/printer.h"
#include "config/units.h"

namespace logcapture::agent {
namespace {

// What other threads send the main loop so that it looks again at once (an input finished, a thread
// failed): the loop sleeps up to a second between turns otherwise. A real-time signal, which no one
// else sends; sent to the main thread alone, so no other thread's mask matters.
int wakeSignal() { return SIGRTMIN; }

sigset_t handledSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, wakeSignal());
  return set;
}

std::atomic<bool> mainLoopListening{false};
pthread_t mainLoopThread{};

void wakeMainLoop() {
  if (mainLoopListening.load(std::memory_order_acquire)) pthread_kill(mainLoopThread, wakeSignal());
}

// The longest the main loop sleeps: its turn is the admin server's heartbeat, which /health reports
// stale after AdminServer::kHeartbeatStale.
constexpr std::chrono::milliseconds kLongestTurn{1000};

// The state directory holds checkpoints; an agent that cannot write there must not start, or it
// would re-read everything after the next restart.
bool prepareStateDir(const std::string& dir, spdlog::logger& logger) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    log::event(logger, spdlog::level::critical, "state_dir_unusable",
               {{"state_dir", dir}, {"error", ec.message()}, {"hint", "create it or set agent.state_dir"}});
    return false;
  }
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    log::event(logger, spdlog::level::critical, "state_dir_unusable",
               {{"state_dir", dir}, {"error", std::strerror(errno)}, {"hint", "make it writable by the agent's user"}});
    return false;
  }
  return true;
}

void logSummary(const config::Config& c, spdlog::logger& logger) {
  std::string inputs;
  for (const auto& in : c.inputs) {
    inputs += (inputs.empty() ? "" : ",") + in.name + "(" + std::string(config::enumName(in.type)) + ")";
  }
  std::string sinks;
  for (const auto& s : c.sinks) {
    sinks += (sinks.empty() ? "" : ",") + s.name + "(" + std::string(config::enumName(s.type)) + ")";
  }
  log::event(logger, spdlog::level::info, "agent_starting",
             {{"version", LOGCAPTURE_VERSION},
              {"config", c.file},
              {"state_dir", c.agent.stateDir},
              {"inputs", inputs},
              {"sinks", sinks},
              {"queue_max_records", c.queue.maxRecords},
              {"queue_max_bytes", config::formatBytes(c.queue.maxBytes)},
              {"queue_when_full", config::enumName(c.queue.whenFull)},
              {"admin", c.agent.admin.listen.empty() ? std::string("off") : c.agent.admin.listen},
              {"shutdown_timeout", config::formatDuration(c.agent.shutdownTimeout)}});
}

// Reads the config file again and applies it. `running` is the config in force; it becomes the new
// one when the reload applies.
ReloadOutcome reloadFrom(config::Config& running, Pipeline& pipeline) {
  auto logger = log::component("agent");
  ReloadOutcome outcome;
  if (running.file.empty()) {
    outcome.error = "the agent was not started from a config file";
  } else {
    try {
      config::Loaded loaded = config::loadFile(running.file);
      for (const auto& w : loaded.warnings) logger->warn("{}", w.format());
      config::Config& next = loaded.config;
      const bool adminChanged =
          next.agent.admin.listen != running.agent.admin.listen || next.agent.admin.token != running.agent.admin.token;
      const auto deadline = std::chrono::steady_clock::now() + next.agent.shutdownTimeout;
      outcome = pipeline.reload(next, deadline);
      if (outcome.applied) {
        // Logging applies at once; the admin listener and the state directory only at a restart. A
        // reload the pipeline refused changes nothing, logging included.
        if (config::canonical(next.agent) != config::canonical(running.agent))
          log::configure(logSettings(next.agent.log));
        if (adminChanged) outcome.changes.emplace_back("agent.admin changed: applies after a restart");
        const auto admin = running.agent.admin;
        running = next;
        running.agent.admin = admin;  // still the one listening
      }
    } catch (const config::ConfigError& e) {
      for (const auto& d : e.errors()) outcome.error += (outcome.error.empty() ? "" : "\n") + d.format();
    }
  }
  std::string changes;
  for (const auto& c : outcome.changes) changes += (changes.empty() ? "" : "; ") + c;
  if (outcome.applied) {
    log::event(*logger, spdlog::level::info, "config_reloaded",
               {{"config", running.file}, {"changes", changes.empty() ? std::string("none") : changes}});
  } else {
    log::event(*logger, spdlog::level::err, "config_reload_failed",
               {{"config", running.file},
                {"error", outcome.error},
                {"hint", "the running config stays; fix the file and reload again"}});
  }
  return outcome;
}

}  // namespace

void blockSignals() {
  const sigset_t set = handledSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

SignalWait waitForProcessSignal() {
  return [](std::chrono::milliseconds timeout) {
    const sigset_t set = handledSignals();
    timespec ts{};
    ts.tv_sec = static_cast<time_t>(timeout.count() / 1000);
    ts.tv_nsec = static_cast<long>((timeout.count() % 1000) * 1000000);
    const int sig = sigtimedwait(&set, nullptr, &ts);
    return sig > 0 ? sig : 0;
  };
}

StopOutcome stopWithin(std::shared_ptr<Pipeline> pipeline, std::chrono::milliseconds timeout,
                       const SignalWait& waitSignal) {
  auto logger = log::component("agent");
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::promise<void> done;
  auto finished = done.get_future();
  std::thread stopper([pipeline, deadline, done = std::move(done)]() mutable {
    pipeline->stop(deadline);
    done.set_value();
  });
  while (true) {
    if (finished.wait_for(std::chrono::milliseconds(0)) == std::future_status::ready) {
      stopper.join();
      return {kExitOk, true, {}};
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      log::event(*logger, spdlog::level::err, "shutdown_timeout",
                 {{"timeout", config::formatDuration(timeout)},
                  {"hint", "raise agent.shutdown_timeout; unflushed records are read again after restart"}});
      return {kExitShutdownTimeout, false, std::move(stopper)};
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
    const int sig = waitSignal(std::min(left, std::chrono::milliseconds(50)));
    if (sig == SIGTERM || sig == SIGINT) {
      log::event(*logger, spdlog::level::warn, "shutdown_forced", {{"signal", strsignal(sig)}});
      return {128 + sig, false, std::move(stopper)};
    }
  }
}

int runDaemon(const config::Config& config, const SignalWait& waitSignal) {
  auto logger = log::component("agent");
  logSummary(config, *logger);
  if (!prepareStateDir(config.agent.stateDir, *logger)) return kExitStartFailed;

  std::shared_ptr<Pipeline> pipeline = Pipeline::build(config);
  if (!pipeline) return kExitStartFailed;
  ServiceNotify notify;
  StatusLine status(*pipeline);

  // The reloader thread owns `running` (the config in force); the main loop reads the shutdown
  // timeout, which a reload may change, through an atomic.
  std::atomic<std::int64_t> shutdownTimeoutMs{config.agent.shutdownTimeout.count()};
  Reloader reloader([&, running = config]() mutable {
    notify.reloading();
    ReloadOutcome outcome = reloadFrom(running, *pipeline);
    shutdownTimeoutMs = running.agent.shutdownTimeout.count();
    notify.reloaded(status.summary(std::chrono::steady_clock::now()));
    return outcome;
  });
  admin::AdminServer adminServer(config.agent.admin, *pipeline, [&reloader] { return reloader.requestAndWait(); });
  // Before any stage starts: whatever finishes or fails from then on wakes the loop below.
  mainLoopThread = pthread_self();
  mainLoopListening.store(true, std::memory_order_release);
  pipeline->onInputFinished(wakeMainLoop);
  log::onFault(wakeMainLoop);
  // Bound before the pipeline starts, so a taken port fails the agent before it reads anything.
  if (!adminServer.bind() || !pipeline->start()) return kExitStartFailed;
  adminServer.start();
  log::event(*logger, spdlog::level::info, "agent_started", {{"stages", pipeline->size()}});
  notify.ready(status.summary(std::chrono::steady_clock::now()));

  int sig = 0;
  bool inputsDone = false;
  bool faulted = false;
  // Each turn waits for a signal (a stop, a reload, or the wake-up of an input finished or a thread
  // failed), or for what is due next: the heartbeat, the watchdog, the status line.
  while (sig != SIGTERM && sig != SIGINT && !inputsDone && !faulted) {
    adminServer.heartbeat();
    auto now = std::chrono::steady_clock::now();
    auto next = now + kLongestTurn;
    if (const auto tick = notify.nextTick()) next = std::min(next, *tick);
    if (notify.enabled()) next = std::min(next, status.dueAt());
    sig = waitSignal(std::clamp(std::chrono::ceil<std::chrono::milliseconds>(next - now), std::chrono::milliseconds(0),
                                kLongestTurn));
    if (sig == SIGHUP) reloader.request();
    now = std::chrono::steady_clock::now();
    notify.tick(now);
    if (notify.enabled() && status.due(now)) notify.status(status.summary(now));
    inputsDone = pipeline->finished();
    faulted = log::faulted();
  }
  notify.stopping();
  // A reload in progress finishes first (stopping under it would race its changes); an admin request
  // waiting for one is answered, so the admin server can stop.
  reloader.stop();
  const std::chrono::milliseconds shutdownTimeout(shutdownTimeoutMs.load());
  if (faulted) {
    log::event(
        *logger, spdlog::level::critical, "agent_stopping",
        {{"reason", "a thread failed (see thread_failed)"}, {"timeout", config::formatDuration(shutdownTimeout)}});
  } else if (inputsDone) {
    log::event(*logger, spdlog::level::info, "agent_stopping",
               {{"reason", "every input reached its end"}, {"timeout", config::formatDuration(shutdownTimeout)}});
  } else {
    log::event(*logger, spdlog::level::info, "agent_stopping",
               {{"signal", strsignal(sig)}, {"timeout", config::formatDuration(shutdownTimeout)}});
  }
  adminServer.stop();  // its requests read the pipeline
  StopOutcome outcome = stopWithin(pipeline, shutdownTimeout, waitSignal);
  if (outcome.clean) log::event(*logger, spdlog::level::info, "agent_stopped", {});
  spdlog::apply_all([](const std::shared_ptr<spdlog::logger>& l) { l->flush(); });
  const int exitCode = faulted ? int(kExitThreadFailed) : outcome.exitCode;
  if (!outcome.clean) std::_Exit(exitCode);  // a stage is still stopping; do not run destructors under it
  return exitCode;
}

log::Settings logSettings(const config::LogConfig& cfg) {
  log::Settings s;
  switch (cfg.level) {
    case config::LogLevel::Trace:
      s.level = log::Level::Trace;
      break;
    case config::LogLevel::Debug:
      s.level = log::Level::Debug;
      break;
    case config::LogLevel::Info:
      s.level = log::Level::Info;
      break;
    case config::LogLevel::Warn:
      s.level = log::Level::Warn;
      break;
    case config::LogLevel::Error:
      s.level = log::Level::Error;
      break;
    case config::LogLevel::Critical:
      s.level = log::Level::Critical;
      break;
    case config::LogLevel::Off:
      s.level = log::Level::Off;
      break;
  }
  switch (cfg.format) {
    case config::LogFormat::Text:
      s.format = log::Format::Text;
      break;
    case config::LogFormat::Json:
      s.format = log::Format::Json;
      break;
  }
  return s;
}

}  // namespace logcapture::agent
