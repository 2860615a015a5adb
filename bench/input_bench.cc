// Throughput of the file input: a large file of ~200-byte lines, read from a warm page cache, split,
// decoded (raw, cri, docker or json) and pushed into the queue, with a consumer that acks and discards every chunk.
// One long run per measurement, so a plain program rather than Google Benchmark.
//
//   logcapture_bench_input [--dir /tmp/logcapture-bench] [--size 1GiB] [--runs 3] [--format raw,cri,docker,json]
//
// The data files are generated once and kept under --dir (with a .meta file holding their record
// count); delete the directory when done. Targets (issue 4): raw >= 1000 MB/s, cri >= 300 MB/s.

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "agent/inputs/checkpoint/checkpoint.h"
#include "agent/inputs/file_tailer.h"
#include "agent/pipeline/queue.h"
#include "bench/sample_lines.h"
#include "config/config.h"

namespace fs = std::filesystem;
using namespace logcapture;
using namespace std::chrono_literals;

namespace {

struct Options {
  fs::path dir = "/tmp/logcapture-bench";
  std::uint64_t size = 1ull << 30;
  int runs = 3;
  std::string formats = "raw,cri";
};

std::uint64_t parseSize(const std::string& s) {
  std::size_t used = 0;
  const double n = std::stod(s, &used);
  std::string unit = s.substr(used);
  std::transform(unit.begin(), unit.end(), unit.begin(), [](unsigned char c) { return std::tolower(c); });
  std::uint64_t mult = 1;
  if (unit.empty() || unit == "b") {
    mult = 1;
  } else if (unit == "k" || unit == "kib") {
    mult = 1ull << 10;
  } else if (unit == "m" || unit == "mib") {
    mult = 1ull << 20;
  } else if (unit == "g" || unit == "gib") {
    mult = 1ull << 30;
  } else if (unit == "kb") {
    mult = 1000;
  } else if (unit == "mb") {
    mult = 1000 * 1000;
  } else if (unit == "gb") {
    mult = 1000 * 1000 * 1000;
  } else {
    std::fprintf(stderr, "unknown size unit in '%s'\n", s.c_str());
    std::exit(2);
  }
  return static_cast<std::uint64_t>(n * static_cast<double>(mult));
}

Options parseArgs(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", argv[i]);
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--dir") {
      o.dir = value();
    } else if (a == "--size") {
      o.size = parseSize(value());
    } else if (a == "--format") {
      o.formats = value();
    } else if (a == "--runs") {
      o.runs = std::max(1, std::atoi(value().c_str()));
    } else {
      std::fprintf(stderr, "usage: %s [--dir DIR] [--size 1GiB] [--runs 3] [--format raw,cri,docker,json]\n", argv[0]);
      std::exit(2);
    }
  }
  return o;
}

// ---- data generation ----

struct DataFile {
  fs::path path;
  std::uint64_t bytes = 0;
  std::uint64_t records = 0;  // records the decoder produces (cri: P fragments joined)
  std::uint64_t lines = 0;    // lines in the file
};

bool readMeta(const fs::path& meta, std::uint64_t size, DataFile& df) {
  std::ifstream in(meta);
  std::uint64_t s = 0, bytes = 0, records = 0, lines = 0;
  if (!(in >> s >> bytes >> records >> lines) || s != size) return false;
  std::error_code ec;
  if (fs::file_size(df.path, ec) != bytes || ec) return false;
  df.bytes = bytes;
  df.records = records;
  df.lines = lines;
  return true;
}

