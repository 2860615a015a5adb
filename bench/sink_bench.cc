// Throughput of each sink end to end: the real agent binary tails a 2,000,000-line file (from the
// beginning) and ships it to one destination alone; the clock stops when the destination holds every line.
// One long run per measurement, so a plain program rather than Google Benchmark.
//
//   logcapture_bench_sinks [--dir /tmp/logcapture-sink-bench] [--sink http|redis|kafka|all] [--runs 3]
//                          [--lines 2000000] [--perf] [--perf-call-graph fp|dwarf|lbr]
//                          [--buffer 'when_full: block, max_bytes: 16MiB']
//                          [--sink-options 'workers: 4, batch: {max_records: 5000}'] [--input-format raw|json]
//                          [--kafka-partitions 1,4,16] [--kafka-keys keyless,keyed] [--kafka-key '{{level}}']
//                          [--files 1,100,1000,10000] [--max-open-files N] [--agent PATH] [--kafka-broker PATH]
//                          [--receiver parse|count]
//
// The destinations, each fresh for every run on a free 127.0.0.1 port:
//   http   logcapture-http-receiver without --out, format ndjson; with --receiver parse (the default) it parses
//          every record into a JSON object as a log store does, with --receiver count it only counts lines
//          (GET /_stats). The receiver's CPU time is shown apart from the agent's.
//   redis  redis-server without persistence, mode list (LLEN)
//   kafka  logcapture-kafka-broker with a topic of each --kafka-partitions count (default 1, 4 and 16), each
//          shipped without a key and, with --input-format json, with the key --kafka-key (default {{level}},
//          which every json line has); what arrived is the sum of the partitions' high watermarks. Each of these is a
//          case of its own, named kafka/p<partitions>/<keyless|keyed>. The broker's CPU time is shown apart from the
//          agent's: the mock cluster's own cost grows with the partition count.
// With --files the same lines are split over that many files (in blocks, each file's lines in order), read
// through one glob, for each count a case of its own per sink, named <sink>/files<N>: what the file input
// costs as the files grow in number (per-file state, checkpoints, scans). The input keeps the default
// max_open_files (1024: more files take turns) unless --max-open-files sets it (as many as the files: every
// one open at once); the bench raises its soft RLIMIT_NOFILE to the hard limit, which the agent inherits. A run
// that does not get every line counts as incomplete and the row says how many lines the worst run missed.
// With --input-format json every line is a JSON object and the input has `format: json`, so its keys are
// decoded and encoded into each record; raw (the default) ships the mixed lines as text.
// The agent runs as a child (`logcapture run -c CONFIG`) with encoding json, the sink's buffer
// when_full: block, admin off and a fresh state_dir; once every line arrived it gets SIGTERM and wait4() gives its CPU
// time and peak RSS. Wall time runs from the fork to the poll that first sees the last line (polled every few ms).
//
// --agent and --kafka-broker run other builds of the agent and of the Kafka helper than this one's, to
// compare two builds on the same machine at the same time.
// The data file is generated once and kept under --dir (with a .meta file); delete the directory when
// done. --perf adds one run per sink, not counted, under `perf record -g` writing DIR/perf-<sink>.data
// (its CPU and RSS figures are perf's and the agent's together). Targets: HTTP >= 2,000,000 lines/s and <= 0.65 CPU-s
// per million lines; Redis >= 1,000,000 lines/s; Kafka >= 620,000 lines/s (1.6 times Fluent Bit 5.1.1 on the same
// machine) at every partition count, keyed or not; peak RSS <= 64 MiB. Files: 1,000 files peak RSS <= 64 MiB;
// 10,000 files every line delivered with peak RSS <= 96 MB.

#include <fcntl.h>
#include <httplib.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <variant>
#include <vector>

#include "bench/agent_child.h"
#include "bench/sample_lines.h"
#include "tests/support/fixtures.h"
#include "tests/support/kafka_broker.h"
#include "tests/support/process.h"
#include "tests/support/redis_server.h"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

using logcapture::bench::Agent;
using logcapture::bench::Exit;

const std::string kHttpReceiverBinary = LOGCAPTURE_HTTP_RECEIVER_BINARY;

