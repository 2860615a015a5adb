#include "agent/admin/metrics.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <vector>

#include "agent/inputs/decode/decoder.h"
#include "agent/inputs/input.h"
#include "agent/pipeline/fan_out.h"
#include "agent/pipeline/pipeline.h"
#include "agent/pipeline/queue.h"
#include "agent/runner/sink_runner.h"
#include "base/json_text.h"
#include "base/log.h"
#include "circuit/breaker.h"

namespace logcapture::agent::admin {
namespace {

using T = MetricType;

// Inputs.
constexpr Family kInputRecords{"logcapture_input_records_total", T::Counter, "Records read by the input."};
constexpr Family kInputBytes{"logcapture_input_bytes_total", T::Counter, "Bytes read by the input, newlines included."};
constexpr Family kInputLag{"logcapture_input_lag_bytes", T::Gauge,
                           "Bytes of the input's files past their checkpointed offset (size - checkpoint)."};
constexpr Family kInputFilesOpen{"logcapture_input_files_open", T::Gauge, "Files the input holds open."};
constexpr Family kInputFilesWaiting{"logcapture_input_files_waiting", T::Gauge,
                                    "Files matched but not opened because of max_open_files."};
constexpr Family kInputTruncatedLines{"logcapture_input_truncated_lines_total", T::Counter,
                                      "Lines cut at max_line_bytes."};
constexpr Family kInputRotations{"logcapture_input_rotations_total", T::Counter, "Files seen rotated away."};
constexpr Family kInputTruncations{"logcapture_input_truncations_total", T::Counter,
                                   "Files that shrank below the read offset (copytruncate)."};
constexpr Family kInputPartialLines{"logcapture_input_partial_lines_total", T::Counter,
                                    "Incomplete last lines sent without their newline (writer paused, file ended)."};
constexpr Family kInputUnqueuedAtStop{"logcapture_input_unqueued_at_stop_records_total", T::Counter,
                                      "stdin records the queue had no room for by a stop's deadline: lost."};
constexpr Family kInputFilesUnreadable{"logcapture_input_files_unreadable", T::Gauge,
                                       "Matched paths not read now: cannot be opened or read, or not a regular file."};
constexpr Family kInputErrors{
    "logcapture_input_errors_total", T::Counter,
    "Input failures by kind (open, not_regular, read, watch, wakeup), once per path and state."};
constexpr Family kInputInvalid{"logcapture_input_invalid_records_total", T::Counter,
                               "Lines not valid in the input's format, kept raw: invalid_json (json, docker), "
                               "invalid_cri (cri)."};
constexpr Family kInputFlushedEarly{"logcapture_input_flushed_incomplete_records_total", T::Counter,
                                    "Records sent before they were complete: multiline (timeout, max_lines, "
                                    "max_bytes), partial (a docker or cri split line whose end did not come)."};
constexpr Family kInputDecoderTruncated{"logcapture_input_decoder_truncated_records_total", T::Counter,
                                        "Records the decoder cut at max_line_bytes or multiline max_bytes."};

// The queue between the inputs and the sinks.
constexpr Family kQueueRecords{"logcapture_queue_records", T::Gauge, "Records waiting in the queue."};
constexpr Family kQueueBytes{"logcapture_queue_bytes", T::Gauge, "Message bytes waiting in the queue."};
constexpr Family kQueueMaxRecords{"logcapture_queue_max_records", T::Gauge,
                                  "The queue's bound in records (queue.max_records)."};
constexpr Family kQueueMaxBytes{"logcapture_queue_max_bytes", T::Gauge,
                                "The queue's bound in message bytes (queue.max_bytes)."};
constexpr Family kQueueBlocked{"logcapture_queue_blocked", T::Gauge,
                               "1 while the full queue holds its inputs back (when_full: block)."};
constexpr Family kQueueBlockedPushes{"logcapture_queue_blocked_pushes_total", T::Counter,
                                     "Pushes that waited for room in the queue."};
constexpr Family kQueueDropped{"logcapture_queue_dropped_records_total", T::Counter,
                               "Records the full queue dropped, by its when_full policy."};
constexpr Family kUnrouted{"logcapture_unrouted_records_total", T::Counter,
                           "Records of inputs routed to no sink, finished without being sent."};

// Sinks.
constexpr Family kSinkReceived{"logcapture_sink_received_records_total", T::Counter, "Records handed to the sink."};
constexpr Family kSinkDelivered{"logcapture_sink_delivered_records_total", T::Counter,
                                "Records the destination accepted."};
constexpr Family kSinkDropped{"logcapture_sink_dropped_records_total", T::Counter, "Records dropped, by reason."};
constexpr Family kSinkFallback{"logcapture_sink_fallback_records_total", T::Counter,
                               "Records handed to the sink's fallback sink while its breaker was open, by why it was "
                               "open (breaker_open, forced_open)."};
constexpr Family kSinkDeadLetter{"logcapture_sink_dead_letter_records_total", T::Counter,
                                 "Records written to the sink's dead-letter file."};
constexpr Family kSinkBufferBytes{
    "logcapture_sink_buffer_bytes", T::Gauge,
    "Bytes the batches in the sink's buffer hold: in memory, their encodings and lines; on disk, their encodings."};
constexpr Family kSinkBufferRecords{"logcapture_sink_buffer_records", T::Gauge, "Records in the sink's buffer."};
constexpr Family kSinkBufferBatches{"logcapture_sink_buffer_batches", T::Gauge, "Batches in the sink's buffer."};
// Disk buffers (buffer.type: disk), one sample per sink that has one.
constexpr Family kDiskBytes{"logcapture_sink_buffer_disk_bytes", T::Gauge,
                            "Bytes of the sink's disk buffer segment files."};
constexpr Family kDiskSegments{"logcapture_sink_buffer_segments", T::Gauge, "Segment files of the sink's disk buffer."};
constexpr Family kDiskRecords{"logcapture_sink_buffer_disk_records", T::Gauge,
                              "Records on the sink's disk buffer not yet delivered, dead-lettered or dropped."};
constexpr Family kDiskOldestAge{"logcapture_sink_buffer_oldest_record_age_seconds", T::Gauge,
                                "Age of the oldest batch on the sink's disk buffer; 0 when empty."};
constexpr Family kDiskSyncs{"logcapture_sink_buffer_syncs_total", T::Counter,
                            "Syncs (fdatasync) of the sink's disk buffer."};
constexpr Family kDiskCorrupt{"logcapture_sink_buffer_corrupt_records_total", T::Counter,
                              "Records of the disk buffer skipped as unreadable: torn by a crash, corrupt, or a "
                              "segment of garbage (a damaged stretch whose record count cannot be read counts 1)."};
constexpr Family kDiskWriteErrors{"logcapture_sink_buffer_write_errors_total", T::Counter,
                                  "Writes, syncs and file operations of the disk buffer that failed (disk full, "
                                  "read-only, removed)."};
constexpr Family kDiskReadErrors{"logcapture_sink_buffer_read_errors_total", T::Counter,
                                 "Reads of the disk buffer the system refused (out of file descriptors, I/O "
                                 "errors); each is tried again, nothing is skipped."};
constexpr Family kDiskSpilled{"logcapture_sink_buffer_spilled_records_total", T::Counter,
                              "Records written to the disk buffer: batches that waited longer than its sync "
                              "interval, or were left at a stop."};
constexpr Family kSinkInFlight{"logcapture_sink_batches_in_flight", T::Gauge, "Batches being sent or retried."};
constexpr Family kSinkConcurrencyLimit{"logcapture_sink_concurrency_limit", T::Gauge,
                                       "Batches the sink may send at once now: its workers, less during a ramp "
                                       "after its breaker closed, or as adapted with workers: auto."};
constexpr Family kSinkSends{"logcapture_sink_sends_total", T::Counter, "Sends of a batch to the destination."};
constexpr Family kSinkRetries{"logcapture_sink_retries_total", T::Counter, "Sends of a batch after its first."};
constexpr Family kSinkSplits{"logcapture_sink_batch_splits_total", T::Counter,
                             "Batches halved after the destination refused their size."};
constexpr Family kSinkOldestBatchAge{"logcapture_sink_oldest_batch_age_seconds", T::Gauge,
                                     "Age of the sink's oldest batch not yet finished (buffered or being sent); "
                                     "0 when none. Grows while a batch is stuck."};
constexpr Family kSinkProbes{"logcapture_sink_probes_total", T::Counter,
                             "Probes sent before a trial batch (breaker.probe)."};
constexpr Family kSinkSendExceptions{"logcapture_sink_send_exceptions_total", T::Counter,
                                     "Sends and probes that threw, counted as retriable failures."};
constexpr Family kSinkUnsentAtShutdown{"logcapture_sink_unsent_at_shutdown_records_total", T::Counter,
                                       "Records left unsent at the shutdown deadline (read again after a restart)."};

// Breakers.
constexpr Family kBreakerState{"logcapture_breaker_state", T::Gauge,
                               "1 for the breaker's current state, 0 for the others."};
constexpr Family kBreakerStateSeconds{"logcapture_breaker_state_seconds_total", T::Counter,
                                      "Time the breaker has spent in each state since it was built (the agent "
                                      "started, or a reload rebuilt the sink), the current state counted up to "
                                      "the scrape."};
constexpr Family kBreakerMode{"logcapture_breaker_mode", T::Gauge,
                              "1 for the breaker's mode, 0 for the other: enforce holds batches back while open, "
                              "metrics_only only reports its state."};
constexpr Family kBreakerBypassed{"logcapture_breaker_bypassed_total", T::Counter,
                                  "Calls a metrics_only breaker let through although its state would have "
                                  "refused them (what enforce would have rejected)."};
constexpr Family kBreakerTransitions{"logcapture_breaker_transitions_total", T::Counter,
                                     "Breaker transitions, by edge."};
constexpr Family kBreakerCalls{"logcapture_breaker_calls_total", T::Counter,
                               "Calls through the breaker, by result; rejected: permits refused."};
constexpr Family kBreakerSlowCalls{"logcapture_breaker_slow_calls_total", T::Counter,
                                   "Calls slower than slow_call_duration (with a window only)."};
constexpr Family kBreakerTimeInState{"logcapture_breaker_time_in_state_seconds", T::Gauge,
                                     "Time since the breaker's last transition."};
constexpr Family kBreakerOpens{"logcapture_breaker_opens_total", T::Counter,
                               "Automatic opens of the breaker (forced opens not counted)."};
constexpr Family kBreakerConsecutiveFailures{"logcapture_breaker_consecutive_failures", T::Gauge,
                                             "Consecutive failures counted towards failure_threshold."};

// The process.
constexpr Family kBuildInfo{"logcapture_build_info", T::Gauge, "Always 1; the version is a label."};
constexpr Family kCpu{"process_cpu_seconds_total", T::Counter, "User and system CPU time spent."};
constexpr Family kRss{"process_resident_memory_bytes", T::Gauge, "Resident memory size."};
constexpr Family kVirtual{"process_virtual_memory_bytes", T::Gauge, "Virtual memory size."};
constexpr Family kOpenFds{"process_open_fds", T::Gauge, "Open file descriptors."};
constexpr Family kMaxFds{"process_max_fds", T::Gauge, "Limit of open file descriptors."};
constexpr Family kStartTime{"process_start_time_seconds", T::Gauge, "Start time of the process, in Unix seconds."};
constexpr Family kInvalidUtf8{"logcapture_invalid_utf8_replaced_total", T::Counter,
                              "Strings whose invalid UTF-8 was replaced by U+FFFD when encoded as JSON (once per "
                              "sink that encoded them)."};
constexpr Family kThreadFailures{"logcapture_thread_failures_total", T::Counter,
                                 "Exceptions that reached the top of a thread (logged as thread_failed)."};

void appendEscaped(std::string& out, std::string_view text, bool quotes) {
  for (const char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quotes) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

void appendNumber(std::string& out, double value) {
  if (std::isnan(value)) {
    out += "NaN";
  } else if (std::isinf(value)) {
    out += value > 0 ? "+Inf" : "-Inf";
  } else {
    char buf[64];
    const auto r = std::to_chars(buf, buf + sizeof buf, value);
    out.append(buf, r.ptr);
  }
}

// The fields of /proc/self/stat after the command name, which may hold spaces and parentheses.
std::vector<std::string> procSelfStat() {
  std::ifstream in("/proc/self/stat");
  std::string line;
  std::getline(in, line);
  std::vector<std::string> fields;
  const auto close = line.rfind(')');
  if (close == std::string::npos) return fields;
  std::istringstream rest(line.substr(close + 1));
  for (std::string f; rest >> f;) fields.push_back(f);
  return fields;
}

// A field of /proc/self/stat by its number in proc(5) (state is 3).
double statField(const std::vector<std::string>& fields, std::size_t number) {
  const std::size_t i = number - 3;
  if (i >= fields.size()) return 0;
  double v = 0;
  std::from_chars(fields[i].data(), fields[i].data() + fields[i].size(), v);
  return v;
}

double bootTime() {
  std::ifstream in("/proc/stat");
  for (std::string key; in >> key;) {
    if (key == "btime") {
      double v = 0;
      in >> v;
      return v;
    }
    in.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  return 0;
}

std::uint64_t openFds() {
  std::error_code ec;
  std::uint64_t n = 0;
  for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end; it.increment(ec)) ++n;
  return n > 0 ? n - 1 : 0;  // less the descriptor of the listing itself
}

void writeProcess(PrometheusText& out) {
  out.family(kBuildInfo);
  out.sample({{"version", LOGCAPTURE_VERSION}}, std::uint64_t{1});
  const auto stat = procSelfStat();
  const double ticks = double(::sysconf(_SC_CLK_TCK));
  const double pageSize = double(::sysconf(_SC_PAGESIZE));
  out.single(kCpu, (statField(stat, 14) + statField(stat, 15)) / ticks);
  out.single(kRss, statField(stat, 24) * pageSize);
  out.single(kVirtual, statField(stat, 23));
  out.single(kOpenFds, openFds());
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0) out.single(kMaxFds, double(limit.rlim_cur));
  out.single(kStartTime, bootTime() + statField(stat, 22) / ticks);
  out.single(kInvalidUtf8, base::invalidUtf8Replaced());
  out.single(kThreadFailures, log::threadFailures());
}

void writeInputs(PrometheusText& out, const Pipeline& pipeline) {
  // One family at a time, so each family's samples stay together as the format requires.
  const auto each = [&](const Family& f, auto value) {
    out.family(f);
    for (const auto& in : pipeline.inputs()) out.sample({{"input", in->name()}}, value(in->stats()));
  };
  const auto load = [](const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  each(kInputRecords, [&](const InputStats& s) { return load(s.records); });
  each(kInputBytes, [&](const InputStats& s) { return load(s.bytes); });
  each(kInputLag, [&](const InputStats& s) { return load(s.lagBytes); });
  each(kInputFilesOpen, [&](const InputStats& s) { return load(s.filesOpen); });
  each(kInputFilesWaiting, [&](const InputStats& s) { return load(s.filesWaiting); });
  each(kInputTruncatedLines, [&](const InputStats& s) { return load(s.truncated); });
  each(kInputRotations, [&](const InputStats& s) { return load(s.rotations); });
  each(kInputTruncations, [&](const InputStats& s) { return load(s.truncations); });
  each(kInputPartialLines, [&](const InputStats& s) { return load(s.partialLines); });
  each(kInputFilesUnreadable, [&](const InputStats& s) { return load(s.filesUnreadable); });
  each(kInputUnqueuedAtStop, [&](const InputStats& s) { return load(s.unqueuedAtStop); });
  out.family(kInputErrors);
  for (const auto& in : pipeline.inputs()) {
    const InputStats& s = in->stats();
    out.sample({{"input", in->name()}, {"kind", "open"}}, load(s.openFailures));
    out.sample({{"input", in->name()}, {"kind", "not_regular"}}, load(s.notRegular));
    out.sample({{"input", in->name()}, {"kind", "read"}}, load(s.readErrors));
    out.sample({{"input", in->name()}, {"kind", "watch"}}, load(s.watchFailures));
    out.sample({{"input", in->name()}, {"kind", "wakeup"}}, load(s.wakeupFailures));
  }

  // The decoder's counters, for the inputs that decode.
  const auto inputs = pipeline.inputs();
  const auto eachDecoded = [&](const Family& f, std::initializer_list<Label> reasons, auto value) {
    out.family(f);
    for (const auto& in : inputs) {
      const decode::DecodeStats* d = in->decodeStats();
      if (d == nullptr) continue;
      for (const auto& [key, reason] : reasons) out.sample({{"input", in->name()}, {key, reason}}, value(*d, reason));
    }
  };
  eachDecoded(kInputInvalid, {{"reason", "invalid_json"}, {"reason", "invalid_cri"}},
              [&](const decode::DecodeStats& d, std::string_view r) {
                return load(r == "invalid_json" ? d.invalidJson : d.invalidCri);
              });
  eachDecoded(kInputFlushedEarly, {{"reason", "multiline"}, {"reason", "partial"}},
              [&](const decode::DecodeStats& d, std::string_view r) {
                return load(r == "multiline" ? d.multilineFlushed : d.partialFlushed);
              });
  out.family(kInputDecoderTruncated);
  for (const auto& in : inputs) {
    if (const decode::DecodeStats* d = in->decodeStats()) out.sample({{"input", in->name()}}, load(d->truncated));
  }
}

void writeQueue(PrometheusText& out, const RecordQueue& queue) {
  const QueueStats s = queue.stats();
  out.single(kQueueRecords, s.records);
  out.single(kQueueBytes, s.bytes);
  out.single(kQueueMaxRecords, queue.maxRecords());
  out.single(kQueueMaxBytes, queue.maxBytes());
  out.single(kQueueBlocked, std::uint64_t{queue.blocked() ? 1u : 0u});
  out.single(kQueueBlockedPushes, s.blockedPushes);
  out.family(kQueueDropped);
  out.sample({{"policy", "drop_newest"}}, s.droppedNewest);
  out.sample({{"policy", "drop_oldest"}}, s.droppedOldest);
}

void writeFanOut(PrometheusText& out, const FanOut& fanOut) { out.single(kUnrouted, fanOut.unrouted()); }

// What one sink shows, read once per scrape so its families agree with each other.
// Values are copied: a reload may retire the runner once the scrape has let go of it.
struct SinkView {
  std::string name;
  std::uint64_t received = 0;
  std::uint64_t delivered = 0;
  std::array<std::uint64_t, kDropReasons> dropped{};
  std::string fallback;  // empty: none
  std::array<std::uint64_t, kFailoverReasons> failedOver{};
  std::uint64_t inFlight = 0;
  std::uint64_t concurrencyLimit = 0;
  std::uint64_t sends = 0;
  std::uint64_t retries = 0;
  std::uint64_t splits = 0;
  double oldestBatchAge = 0;
  std::uint64_t probes = 0;
  std::uint64_t sendExceptions = 0;
  std::uint64_t unsentAtShutdown = 0;
  SinkBufferStats buffer;
  std::optional<DiskBufferStats> disk;
  std::uint64_t deadLettered = 0;
  circuit::Snapshot breaker;
  circuit::Mode mode = circuit::Mode::Enforce;
};

void writeSinks(PrometheusText& out, const std::vector<SinkView>& sinks) {
  const auto each = [&](const Family& f, auto value) {
    out.family(f);
    for (const auto& s : sinks) out.sample({{"sink", s.name}}, value(s));
  };
  each(kSinkReceived, [](const SinkView& s) { return s.received; });
  each(kSinkDelivered, [](const SinkView& s) { return s.delivered; });
  out.family(kSinkDropped);
  for (const auto& s : sinks) {
    for (std::size_t r = 0; r < kDropReasons; ++r) {
      out.sample({{"sink", s.name}, {"reason", dropReasonName(DropReason(r))}}, s.dropped[r]);
    }
  }
  out.family(kSinkFallback);
  for (const auto& s : sinks) {
    // A sink without a fallback has none to show, unless one was removed by a reload after it was used.
    const bool used = std::any_of(s.failedOver.begin(), s.failedOver.end(), [](std::uint64_t n) { return n > 0; });
    if (s.fallback.empty() && !used) continue;
    for (std::size_t r = 0; r < kFailoverReasons; ++r) {
      out.sample({{"sink", s.name}, {"fallback", s.fallback}, {"reason", failoverReasonName(FailoverReason(r))}},
                 s.failedOver[r]);
    }
  }
  each(kSinkDeadLetter, [](const SinkView& s) { return s.deadLettered; });
  each(kSinkBufferBytes, [](const SinkView& s) { return s.buffer.bytes; });
  each(kSinkBufferRecords, [](const SinkView& s) { return s.buffer.records; });
  each(kSinkBufferBatches, [](const SinkView& s) { return s.buffer.batches; });
  each(kSinkInFlight, [](const SinkView& s) { return s.inFlight; });
  each(kSinkConcurrencyLimit, [](const SinkView& s) { return s.concurrencyLimit; });
  each(kSinkSends, [](const SinkView& s) { return s.sends; });
  each(kSinkRetries, [](const SinkView& s) { return s.retries; });
  each(kSinkSplits, [](const SinkView& s) { return s.splits; });
  each(kSinkOldestBatchAge, [](const SinkView& s) { return s.oldestBatchAge; });
  each(kSinkProbes, [](const SinkView& s) { return s.probes; });
  each(kSinkSendExceptions, [](const SinkView& s) { return s.sendExceptions; });
  each(kSinkUnsentAtShutdown, [](const SinkView& s) { return s.unsentAtShutdown; });
  const auto eachDisk = [&](const Family& f, auto value) {
    out.family(f);
    for (const auto& s : sinks) {
      if (s.disk) out.sample({{"sink", s.name}}, value(*s.disk));
    }
  };
  eachDisk(kDiskBytes, [](const DiskBufferStats& d) { return d.bytes; });
  eachDisk(kDiskSegments, [](const DiskBufferStats& d) { return d.segments; });
  eachDisk(kDiskRecords, [](const DiskBufferStats& d) { return d.records; });
  eachDisk(kDiskOldestAge, [](const DiskBufferStats& d) {
    if (!d.oldest) return 0.0;
    return std::max(0.0, std::chrono::duration<double>(std::chrono::system_clock::now() - *d.oldest).count());
  });
  eachDisk(kDiskSyncs, [](const DiskBufferStats& d) { return d.syncs; });
  eachDisk(kDiskCorrupt, [](const DiskBufferStats& d) { return d.corrupt; });
  eachDisk(kDiskWriteErrors, [](const DiskBufferStats& d) { return d.writeErrors; });
  eachDisk(kDiskReadErrors, [](const DiskBufferStats& d) { return d.readErrors; });
  eachDisk(kDiskSpilled, [](const DiskBufferStats& d) { return d.spilled; });
}

void writeBreakers(PrometheusText& out, const std::vector<SinkView>& sinks) {
  out.family(kBreakerState);
  for (const auto& s : sinks) {
    for (std::size_t i = 0; i < circuit::kStateCount; ++i) {
      const auto state = circuit::State(i);
      out.sample({{"sink", s.name}, {"state", circuit::stateName(state)}},
                 std::uint64_t{s.breaker.state == state ? 1u : 0u});
    }
  }
  out.family(kBreakerStateSeconds);
  for (const auto& s : sinks) {
    for (std::size_t i = 0; i < circuit::kStateCount; ++i) {
      out.sample({{"sink", s.name}, {"state", circuit::stateName(circuit::State(i))}},
                 std::chrono::duration<double>(s.breaker.stateTimes[i]).count());
    }
  }
  out.family(kBreakerMode);
  for (const auto& s : sinks) {
    for (const auto mode : {circuit::Mode::Enforce, circuit::Mode::MetricsOnly}) {
      out.sample({{"sink", s.name}, {"mode", circuit::modeName(mode)}}, std::uint64_t{s.mode == mode ? 1u : 0u});
    }
  }
  out.family(kBreakerTransitions);
  for (const auto& s : sinks) {
    for (std::size_t from = 0; from < circuit::kStateCount; ++from) {
      for (std::size_t to = 0; to < circuit::kStateCount; ++to) {
        if (from == to) continue;
        out.sample({{"sink", s.name},
                    {"from", circuit::stateName(circuit::State(from))},
                    {"to", circuit::stateName(circuit::State(to))}},
                   s.breaker.transitions[from][to]);
      }
    }
  }
  out.family(kBreakerCalls);
  for (const auto& s : sinks) {
    const circuit::Totals& t = s.breaker.totals;
    out.sample({{"sink", s.name}, {"result", "success"}}, t.successes);
    out.sample({{"sink", s.name}, {"result", "failure"}}, t.failures);
    out.sample({{"sink", s.name}, {"result", "throttled"}}, t.throttled);
    out.sample({{"sink", s.name}, {"result", "permanent"}}, t.permanent);
    out.sample({{"sink", s.name}, {"result", "rejected"}}, t.rejected);
  }
  out.family(kBreakerBypassed);
  for (const auto& s : sinks) out.sample({{"sink", s.name}}, s.breaker.totals.bypassed);
  out.family(kBreakerSlowCalls);
  for (const auto& s : sinks) out.sample({{"sink", s.name}}, s.breaker.totals.slow);
  out.family(kBreakerTimeInState);
  for (const auto& s : sinks) {
    out.sample({{"sink", s.name}}, std::chrono::duration<double>(s.breaker.timeInState).count());
  }
  out.family(kBreakerOpens);
  for (const auto& s : sinks) out.sample({{"sink", s.name}}, s.breaker.opens());
  out.family(kBreakerConsecutiveFailures);
  for (const auto& s : sinks) out.sample({{"sink", s.name}}, std::uint64_t{s.breaker.consecutiveFailures});
}

// Each sink's own counters (Sink::metrics), one family per name, in the order first met.
void writeSinkCounters(PrometheusText& out, const Pipeline& pipeline) {
  struct Sample {
    std::string_view sink;
    sinks::SinkMetric metric;
  };
  std::vector<Sample> samples;
  for (const auto& r : pipeline.runners()) {
    for (const auto& m : r->sink().metrics()) samples.push_back({r->name(), m});
  }
  std::vector<bool> written(samples.size(), false);
  for (std::size_t i = 0; i < samples.size(); ++i) {
    if (written[i]) continue;
    const auto& first = samples[i].metric;
    out.family(Family{first.name, first.kind == sinks::SinkMetric::Kind::Gauge ? T::Gauge : T::Counter, first.help});
    for (std::size_t j = i; j < samples.size(); ++j) {
      const auto& m = samples[j].metric;
      if (written[j] || m.name != first.name) continue;
      const auto write = [&](std::initializer_list<Label> labels) {
        if (m.value >= 0) {
          out.sample(labels, static_cast<std::uint64_t>(m.value));
        } else {
          out.sample(labels, static_cast<double>(m.value));  // a gauge a race took below zero
        }
      };
      if (m.label.first.empty()) {
        write({{"sink", samples[j].sink}});
      } else {
        write({{"sink", samples[j].sink}, m.label});
      }
      written[j] = true;
    }
  }
}

}  // namespace

void PrometheusText::family(const Family& f) {
  current_ = f.name;
  out_ += "# HELP ";
  out_ += f.name;
  out_ += ' ';
  appendEscaped(out_, f.help, false);
  out_ += "\n# TYPE ";
  out_ += f.name;
  out_ += f.type == MetricType::Counter ? " counter\n" : " gauge\n";
}

void PrometheusText::labels(std::initializer_list<Label> labels) {
  out_ += current_;
  if (labels.size() == 0) return;
  out_ += '{';
  bool first = true;
  for (const auto& [key, value] : labels) {
    if (!first) out_ += ',';
    first = false;
    out_ += key;
    out_ += "=\"";
    appendEscaped(out_, value, true);
    out_ += '"';
  }
  out_ += '}';
}

void PrometheusText::sample(std::initializer_list<Label> labels, double value) {
  this->labels(labels);
  out_ += ' ';
  appendNumber(out_, value);
  out_ += '\n';
}

void PrometheusText::sample(std::initializer_list<Label> labels, std::uint64_t value) {
  this->labels(labels);
  out_ += ' ';
  out_ += std::to_string(value);
  out_ += '\n';
}

void PrometheusText::single(const Family& f, double value) {
  family(f);
  sample({}, value);
}

void PrometheusText::single(const Family& f, std::uint64_t value) {
  family(f);
  sample({}, value);
}

std::string renderMetrics(const Pipeline& pipeline) {
  PrometheusText out;
  writeInputs(out, pipeline);
  if (const RecordQueue* queue = pipeline.queue()) writeQueue(out, *queue);
  if (const FanOut* fanOut = pipeline.fanOut()) writeFanOut(out, *fanOut);
  std::vector<SinkView> sinks;
  for (const auto& r : pipeline.runners()) {
    const SinkStats& st = r->stats();
    const auto load = [](const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); };
    SinkView v;
    v.name = r->name();
    v.received = load(st.received);
    v.delivered = load(st.delivered);
    for (std::size_t i = 0; i < kDropReasons; ++i) v.dropped[i] = st.droppedFor(DropReason(i));
    v.fallback = r->fallbackName();
    for (std::size_t i = 0; i < kFailoverReasons; ++i) v.failedOver[i] = st.failedOverFor(FailoverReason(i));
    v.inFlight = load(st.batchesInFlight);
    v.concurrencyLimit = r->sendLimit().limit;
    v.sends = load(st.sends);
    v.retries = load(st.retries);
    v.splits = load(st.splits);
    v.oldestBatchAge = std::chrono::duration<double>(r->oldestBatchAge(std::chrono::steady_clock::now())).count();
    v.probes = load(st.probes);
    v.sendExceptions = load(st.sendExceptions);
    v.unsentAtShutdown = load(st.unsentAtShutdown);
    v.buffer = r->bufferStats();
    v.disk = r->diskBufferStats();
    v.deadLettered = load(st.deadLettered);
    v.breaker = r->breaker().snapshot();
    v.mode = r->breaker().options().mode;
    sinks.push_back(std::move(v));
  }
  writeSinks(out, sinks);
  writeBreakers(out, sinks);
  writeSinkCounters(out, pipeline);
  writeProcess(out);
  return out.text();
}

}  // namespace logcapture::agent::admin