DataFile generate(const fs::path& dir, std::uint64_t size, config::InputFormat format) {
  const bool cri = format == config::InputFormat::Cri;
  DataFile df;
  df.path = dir / (std::string(config::enumName(format)) + "-" + std::to_string(size) + ".log");
  const fs::path meta = df.path.string() + ".meta";
  if (readMeta(meta, size, df)) return df;

  std::printf("generating %s (%llu bytes)...\n", df.path.c_str(), static_cast<unsigned long long>(size));
  std::fflush(stdout);
  const int fd = ::open(df.path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    std::perror(df.path.c_str());
    std::exit(1);
  }
  std::string buf;
  buf.reserve(9 << 20);
  auto flush = [&] {
    std::size_t done = 0;
    while (done < buf.size()) {
      const ssize_t n = ::write(fd, buf.data() + done, buf.size() - done);
      if (n < 0) {
        std::perror("write");
        std::exit(1);
      }
      done += static_cast<std::size_t>(n);
    }
    buf.clear();
  };

  bench::Rng r(42);  // same seed for every format: the cri and docker files carry the same messages
  std::string msg;
  std::uint64_t written = 0;
  char ts[64];
  for (std::uint64_t seq = 0; written < size; ++seq) {
    if (format == config::InputFormat::Json) {
      makeSampleJsonLine(r, seq, msg);
    } else {
      makeSampleLine(r, seq, msg);
    }
    if (format == config::InputFormat::Docker) {
      // docker's json-file layout, in docker's own key order (the decoder's fast path).
      const std::uint64_t secs = 1704067200 + seq / 2000;
      std::snprintf(ts, sizeof ts, "2024-01-01T%02d:%02d:%02d.%09lluZ", static_cast<int>((secs / 3600) % 24),
                    static_cast<int>((secs / 60) % 60), static_cast<int>(secs % 60),
                    static_cast<unsigned long long>(seq % 2000 * 500000 + 123));
      const std::size_t before = buf.size();
      buf += R"({"log":")";
      bench::appendJsonEscaped(buf, msg);
      buf += R"(\n","stream":")";
      buf += seq % 8 == 7 ? "stderr" : "stdout";
      buf += R"(","time":")";
      buf += ts;
      buf += "\"}\n";
      written += buf.size() - before;
      ++df.lines;
    } else if (!cri) {
      buf += msg;
      buf += '\n';
      written += msg.size() + 1;
      ++df.lines;
    } else {
      const std::uint64_t secs = 1704067200 + seq / 2000;
      std::snprintf(ts, sizeof ts, "2024-01-01T%02d:%02d:%02d.%09lluZ ", static_cast<int>((secs / 3600) % 24),
                    static_cast<int>((secs / 60) % 60), static_cast<int>(secs % 60),
                    static_cast<unsigned long long>(seq % 2000 * 500000 + 123));
      const std::string_view stream = seq % 8 == 7 ? "stderr " : "stdout ";
      const std::size_t before = buf.size();
      if (seq % 25 == 0) {
        // A line the runtime split: one P fragment, then its F end.
        const std::size_t cut = msg.size() / 2;
        buf.append(ts).append(stream).append("P ").append(msg, 0, cut).append("\n");
        buf.append(ts).append(stream).append("F ").append(msg, cut).append("\n");
        df.lines += 2;
      } else {
        buf.append(ts).append(stream).append("F ").append(msg).append("\n");
        ++df.lines;
      }
      written += buf.size() - before;
    }
    ++df.records;
    if (buf.size() >= (8 << 20)) flush();
  }
  flush();
  ::close(fd);
  df.bytes = written;
  std::ofstream(meta) << size << ' ' << df.bytes << ' ' << df.records << ' ' << df.lines << '\n';
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

// ---- measurement ----

std::set<long> threadIds() {
  std::set<long> ids;
  for (const auto& e : fs::directory_iterator("/proc/self/task")) ids.insert(std::stol(e.path().filename()));
  return ids;
}

// CPU seconds (user + system) of one thread of this process, from /proc; -1 when unreadable.
double threadCpuSeconds(long tid) {
  std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return -1;
  const auto close = stat.rfind(')');  // the command name may hold spaces
  if (close == std::string::npos) return -1;
  // After ")": field 3 (state) onwards; utime and stime are fields 14 and 15.
  std::vector<std::string> fields;
  std::size_t pos = close + 2;
  while (pos < stat.size() && fields.size() < 13) {
    const auto sp = stat.find(' ', pos);
    fields.push_back(stat.substr(pos, sp - pos));
    if (sp == std::string::npos) break;
    pos = sp + 1;
  }
  if (fields.size() < 13) return -1;
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  return (std::stod(fields[11]) + std::stod(fields[12])) / ticks;
}

double processCpuSeconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto sec = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return sec(ru.ru_utime) + sec(ru.ru_stime);
}

struct RunResult {
  double wall = 0;        // seconds
  double processCpu = 0;  // seconds, every thread (tailer, consumer, main)
  double tailerCpu = -1;  // seconds, the tailer's thread alone
  std::uint64_t records = 0;
  std::uint64_t messageBytes = 0;
};

