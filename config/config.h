#pragma once

// The typed configuration of the agent, as loaded from capture.yaml.
//
// Each struct holds its defaults as member initialisers, and declares every key once in its
// describe() function: the key's name, the member it fills, what it means and its limits. The same
// declaration drives loading (config/loader.cc), unknown-key detection and `check --print`.
// check() beside a struct holds its cross-field rules.

#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "config/types.h"
#include "sinks/types.h"

namespace logcapture::config {

using namespace std::chrono_literals;

enum class LogLevel { Trace, Debug, Info, Warn, Error, Critical, Off };
constexpr auto enumNames(LogLevel) {
  return std::array{std::pair{LogLevel::Trace, "trace"}, std::pair{LogLevel::Debug, "debug"},
                    std::pair{LogLevel::Info, "info"},   std::pair{LogLevel::Warn, "warn"},
                    std::pair{LogLevel::Error, "error"}, std::pair{LogLevel::Critical, "critical"},
                    std::pair{LogLevel::Off, "off"}};
}

enum class LogFormat { Text, Json };
constexpr auto enumNames(LogFormat) {
  return std::array{std::pair{LogFormat::Text, "text"}, std::pair{LogFormat::Json, "json"}};
}

struct LogConfig {
  LogLevel level = LogLevel::Info;
  LogFormat format = LogFormat::Text;
};
template <class V>
void describe(V& v, LogConfig& c) {
  v.field("level", c.level, "minimum level written to stderr");
  v.field("format", c.format, "text: one readable line per event; json: one JSON object per line");
}

struct AdminConfig {
  std::string listen = "127.0.0.1:9880";
  std::string token;
};
template <class V>
void describe(V& v, AdminConfig& c) {
  v.field("listen", c.listen, "host:port of the admin HTTP server; empty turns it off");
  v.field("token", c.token, "bearer token required for POST requests; empty means none", Flags{.secret = true});
}

struct AgentConfig {
  std::string stateDir = "/var/lib/logcapture";
  LogConfig log;
  AdminConfig admin;
  Duration shutdownTimeout = 10s;
  Duration checkpointRetention = 168h;
};
template <class V>
void describe(V& v, AgentConfig& c) {
  v.field("state_dir", c.stateDir, "directory for checkpoints, disk buffers and dead letters");
  v.section("log", c.log);
  v.section("admin", c.admin);
  v.field("shutdown_timeout", c.shutdownTimeout, "time allowed to drain and flush on SIGTERM before exiting",
          Limits<Duration>{.min = 0ms, .max = 1h});
  v.field("checkpoint_retention", c.checkpointRetention, "checkpoints of files gone for longer than this are forgotten",
          Limits<Duration>{.min = 1min, .max = 8760h});
}
void check(Section& s, AgentConfig& c);

enum class InputType { File, Stdin };
constexpr auto enumNames(InputType) {
  return std::array{std::pair{InputType::File, "file"}, std::pair{InputType::Stdin, "stdin"}};
}
enum class StartAt { Beginning, End };
constexpr auto enumNames(StartAt) {
  return std::array{std::pair{StartAt::Beginning, "beginning"}, std::pair{StartAt::End, "end"}};
}
enum class InputFormat { Raw, Json, Docker, Cri };
constexpr auto enumNames(InputFormat) {
  return std::array{std::pair{InputFormat::Raw, "raw"}, std::pair{InputFormat::Json, "json"},
                    std::pair{InputFormat::Docker, "docker"}, std::pair{InputFormat::Cri, "cri"}};
}

struct MultilineConfig {
  std::string startPattern;
  std::uint32_t maxLines = 500;
  Bytes maxBytes = 1_MiB;
  Duration timeout = 1s;
};
template <class V>
void describe(V& v, MultilineConfig& c) {
  v.field("start_pattern", c.startPattern,
          "regular expression matching (somewhere in) the first line of a record: ECMAScript syntax without "
          "backreferences or lookaround, as in RE2 and Vector, matched by bytes in time linear in the line's length",
          Flags{.required = true});
  v.field("max_lines", c.maxLines, "lines joined into one record at most",
          Limits<std::uint32_t>{.min = 1, .max = 100000});
  v.field("max_bytes", c.maxBytes, "bytes joined into one record at most", Limits<Bytes>{.min = 1_KiB, .max = 64_MiB});
  v.field("timeout", c.timeout, "a pending record is flushed after this long without a new line",
          Limits<Duration>{.min = 1ms, .max = 1h});
}
void check(Section& s, MultilineConfig& c);

struct InputConfig {
  std::string name;
  InputType type = InputType::File;
  std::vector<std::string> paths;
  std::vector<std::string> exclude;
  StartAt startAt = StartAt::End;
  InputFormat format = InputFormat::Raw;
  std::optional<MultilineConfig> multiline;
  Bytes maxLineBytes = 256_KiB;
  std::uint32_t maxOpenFiles = 1024;
  Duration closeInactive = 5s;
  std::map<std::string, std::string> fields;
};
template <class V>
void describe(V& v, InputConfig& c) {
  v.field("name", c.name, "unique name; sinks route by it and checkpoints are keyed by it", Flags{.required = true});
  v.field("type", c.type, "file: tail files matching paths; stdin: read standard input", Flags{.required = true});
  if (c.type == InputType::File) {
    v.field("paths", c.paths, "glob patterns of files to tail; relative to the config file's directory",
            Flags{.required = true});
    v.field("exclude", c.exclude, "glob patterns of files or file names to skip");
    v.field("start_at", c.startAt,
            "where to start in the files present at the input's first start; files found later are read from their "
            "first byte");
    v.field("max_open_files", c.maxOpenFiles,
            "files held open at once at most; while more match, each file read to its end (its lines delivered) "
            "gives its place to one waiting, the longest waiting first",
            Limits<std::uint32_t>{.min = 1, .max = 1000000});
    v.field("close_inactive", c.closeInactive,
            "a file read to its end, its lines delivered, and idle this long is closed (its checkpoint kept) and "
            "opened again when it grows, found by the rescan; a rotated or deleted file is still read to its end",
            Limits<Duration>{.min = 1ms, .max = 24h * 365});
  } else {
    v.noteForeignKeys("file inputs", {"paths", "exclude", "start_at", "max_open_files", "close_inactive"});
  }
  v.field("format", c.format, "how lines are decoded: raw, json, docker (json-file) or cri");
  v.section("multiline", c.multiline);
  v.field("max_line_bytes", c.maxLineBytes, "longer lines are truncated and flagged",
          Limits<Bytes>{.min = 64_B, .max = 64_MiB});
  v.field("fields", c.fields, "static fields added to every record of this input");
}
void check(Section& s, InputConfig& c);

enum class WhenFull { Block, DropNewest, DropOldest };
constexpr auto enumNames(WhenFull) {
  return std::array{std::pair{WhenFull::Block, "block"}, std::pair{WhenFull::DropNewest, "drop_newest"},
                    std::pair{WhenFull::DropOldest, "drop_oldest"}};
}

struct QueueConfig {
  std::uint64_t maxRecords = 10000;
  Bytes maxBytes = 4_MiB;
  WhenFull whenFull = WhenFull::Block;
};
template <class V>
void describe(V& v, QueueConfig& c) {
  v.field("max_records", c.maxRecords, "records held between inputs and sinks at most",
          Limits<std::uint64_t>{.min = 1, .max = 100000000});
  v.field("max_bytes", c.maxBytes, "message bytes held between inputs and sinks at most",
          Limits<Bytes>{.min = 64_KiB, .max = 64_GiB});
  v.field("when_full", c.whenFull,
          "block: inputs pause (files are the buffer); drop_newest / drop_oldest: drop and count");
}

// A sink type is a row of sinks/types.h: its value is the row's index in SinkSettings, its name the
// row's kType.
using sinks::SinkSettings;
enum class SinkType : std::size_t {};
template <std::size_t... I>
constexpr auto sinkTypeNames(std::index_sequence<I...>) {
  return std::array{std::pair{SinkType{I}, std::variant_alternative_t<I, SinkSettings>::kType}...};
}
constexpr auto enumNames(SinkType) {
  return sinkTypeNames(std::make_index_sequence<std::variant_size_v<SinkSettings>>{});
}
// The type whose settings are `Settings`, e.g. sinkTypeOf<sinks::kafka::KafkaConfig>().
template <class Settings, class... Rows>
constexpr std::size_t rowOf(const std::variant<Rows...>*) {
  constexpr bool same[] = {std::is_same_v<Settings, Rows>...};
  std::size_t i = 0;
  while (i < sizeof...(Rows) && !same[i]) ++i;
  return i;
}
template <class Settings>
constexpr SinkType sinkTypeOf() {
  constexpr std::size_t row = rowOf<Settings>(static_cast<const SinkSettings*>(nullptr));
  static_assert(row < std::variant_size_v<SinkSettings>, "not a row of sinks/types.h");
  return SinkType{row};
}
// The names of the sink types, "kafka, redis, http or console", from the table.
const std::string& sinkTypeList();
enum class Encoding { Json, Raw };
constexpr auto enumNames(Encoding) {
  return std::array{std::pair{Encoding::Json, "json"}, std::pair{Encoding::Raw, "raw"}};
}

struct BatchConfig {
  std::uint32_t maxRecords = 1000;
  Bytes maxBytes = 1_MiB;
  Duration linger = 100ms;
};
template <class V>
void describe(V& v, BatchConfig& c) {
  v.field("max_records", c.maxRecords, "records in one batch at most", Limits<std::uint32_t>{.min = 1, .max = 1000000});
  v.field("max_bytes", c.maxBytes, "encoded bytes in one batch at most", Limits<Bytes>{.min = 1_KiB, .max = 1_GiB});
  v.field("linger", c.linger, "a batch is sent when full or when its first record is this old",
          Limits<Duration>{.min = 0ms, .max = 1h});
}

struct RetryConfig {
  std::uint32_t maxAttempts = 3;
  Duration initialBackoff = 100ms;
  Duration maxBackoff = 5s;
};
template <class V>
void describe(V& v, RetryConfig& c) {
  v.field("max_attempts", c.maxAttempts, "attempts of one batch before it is handed back to the buffer",
          Limits<std::uint32_t>{.min = 1, .max = 1000});
  v.field("initial_backoff", c.initialBackoff, "first retry delay; doubles each attempt, full jitter",
          Limits<Duration>{.min = 1ms, .max = 1h});
  v.field("max_backoff", c.maxBackoff, "retry delay cap", Limits<Duration>{.min = 1ms, .max = 24h});
}
void check(Section& s, RetryConfig& c);

enum class WindowType { Count, Time };
constexpr auto enumNames(WindowType) {
  return std::array{std::pair{WindowType::Count, "count"}, std::pair{WindowType::Time, "time"}};
}

struct WindowConfig {
  WindowType type = WindowType::Count;
  WindowSize size;
  std::uint32_t minCalls = 10;
  double failureRate = 50;
  double slowCallRate = 100;
  Duration slowCallDuration = 5s;
};
template <class V>
void describe(V& v, WindowConfig& c) {
  v.field("type", c.type, "count: the last `size` calls; time: the calls of the last `size` of time");
  v.field("size", c.size, "a number of calls (type: count) or a duration (type: time)");
  v.field("min_calls", c.minCalls, "calls in the window before a rate may trip the breaker",
          Limits<std::uint32_t>{.min = 1, .max = 1000000});
  v.field("failure_rate", c.failureRate, "percentage of failed calls that opens the breaker",
          Limits<double>{.min = 0.01, .max = 100});
  v.field("slow_call_rate", c.slowCallRate, "percentage of calls slower than slow_call_duration that opens the breaker",
          Limits<double>{.min = 0.01, .max = 100});
  v.field("slow_call_duration", c.slowCallDuration, "a call taking longer is slow",
          Limits<Duration>{.min = 1ms, .max = 1h});
}
void check(Section& s, WindowConfig& c);

enum class BreakerMode { Enforce, MetricsOnly };
constexpr auto enumNames(BreakerMode) {
  return std::array{std::pair{BreakerMode::Enforce, "enforce"}, std::pair{BreakerMode::MetricsOnly, "metrics_only"}};
}

struct BreakerConfig {
  BreakerMode mode = BreakerMode::Enforce;
  std::uint32_t failureThreshold = 5;
  std::uint32_t successThreshold = 2;
  Duration openTimeout = 30s;
  Duration maxOpenTimeout = 5min;
  double backoffMultiplier = 2;
  double jitter = 0.1;
  std::uint32_t halfOpenMaxCalls = 2;
  bool tripOnThrottle = false;
  bool probe = false;
  Duration ramp = 10s;
  std::optional<WindowConfig> window;
};
template <class V>
void describe(V& v, BreakerConfig& c) {
  v.field("mode", c.mode,
          "enforce: an open breaker holds the sink's batches back; metrics_only: the breaker computes and reports "
          "its state, transitions and events as usual but holds nothing back (every batch is sent, retried and "
          "buffered as with a closed breaker), to tune its thresholds on live traffic; an operator's force-open "
          "still holds every batch back");
  v.field("failure_threshold", c.failureThreshold,
          "consecutive failures that open the breaker; 0 turns this rule off (then a window is needed)",
          Limits<std::uint32_t>{.min = 0, .max = 1000000});
  v.field("success_threshold", c.successThreshold, "consecutive trial successes in half-open that close the breaker",
          Limits<std::uint32_t>{.min = 1, .max = 1000});
  v.field("open_timeout", c.openTimeout, "time open before a trial call", Limits<Duration>{.min = 1ms, .max = 24h});
  v.field("max_open_timeout", c.maxOpenTimeout, "cap of the open time as it grows on re-opens",
          Limits<Duration>{.min = 1ms, .max = 7 * 24h});
  v.field("backoff_multiplier", c.backoffMultiplier, "open time factor on each consecutive re-open",
          Limits<double>{.min = 1, .max = 100});
  v.field("jitter", c.jitter, "random spread of the open time, as a fraction (0.1 = +-10%)",
          Limits<double>{.min = 0, .max = 1});
  v.field("half_open_max_calls", c.halfOpenMaxCalls, "trial calls admitted while half-open",
          Limits<std::uint32_t>{.min = 1, .max = 1000});
  v.field("trip_on_throttle", c.tripOnThrottle,
          "count throttling answers (HTTP 429/503) as failures that can open the breaker");
  v.field("probe", c.probe, "in half-open, send a cheap probe before a real batch");
  v.field("ramp", c.ramp,
          "after the breaker closes from half-open, the backlog drains with a slow start: one batch in flight "
          "and 2 batches/s, doubling per round of successes, halved on a slow call, a throttle or a failure; "
          "full speed once this time is up whatever happens; 0s: drain at full speed at once",
          Limits<Duration>{.min = 0ms, .max = 1h});
  v.section("window", c.window);
}
void check(Section& s, BreakerConfig& c);

enum class BufferType { Memory, Disk };
constexpr auto enumNames(BufferType) {
  return std::array{std::pair{BufferType::Memory, "memory"}, std::pair{BufferType::Disk, "disk"}};
}
enum class OnOpen { Buffer, Drop };
constexpr auto enumNames(OnOpen) {
  return std::array{std::pair{OnOpen::Buffer, "buffer"}, std::pair{OnOpen::Drop, "drop"}};
}

enum class BufferSync { Always, Interval };
constexpr auto enumNames(BufferSync) {
  return std::array{std::pair{BufferSync::Always, "always"}, std::pair{BufferSync::Interval, "interval"}};
}

struct BufferConfig {
  BufferType type = BufferType::Memory;
  Bytes maxBytes = 16_MiB;
  OnOpen onOpen = OnOpen::Buffer;
  WhenFull whenFull = WhenFull::DropOldest;
  BufferSync sync = BufferSync::Interval;
  Duration syncInterval = 200ms;
};
template <class V>
void describe(V& v, BufferConfig& c) {
  v.field("type", c.type,
          "memory; disk: memory first, then segment files under state_dir/buffers/<sink>/ for batches that "
          "wait (a destination down or behind), sent first after a restart");
  v.field("max_bytes", c.maxBytes,
          "memory: the memory the batches waiting for this sink hold at most: their encodings, the lines they "
          "came from, and 60 bytes a record; disk: bytes of its segment files and of the batches waiting in "
          "memory at most",
          Limits<Bytes>{.min = 64_KiB, .max = Bytes{1ull << 40}});
  v.field("on_open", c.onOpen, "while the breaker is open: buffer batches, or drop and count them");
  v.field("when_full", c.whenFull,
          "block: hold back every sink of the shared queue; drop_newest / drop_oldest: drop and count while "
          "the breaker is open or other sinks wait behind this one (a sink only slow holds back the inputs); "
          "with type: disk, also while the disk refuses writes (full)");
  v.field("sync", c.sync,
          "type: disk. always: every batch is written and synced as it comes, before its files' checkpoints "
          "move past it (nothing is lost, even by a power loss; a write and an fdatasync per batch); interval: "
          "a batch is written and synced once it has waited sync_interval (a destination that keeps up costs "
          "no disk work); a crash may lose stdin lines, and lines of files deleted meanwhile, of the last "
          "sync_interval (lines of files still there are read again)");
  v.field("sync_interval", c.syncInterval,
          "type: disk, sync: interval: how long a batch waits in memory before it is written and synced",
          Limits<Duration>{.min = 1ms, .max = 200ms});
}
void check(Section& s, BufferConfig& c);

struct DeadLetterConfig {
  Bytes maxBytes = 64_MiB;
};
template <class V>
void describe(V& v, DeadLetterConfig& c) {
  v.field("max_bytes", c.maxBytes,
          "size cap of state_dir/dead-letter/<sink>.ndjson; records past it are dropped and counted",
          Limits<Bytes>{.min = 0_B, .max = Bytes{1ull << 40}});
}

struct SinkConfig {
  std::string name;
  SinkType type = sinkTypeOf<sinks::console::ConsoleConfig>();
  std::optional<std::vector<std::string>> inputs;  // absent: every input
  Encoding encoding = Encoding::Json;
  BatchConfig batch;
  Workers workers;
  std::uint32_t maxWorkers = 16;  // workers: auto only
  Duration timeout = 30s;
  RetryConfig retry;
  BreakerConfig breaker;
  BufferConfig buffer;
  DeadLetterConfig deadLetter;
  std::string fallback;   // empty: none
  SinkSettings settings;  // the keys of `type`, flat in the same mapping
};
// The common keys; the loader adds the keys of the sink's type (sinks/registry.h) to the same mapping.
template <class V>
void describe(V& v, SinkConfig& c) {
  v.field("name", c.name, "unique name; metrics, breaker API and state files use it", Flags{.required = true});
  v.field("type", c.type, sinkTypeList(), Flags{.required = true});
  v.field("inputs", c.inputs,
          "names of the inputs routed to this sink; absent: all inputs; []: none, for a sink that only takes "
          "another sink's batches as its fallback");
  v.field("encoding", c.encoding, "json: an object with @timestamp, message and fields; raw: the line");
  v.section("batch", c.batch);
  v.field("workers", c.workers,
          "concurrent sends, one lane each; auto: max_workers lanes (a key beside workers: auto, 1 to 64, default "
          "16), of which as many send at once as the destination's latency, throttling and failures allow");
  if (c.workers.adaptive) {
    v.field("max_workers", c.maxWorkers,
            "workers: auto: lanes, the most sends at once; the limit adapts between 1 and this",
            Limits<std::uint32_t>{.min = 1, .max = 64});
  } else {
    v.noteForeignKeys("sinks with workers: auto", {"max_workers"});
  }
  v.field("timeout", c.timeout, "deadline of one send", Limits<Duration>{.min = 1ms, .max = 1h});
  v.section("retry", c.retry);
  v.section("breaker", c.breaker);
  v.section("buffer", c.buffer);
  v.section("dead_letter", c.deadLetter);
  v.field("fallback", c.fallback,
          "name of the sink that takes this sink's batches while its breaker is open (forced open too); when "
          "that one's breaker is open as well, and it has no fallback of its own that takes them, they wait here "
          "as without one");
  describeSettings(v, c);
}
void check(Section& s, SinkConfig& c);

// The alternative of SinkSettings that holds the keys of `type`.
SinkSettings settingsFor(SinkType type);
// Tells the loader which keys belong to the other sink types, for "belongs to kafka sinks" messages.
void noteOtherTypesKeys(Section& s, SinkType type);

// The keys of the sink's type sit flat beside the common keys, after `type` has been read.
template <class V>
void describeSettings(V& v, SinkConfig& c) {
  if (!v.ok("type")) {
    v.skipUnknownKeys();
    return;
  }
  if (c.settings.index() != static_cast<std::size_t>(c.type)) c.settings = settingsFor(c.type);
  if constexpr (std::is_same_v<V, Section>) noteOtherTypesKeys(v, c.type);
  std::visit([&](auto& settings) { v.flatten(settings); }, c.settings);
}

struct Config {
  std::string file;  // the path it was loaded from, for messages
  AgentConfig agent;
  std::vector<InputConfig> inputs;
  QueueConfig queue;
  std::vector<SinkConfig> sinks;
};
template <class V>
void describe(V& v, Config& c) {
  v.section("agent", c.agent);
  v.list("inputs", c.inputs, "where records come from", Flags{.required = true});
  v.section("queue", c.queue);
  v.list("sinks", c.sinks, "where records go", Flags{.required = true});
}
void check(Section& s, Config& c);

}  // namespace logcapture::config
