#pragma once

// The pipeline: inputs -> decode -> queue -> fan-out -> per-sink runner -> breaker -> sink.
// pipeline.cc is the one place that wires the stages and owns their start and stop order:
// stages start in the order added and stop in reverse, so consumers outlive their producers.
//
// Thread-safety: start() and stop() are called by the daemon's main thread (stop() may run on a
// dedicated shutdown thread); they are not called concurrently with each other.

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"

namespace logcapture::agent {

using Deadline = std::chrono::steady_clock::time_point;

// One running part of the pipeline. start() returns false when it cannot run (it logs why);
// stop() drains and flushes what it holds, giving up at the deadline.
struct Stage {
  std::string name;
  std::function<bool()> start;
  std::function<void(Deadline)> stop;
};

class Pipeline {
 public:
  // Builds every stage the config asks for; nothing runs until start().
  static std::unique_ptr<Pipeline> build(const config::Config& config);

  void add(Stage stage);
  // Starts the stages in order; on a failure stops those already started and returns false.
  bool start();
  // Stops the started stages in reverse order; each gets what is left of the deadline.
  void stop(Deadline deadline);
  std::size_t size() const { return stages_.size(); }

 private:
  std::vector<Stage> stages_;
  std::size_t started_ = 0;
};

}  // namespace logcapture::agent