struct Options {
  fs::path dir = "/tmp/logcapture-sink-bench";
  std::vector<std::string> sinks = {"http", "redis", "kafka"};
  int runs = 3;
  std::uint64_t lines = 2'000'000;
  bool perf = false;
  std::string perfCallGraph = "fp";
  std::string buffer = "when_full: block";  // the sink's buffer section; see writeConfig
  std::string sinkOptions;          // more keys for the sink entry, e.g. "workers: 4, batch: {max_records: 5000}"
  std::string inputFormat = "raw";  // raw | json
  std::vector<int> kafkaPartitions = {1, 4, 16};
  std::vector<bool> kafkaKeyed = {false, true};
  std::string kafkaKey = "{{level}}";
  std::vector<int> files;          // empty: the one data file; else a case per count of files
  std::uint32_t maxOpenFiles = 0;  // the file input's max_open_files; 0: the agent's default
  std::string agent = LOGCAPTURE_BINARY;
  std::string kafkaBroker;     // empty: the helper built with the bench
  bool receiverParses = true;  // the HTTP receiver parses every record (--receiver parse) or counts lines
};

// One measured setup: a sink, for kafka the topic's partition count and whether records are keyed, and how
// many files the lines are split over (0: the one data file).
struct Case {
  std::string sink;
  int partitions = 1;
  bool keyed = false;
  int files = 0;
  std::string name() const {
    std::string n = sink;
    if (sink == "kafka") n += "/p" + std::to_string(partitions) + (keyed ? "/keyed" : "/keyless");
    if (files > 0) n += "/files" + std::to_string(files);
    return n;
  }
};

// The command line, or an exit code: CLI11 prints the help or what is wrong.
std::variant<Options, int> parseArgs(int argc, char** argv) {
  Options o;
  CLI::App app{"logcapture sink bench: the real agent ships 2,000,000 lines to each destination"};
  std::string sink = "all";
  std::vector<std::string> keys = {"keyless", "keyed"};
  std::string receiver = "parse";
  app.add_option("--dir", o.dir, "where the data files and each run's state go (kept)");
  app.add_option("--sink", sink, "the destinations measured")->check(CLI::IsMember({"http", "redis", "kafka", "all"}));
  app.add_option("--runs", o.runs, "measured runs per case")->check(CLI::PositiveNumber);
  app.add_option("--lines", o.lines, "lines in the data")->check(CLI::PositiveNumber);
  app.add_flag("--perf", o.perf, "one more run per case under perf record, not counted");
  app.add_option("--perf-call-graph", o.perfCallGraph, "perf record's --call-graph")
      ->check(CLI::IsMember({"fp", "dwarf", "lbr"}));
  app.add_option("--buffer", o.buffer, "the sink's buffer section, e.g. 'when_full: block, max_bytes: 16MiB'");
  app.add_option("--sink-options", o.sinkOptions, "more keys for the sink entry, e.g. 'workers: 4'");
  app.add_option("--input-format", o.inputFormat, "raw: the mixed lines as text; json: every line an object")
      ->check(CLI::IsMember({"raw", "json"}));
  app.add_option("--kafka-partitions", o.kafkaPartitions, "a case per partition count, e.g. 1,4,16")
      ->delimiter(',')
      ->check(CLI::PositiveNumber);
  app.add_option("--kafka-keys", keys, "keyless, keyed or both")
      ->delimiter(',')
      ->check(CLI::IsMember({"keyless", "keyed"}));
  app.add_option("--kafka-key", o.kafkaKey, "the key template of the keyed cases");
  app.add_option("--files", o.files, "a case per count of files the lines are split over, e.g. 1,1000")
      ->delimiter(',')
      ->check(CLI::PositiveNumber);
  app.add_option("--max-open-files", o.maxOpenFiles, "the file input's max_open_files (default: the agent's)")
      ->check(CLI::PositiveNumber);
  app.add_option("--agent", o.agent, "the agent binary");
  app.add_option("--kafka-broker", o.kafkaBroker, "the Kafka test broker binary");
  app.add_option("--receiver", receiver, "parse: the HTTP receiver parses every record; count: it counts lines")
      ->check(CLI::IsMember({"parse", "count"}));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  o.sinks = sink == "all" ? std::vector<std::string>{"http", "redis", "kafka"} : std::vector<std::string>{sink};
  // {{level}} is a field of the json lines only: a raw line has none, and every keyed record would be
  // dead-lettered while the bench waits for it to arrive.
  const bool defaultKey = app.count("--kafka-key") == 0;
  if (app.count("--kafka-keys") == 0 && o.inputFormat == "raw" && defaultKey) keys = {"keyless"};
  if (o.inputFormat == "raw" && defaultKey && std::find(keys.begin(), keys.end(), "keyed") != keys.end()) {
    std::fprintf(stderr,
                 "the keyed cases key by {{level}}, a field of the json lines: add --input-format json, or give a "
                 "--kafka-key a raw line has\n");
    return 2;
  }
  o.kafkaKeyed.clear();
  for (const auto& k : keys) o.kafkaKeyed.push_back(k == "keyed");
  o.receiverParses = receiver == "parse";
  return o;
}

