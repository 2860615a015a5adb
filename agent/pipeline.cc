#include "agent/pipeline.h"

#include <set>

#include "agent/checkpoint/checkpoint.h"
#include "agent/fan_out.h"
#include "agent/file_tailer.h"
#include "agent/input.h"
#include "agent/log.h"
#include "agent/queue.h"
#include "agent/sink_runner.h"
#include "agent/stdin_input.h"
#include "circuit/clock.h"
#include "sinks/registry.h"

namespace logcapture::agent {

Pipeline::Pipeline() = default;
Pipeline::~Pipeline() = default;

// The flow, in start order: checkpoints, sinks, fan-out, queue consumers, inputs. Stop runs in reverse:
// inputs stop reading and flush into the queue, the fan-out drains the queue into the sinks, each sink
// sends what it holds until the deadline, and the checkpoints their acks moved are saved last.
std::unique_ptr<Pipeline> Pipeline::build(const config::Config& config) {
  auto logger = log::component("agent");
  auto p = std::make_unique<Pipeline>();

  p->checkpoints_ = std::make_unique<checkpoint::CheckpointStore>(
      config.agent.stateDir, std::chrono::duration_cast<std::chrono::seconds>(config.agent.checkpointRetention));
  checkpoint::CheckpointStore& checkpoints = *p->checkpoints_;
  p->add({"checkpoints",
          [&checkpoints] {
            checkpoints.load();
            return true;
          },
          [&checkpoints](Deadline) { checkpoints.save(); }});

  p->queue_ = std::make_unique<RecordQueue>(config.queue);

  std::vector<SinkRunner*> runners;
  for (const auto& sinkConfig : config.sinks) {
    auto made = sinks::makeSink(sinkConfig);
    if (auto* error = std::get_if<std::string>(&made)) {
      log::event(*logger, spdlog::level::critical, "sink_unavailable", {{"sink", sinkConfig.name}, {"error", *error}});
      return nullptr;
    }
    auto runner = std::make_unique<SinkRunner>(sinkConfig, std::move(std::get<0>(made)), config.agent.stateDir,
                                               circuit::SteadyClock::instance());
    SinkRunner* r = runner.get();
    runners.push_back(r);
    p->runners_.push_back(std::move(runner));
    p->add({"sink " + sinkConfig.name,
            [r, logger] {
              if (auto error = r->start()) {
                log::event(*logger, spdlog::level::critical, "sink_start_failed",
                           {{"sink", r->name()}, {"error", *error}});
                return false;
              }
              return true;
            },
            [r](Deadline deadline) { r->stop(deadline); }});
  }

  for (const auto& input : config.inputs) {
    if (std::none_of(runners.begin(), runners.end(), [&](SinkRunner* r) { return r->routes(input.name); })) {
      log::event(
          *logger, spdlog::level::warn, "input_unrouted",
          {{"input", input.name}, {"hint", "no sink lists this input in `inputs`; its records are read and dropped"}});
    }
  }

  p->fanOut_ = std::make_unique<FanOut>(*p->queue_, runners);
  FanOut& fanOut = *p->fanOut_;
  p->add({"fan-out",
          [&fanOut] {
            fanOut.start();
            return true;
          },
          [&fanOut](Deadline deadline) { fanOut.stop(deadline); }});

  for (const auto& input : config.inputs) {
    std::unique_ptr<Input> made;
    switch (input.type) {
      case config::InputType::File:
        made = std::make_unique<FileTailer>(input, *p->queue_, checkpoints);
        break;
      case config::InputType::Stdin:
        made = std::make_unique<StdinInput>(input, *p->queue_);
        break;
    }
    Input* in = made.get();
    p->inputs_.push_back(std::move(made));
    p->add({"input " + input.name, [in] { return in->start(); }, [in](Deadline deadline) { in->stop(deadline); }});
  }
  return p;
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

void Pipeline::stop(Deadline deadline) {
  auto logger = log::component("agent");
  while (started_ > 0) {
    const Stage& stage = stages_[--started_];
    stage.stop(deadline);
    logger->debug("stopped {}", stage.name);
  }
}

bool Pipeline::finished() const {
  if (inputs_.empty()) return false;
  return std::all_of(inputs_.begin(), inputs_.end(), [](const auto& in) { return in->finished(); });
}

}  // namespace logcapture::agent
