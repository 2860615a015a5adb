#pragma once

// The pipeline: inputs -> decode -> queue -> fan-out -> per-sink runner -> breaker -> sink.
// pipeline.cc is the one place that wires the stages and owns their start and stop order:
// stages start in the order added and stop in reverse, so consumers outlive their producers.
//
// Thread-safety: start() and stop() are called by the daemon's main thread (stop() may run on a
// dedicated shutdown thread); they are not called concurrently with each other. The accessors
// return parts that are thread-safe themselves (runners, inputs, queue) and live as long as the
// pipeline.

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"

namespace logcapture::agent {

using Deadline = std::chrono::steady_clock::time_point;

class Input;
class RecordQueue;
class SinkRunner;
class FanOut;
namespace checkpoint {
class CheckpointStore;
}

// One running part of the pipeline. start() returns false when it cannot run (it logs why);
// stop() drains and flushes what it holds, giving up at the deadline.
struct Stage {
  std::string name;
  std::function<bool()> start;
  std::function<void(Deadline)> stop;
};

class Pipeline {
 public:
  Pipeline();
  ~Pipeline();
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  // Builds every stage the config asks for; nothing runs until start(). Returns null when a part
  // cannot be built (it logs why).
  static std::unique_ptr<Pipeline> build(const config::Config& config);

  void add(Stage stage);
  // Starts the stages in order; on a failure stops those already started and returns false.
  bool start();
  // Stops the started stages in reverse order; each gets what is left of the deadline.
  void stop(Deadline deadline);
  std::size_t size() const { return stages_.size(); }

  // True when every input has read all it ever will (only stdin inputs, all at end of file): the agent
  // then drains and exits.
  bool finished() const;

  const std::vector<std::unique_ptr<Input>>& inputs() const { return inputs_; }
  const std::vector<std::unique_ptr<SinkRunner>>& runners() const { return runners_; }
  const RecordQueue* queue() const { return queue_.get(); }

 private:
  std::vector<Stage> stages_;
  std::size_t started_ = 0;
  // Declared in the order they must be destroyed last-to-first: inputs and the fan-out go before
  // the runners they feed, the runners before the queue and checkpoints their acks reach.
  std::unique_ptr<checkpoint::CheckpointStore> checkpoints_;
  std::unique_ptr<RecordQueue> queue_;
  std::vector<std::unique_ptr<SinkRunner>> runners_;
  std::unique_ptr<FanOut> fanOut_;
  std::vector<std::unique_ptr<Input>> inputs_;
};

}  // namespace logcapture::agent