// ---- data generation ----

struct DataFile {
  fs::path path;     // the file, or the directory of the files
  std::string glob;  // what the input's paths hold
  int files = 0;     // 0: one file at `path`
  std::uint64_t lines = 0;
  std::uint64_t bytes = 0;
};

fs::path partPath(const fs::path& dir, int part) {
  char name[32];
  std::snprintf(name, sizeof name, "part-%05d.log", part);
  return dir / name;
}

// Bytes of the data: the file's, or the sum of the parts' (-1 when one is missing).
std::int64_t dataBytes(const DataFile& df) {
  std::error_code ec;
  if (df.files == 0) {
    const auto size = fs::file_size(df.path, ec);
    return ec ? -1 : static_cast<std::int64_t>(size);
  }
  std::int64_t total = 0;
  for (int part = 0; part < df.files; ++part) {
    const auto size = fs::file_size(partPath(df.path, part), ec);
    if (ec) return -1;
    total += static_cast<std::int64_t>(size);
  }
  return total;
}

// The sample lines, in one file or (files > 0) split over that many in blocks: the same lines either way.
DataFile generate(const fs::path& dir, std::uint64_t lines, const std::string& format, int files) {
  const std::string prefix = format == "json" ? "json-lines-" : "lines-";
  DataFile df;
  df.lines = lines;
  df.files = files;
  if (files == 0) {
    df.path = dir / (prefix + std::to_string(lines) + ".log");
    df.glob = df.path.string();
  } else {
    df.path = dir / (prefix + std::to_string(lines) + "-files" + std::to_string(files));
    df.glob = (df.path / "*.log").string();
  }
  const fs::path meta = df.path.string() + ".meta";
  {
    std::ifstream in(meta);
    std::uint64_t metaLines = 0, metaBytes = 0;
    if (in >> metaLines >> metaBytes && metaLines == lines && dataBytes(df) == static_cast<std::int64_t>(metaBytes)) {
      df.bytes = metaBytes;
      return df;
    }
  }
  std::printf("generating %s (%llu lines)...\n", df.path.c_str(), static_cast<unsigned long long>(lines));
  std::fflush(stdout);
  if (files > 0) {
    fs::remove_all(df.path);
    fs::create_directories(df.path);
  }
  logcapture::bench::Rng r(42);
  std::string line;
  std::uint64_t seq = 0;
  for (int part = 0; part < std::max(files, 1); ++part) {
    const fs::path path = files == 0 ? df.path : partPath(df.path, part);
    const std::uint64_t end = files == 0 ? lines : lines * static_cast<std::uint64_t>(part + 1) / files;
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    for (; seq < end; ++seq) {
      if (format == "json") {
        makeSampleJsonLine(r, seq, line);
      } else {
        makeSampleLine(r, seq, line);
      }
      line += '\n';
      out.write(line.data(), static_cast<std::streamsize>(line.size()));
      df.bytes += line.size();
    }
    out.close();
    if (!out) {
      std::fprintf(stderr, "cannot write %s\n", path.c_str());
      std::exit(1);
    }
  }
  std::ofstream(meta) << lines << ' ' << df.bytes << '\n';
  return df;
}

