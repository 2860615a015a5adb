// What an idle agent costs: the real agent binary tails 50 quiet files into a console sink (to /dev/null)
// and an HTTP sink (the in-tree receiver), with the admin server on; once every line written at the start
// has arrived, the agent's CPU time is read from /proc over a quiet spell (20 s by default). An agent runs
// on every node and mostly waits, so what it spends waiting is spent everywhere. One long run per
// measurement, so a plain program rather than Google Benchmark.
//
//   logcapture_bench_idle [--dir /tmp/logcapture-idle-bench] [--runs 3] [--quiet 20] [--settle 1]
//                         [--files 50] [--lines 5] [--admin on|off] [--agent PATH]
//
// --agent runs another build of the agent (an older one, to compare). Each run: fresh files and state_dir, a fresh
// receiver on a free port, the agent as a child
// (`logcapture run -c CONFIG`, its output in DIR/agent-N.log). When the receiver holds every line, the run
// waits --settle seconds more, then reads utime+stime of /proc/<pid>/stat and the context switches of
// each of its threads (/proc/<pid>/task/*/status), again --quiet seconds later; schedstat's run time of the live
// threads (nanoseconds, /proc/<pid>/task/*/schedstat) is shown beside the ticks of stat, which count 10 ms each.
// Wake-ups/s is the rise in context switches over the spell: every wake-up of a thread that sleeps costs at least one.
// Target: <= 0.4% of a core (<= 0.08 CPU-s per 20 s) with the admin server on.

#include <dirent.h>
#include <fcntl.h>
#include <httplib.h>
#include <signal.h>
#include <sys/prctl.h>
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
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <variant>
#include <vector>

#include "bench/agent_child.h"
#include "tests/support/fixtures.h"
#include "tests/support/process.h"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

using logcapture::bench::Agent;

const std::string kHttpReceiverBinary = LOGCAPTURE_HTTP_RECEIVER_BINARY;
constexpr double kTargetShare = 0.004;  // of one core

struct Options {
  fs::path dir = "/tmp/logcapture-idle-bench";
  int runs = 3;
  int quietSeconds = 20;
  int settleSeconds = 1;
  int files = 50;
  int lines = 5;
  bool admin = true;
  std::string agent = LOGCAPTURE_BINARY;
};

// The command line, or an exit code: CLI11 prints the help or what is wrong.
std::variant<Options, int> parseArgs(int argc, char** argv) {
  Options o;
  CLI::App app{"logcapture idle bench: the CPU an agent tailing quiet files uses"};
  std::string admin = "on";
  app.add_option("--dir", o.dir, "where the files and each run's state go");
  app.add_option("--runs", o.runs, "measured runs")->check(CLI::PositiveNumber);
  app.add_option("--quiet", o.quietSeconds, "seconds measured while nothing is written")->check(CLI::PositiveNumber);
  app.add_option("--settle", o.settleSeconds, "seconds after the first lines arrived, not measured")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--files", o.files, "files tailed")->check(CLI::PositiveNumber);
  app.add_option("--lines", o.lines, "lines in each file at the start")->check(CLI::PositiveNumber);
  app.add_option("--admin", admin, "the admin server")->check(CLI::IsMember({"on", "off"}));
  app.add_option("--agent", o.agent, "the agent binary");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  o.admin = admin == "on";
  return o;
}

// The in-tree receiver, counting only (GET /_stats).
class HttpReceiver {
 public:
  HttpReceiver()
      : port_(logcapture::testing::freePort()),
        process_({kHttpReceiverBinary, "--listen", "127.0.0.1:" + std::to_string(port_)}),
        client_("127.0.0.1", port_) {
    if (!process_.waitForStdout("listening on", 10s)) throw std::runtime_error("the HTTP receiver did not start");
  }
  std::uint16_t port() const { return port_; }
  std::int64_t records() {
    const auto res = client_.Get("/_stats");
    if (!res || res->status != 200) return -1;
    const auto j = nlohmann::json::parse(res->body, nullptr, false);
    if (j.is_discarded() || !j.contains("records")) return -1;
    return j["records"].get<std::int64_t>();
  }

