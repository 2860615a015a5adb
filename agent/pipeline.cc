#include "agent/pipeline.h"

#include "agent/log.h"

namespace logcapture::agent {

std::unique_ptr<Pipeline> Pipeline::build(const config::Config&) {
  auto pipeline = std::make_unique<Pipeline>();
  // Inputs, queue, sink runners and the admin server are added here, in start order.
  return pipeline;
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

}  // namespace logcapture::agent