void warmPageCache(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  std::vector<char> buf(4 << 20);
  while (::read(fd, buf.data(), buf.size()) > 0) {
  }
  ::close(fd);
}

void warmPageCache(const DataFile& df) {
  if (df.files == 0) return warmPageCache(df.path);
  for (int part = 0; part < df.files; ++part) warmPageCache(partPath(df.path, part));
}

// ---- destinations ----

// One destination, started fresh on a free port: the sink entry that points the agent at it, and
// how many records it holds (-1 when it cannot tell right now).
class Destination {
 public:
  virtual ~Destination() = default;
  // Without the closing brace, so that more keys can follow.
  virtual std::string sinkEntry() const = 0;
  virtual std::int64_t delivered() = 0;
  // CPU seconds the destination's process used so far; negative when not measured.
  virtual double cpuSeconds() const { return -1; }
  // How often the run asks delivered(): the bound on how late it sees the last line.
  virtual std::chrono::milliseconds pollInterval() const { return 2ms; }
};

// user + system seconds of a running process, from /proc/PID/stat; negative when it cannot be read.
double processCpuSeconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return -1;
  // The command name (field 2) may hold spaces: count fields from the closing parenthesis.
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream fields(stat.substr(close + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14) utime = std::strtoull(field.c_str(), nullptr, 10);
    if (i == 15) stime = std::strtoull(field.c_str(), nullptr, 10);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

class HttpReceiver final : public Destination {
 public:
  explicit HttpReceiver(bool parse)
      : port_(logcapture::testing::freePort()),
        process_(parse ? std::vector<std::string>{kHttpReceiverBinary, "--listen", listen(port_), "--parse"}
                       : std::vector<std::string>{kHttpReceiverBinary, "--listen", listen(port_)}),
        client_("127.0.0.1", port_) {
    if (!process_.waitForStdout("listening on", 10s)) throw std::runtime_error("the HTTP receiver did not start");
    client_.set_keep_alive(true);
  }
  std::string sinkEntry() const override {
    return "{name: out, type: http, url: \"http://127.0.0.1:" + std::to_string(port_) +
           "/ingest\", format: ndjson, encoding: json";
  }
  std::int64_t delivered() override {
    const auto res = client_.Get("/_stats");
    if (!res || res->status != 200) return -1;
    const auto j = nlohmann::json::parse(res->body, nullptr, false);
    if (j.is_discarded() || !j.contains("records")) return -1;
    return j["records"].get<std::int64_t>();
  }
  double cpuSeconds() const override { return processCpuSeconds(process_.pid()); }

 private:
  static std::string listen(std::uint16_t port) { return "127.0.0.1:" + std::to_string(port); }

  std::uint16_t port_;
  logcapture::testing::ChildProcess process_;
  httplib::Client client_;
};

class Redis final : public Destination {
 public:
  std::string sinkEntry() const override {
    return "{name: out, type: redis, address: \"" + server_.address() + "\", mode: list, key: logs, encoding: json";
  }
  std::int64_t delivered() override {
    const auto reply = server_.command({"LLEN", "logs"});
    return reply.type == logcapture::testing::RedisValue::Type::Integer ? reply.integer : -1;
  }

 private:
  logcapture::testing::RedisServer server_;
};

class Kafka final : public Destination {
 public:
  Kafka(int partitions, std::string key, const std::string& binary)
      : broker_(logcapture::testing::KafkaBroker::Options{
            .binary = binary, .brokers = 1, .topics = {"logs:" + std::to_string(partitions)}}),
        partitions_(rd_kafka_topic_partition_list_new(partitions)),
        key_(std::move(key)) {
    for (int p = 0; p < partitions; ++p) rd_kafka_topic_partition_list_add(partitions_, "logs", p);
    // One consumer handle for the whole run: a new client per poll would cost a metadata round trip.
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    char err[512];
    for (const auto& [name, value] :
         {std::pair{"bootstrap.servers", broker_.bootstrap().c_str()}, std::pair{"group.id", "logcapture-bench"},
          std::pair{"allow.auto.create.topics", "false"}, std::pair{"log_level", "3"}}) {
      if (rd_kafka_conf_set(conf, name, value, err, sizeof err) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        throw std::runtime_error(err);
      }
    }
    consumer_ = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (consumer_ == nullptr) {
      rd_kafka_conf_destroy(conf);
      throw std::runtime_error(err);
    }
  }
  ~Kafka() override {
    rd_kafka_topic_partition_list_destroy(partitions_);
    rd_kafka_destroy(consumer_);
  }
  Kafka(const Kafka&) = delete;
  Kafka& operator=(const Kafka&) = delete;

  std::string sinkEntry() const override {
    return "{name: out, type: kafka, brokers: [\"" + broker_.bootstrap() + "\"], topic: logs, encoding: json" +
           (key_.empty() ? std::string() : ", key: \"" + key_ + "\"");
  }
  std::int64_t delivered() override {
    // The high watermarks alone: the mock cluster drops old segments past a few MB, which moves the
    // low watermarks up, while a high one counts every message ever appended from offset 0. The
    // latest offsets of all partitions come in one ListOffsets request (timestamp -1: the end).
    for (int i = 0; i < partitions_->cnt; ++i) partitions_->elems[i].offset = RD_KAFKA_OFFSET_END;
    if (rd_kafka_offsets_for_times(consumer_, partitions_, 2000) != RD_KAFKA_RESP_ERR_NO_ERROR) return -1;
    std::int64_t total = 0;
    for (int i = 0; i < partitions_->cnt; ++i) {
      const auto& p = partitions_->elems[i];
      if (p.err != RD_KAFKA_RESP_ERR_NO_ERROR || p.offset < 0) return -1;
      total += p.offset;
    }
    return total;
  }
  double cpuSeconds() const override { return processCpuSeconds(broker_.pid()); }
  // Each answer costs the broker a ListOffsets request over every partition, taken from the CPU the
  // agent has: at 16 partitions every 2 ms that was a tenth of a core.
  std::chrono::milliseconds pollInterval() const override { return 10ms; }

 private:
  logcapture::testing::KafkaBroker broker_;
  rd_kafka_t* consumer_ = nullptr;
  rd_kafka_topic_partition_list_t* partitions_;
  std::string key_;
};

std::unique_ptr<Destination> startDestination(const Options& o, const Case& c) {
  if (c.sink == "http") return std::make_unique<HttpReceiver>(o.receiverParses);
  if (c.sink == "redis") return std::make_unique<Redis>();
  return std::make_unique<Kafka>(c.partitions, c.keyed ? o.kafkaKey : std::string(), o.kafkaBroker);
}

// ---- the agent ----

fs::path writeConfig(const fs::path& dir, const std::string& sink, const DataFile& df, const Destination& dest,
                     const std::string& buffer, const std::string& extra, const std::string& inputFormat,
                     std::uint32_t maxOpenFiles) {
  const fs::path state = dir / ("state-" + sink);
  fs::remove_all(state);
  fs::create_directories(state);
  const fs::path config = dir / ("capture-" + sink + ".yaml");
  std::ofstream out(config, std::ios::trunc);
  out << "agent:\n"
      << "  state_dir: \"" << state.string() << "\"\n"
      << "  admin: {listen: \"\"}\n"
      << "  shutdown_timeout: 20s\n"
      << "inputs:\n"
      << "  - {name: bench, type: file, paths: [\"" << df.glob << "\"], start_at: beginning, format: " << inputFormat
      << (maxOpenFiles > 0 ? ", max_open_files: " + std::to_string(maxOpenFiles) : "") << "}\n"
      << "sinks:\n"
      // The sink's buffer blocks when full, so a sink slower than the file input holds the tailer back
      // (the file is the buffer). With the default, drop_oldest, the file is read faster than a slower
      // sink ships it, and whole batches would be dropped once the buffer is full: lines never arrive.
      << "  - " << dest.sinkEntry() << ", buffer: {" << buffer << "}" << (extra.empty() ? "" : ", " + extra) << "}\n";
  return config;
}

// ---- measurement ----

struct RunResult {
  bool complete = false;
  double wall = 0;             // fork to the poll that saw the last line, seconds
  double firstLine = 0;        // fork to the poll that saw the first line, seconds
  double cpu = 0;              // the agent's user + system seconds, over its whole life
  double rssMiB = 0;           // the agent's peak resident set
  double destinationCpu = -1;  // the destination's user + system seconds, when measured
  std::int64_t delivered = 0;
  int exitStatus = 0;
};

// The case's name as a part of a file name.
std::string fileTag(const Case& c) {
  std::string tag = c.name();
  std::replace(tag.begin(), tag.end(), '/', '-');
  return tag;
}

RunResult runOnce(const Options& o, const Case& c, const DataFile& df, int run, bool profile) {
  RunResult r;
  const std::string sink = fileTag(c);
  const auto dest = startDestination(o, c);
  const double destinationCpuBefore = dest->cpuSeconds();
  const fs::path config = writeConfig(o.dir, sink, df, *dest, o.buffer, o.sinkOptions, o.inputFormat, o.maxOpenFiles);
  std::string logName = "agent-" + sink;
  logName += '-';
  logName += profile ? std::string("perf") : std::to_string(run);
  const fs::path log = o.dir / (logName + ".log");
  warmPageCache(df);

  const auto want = static_cast<std::int64_t>(df.lines);
  const auto t0 = Clock::now();
  // perf starts the agent itself: attaching to a running one takes long enough to miss a short run.
  // On SIGTERM perf stops recording and passes the signal on.
  std::vector<std::string> wrapper;
  if (profile) {
    wrapper = {"/usr/bin/perf",
               "record",
               "--quiet",
               "--call-graph",
               o.perfCallGraph,
               "-o",
               (o.dir / ("perf-" + sink + ".data")).string(),
               "--"};
  }
  Agent agent(o.agent, config, log, wrapper);

  // Generous: a stuck sink shows as an incomplete run rather than a hang. Split over files, lines a file
  // input forgot never come: 30 s without a new line ends the run.
  const auto giveUp = t0 + 60s + std::chrono::seconds(df.lines / 20000);
  bool sawFirst = false;
  std::int64_t n = 0;
  auto lastProgress = t0;
  while (Clock::now() < giveUp) {
    const std::int64_t before = n;
    n = std::max(n, dest->delivered());
    const auto now = Clock::now();
    if (n > before) lastProgress = now;
    if (df.files > 0 && now - lastProgress > 30s) break;
    if (!sawFirst && n > 0) {
      sawFirst = true;
      r.firstLine = std::chrono::duration<double>(now - t0).count();
    }
    if (n >= want) {
      r.complete = true;
      r.wall = std::chrono::duration<double>(now - t0).count();
      break;
    }
    if (!agent.running()) break;
    std::this_thread::sleep_for(dest->pollInterval());
  }
  const Exit e = agent.stop(30s);
  if (destinationCpuBefore >= 0) r.destinationCpu = dest->cpuSeconds() - destinationCpuBefore;
  auto sec = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  r.cpu = sec(e.usage.ru_utime) + sec(e.usage.ru_stime);
  r.rssMiB = static_cast<double>(e.usage.ru_maxrss) / 1024.0;  // KiB on Linux
  r.exitStatus = e.status;
  r.delivered = std::max(n, dest->delivered());
  if (!r.complete) {
    std::fprintf(stderr, "  incomplete run: %lld of %lld lines arrived; see %s\n", static_cast<long long>(r.delivered),
                 static_cast<long long>(want), log.c_str());
  } else if (r.delivered != want) {
    std::printf("  note: the destination holds %lld records for %lld lines (duplicates)\n",
                static_cast<long long>(r.delivered), static_cast<long long>(want));
  }
  if (!WIFEXITED(e.status) || WEXITSTATUS(e.status) != 0) {
    std::fprintf(stderr, "  the agent ended with status 0x%x; see %s\n", static_cast<unsigned>(e.status), log.c_str());
  }
  return r;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct Figures {
  std::string sink;  // the case's name
  Case c;
  int complete = 0;
  std::int64_t missing = 0;  // lines the worst run did not deliver
  double linesPerSec = 0;
  double mbPerSec = 0;
  double cpu = 0;
  double cpuPerMillion = 0;
  double rssMiB = 0;
  double linesPerSecMin = 0;
  double linesPerSecMax = 0;
  double rssMiBMax = 0;
  double destinationCpu = -1;
};

Figures benchSink(const Options& o, const Case& c, const DataFile& df) {
  std::printf("\n%s: %s, %.1f MB, %llu lines\n", c.name().c_str(), df.path.c_str(), static_cast<double>(df.bytes) / 1e6,
              static_cast<unsigned long long>(df.lines));
  std::fflush(stdout);
  const double mb = static_cast<double>(df.bytes) / 1e6;
  const double millions = static_cast<double>(df.lines) / 1e6;
  Figures f;
  f.sink = c.name();
  f.c = c;
  std::vector<double> lps, mbps, cpu, cpuPerM, rss, destinationCpu;
  for (int i = 1; i <= o.runs; ++i) {
    const RunResult r = runOnce(o, c, df, i, false);
    f.missing = std::max(f.missing, static_cast<std::int64_t>(df.lines) - r.delivered);
    if (!r.complete) continue;
    ++f.complete;
    lps.push_back(static_cast<double>(df.lines) / r.wall);
    mbps.push_back(mb / r.wall);
    cpu.push_back(r.cpu);
    cpuPerM.push_back(r.cpu / millions);
    rss.push_back(r.rssMiB);
    if (r.destinationCpu >= 0) destinationCpu.push_back(r.destinationCpu);
    std::printf(
        "  run %d: %9.0f lines/s  %6.1f MB/s  wall %.3f s (first line %.3f s)  agent cpu %.2f s  %.3f cpu-s/M lines  "
        "peak rss %.1f MiB",
        i, lps.back(), mbps.back(), r.wall, r.firstLine, r.cpu, cpuPerM.back(), r.rssMiB);
    if (r.destinationCpu >= 0) std::printf("  destination cpu %.2f s", r.destinationCpu);
    std::printf("\n");
    std::fflush(stdout);
  }
  f.linesPerSec = median(lps);
  f.mbPerSec = median(mbps);
  f.cpu = median(cpu);
  f.cpuPerMillion = median(cpuPerM);
  f.rssMiB = median(rss);
  if (!lps.empty()) {
    f.linesPerSecMin = *std::min_element(lps.begin(), lps.end());
    f.linesPerSecMax = *std::max_element(lps.begin(), lps.end());
    f.rssMiBMax = *std::max_element(rss.begin(), rss.end());
  }
  if (!destinationCpu.empty()) f.destinationCpu = median(destinationCpu);
  std::printf("  median of %d: %9.0f lines/s  %6.1f MB/s  agent cpu %.2f s  %.3f cpu-s/M lines  peak rss %.1f MiB\n",
              f.complete, f.linesPerSec, f.mbPerSec, f.cpu, f.cpuPerMillion, f.rssMiB);
  if (o.perf) {
    const RunResult r = runOnce(o, c, df, 0, true);
    std::printf("  profiled run (perf attached, not counted): %.0f lines/s; perf report -i %s\n",
                r.complete ? static_cast<double>(df.lines) / r.wall : 0.0,
                (o.dir / ("perf-" + fileTag(c) + ".data")).c_str());
  }
  std::fflush(stdout);
  return f;
}

// Split over files, the rows are judged on memory and on every line arriving, not on rate.
constexpr double kManyFilesRssMiB = 96e6 / (1024 * 1024);  // 96 MB

// Kafka's: 1.6 times Fluent Bit 5.1.1's 385,000 lines/s on the same machine, at every partition count.
std::string target(const Figures& f) {
  if (f.c.files > 1000) return "every line, rss <= 96 MB";
  if (f.c.files > 0) return "every line, rss <= 64 MiB";
  if (f.c.sink == "http") return ">= 2000000 lines/s, <= 0.65 cpu-s/M";
  if (f.c.sink == "redis") return ">= 1000000 lines/s";
  return ">= 620000 lines/s";
}

// "met", or which targets were missed.
std::string verdict(const Figures& f) {
  if (f.complete == 0) return "no complete run";
  std::string missed;
  if (f.missing > 0) missed += " lines";
  if (f.c.files > 0) {
    if (f.rssMiB > (f.c.files > 1000 ? kManyFilesRssMiB : 64)) missed += " rss";
    return missed.empty() ? "met" : "missed:" + missed;
  }
  const double minRate = f.c.sink == "http" ? 2e6 : f.c.sink == "redis" ? 1e6 : 6.2e5;
  if (f.linesPerSec < minRate) missed += " rate";
  if (f.c.sink == "http" && f.cpuPerMillion > 0.65) missed += " cpu";
  if (f.rssMiB > 64) missed += " rss";
  return missed.empty() ? "met" : "missed:" + missed;
}

// The agent opens max_open_files files at once: the soft limit on descriptors, which it inherits, goes up
// to the hard one.
void raiseDescriptorLimit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
  limit.rlim_cur = limit.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) std::perror("setrlimit(RLIMIT_NOFILE)");
}

}  // namespace