RunResult runOnce(const DataFile& df, config::InputFormat format, const fs::path& stateDir) {
  fs::remove_all(stateDir);
  fs::create_directories(stateDir);

  config::InputConfig cfg;
  cfg.name = "bench";
  cfg.type = config::InputType::File;
  cfg.paths = {df.path.string()};
  cfg.startAt = config::StartAt::Beginning;
  cfg.format = format;

  agent::RecordQueue queue(config::QueueConfig{});
  agent::checkpoint::CheckpointStore checkpoints(stateDir, std::chrono::hours(24));
  checkpoints.load();

  std::atomic<std::uint64_t> records{0};
  std::atomic<std::uint64_t> messageBytes{0};
  std::atomic<bool> done{false};
  std::chrono::steady_clock::time_point doneAt;
  std::thread consumer([&] {
    agent::Chunk chunk;
    std::uint64_t n = 0, bytes = 0;
    while (n < df.records) {
      if (!queue.pop(chunk, 100ms)) {
        if (done.load()) break;  // gave up (see the timeout below)
        continue;
      }
      n += chunk.records.size();
      bytes += chunk.bytes;
      chunk.ack.finish();
      chunk = agent::Chunk{};
      records.store(n, std::memory_order_relaxed);
    }
    doneAt = std::chrono::steady_clock::now();
    messageBytes.store(bytes);
    records.store(n);
  });

  const auto before = threadIds();
  const double cpu0 = processCpuSeconds();
  const auto t0 = std::chrono::steady_clock::now();
  agent::FileTailer tailer(cfg, queue, checkpoints);
  if (!tailer.start()) {
    std::fprintf(stderr, "tailer failed to start\n");
    std::exit(1);
  }
  long tailerTid = -1;
  for (long id : threadIds()) {
    if (!before.contains(id)) tailerTid = id;
  }

  // The consumer ends once it has every record; a stuck run gives up after a generous timeout.
  const auto giveUp = t0 + std::chrono::seconds(60 + df.bytes / (10 << 20));
  while (records.load(std::memory_order_relaxed) < df.records && std::chrono::steady_clock::now() < giveUp) {
    std::this_thread::sleep_for(1ms);
  }
  done.store(true);
  consumer.join();

  RunResult r;
  r.processCpu = processCpuSeconds() - cpu0;
  r.tailerCpu = tailerTid > 0 ? threadCpuSeconds(tailerTid) : -1;
  r.wall = std::chrono::duration<double>(doneAt - t0).count();
  r.records = records.load();
  r.messageBytes = messageBytes.load();
  tailer.stop(std::chrono::steady_clock::now() + 5s);
  queue.close();
  if (r.records != df.records) {
    std::fprintf(stderr, "incomplete run: %llu of %llu records\n", static_cast<unsigned long long>(r.records),
                 static_cast<unsigned long long>(df.records));
  }
  fs::remove_all(stateDir);
  return r;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double benchFormat(const char* label, const DataFile& df, config::InputFormat format, const Options& o) {
  std::printf("\n%s: %s, %.1f MB, %llu lines, %llu records\n", label, df.path.c_str(),
              static_cast<double>(df.bytes) / 1e6, static_cast<unsigned long long>(df.lines),
              static_cast<unsigned long long>(df.records));
  warmPageCache(df.path);
  const double mb = static_cast<double>(df.bytes) / 1e6;
  std::vector<double> mbps, lps, cpu, tcpu, mbPerCpu, mbPerTailerCpu;
  for (int i = 0; i < o.runs; ++i) {
    const RunResult r = runOnce(df, format, o.dir / "state");
    mbps.push_back(mb / r.wall);
    lps.push_back(static_cast<double>(df.lines) / r.wall);
    cpu.push_back(r.processCpu);
    tcpu.push_back(r.tailerCpu);
    mbPerCpu.push_back(mb / r.processCpu);
    mbPerTailerCpu.push_back(r.tailerCpu > 0 ? mb / r.tailerCpu : 0);
    std::printf(
        "  run %d: %7.1f MB/s  %9.0f lines/s  wall %.3f s  process cpu %.2f s (%.0f MB/cpu-s)  "
        "tailer thread cpu %.2f s (%.0f MB/cpu-s)\n",
        i + 1, mbps.back(), lps.back(), r.wall, r.processCpu, mbPerCpu.back(), r.tailerCpu, mbPerTailerCpu.back());
    std::fflush(stdout);
  }
  std::printf(
      "  median: %7.1f MB/s  %9.0f lines/s  process cpu %.2f s (%.0f MB/cpu-s)  tailer thread cpu %.2f s "
      "(%.0f MB/cpu-s)\n",
      median(mbps), median(lps), median(cpu), median(mbPerCpu), median(tcpu), median(mbPerTailerCpu));
  std::printf("  (process cpu includes the consumer thread, which pops, acks and frees the records)\n");
  return median(mbps);
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parseArgs(argc, argv);
  fs::create_directories(o.dir);
  std::string summary;
  struct Target {
    config::InputFormat format;
    long mbps;  // 0: none set
  };
  for (const auto& [format, target] : {Target{config::InputFormat::Raw, 1000}, Target{config::InputFormat::Cri, 300},
                                       Target{config::InputFormat::Docker, 0}, Target{config::InputFormat::Json, 0}}) {
    const std::string name(config::enumName(format));
    if (o.formats.find(name) == std::string::npos) continue;
    const DataFile df = generate(o.dir, o.size, format);
    const double mbps = benchFormat(name.c_str(), df, format, o);
    summary += std::string(summary.empty() ? "" : ", ") + name + ": median " + std::to_string(static_cast<long>(mbps)) +
               " MB/s";
    if (target > 0) summary += " (target " + std::to_string(target) + ")";
  }
  std::printf("\n%s\n", summary.c_str());
  return 0;
}