 private:
  std::uint16_t port_;
  logcapture::testing::ChildProcess process_;
  httplib::Client client_;
};

// What /proc says of the agent at one moment.
struct Sample {
  double cpu = 0;                     // utime + stime, seconds, every thread's (live or gone)
  double runTime = 0;                 // time on a CPU, seconds, summed over the live threads (schedstat)
  int threads = 0;                    // num_threads
  std::uint64_t contextSwitches = 0;  // voluntary + involuntary, summed over the live threads
};

Sample sample(pid_t pid) {
  Sample s;
  {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // The command name in parentheses may hold spaces: fields are counted from the last ')'.
    const auto close = text.rfind(')');
    if (close == std::string::npos) throw std::runtime_error("cannot read /proc/" + std::to_string(pid) + "/stat");
    std::istringstream fields(text.substr(close + 2));
    std::vector<std::string> f((std::istream_iterator<std::string>(fields)), std::istream_iterator<std::string>());
    // f[0] is field 3 (state): utime is field 14, stime 15, num_threads 20.
    const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
    s.cpu = (std::stod(f.at(11)) + std::stod(f.at(12))) / ticks;
    s.threads = std::stoi(f.at(17));
  }
  const std::string tasks = "/proc/" + std::to_string(pid) + "/task";
  if (DIR* d = ::opendir(tasks.c_str())) {
    while (const dirent* e = ::readdir(d)) {
      if (e->d_name[0] == '.') continue;
      // schedstat counts nanoseconds where stat counts clock ticks (10 ms): an idle agent spends a few.
      std::ifstream sched(tasks + "/" + e->d_name + "/schedstat");
      double ns = 0;
      if (sched >> ns) s.runTime += ns / 1e9;
      std::ifstream in(tasks + "/" + e->d_name + "/status");
      std::string line;
      while (std::getline(in, line)) {
        for (const std::string_view key : {"voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:"}) {
          if (line.starts_with(key)) s.contextSwitches += std::strtoull(line.c_str() + key.size(), nullptr, 10);
        }
      }
    }
    ::closedir(d);
  }
  return s;
}

fs::path writeConfig(const Options& o, const fs::path& runDir, const HttpReceiver& receiver) {
  const fs::path logs = runDir / "logs";
  fs::create_directories(logs);
  fs::create_directories(runDir / "state");
  for (int i = 0; i < o.files; ++i) {
    std::ofstream out(logs / ("app-" + std::to_string(i) + ".log"));
    for (int l = 0; l < o.lines; ++l) out << "file " << i << " line " << l << " something happened\n";
  }
  const fs::path config = runDir / "capture.yaml";
  std::ofstream out(config, std::ios::trunc);
  out << "agent:\n"
      << "  state_dir: \"" << (runDir / "state").string() << "\"\n"
      << "  admin: {listen: \"" << (o.admin ? "127.0.0.1:" + std::to_string(logcapture::testing::freePort()) : "")
      << "\"}\n"
      << "  shutdown_timeout: 20s\n"
      << "inputs:\n"
      << "  - {name: app, type: file, paths: [\"" << (logs / "*.log").string() << "\"], start_at: beginning}\n"
      << "sinks:\n"
      << "  - {name: console, type: console, path: /dev/null}\n"
      << "  - {name: http, type: http, url: \"http://127.0.0.1:" << receiver.port()
      << "/ingest\", format: ndjson, encoding: json}\n";
  return config;
}

struct RunResult {
  bool complete = false;
  double cpu = 0;      // over the quiet spell
  double runTime = 0;  // the same from schedstat
  int threads = 0;
  double wakeupsPerSec = 0;
};

