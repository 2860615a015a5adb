// How fast a disk buffer drains the backlog of an outage while new lines keep coming: the agent tails a
// file written at a steady rate into an HTTP receiver (which parses every record) that answers 503 for
// the outage, then 200. Prints the backlog, the time it took to drain (until the receiver holds every line
// written up to the end of the outage, while the writer goes on), the drain rate and its ratio to the
// ingest rate, and the agent's CPU time and peak RSS.
//
//   logcapture_bench_outage [--outage 300] [--rate 20000] [--after 30] [--buffer 'type: disk, max_bytes: 4GiB']
//                           [--dir /tmp/logcapture-outage-bench] [--agent PATH]
//
// The figure: after a 5-minute outage at 20,000 lines/s, the backlog drains at >= 10x the ingest rate.

#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "bench/agent_child.h"
#include "bench/sample_lines.h"
#include "tests/support/http_receiver.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct Options {
  int outageSeconds = 300;
  int rate = 20000;  // lines per second
  int afterSeconds = 30;  // the writer's time after the outage: the drain must fit in it
  std::string buffer = "type: disk, max_bytes: 4GiB";
  std::string dir = "/tmp/logcapture-outage-bench";
  std::string agent = LOGCAPTURE_BINARY;
};

// Appends `rate` lines a second to `file` in 10 ms steps until told to stop; counts what it wrote.
class Writer {
 public:
  Writer(const fs::path& file, int rate)
      : thread_([this, file, rate] {
          std::ofstream out(file, std::ios::app);
          logcapture::bench::Rng rng(42);
          std::string line;
          const auto start = Clock::now();
          std::int64_t written = 0;
          while (!stop_.load()) {
            const auto due = std::int64_t(double(rate) * std::chrono::duration<double>(Clock::now() - start).count());
            for (; written < due; ++written) {
              line.clear();
              logcapture::bench::makeSampleLine(rng, std::uint64_t(written), line);
              out << line << '\n';
            }
            out.flush();
            written_.store(written);
            std::this_thread::sleep_for(10ms);
          }
        }) {}
  ~Writer() { stop(); }
  std::int64_t written() const { return written_.load(); }
  void stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<std::int64_t> written_{0};
  std::thread thread_;
};

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"logcapture outage bench: the backlog of an outage drained by a disk buffer"};
  app.add_option("--outage", o.outageSeconds, "seconds the receiver answers 503")->check(CLI::PositiveNumber);
  app.add_option("--rate", o.rate, "lines per second written")->check(CLI::PositiveNumber);
  app.add_option("--after", o.afterSeconds, "seconds the writer goes on after the outage")->check(CLI::PositiveNumber);
  app.add_option("--buffer", o.buffer, "the sink's buffer settings");
  app.add_option("--dir", o.dir, "work directory (emptied)");
  app.add_option("--agent", o.agent, "the agent binary");
  CLI11_PARSE(app, argc, argv);

  const fs::path dir = o.dir;
  fs::remove_all(dir);
  fs::create_directories(dir / "logs");
  const fs::path log = dir / "logs" / "app.log";
  std::ofstream(log).flush();
  logcapture::testing::HttpReceiver http;
  http.control({{"status", 503}});
  const fs::path config = dir / "capture.yaml";
  std::ofstream(config) << "agent: {state_dir: \"" << (dir / "state").string() << "\"}\n"
                        << "inputs:\n  - {name: app, type: file, paths: [\"" << (dir / "logs").string()
                        << "/*.log\"], start_at: beginning}\n"
                        << "sinks:\n  - {name: out, type: http, url: \"" << http.base()
                        << "/ingest\", format: ndjson, encoding: json, buffer: {" << o.buffer
                        << "}, breaker: {open_timeout: 1s, max_open_timeout: 2s}}\n";

  logcapture::bench::Agent agent(o.agent, config, dir / "agent.log");
  Writer writer(log, o.rate);
  std::printf("outage of %d s at %d lines/s, buffer {%s}\n", o.outageSeconds, o.rate, o.buffer.c_str());
  std::this_thread::sleep_for(std::chrono::seconds(o.outageSeconds));
  const std::int64_t backlog = writer.written();
  const auto healed = Clock::now();
  http.control({{"status", 200}});
  std::int64_t delivered = 0;
  const auto giveUp = healed + std::chrono::seconds(o.afterSeconds);
  while (Clock::now() < giveUp) {
    delivered = http.stats()["records"].get<std::int64_t>();
    if (delivered >= backlog) break;
    std::this_thread::sleep_for(20ms);
  }
  const double drainSeconds = std::chrono::duration<double>(Clock::now() - healed).count();
  // Then the writer stops and the agent catches up with what came meanwhile.
  writer.stop();
  const std::int64_t total = writer.written();
  const auto caughtUpBy = Clock::now() + 60s;
  while (Clock::now() < caughtUpBy && http.stats()["records"].get<std::int64_t>() < total) {
    std::this_thread::sleep_for(20ms);
  }
  const std::int64_t received = http.stats()["records"].get<std::int64_t>();
  const logcapture::bench::Exit exit = agent.stop(30s);
  const double cpu = double(exit.usage.ru_utime.tv_sec + exit.usage.ru_stime.tv_sec) +
                     double(exit.usage.ru_utime.tv_usec + exit.usage.ru_stime.tv_usec) / 1e6;
  if (delivered < backlog) {
    std::printf("NOT DRAINED: %lld of a backlog of %lld lines within %d s\n", static_cast<long long>(delivered),
                static_cast<long long>(backlog), o.afterSeconds);
  } else {
    const double drainRate = double(backlog) / drainSeconds;
    std::printf("backlog %lld lines drained in %.2f s: %.0f lines/s, %.1fx the ingest rate\n",
                static_cast<long long>(backlog), drainSeconds, drainRate, drainRate / o.rate);
  }
  std::printf("written %lld, received %lld (%lld missing), agent cpu %.2f s, peak rss %.1f MiB\n",
              static_cast<long long>(total), static_cast<long long>(received),
              static_cast<long long>(total > received ? total - received : 0), cpu,
              double(exit.usage.ru_maxrss) / 1024.0);
  return delivered >= backlog && received >= total ? 0 : 1;
}
