#pragma once

// The one interface every destination implements. A sink speaks its protocol and classifies its
// protocol's errors; it never retries, never waits on a breaker and never drops: the SinkRunner
// (agent/runner/sink_runner.h) layers breaker permit -> send -> classify -> retry -> report, in that order,
// and routes what failed for good to the dead letter.
//
// Thread-safety: start() and stop() are called once each, by the pipeline's thread, before the first
// and after the last send(). send() and probe() are called by the runner's `workers` threads at once,
// so a sink either keeps one connection per calling thread or serialises inside.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/deadline.h"
#include "base/record.h"

namespace logcapture::sinks {

// How a send went, as the sink classifies its protocol's answer. Sinks know nothing of the breaker:
// the runner maps an outcome to the breaker's (agent/runner/send_verdict.h).
enum class Outcome : std::uint8_t {
  Success,
  Retriable,  // the destination, the network or our credentials failed: sent again later
  Throttled,  // the destination asked us to slow down (HTTP 429/503)
  Permanent,  // the request was bad, not the destination: its records go to the dead letter
};

constexpr std::string_view outcomeName(Outcome o) {
  switch (o) {
    case Outcome::Success:
      return "success";
    case Outcome::Retriable:
      return "retriable";
    case Outcome::Throttled:
      return "throttled";
    case Outcome::Permanent:
      return "permanent";
  }
  return "?";
}

// Records sent in one call, each with its encoding in the sink's `encoding` (json or raw). The runner
// encodes a batch once when it forms it; retries and splits reuse the bytes. Each encoding is followed
// by one '\n' in `encoded`, so a newline-delimited body is `encoded` itself, sent without a copy.
// IMPORTANT: the records are owned by the runner and live until send() returns, no longer.
struct Batch {
  std::vector<const base::Record*> records;
  std::string encoded;              // every record's encoding and its '\n', back to back
  std::vector<std::uint32_t> ends;  // record i and its '\n' are encoded[ends[i-1], ends[i])

  std::size_t size() const { return records.size(); }
  bool empty() const { return records.empty(); }
  const base::Record& record(std::size_t i) const { return *records[i]; }
  // Record i's encoding, without its '\n'.
  std::string_view encodedRecord(std::size_t i) const {
    const std::uint32_t begin = i == 0 ? 0 : ends[i - 1];
    return std::string_view(encoded).substr(begin, ends[i] - 1 - begin);
  }
  std::uint64_t bytes() const { return encoded.size(); }

  // Appends a record whose encoding the caller wrote at the end of `encoded` since the last seal,
  // and its '\n'.
  void seal(const base::Record* r) {
    encoded.push_back('\n');
    records.push_back(r);
    ends.push_back(static_cast<std::uint32_t>(encoded.size()));
  }
};

// One record of a batch that failed while the others succeeded (a Kafka delivery report, an
// Elasticsearch bulk item). `outcome` is Retriable, Throttled or Permanent.
struct RecordFailure {
  std::uint32_t index = 0;  // into the batch sent
  Outcome outcome = Outcome::Retriable;
  std::string error;
};

struct SendResult {
  // How the call went, for the breaker. With failures below it is the call as a whole: an
  // Elasticsearch answer 200 with some items refused is Success for the breaker.
  Outcome outcome = Outcome::Success;
  std::string error;  // what went wrong, for events and the dead letter; empty on success
  // The destination asked to be left alone this long (HTTP Retry-After): a floor on the breaker's open time.
  std::optional<std::chrono::milliseconds> retryAfter;
  // The destination refused the request for its size (HTTP 413): the runner resends it in halves; a
  // single record that is too large goes to the dead letter.
  bool tooLarge = false;
  // Records that failed while the rest were delivered. Empty: every record shares `outcome`.
  // Non-empty: the runner retries or dead-letters exactly these records, whatever `outcome` says
  // (which then only tells the breaker how the call went).
  std::vector<RecordFailure> failures;

  static SendResult success() { return {}; }
  static SendResult failure(Outcome outcome, std::string error) {
    SendResult r;
    r.outcome = outcome;
    r.error = std::move(error);
    return r;
  }
};

// A figure a sink keeps of its own protocol, shown in /metrics as `name`{sink="...", <label>}. `name`,
// `help` and `label` are the same for every sink of a type and live as long as the program; samples of
// one name share its help and kind.
struct SinkMetric {
  enum class Kind : std::uint8_t { Counter, Gauge };
  std::string_view name;
  std::string_view help;
  std::int64_t value = 0;
  Kind kind = Kind::Counter;
  std::pair<std::string_view, std::string_view> label{};  // none when its key is empty
};

class Sink {
 public:
  virtual ~Sink() = default;

  // Prepares what needs no destination (client objects, threads). Returns an error only for what can
  // never work (a client library refusing the configuration); an unreachable destination is not an
  // error here: the first sends fail and the breaker opens.
  virtual std::optional<std::string> start() { return std::nullopt; }
  // Sends the batch and returns once the destination has accepted or refused every record, or at
  // the deadline (then Retriable: records may still arrive, at-least-once allows the duplicate).
  virtual SendResult send(const Batch& batch, base::Deadline deadline) = 0;
  // A cheap request the destination must answer, sent before a trial batch when breaker.probe is on.
  virtual SendResult probe(base::Deadline) { return SendResult::success(); }
  // After the last send: flushes what the client library still holds and closes connections.
  virtual void stop(base::Deadline) {}
  // The sink's own counters, read by the metrics from any thread at any time (relaxed loads).
  virtual std::vector<SinkMetric> metrics() const { return {}; }
};

}  // namespace logcapture::sinks
