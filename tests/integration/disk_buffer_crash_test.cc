// The disk buffer through the binary: records buffered on disk while the HTTP destination is down
// survive a SIGKILL of the agent, and arrive, in order, once the destination is back and the agent runs
// again; nothing else holds them (they came from stdin, which is gone).

#include <doctest/doctest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/fixtures.h"
#include "tests/support/http_receiver.h"
#include "tests/support/process.h"

namespace {

using logcapture::testing::appendFile;
using logcapture::testing::ChildProcess;
using logcapture::testing::HttpReceiver;
using logcapture::testing::numberedLines;
using logcapture::testing::numberedMessages;
using logcapture::testing::TempDir;
using logcapture::testing::waitUntil;
using logcapture::testing::writeAgentConfig;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

const std::string kBinary = LOGCAPTURE_BINARY;

std::string sinkYaml(const HttpReceiver& http) {
  return "  - {name: search, type: http, url: \"" + http.base() +
         "/ingest\", format: ndjson, encoding: raw, batch: {max_records: 500, linger: 10ms},"
         " buffer: {type: disk, max_bytes: 64MiB}}\n";
}

// True when a segment of the sink's disk buffer holds `needle`.
bool bufferHolds(const fs::path& dir, const std::string& needle) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::ifstream in(e.path(), std::ios::binary);
    const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (data.find(needle) != std::string::npos) return true;
  }
  return false;
}

// The destination healed, the agent started again on the same state (stdin gone, an empty file input):
// what its disk buffer held arrives, every line once, in the order written.
void restartHealed(const TempDir& dir, HttpReceiver& http, int lines) {
  http.control({{"status", 200}});
  fs::create_directories(dir / "logs");
  const std::string config = writeAgentConfig(
      dir, "  - {name: app, type: file, paths: [\"" + (dir / "logs").string() + "/*.log\"]}\n", sinkYaml(http));
  ChildProcess agent({kBinary, "run", "-c", config});
  if (!agent.waitForStderr("agent_started", 20s)) FAIL("the agent did not start, stderr:\n" << agent.err());
  CHECK(waitUntil(
      [&] {
        agent.readOutput();
        return http.stats()["records"].get<int>() >= lines;
      },
      60s));
  agent.signal(SIGTERM);
  CHECK(agent.wait(30s).exitCode == 0);
  CHECK(http.records() == numberedMessages(0, lines));
}

}  // namespace

TEST_CASE("lines on a disk buffer while the destination is down survive SIGKILL and arrive once it is back") {
  constexpr int kLines = 20000;
  TempDir dir("logcapture-disk-crash");
  HttpReceiver http;
  http.control({{"status", 503}});
  {
    const std::string config = writeAgentConfig(dir, "  - {name: pipe, type: stdin}\n", sinkYaml(http));
    ChildProcess agent({kBinary, "run", "-c", config}, {}, /*pipeStdin=*/true);
    if (!agent.waitForStderr("agent_started", 20s)) FAIL("the agent did not start, stderr:\n" << agent.err());
    REQUIRE(agent.writeStdin(numberedLines(0, kLines)));
    REQUIRE(waitUntil(
        [&] {
          agent.readOutput();
          return bufferHolds(dir / "state" / "buffers" / "search", "line " + std::to_string(kLines - 1));
        },
        30s));
    agent.signal(SIGKILL);
    CHECK(agent.wait(10s).exitCode == 128 + SIGKILL);
  }
  CHECK(http.stats()["records"].get<int>() == 0);

  restartHealed(dir, http, kLines);
}

TEST_CASE(
    "with a disk buffer a log rotated away and deleted while the destination is down and the agent killed arrives "
    "whole") {
  TempDir dir("logcapture-disk-rotate");
  HttpReceiver http;
  http.control({{"status", 503}});
  fs::create_directories(dir / "logs");
  const fs::path log = dir / "logs" / "app.log";
  const fs::path buffer = dir / "state" / "buffers" / "search";
  const std::string config = writeAgentConfig(
      dir, "  - {name: app, type: file, paths: [\"" + (dir / "logs").string() + "/*.log\"], start_at: beginning}\n",
      sinkYaml(http));
  // Runs the agent until the disk buffer holds `last`, then kills it.
  const auto runUntilBuffered = [&](const std::string& last, const std::function<void()>& meanwhile) {
    ChildProcess agent({kBinary, "run", "-c", config});
    if (!agent.waitForStderr("agent_started", 20s)) FAIL("the agent did not start, stderr:\n" << agent.err());
    meanwhile();
    REQUIRE(waitUntil(
        [&] {
          agent.readOutput();
          return bufferHolds(buffer, last);
        },
        30s));
    agent.signal(SIGKILL);
    CHECK(agent.wait(10s).exitCode == 128 + SIGKILL);
  };

  appendFile(log, numberedLines(0, 3000));
  runUntilBuffered("line 2999", [&] {
    // Rotated under load: renamed away, a new file under the old name.
    REQUIRE(waitUntil([&] { return bufferHolds(buffer, "line 1000"); }, 30s));
    fs::rename(log, dir / "logs" / "app.log.1");
    appendFile(log, numberedLines(3000, 6000));
  });
  // The older file deleted while the agent is down: its lines are on disk only.
  fs::remove(dir / "logs" / "app.log.1");
  runUntilBuffered("line 8999", [&] { appendFile(log, numberedLines(6000, 9000)); });
  CHECK(http.stats()["records"].get<int>() == 0);

  http.control({{"status", 200}});
  ChildProcess agent({kBinary, "run", "-c", config});
  if (!agent.waitForStderr("agent_started", 20s)) FAIL("the agent did not start, stderr:\n" << agent.err());
  CHECK(waitUntil(
      [&] {
        agent.readOutput();
        return http.stats()["records"].get<int>() >= 9000;
      },
      60s));
  agent.signal(SIGTERM);
  CHECK(agent.wait(30s).exitCode == 0);
  // Every line arrives, in the order written. Lines safe on disk whose file's checkpoint was not yet saved
  // when the agent was killed are read from the file again: what was read in the last save interval
  // (50 ms at least) before each kill. These kills come within milliseconds of the reads, so the bound is
  // the lines of app.log read in each killed run: up to 3,000 of the first run, 6,000 of the second.
  const auto records = http.records();
  std::set<std::string> seen;
  std::vector<std::string> firsts;
  for (const auto& r : records) {
    if (seen.insert(r).second) firsts.push_back(r);
  }
  CHECK(firsts == numberedMessages(0, 9000));
  const std::size_t twice = records.size() - firsts.size();
  MESSAGE(twice << " lines sent twice");
  CHECK(twice <= 9000);
}

