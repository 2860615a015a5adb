#pragma once

// A scripted stand-in for a destination, and a feed of numbered records with a checkpoint cursor, for
// unit tests of the sink runner and the fan-out. The sink stands in for a destination, not for a
// client library; the real sinks are tested against real servers in tests/integration/.
// Thread-safe: send() and probe() run on the runner's workers while the test changes the scripts.

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "agent/pipeline/delivery.h"
#include "agent/pipeline/queue.h"
#include "agent/runner/disk_buffer.h"
#include "agent/runner/sink_runner.h"
#include "circuit/clock.h"
#include "config/config.h"
#include "sinks/registry.h"
#include "sinks/sink.h"
#include "tests/support/fixtures.h"

namespace logcapture::testing {

// Answers each send with `script` (and each probe with the probe script) and keeps the messages it
// accepted.
class ScriptedSink final : public sinks::Sink {
 public:
  using Script = std::function<sinks::SendResult(const sinks::Batch&)>;
  using ProbeScript = std::function<sinks::SendResult()>;
  explicit ScriptedSink(Script script) : script_(std::move(script)) {}

  sinks::SendResult send(const sinks::Batch& batch, base::Deadline) override {
    Script script;
    {
      std::lock_guard lock(mutex_);
      script = script_;
      ++sends_;
    }
    sinks::SendResult r = script(batch);
    if (r.outcome == sinks::Outcome::Success) {
      std::lock_guard lock(mutex_);
      std::vector<bool> failed(batch.size(), false);
      for (const auto& f : r.failures) failed[f.index] = true;
      for (std::size_t i = 0; i < batch.size(); ++i) {
        if (!failed[i]) accepted_.emplace_back(batch.record(i).message);
      }
    }
    return r;
  }
  sinks::SendResult probe(base::Deadline) override {
    ProbeScript script;
    {
      std::lock_guard lock(mutex_);
      script = probeScript_;
      ++probes_;
    }
    return script ? script() : sinks::SendResult::success();
  }
  void setScript(Script script) {
    std::lock_guard lock(mutex_);
    script_ = std::move(script);
  }
  void setProbe(ProbeScript script) {
    std::lock_guard lock(mutex_);
    probeScript_ = std::move(script);
  }
  std::vector<std::string> accepted() const {
    std::lock_guard lock(mutex_);
    return accepted_;
  }
  int sends() const {
    std::lock_guard lock(mutex_);
    return sends_;
  }
  int probes() const {
    std::lock_guard lock(mutex_);
    return probes_;
  }

