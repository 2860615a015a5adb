// The send limit against the in-tree HTTP receiver: a backlog drained with a ramp after the breaker
// closes does not knock a recovering destination over again, where a drain at full speed does; with
// workers: auto the sends at once settle where a destination slowing with load delivers most.

#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "agent/runner/sink_runner.h"
#include "circuit/clock.h"
#include "config/loader.h"
#include "sinks/registry.h"
#include "tests/support/fixtures.h"
#include "tests/support/http_receiver.h"
#include "tests/support/scripted_sink.h"

namespace {

using namespace logcapture;
using namespace std::chrono_literals;
using circuit::State;
using testing::DestinationRunner;
using testing::Feed;
using testing::HttpReceiver;
using testing::waitUntil;

config::SinkConfig loadSink(const std::string& sinkYaml) {
  const std::string yaml = "inputs: [{name: app, type: stdin}]\nsinks:\n" + sinkYaml;
  return config::loadString(yaml, "limit.yaml", ".").config.sinks.at(0);
}

// Four lanes on `receiver`, batches of 10, a breaker that opens after 5 failures in a row and tries
// again after a second.
config::SinkConfig rampedSink(const HttpReceiver& receiver, const std::string& ramp) {
  return loadSink("  - {name: search, type: http, url: \"" + receiver.base() +
                  "/ingest\", format: ndjson, encoding: raw, workers: 4,\n"
                  "     batch: {max_records: 10, linger: 1ms}, timeout: 2s,\n"
                  "     retry: {max_attempts: 2, initial_backoff: 50ms, max_backoff: 200ms},\n"
                  "     breaker: {failure_threshold: 5, success_threshold: 1, half_open_max_calls: 1,\n"
                  "               open_timeout: 1s, max_open_timeout: 1s, jitter: 0, ramp: " +
                  ramp + "}}\n");
}

std::uint64_t reopens(const DestinationRunner& r) {
  return r.runner->breaker().snapshot().transitionCount(State::Closed, State::Open);
}

// Sources enough to fill every lane.
std::vector<std::unique_ptr<Feed>> feeds(int n) {
  std::vector<std::unique_ptr<Feed>> out;
  for (int i = 0; i < n; ++i) out.push_back(std::make_unique<Feed>("/var/log/app-" + std::to_string(i) + ".log"));
  return out;
}

// The receiver down, a backlog of 600 lines (60 batches) behind an open breaker, then the receiver back
// taking 10 requests a second for 15 s.
void backlogThenRateLimited(HttpReceiver& receiver, DestinationRunner& r, std::vector<std::unique_ptr<Feed>>& sources) {
  receiver.control({{"status", 500}});
  sources[0]->offer(*r.runner, 0, 10, 10);
  REQUIRE(waitUntil([&] { return r.state() == State::Open; }, 10s));
  for (std::size_t i = 0; i < sources.size(); ++i) sources[i]->offer(*r.runner, i == 0 ? 10 : 0, 75, 5);
  receiver.control({{"rate_limit", 10}, {"for_ms", 15000}});
}

}  // namespace

TEST_CASE("a backlog drained with a ramp after a close does not re-open the breaker of a recovering endpoint") {
  HttpReceiver receiver;
  auto sources = feeds(8);  // before the runner: its workers finish their records until it stops
  DestinationRunner r(rampedSink(receiver, "30s"));
  backlogThenRateLimited(receiver, r, sources);
  const auto started = std::chrono::steady_clock::now();
  REQUIRE(waitUntil([&] { return r.state() == State::Closed; }, 10s));
  CHECK(waitUntil([&] { return r.runner->stats().delivered.load() == 600; }, 25s));
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const auto stats = receiver.stats();
  MESSAGE("ramp 30s: 600 lines in " << took << " s, " << stats["requests"] << " requests, " << stats["failed_requests"]
                                    << " refused; re-opens: " << reopens(r));
  CHECK(reopens(r) == 1);  // the first open, while the endpoint was down
  const auto records = receiver.records();
  const std::set<std::string> arrived(records.begin(), records.end());
  for (auto& f : sources) {
    for (const auto& line : f->expected(0, 75)) CHECK(arrived.contains(line));
  }
}

TEST_CASE("a backlog drained at full speed after a close re-opens the breaker of a recovering endpoint") {
  HttpReceiver receiver;
  auto sources = feeds(8);  // before the runner: its workers finish their records until it stops
  DestinationRunner r(rampedSink(receiver, "0s"));
  backlogThenRateLimited(receiver, r, sources);
  CHECK(waitUntil([&] { return reopens(r) >= 2; }, 10s));
  MESSAGE("ramp 0s: re-opens " << reopens(r) << ", " << receiver.stats()["failed_requests"] << " refused");
}

TEST_CASE("workers: auto settles the sends at once where a destination slowing with load delivers most") {
  HttpReceiver receiver;
  // 20 ms + 0.3125 ms * c^2 for c requests at once: a batch per latency per lane is most at c = 8
  // (200 batches/s), 16 at once give 133/s, one 48/s.
  receiver.control({{"latency_ms", 20}, {"latency_per_concurrent2_us", 312.5}});
  auto sources = feeds(64);  // 32,000 lines over every lane; before the runner, which finishes them
  DestinationRunner r(loadSink("  - {name: search, type: http, url: \"" + receiver.base() +
                               "/ingest\", format: ndjson, encoding: raw, workers: auto, max_workers: 16,\n"
                               "     batch: {max_records: 10, linger: 5ms}, timeout: 5s}\n"));
  constexpr int kPerSource = 500;
  std::thread offering([&] {
    for (int i = 0; i < kPerSource; i += 10) {
      for (auto& f : sources) f->offer(*r.runner, i, i + 10, 10);
    }
  });
  const auto started = std::chrono::steady_clock::now();
  std::vector<std::uint32_t> limits;
  std::string timeline;
  const std::uint64_t total = std::uint64_t(kPerSource) * sources.size();
  std::size_t samples = 0;
  while (r.runner->stats().delivered.load() < total && std::chrono::steady_clock::now() - started < 40s) {
    std::this_thread::sleep_for(250ms);
    const std::uint32_t limit = r.runner->sendLimit().limit;
    if (++samples % 4 == 0) timeline += " " + std::to_string(limit);
    // Judged while most lanes still have a backlog: in the tail fewer send, latency falls, and the
    // limit, no longer reached, rises without meaning more at once.
    if (r.runner->stats().delivered.load() < total * 3 / 4) limits.push_back(limit);
  }
  offering.join();
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  REQUIRE(r.runner->stats().delivered.load() == total);
  double sum = 0;
  REQUIRE(limits.size() >= 2);
  for (std::size_t i = limits.size() / 2; i < limits.size(); ++i) sum += limits[i];
  const double mean = sum / double(limits.size() - limits.size() / 2);
  MESSAGE("workers: auto: " << total << " lines in " << took << " s (" << double(total) / took
                            << " lines/s); limit each second:" << timeline
                            << "; mean over the second half of the first three quarters " << mean
                            << "; most requests at once at the receiver " << receiver.stats()["max_concurrent"]);
  CHECK(mean > 3);
  CHECK(mean < 13);
  CHECK(receiver.records().size() == total);
}
