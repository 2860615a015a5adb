#pragma once

// The pipeline: inputs -> decode -> queue -> fan-out -> per-sink runner -> breaker -> sink.
// pipeline.cc is the one place that wires the stages and owns their start and stop order:
// stages start in the order added and stop in reverse, so consumers outlive their producers.
//
// Thread-safety: start(), stop() and reload() are called by the daemon, one at a time (stop() and
// reload() may run on dedicated threads, never together). partsMutex_ guards the lists of inputs and
// runners, which reload() changes; inputs() and runners() return a copy of a list, safe from any
// thread, and the parts in it are thread-safe themselves and stay alive as long as the copy.

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "agent/pipeline/reload.h"
#include "base/deadline.h"
#include "config/config.h"

namespace logcapture::agent {

class Input;
class RecordQueue;
class SinkRunner;
class FanOut;
namespace checkpoint {
class CheckpointStore;
class CheckpointSaver;
}  // namespace checkpoint

// One running part of the pipeline. start() returns false when it cannot run (it logs why);
// stop() drains and flushes what it holds, giving up at the deadline.
struct Stage {
  std::string name;
  std::function<bool()> start;
  std::function<void(base::Deadline)> stop;
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

  // Applies a new, valid config to the running pipeline. Sinks and inputs whose config changed are
  // rebuilt, new ones started, removed ones stopped; unchanged ones keep running with their state
  // (breaker, buffer, files and checkpoints). A replaced sink first sends what it holds to its old
  // destination (until the deadline) while its replacement already takes new records; a replaced
  // input stops, then resumes from its checkpoints once the sinks finished its records (or at the
  // deadline). When a new sink cannot be built or started, nothing changes and the outcome says why.
  // Parts that only a restart can change (queue, state_dir) are reported in the outcome's changes.
  ReloadOutcome reload(const config::Config& next, base::Deadline deadline);

  void add(Stage stage);
  // Starts the stages in order; on a failure stops those already started and returns false.
  bool start();
  // Stops the started stages in reverse order; each gets what is left of the deadline.
  void stop(base::Deadline deadline);
  std::size_t size() const { return stages_.size(); }

  // True when every input has read all it ever will (only stdin inputs, all at end of file): the agent
  // then drains and exits.
  bool finished() const;
  // Called on an input's thread when it has read all it ever will, so that whoever waits for
  // finished() looks again. Set before start().
  void onInputFinished(std::function<void()> listener) { inputFinished_ = std::move(listener); }

  std::vector<std::shared_ptr<Input>> inputs() const;
  std::vector<std::shared_ptr<SinkRunner>> runners() const;
  const RecordQueue* queue() const { return queue_.get(); }
  // Null before build() made one; the same one for the pipeline's life (a reload reroutes it).
  const FanOut* fanOut() const { return fanOut_.get(); }

 private:
  std::shared_ptr<Input> makeInput(const config::InputConfig& cfg);
  void warnUnrouted() const;

  std::vector<Stage> stages_;
  std::size_t started_ = 0;
  config::Config config_;  // the one running; reload() compares the next one with it
  // Declared in the order they must be destroyed last-to-first: inputs and the fan-out go before
  // the runners they feed, the runners before the queue and checkpoints their acks reach.
  std::unique_ptr<checkpoint::CheckpointStore> checkpoints_;
  std::unique_ptr<checkpoint::CheckpointSaver> checkpointSaver_;
  std::unique_ptr<RecordQueue> queue_;
  mutable std::mutex partsMutex_;
  std::vector<std::shared_ptr<SinkRunner>> runners_;  // in config order
  std::unique_ptr<FanOut> fanOut_;
  std::vector<std::shared_ptr<Input>> inputs_;  // in config order
  std::function<void()> inputFinished_;
};

}  // namespace logcapture::agent