 private:
  mutable std::mutex mutex_;
  Script script_;
  ProbeScript probeScript_;
  std::vector<std::string> accepted_;
  int sends_ = 0;
  int probes_ = 0;
};

inline sinks::SendResult acceptAll(const sinks::Batch&) { return sinks::SendResult::success(); }
inline sinks::SendResult refuseAll(const sinks::Batch&) {
  return sinks::SendResult::failure(sinks::Outcome::Retriable, "connection refused");
}

// A console sink's config with short timings: batches of 10 lingering 1 ms, one worker, two attempts,
// a breaker opening after 3 failures for 50 ms (at most 100 ms), no jitter.
inline config::SinkConfig scriptedSinkConfig(const std::string& name = "test") {
  config::SinkConfig c;
  c.name = name;
  c.type = config::sinkTypeOf<sinks::console::ConsoleConfig>();
  c.settings = sinks::console::ConsoleConfig{};
  c.encoding = config::Encoding::Raw;
  c.batch.maxRecords = 10;
  c.batch.linger = std::chrono::milliseconds(1);
  c.workers = 1;
  c.timeout = std::chrono::seconds(1);
  c.retry.maxAttempts = 2;
  c.retry.initialBackoff = std::chrono::milliseconds(1);
  c.retry.maxBackoff = std::chrono::milliseconds(2);
  c.breaker.failureThreshold = 3;
  c.breaker.successThreshold = 1;
  c.breaker.halfOpenMaxCalls = 1;
  c.breaker.openTimeout = std::chrono::milliseconds(50);
  c.breaker.maxOpenTimeout = std::chrono::milliseconds(100);
  c.breaker.jitter = 0;
  c.breaker.ramp = std::chrono::milliseconds(100);  // scaled down with the open times
  return c;
}

// The same with a disk buffer (buffer.type: disk) that spills and syncs every 5 ms.
inline config::SinkConfig scriptedDiskSinkConfig(const std::string& name = "test") {
  config::SinkConfig c = scriptedSinkConfig(name);
  c.buffer.type = config::BufferType::Disk;
  c.buffer.syncInterval = std::chrono::milliseconds(5);
  return c;
}

// A runner on a ScriptedSink with state in `stateDir`, started (`held`: waiting for adopt()), stopped at
// the end of its scope (or by stop()).
struct ScriptedRunner {
  ScriptedSink* sink = nullptr;
  std::unique_ptr<agent::SinkRunner> runner;
  ScriptedRunner(const std::filesystem::path& stateDir, ScriptedSink::Script script, const config::SinkConfig& cfg,
                 bool held = false) {
    auto s = std::make_unique<ScriptedSink>(std::move(script));
    sink = s.get();
    runner =
        std::make_unique<agent::SinkRunner>(cfg, std::move(s), stateDir.string(), circuit::SteadyClock::instance());
    if (auto error = runner->start(held)) throw std::runtime_error("the runner did not start: " + *error);
  }
  ~ScriptedRunner() { stop(); }
  ScriptedRunner(const ScriptedRunner&) = delete;
  ScriptedRunner& operator=(const ScriptedRunner&) = delete;
  void stop() {
    if (runner) runner->stop(std::chrono::steady_clock::now() + std::chrono::milliseconds(200));
    runner.reset();
  }
  agent::DiskBufferStats disk() const { return *runner->diskBufferStats(); }
};

// A started runner around a real sink, made from `cfg` as the agent makes it, with a state directory of
// its own; stopped (within 1 s) when it goes.
struct DestinationRunner {
  TempDir dir{"logcapture-destination-runner"};
  std::unique_ptr<agent::SinkRunner> runner;
  explicit DestinationRunner(const config::SinkConfig& cfg) {
    auto made = sinks::makeSink(cfg);
    if (auto* error = std::get_if<std::string>(&made)) throw std::runtime_error("the sink was not made: " + *error);
    runner = std::make_unique<agent::SinkRunner>(cfg, std::move(std::get<std::unique_ptr<sinks::Sink>>(made)),
                                                 dir.path.string(), circuit::SteadyClock::instance());
    if (auto error = runner->start()) throw std::runtime_error("the runner did not start: " + *error);
  }
  ~DestinationRunner() { runner->stop(std::chrono::steady_clock::now() + std::chrono::seconds(1)); }
  DestinationRunner(const DestinationRunner&) = delete;
  DestinationRunner& operator=(const DestinationRunner&) = delete;
  circuit::State state() const { return runner->breaker().state(); }
};

// Numbered records of one source (`path`, of input `input`), and the source's committed offset.
class Feed {
 public:
  explicit Feed(std::string path = "/var/log/a.log", std::string input = "app") {
    source_ = std::make_shared<base::Source>();
    source_->input = std::move(input);
    source_->path = std::move(path);
    cursor_ = std::make_shared<agent::SourceCursor>(0, [this](std::uint64_t offset) { committed_ = offset; });
  }
  // A chunk of records [from, to); record i ends at offset i + 1.
  agent::Chunk chunk(int from, int to) {
    agent::Chunk c;
    for (int i = from; i < to; ++i) {
      base::Record r;
      r.message = c.storage.copy(source_->path + " " + std::to_string(i));
      r.source = source_.get();
      r.offset = static_cast<std::uint64_t>(i + 1);
      c.bytes += r.message.size();
      c.records.push_back(std::move(r));
    }
    c.source = source_;
    c.ack = agent::Ack(cursor_, cursor_->open(static_cast<std::uint64_t>(to)));
    return c;
  }
  // The same as a delivery, which sinks take claims on.
  agent::DeliveryRef delivery(int from, int to) { return std::make_shared<agent::Delivery>(chunk(from, to)); }
  // A claim on a delivery of its own, for one sink.
  agent::Claim claim(int from, int to) { return agent::Claim(delivery(from, to)); }
  // `othersWait`: as a fan-out feeding other sinks too would offer them.
  void offer(agent::SinkRunner& runner, int from, int to, int perChunk = 5, bool othersWait = false) {
    for (int i = from; i < to; i += perChunk) runner.offer(claim(i, std::min(to, i + perChunk)), othersWait);
  }
  std::uint64_t committed() const { return committed_.load(); }
  const base::Source& source() const { return *source_; }
  std::vector<std::string> expected(int from, int to) const {
    std::vector<std::string> out;
    for (int i = from; i < to; ++i) out.push_back(source_->path + " " + std::to_string(i));
    return out;
  }

 private:
  std::shared_ptr<base::Source> source_;
  std::shared_ptr<agent::SourceCursor> cursor_;
  std::atomic<std::uint64_t> committed_{0};
};

}  // namespace logcapture::testing
