#include "agent/pipeline/pipeline.h"

#include <algorithm>
#include <thread>
#include <variant>

#include "agent/inputs/checkpoint/checkpoint.h"
#include "agent/inputs/file_tailer.h"
#include "agent/inputs/input.h"
#include "agent/inputs/stdin_input.h"
#include "agent/pipeline/fan_out.h"
#include "agent/pipeline/queue.h"
#include "agent/runner/disk_buffer.h"
#include "agent/runner/sink_runner.h"
#include "base/log.h"
#include "circuit/clock.h"
#include "config/printer.h"
#include "sinks/registry.h"

namespace logcapture::agent {
namespace {

// As Filebeat's registry flush: a crash repeats at most about a second of delivered lines.
constexpr std::chrono::milliseconds kCheckpointSaveInterval{1000};

using RunnerList = std::vector<std::shared_ptr<SinkRunner>>;
using InputList = std::vector<std::shared_ptr<Input>>;

// A runner for `cfg`, or why the sink cannot be built.
std::variant<std::shared_ptr<SinkRunner>, std::string> makeRunner(const config::SinkConfig& cfg,
                                                                  const std::string& stateDir) {
  auto made = sinks::makeSink(cfg);
  if (auto* error = std::get_if<std::string>(&made)) return *error;
  return std::make_shared<SinkRunner>(cfg, std::move(std::get<0>(made)), stateDir, circuit::SteadyClock::instance());
}

// Starts the runners in order; when one cannot start, stops those it started and returns its error.
// `held`: they send nothing until they adopt their predecessors' batches (SinkRunner::adopt).
std::optional<std::string> startRunners(const RunnerList& runners, bool held = false) {
  for (std::size_t i = 0; i < runners.size(); ++i) {
    if (auto error = runners[i]->start(held)) {
      log::event(*log::component("agent"), spdlog::level::critical, "sink_start_failed",
                 {{"sink", runners[i]->name()}, {"error", *error}});
      for (std::size_t j = i; j-- > 0;) runners[j]->stop(std::chrono::steady_clock::now() + std::chrono::seconds(5));
      return "sink " + runners[i]->name() + ": " + *error;
    }
  }
  return std::nullopt;
}

// Stops the runners side by side, so that one waiting on a down destination does not eat the others'
// share of the deadline. `retire`: a reload removed them and the agent runs on, so what they leave
// unsent is dropped and counted instead of left unfinished (SinkRunner::retire).
void stopRunners(const RunnerList& runners, base::Deadline deadline, bool retire = false) {
  std::vector<std::thread> stopping;
  stopping.reserve(runners.size());
  for (const auto& r : runners) {
    stopping.emplace_back(
        [r, deadline, retire] { log::guardThread("sink", [&] { retire ? r->retire(deadline) : r->stop(deadline); }); });
  }
  for (auto& t : stopping) t.join();
}

// A sink's settings but the inputs routed to it and its fallback: changing those needs no rebuild.
std::string settingsOf(config::SinkConfig cfg) {
  cfg.inputs.reset();
  cfg.fallback.clear();
  return config::canonical(cfg);
}

// Links each runner to the runner of its `fallback:` in `sinks` (agent/runner/fallback.h), and unlinks
// those without one. Every link is cut first, so that no chain loops even for a moment: the new config
// has no loop, but the old links and the new ones together might.
void linkFallbacks(const RunnerList& runners, const std::vector<config::SinkConfig>& sinks);

std::vector<SinkRunner*> raw(const RunnerList& runners) {
  std::vector<SinkRunner*> out;
  out.reserve(runners.size());
  for (const auto& r : runners) out.push_back(r.get());
  return out;
}

const std::string& nameOf(const std::shared_ptr<SinkRunner>& r) { return r->name(); }
const std::string& nameOf(const std::shared_ptr<Input>& in) { return in->name(); }
const std::string& nameOf(const config::SinkConfig& c) { return c.name; }
const std::string& nameOf(const config::InputConfig& c) { return c.name; }

template <class List>
auto findNamed(const List& list, const std::string& name) {
  return std::find_if(list.begin(), list.end(), [&](const auto& part) { return nameOf(part) == name; });
}

void linkFallbacks(const RunnerList& runners, const std::vector<config::SinkConfig>& sinks) {
  for (const auto& r : runners) r->fallBackTo(nullptr);
  for (const auto& sc : sinks) {
    if (sc.fallback.empty()) continue;
    const auto from = findNamed(runners, sc.name);
    const auto to = findNamed(runners, sc.fallback);
    if (from != runners.end() && to != runners.end()) (*from)->fallBackTo(*to);
  }
}

}  // namespace

Pipeline::Pipeline() = default;
Pipeline::~Pipeline() = default;

// The flow, in start order: checkpoints, sinks, fan-out, inputs. Stop runs in reverse: inputs stop
// reading and flush into the queue, the fan-out drains the queue into the sinks, each sink sends what
// it holds until the deadline, and the checkpoints their acks moved are saved last.
std::unique_ptr<Pipeline> Pipeline::build(const config::Config& config) {
  auto p = std::make_unique<Pipeline>();
  p->config_ = config;

  p->checkpoints_ = std::make_unique<checkpoint::CheckpointStore>(
      config.agent.stateDir, std::chrono::duration_cast<std::chrono::seconds>(config.agent.checkpointRetention));
  checkpoint::CheckpointStore& checkpoints = *p->checkpoints_;
  p->checkpointSaver_ = std::make_unique<checkpoint::CheckpointSaver>(checkpoints, kCheckpointSaveInterval);
  checkpoint::CheckpointSaver& saver = *p->checkpointSaver_;
  p->add({"checkpoints",
          [&checkpoints, &saver] {
            checkpoints.load();
            saver.start();
            return true;
          },
          [&checkpoints, &saver](base::Deadline) {
            saver.stop();
            checkpoints.save();
          }});

  p->queue_ = std::make_unique<RecordQueue>(config.queue);

  for (const auto& sinkConfig : config.sinks) {
    auto made = makeRunner(sinkConfig, config.agent.stateDir);
    if (auto* error = std::get_if<std::string>(&made)) {
      log::event(*log::component("agent"), spdlog::level::critical, "sink_unavailable",
                 {{"sink", sinkConfig.name}, {"error", *error}});
      return nullptr;
    }
    p->runners_.push_back(std::move(std::get<0>(made)));
  }
  linkFallbacks(p->runners_, config.sinks);
  Pipeline& self = *p;
  p->add({"sinks", [&self] { return !startRunners(self.runners()); },
          [&self](base::Deadline deadline) { stopRunners(self.runners(), deadline); }});
  p->warnUnrouted();
  warnUnclaimedBuffers(config.agent.stateDir, config.sinks);

  p->fanOut_ = std::make_unique<FanOut>(*p->queue_, raw(p->runners_));
  FanOut& fanOut = *p->fanOut_;
  p->add({"fan-out",
          [&fanOut] {
            fanOut.start();
            return true;
          },
          [&fanOut](base::Deadline deadline) { fanOut.stop(deadline); }});

  for (const auto& input : config.inputs) p->inputs_.push_back(p->makeInput(input));
  p->add({"inputs",
          [&self] {
            const auto inputs = self.inputs();
            for (std::size_t i = 0; i < inputs.size(); ++i) {
              if (!inputs[i]->start()) {
                for (std::size_t j = i; j-- > 0;) inputs[j]->stop(std::chrono::steady_clock::now());
                return false;
              }
            }
            return true;
          },
          [&self](base::Deadline deadline) {
            for (const auto& in : self.inputs()) in->stop(deadline);
          }});
  return p;
}

std::shared_ptr<Input> Pipeline::makeInput(const config::InputConfig& cfg) {
  switch (cfg.type) {
    case config::InputType::File:
      return std::make_shared<FileTailer>(cfg, *queue_, *checkpoints_);
    case config::InputType::Stdin: {
      auto in = std::make_shared<StdinInput>(cfg, *queue_);
      in->onFinished([this] {
        if (inputFinished_) inputFinished_();
      });
      return in;
    }
  }
  return nullptr;
}

void Pipeline::warnUnrouted() const {
  const auto runners = this->runners();
  for (const auto& input : config_.inputs) {
    if (std::none_of(runners.begin(), runners.end(), [&](const auto& r) { return r->routes(input.name); })) {
      log::event(
          *log::component("agent"), spdlog::level::warn, "input_unrouted",
          {{"input", input.name}, {"hint", "no sink lists this input in `inputs`; its records are read and dropped"}});
    }
  }
}

void Pipeline::add(Stage stage) { stages_.push_back(std::move(stage)); }

bool Pipeline::start() {
  auto logger = log::component("agent");
  for (; started_ < stages_.size(); ++started_) {
    const Stage& stage = stages_[started_];
    if (!stage.start()) {
      log::event(*logger, spdlog::level::err, "stage_start_failed", {{"stage", stage.name}});
      stop(std::chrono::steady_clock::now() + std::chrono::seconds(5));
      return false;
    }
    logger->debug("started {}", stage.name);
  }
  return true;
}

void Pipeline::stop(base::Deadline deadline) {
  auto logger = log::component("agent");
  while (started_ > 0) {
    const Stage& stage = stages_[--started_];
    stage.stop(deadline);
    logger->debug("stopped {}", stage.name);
  }
}

bool Pipeline::finished() const {
  const auto inputs = this->inputs();
  if (inputs.empty()) return false;
  return std::all_of(inputs.begin(), inputs.end(), [](const auto& in) { return in->finished(); });
}

std::vector<std::shared_ptr<Input>> Pipeline::inputs() const {
  std::lock_guard lock(partsMutex_);
  return inputs_;
}

std::vector<std::shared_ptr<SinkRunner>> Pipeline::runners() const {
  std::lock_guard lock(partsMutex_);
  return runners_;
}

ReloadOutcome Pipeline::reload(const config::Config& next, base::Deadline deadline) {
  ReloadOutcome out;
  auto logger = log::component("agent");

  // Sinks first: build and start every new or changed one before touching what runs, so that a sink
  // that cannot start leaves the running pipeline as it was.
  const RunnerList running = runners();
  RunnerList nextRunners;
  RunnerList added;
  std::vector<std::pair<std::shared_ptr<SinkRunner>, std::shared_ptr<SinkRunner>>> replaced;              // old, new
  std::vector<std::pair<std::shared_ptr<SinkRunner>, std::optional<std::vector<std::string>>>> rerouted;  // old routes
  const auto giveUp = [&](std::string error) {
    stopRunners(added, std::chrono::steady_clock::now() + std::chrono::seconds(5));
    for (auto& [runner, inputs] : rerouted) runner->reroute(inputs);
    return ReloadOutcome{.applied = false, .error = std::move(error), .changes = {}};
  };
  for (const auto& sc : next.sinks) {
    const auto same = findNamed(running, sc.name);
    if (same != running.end() && settingsOf((*same)->config()) == settingsOf(sc)) {
      // Only the inputs routed to it may differ: re-routing needs no rebuild.
      if ((*same)->inputs() != sc.inputs) {
        rerouted.emplace_back(*same, (*same)->inputs());
        (*same)->reroute(sc.inputs);
        out.changes.push_back("sink " + sc.name + " rerouted");
      }
      nextRunners.push_back(*same);
      continue;
    }
    auto made = makeRunner(sc, config_.agent.stateDir);
    if (auto* error = std::get_if<std::string>(&made)) return giveUp("sink " + sc.name + ": " + *error);
    auto runner = std::get<0>(std::move(made));
    // A replacement holds its sends until it has taken what its predecessor still holds, so each
    // file's records keep their order across the reload.
    const bool replacing = same != running.end();
    if (auto error = startRunners({runner}, replacing)) return giveUp(*error);
    added.push_back(runner);
    nextRunners.push_back(runner);
    if (replacing) replaced.emplace_back(*same, runner);
    out.changes.push_back("sink " + sc.name + (replacing ? " rebuilt" : " added"));
  }
  RunnerList retired;  // removed from the config: they send what they hold to their destination, then drop
  for (const auto& r : running) {
    if (std::find(nextRunners.begin(), nextRunners.end(), r) != nextRunners.end()) continue;
    if (findNamed(next.sinks, r->name()) != next.sinks.end()) continue;  // replaced
    retired.push_back(r);
    out.changes.push_back("sink " + r->name() + " removed");
  }
  // The fan-out's routes are rebuilt by replaceRunners(), re-routed sinks included.
  if (!added.empty() || !retired.empty() || !rerouted.empty() || nextRunners != running) {
    if (!fanOut_->replaceRunners(raw(nextRunners), deadline)) {
      return giveUp(
          "a sink that stays is holding back every input (its buffer is full and blocks); nothing changed, "
          "try again once it drains");
    }
    // A replaced sink's batches go to its replacement, which sends them first (to the new settings:
    // a reload that fixes a sink's address delivers what it held).
    for (auto& [old, replacement] : replaced) {
      replacement->adopt(old->release());
      old->fallBackTo(nullptr);  // released: it sends nothing more
    }
    std::lock_guard lock(partsMutex_);
    runners_ = nextRunners;
  }
  // Before the retired ones stop: a sink falling back to one of them keeps its batches from now on.
  linkFallbacks(nextRunners, next.sinks);

  // Inputs: a changed one stops, and its replacement starts once the sinks have finished with what
  // the old one read, so it resumes from checkpoints that are exactly where the old one stopped.
  const InputList inputsRunning = inputs();
  InputList keptInputs;
  for (const auto& ic : next.inputs) {
    const auto same = findNamed(inputsRunning, ic.name);
    const auto was = findNamed(config_.inputs, ic.name);
    if (same != inputsRunning.end() && was != config_.inputs.end() &&
        config::canonical(*was) == config::canonical(ic)) {
      keptInputs.push_back(*same);
      continue;
    }
    // An input that takes new settings in place (stdin, which cannot be read again) is not rebuilt.
    if (same != inputsRunning.end() && (*same)->reconfigure(ic)) {
      keptInputs.push_back(*same);
      out.changes.push_back("input " + ic.name + " reconfigured");
      continue;
    }
    out.changes.push_back("input " + ic.name + (same == inputsRunning.end() ? " added" : " rebuilt"));
  }
  InputList retiredInputs;
  for (const auto& in : inputsRunning) {
    if (std::find(keptInputs.begin(), keptInputs.end(), in) != keptInputs.end()) continue;
    retiredInputs.push_back(in);
    if (findNamed(next.inputs, in->name()) == next.inputs.end())
      out.changes.push_back("input " + in->name() + " removed");
  }
  for (const auto& in : retiredInputs) in->stop(deadline);
  stopRunners(retired, deadline, /*retire=*/true);
  for (const auto& r : retired) r->fallBackTo(nullptr);
  // The disk buffer of a sink removed, renamed or turned to memory stays where it is, said once.
  warnUnclaimedBuffers(config_.agent.stateDir, next.sinks);
  for (const auto& in : retiredInputs) {
    while (!in->settled() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (!in->settled()) {
      log::event(*logger, spdlog::level::warn, "input_unsettled_at_reload",
                 {{"input", in->name()},
                  {"hint",
                   "the sinks had not finished its records by the deadline; its replacement may read some "
                   "of them again"}});
    }
  }
  InputList nextInputs;
  for (const auto& ic : next.inputs) {
    if (auto kept = findNamed(keptInputs, ic.name); kept != keptInputs.end()) {
      nextInputs.push_back(*kept);
      continue;
    }
    auto in = makeInput(ic);
    if (!in->start()) {
      out.changes.push_back("input " + ic.name + " could not start (see the log); it is left out");
      continue;
    }
    nextInputs.push_back(std::move(in));
  }
  {
    std::lock_guard lock(partsMutex_);
    inputs_ = std::move(nextInputs);
  }

  // What only a restart applies: the queue and the checkpoints live through reloads.
  if (config::canonical(next.queue) != config::canonical(config_.queue)) {
    out.changes.push_back("queue changed: applies after a restart");
  }
  if (next.agent.stateDir != config_.agent.stateDir ||
      next.agent.checkpointRetention != config_.agent.checkpointRetention) {
    out.changes.push_back("agent.state_dir or agent.checkpoint_retention changed: applies after a restart");
  }
  const config::Config before = config_;
  config_ = next;
  config_.queue = before.queue;
  config_.agent.stateDir = before.agent.stateDir;
  config_.agent.checkpointRetention = before.agent.checkpointRetention;
  warnUnrouted();
  out.applied = true;
  return out;
}

}  // namespace logcapture::agent