RunResult runOnce(const Options& o, int run) {
  RunResult r;
  const fs::path runDir = o.dir / ("run-" + std::to_string(run));
  fs::remove_all(runDir);
  HttpReceiver receiver;
  const fs::path config = writeConfig(o, runDir, receiver);
  const fs::path log = o.dir / ("agent-" + std::to_string(run) + ".log");
  Agent agent(o.agent, config, log);

  const std::int64_t want = std::int64_t(o.files) * o.lines;
  const auto giveUp = Clock::now() + 60s;
  std::int64_t n = 0;
  while (Clock::now() < giveUp && agent.running() && (n = receiver.records()) < want) std::this_thread::sleep_for(20ms);
  if (n < want) {
    std::fprintf(stderr, "  run %d: %lld of %lld lines arrived; see %s\n", run, static_cast<long long>(n),
                 static_cast<long long>(want), log.c_str());
    agent.stop(30s);
    return r;
  }
  std::this_thread::sleep_for(std::chrono::seconds(o.settleSeconds));
  const Sample before = sample(agent.pid());
  std::this_thread::sleep_for(std::chrono::seconds(o.quietSeconds));
  const Sample after = sample(agent.pid());
  r.complete = agent.running();
  r.cpu = after.cpu - before.cpu;
  r.runTime = after.runTime - before.runTime;
  r.threads = after.threads;
  r.wakeupsPerSec = static_cast<double>(after.contextSwitches - before.contextSwitches) / o.quietSeconds;
  const int status = agent.stop(30s).status;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fprintf(stderr, "  run %d: the agent ended with status 0x%x; see %s\n", run, static_cast<unsigned>(status),
                 log.c_str());
  }
  if (receiver.records() != want) {
    std::printf("  note: the receiver holds %lld records for %lld lines\n", static_cast<long long>(receiver.records()),
                static_cast<long long>(want));
  }
  fs::remove_all(runDir);
  return r;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
  const auto parsed = parseArgs(argc, argv);
  if (const int* exitCode = std::get_if<int>(&parsed)) return *exitCode;
  const Options& o = std::get<Options>(parsed);
  ::signal(SIGPIPE, SIG_IGN);
  fs::create_directories(o.dir);
  std::printf("idle agent: %d files x %d lines, console (/dev/null) + http sinks, admin %s, %d s quiet, %d runs\n",
              o.files, o.lines, o.admin ? "on" : "off", o.quietSeconds, o.runs);
  std::fflush(stdout);
  // CPU-s scaled to 20 s, so that figures of shorter or longer spells compare with the target.
  const double per20 = 20.0 / o.quietSeconds;
  std::vector<double> cpu, runTime, threads, wakeups;
  for (int i = 1; i <= o.runs; ++i) {
    RunResult r;
    try {
      r = runOnce(o, i);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "  run %d: %s\n", i, e.what());
    }
    if (!r.complete) continue;
    cpu.push_back(r.cpu * per20);
    runTime.push_back(r.runTime * per20);
    threads.push_back(r.threads);
    wakeups.push_back(r.wakeupsPerSec);
    std::printf(
        "  run %d: %.3f cpu-s per 20 s  %.2f%% of a core  (schedstat %.4f cpu-s)  %d threads  %.0f wake-ups/s\n", i,
        cpu.back(), cpu.back() / 20 * 100, runTime.back(), r.threads, r.wakeupsPerSec);
    std::fflush(stdout);
  }
  if (cpu.empty()) {
    std::printf("no complete run\n");
    return 1;
  }
  const auto [lo, hi] = std::minmax_element(cpu.begin(), cpu.end());
  const double med = median(cpu);
  std::printf(
      "median of %zu: %.3f cpu-s per 20 s (min %.3f, max %.3f)  %.2f%% of a core  (schedstat %.4f cpu-s)  %.0f threads "
      " "
      "%.0f wake-ups/s  target <= %.3f cpu-s (%.1f%%): %s\n",
      cpu.size(), med, *lo, *hi, med / 20 * 100, median(runTime), median(threads), median(wakeups), kTargetShare * 20,
      kTargetShare * 100, med <= kTargetShare * 20 ? "met" : "missed");
  return 0;
}