int main(int argc, char** argv) {
  const auto parsed = parseArgs(argc, argv);
  if (const int* exitCode = std::get_if<int>(&parsed)) return *exitCode;
  const Options& o = std::get<Options>(parsed);
  // A destination that dies mid-run must not kill the bench through a broken pipe.
  ::signal(SIGPIPE, SIG_IGN);
  fs::create_directories(o.dir);
  raiseDescriptorLimit();

  std::vector<Case> cases;
  const std::vector<int> fileCounts = o.files.empty() ? std::vector<int>{0} : o.files;
  for (const auto& sink : o.sinks) {
    for (const int files : fileCounts) {
      if (sink != "kafka") {
        cases.push_back(Case{.sink = sink, .files = files});
        continue;
      }
      for (const int partitions : o.kafkaPartitions) {
        for (const bool keyed : o.kafkaKeyed)
          cases.push_back(Case{.sink = sink, .partitions = partitions, .keyed = keyed, .files = files});
      }
    }
  }
  std::map<int, DataFile> data;  // by file count
  for (const int files : fileCounts) data.emplace(files, generate(o.dir, o.lines, o.inputFormat, files));
  const DataFile& df = data.begin()->second;  // for the totals: the lines are the same in every layout
  std::vector<Figures> all;
  for (const auto& c : cases) {
    try {
      all.push_back(benchSink(o, c, data.at(c.files)));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s: %s\n", c.name().c_str(), e.what());
      all.push_back(Figures{.sink = c.name(), .c = c});
    }
  }

  std::printf("\nmedians over %d runs, %llu lines, %.1f MB (targets: every sink peak rss <= 64 MiB)\n", o.runs,
              static_cast<unsigned long long>(df.lines), static_cast<double>(df.bytes) / 1e6);
  // cpu-s is the agent's alone; dest cpu-s, the destination process's (the Kafka broker's), apart.
  // missing: the lines the worst run did not deliver; rss max: the highest peak of the complete runs.
  std::printf("%-24s %5s %10s %17s %7s %7s %8s %8s %8s %8s %8s  %-36s %s\n", "case", "runs", "lines/s", "min..max",
              "MB/s", "cpu-s", "cpu-s/M", "rss MiB", "rss max", "missing", "dest cpu", "target", "");
  for (const auto& f : all) {
    char spread[40];
    std::snprintf(spread, sizeof spread, "%.0f..%.0f", f.linesPerSecMin, f.linesPerSecMax);
    char dest[16] = "-";
    if (f.destinationCpu >= 0) std::snprintf(dest, sizeof dest, "%.2f", f.destinationCpu);
    std::printf("%-24s %2d/%-2d %10.0f %17s %7.1f %7.2f %8.3f %8.1f %8.1f %8lld %8s  %-36s %s\n", f.sink.c_str(),
                f.complete, o.runs, f.linesPerSec, spread, f.mbPerSec, f.cpu, f.cpuPerMillion, f.rssMiB, f.rssMiBMax,
                static_cast<long long>(f.missing), dest, target(f).c_str(), verdict(f).c_str());
  }
  return 0;
}