TEST_CASE("with a disk buffer an agent killed five times under a 20,000 lines/s writer loses no line") {
  constexpr int kLines = 140000;  // 7 s of writing
  TempDir dir("logcapture-disk-kills");
  HttpReceiver http;
  fs::create_directories(dir / "logs");
  const fs::path log = dir / "logs" / "app.log";
  const std::string config = writeAgentConfig(
      dir, "  - {name: app, type: file, paths: [\"" + (dir / "logs").string() + "/*.log\"], start_at: beginning}\n",
      sinkYaml(http));
  appendFile(log, "");
  // 100 lines every 5 ms; rotated (renamed away, a new file under the old name) half-way.
  std::thread writer([&] {
    std::ofstream out(log, std::ios::app);
    for (int i = 0; i < kLines; ++i) {
      out << "line " << i << "\n";
      if (i % 100 == 99) {
        out.flush();
        std::this_thread::sleep_for(5ms);
      }
      if (i == kLines / 2 - 1) {
        out.close();
        fs::rename(log, dir / "logs" / "app.log.1");
        out.open(log, std::ios::app);
      }
    }
  });
  std::mt19937 random(std::random_device{}());
  std::uniform_int_distribution<int> runFor(300, 1000);
  for (int kill = 0; kill < 5; ++kill) {
    ChildProcess agent({kBinary, "run", "-c", config});
    if (!agent.waitForStderr("agent_started", 20s)) FAIL("the agent did not start, stderr:\n" << agent.err());
    std::this_thread::sleep_for(std::chrono::milliseconds(runFor(random)));
    agent.readOutput();
    agent.signal(SIGKILL);
    CHECK(agent.wait(10s).exitCode == 128 + SIGKILL);
  }
  writer.join();
  ChildProcess agent({kBinary, "run", "-c", config});
  if (!agent.waitForStderr("agent_started", 20s)) FAIL("the agent did not start, stderr:\n" << agent.err());
  const auto distinct = [&] {
    const auto records = http.records();
    return std::set<std::string>(records.begin(), records.end()).size();
  };
  CHECK(waitUntil(
      [&] {
        agent.readOutput();
        return distinct() >= std::size_t(kLines);
      },
      60s));
  agent.signal(SIGTERM);
  CHECK(agent.wait(30s).exitCode == 0);
  const auto records = http.records();
  const std::set<std::string> seen(records.begin(), records.end());
  const auto expected = numberedMessages(0, kLines);
  CHECK(seen == std::set<std::string>(expected.begin(), expected.end()));
  // Sent twice: what each kill caught delivered but not yet in the saved checkpoint (saves coalesce acks
  // for at least 50 ms, and a restart catching up delivers fast) or in flight (2 workers x 500 lines).
  // Bound: 10,000 lines a kill.
  const std::size_t twice = records.size() - seen.size();
  MESSAGE(twice << " lines sent twice over 5 kills");
  CHECK(twice <= 5 * 10000);
}

TEST_CASE(
    "stdin lines read while the destination is down survive SIGTERM on a disk buffer and arrive after a restart") {
  constexpr int kLines = 50000;
  TempDir dir("logcapture-disk-sigterm");
  HttpReceiver http;
  http.control({{"status", 503}});
  {
    const std::string config = writeAgentConfig(dir, "  - {name: pipe, type: stdin}\n", sinkYaml(http));
    ChildProcess agent({kBinary, "run", "-c", config}, {}, /*pipeStdin=*/true);
    if (!agent.waitForStderr("agent_started", 20s)) FAIL("the agent did not start, stderr:\n" << agent.err());
    REQUIRE(agent.writeStdin(numberedLines(0, kLines)));
    // Every line read (a line still in the pipe at the signal is not the agent's yet) and on disk.
    REQUIRE(waitUntil(
        [&] {
          agent.readOutput();
          return bufferHolds(dir / "state" / "buffers" / "search", "line " + std::to_string(kLines - 1));
        },
        30s));
    agent.signal(SIGTERM);
    CHECK(agent.wait(30s).exitCode == 0);
  }
  CHECK(http.stats()["records"].get<int>() == 0);
  restartHealed(dir, http, kLines);
}
