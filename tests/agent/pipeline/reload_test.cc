// Config reload through the logcapture binary: SIGHUP re-reads the file; what changed is rebuilt,
// what did not keeps running, an invalid file changes nothing, and no line is lost or read twice.
// And the Reloader alone: requests that come while a reload runs are merged.

#include "agent/pipeline/reload.h"

#include <doctest/doctest.h>
#include <signal.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <thread>

#include "tests/support/fixtures.h"
#include "tests/support/process.h"

namespace {

using logcapture::testing::appendFile;
using logcapture::testing::ChildProcess;
using logcapture::testing::fileLines;
using logcapture::testing::numberedLines;
using logcapture::testing::numberedMessages;
using logcapture::testing::occurrences;
using logcapture::testing::PacedWriter;
using logcapture::testing::TempDir;
using logcapture::testing::waitUntil;
using logcapture::testing::writeAgentConfig;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

const std::string kBinary = LOGCAPTURE_BINARY;

std::string fileInput(const std::string& name, const fs::path& paths, const std::string& fields = "") {
  return "  - {name: " + name + ", type: file, start_at: beginning, paths: [" + paths.string() + "]" + fields + "}\n";
}

// One file input, app, on dir/logs/*.log.
std::string writeConfig(const TempDir& dir, const std::string& inputFields, const std::string& sinks) {
  return writeAgentConfig(dir, fileInput("app", dir / "logs" / "*.log", inputFields), sinks);
}

std::string consoleSink(const fs::path& out, const std::string& encoding = "raw") {
  return "  - {name: out, type: console, encoding: " + encoding + ", path: " + out.string() +
         ", batch: {linger: 10ms}}\n";
}

// Waits until the agent has logged `needle` `count` times.
bool waitForLogCount(ChildProcess& agent, const std::string& needle, std::size_t count) {
  return waitUntil(
      [&] {
        agent.readOutput();
        return occurrences(agent.err(), needle) >= count;
      },
      30s);
}

// SIGTERM and the exit code; stderr is shown when it is not 0 (a sanitizer's report, a timeout).
int stop(ChildProcess& agent) {
  agent.signal(SIGTERM);
  const auto result = agent.wait(30s);
  if (result.exitCode != 0) MESSAGE("agent exited " << result.exitCode << ", stderr:\n" << result.err);
  return result.exitCode;
}

}  // namespace

TEST_CASE("a reload that changes a sink sends later lines to the new destination, none lost or twice") {
  TempDir dir("logcapture-reload");
  fs::create_directories(dir / "logs");
  const auto first = dir / "first.out";
  const auto second = dir / "second.out";
  const auto config = writeConfig(dir, "", consoleSink(first));
  appendFile(dir / "logs" / "app.log", "");
  ChildProcess agent({kBinary, "run", "-c", config});
  REQUIRE(agent.waitForStderr("agent_started", 20s));

  constexpr int kLines = 40000;
  PacedWriter writer(dir / "logs" / "app.log", kLines);
  REQUIRE(waitUntil([&] { return fileLines(first).size() >= 1000; }, 30s));
  writeConfig(dir, "", consoleSink(second));
  agent.signal(SIGHUP);
  REQUIRE(waitForLogCount(agent, "config_reloaded", 1));
  CHECK(agent.err().find("sink out rebuilt") != std::string::npos);
  writer.join();

  REQUIRE(waitUntil([&] { return fileLines(first).size() + fileLines(second).size() >= kLines; }, 60s));
  CHECK(stop(agent) == 0);
  auto all = fileLines(first);
  const auto after = fileLines(second);
  CHECK(!after.empty());
  all.insert(all.end(), after.begin(), after.end());
  CHECK(all == numberedMessages(0, kLines));
}

TEST_CASE("a reload that changes an input resumes it where it stopped, with its new settings") {
  TempDir dir("logcapture-reload");
  fs::create_directories(dir / "logs");
  const auto out = dir / "out.log";
  const auto config = writeConfig(dir, ", fields: {generation: one}", consoleSink(out, "json"));
  appendFile(dir / "logs" / "app.log", "");
  ChildProcess agent({kBinary, "run", "-c", config});
  REQUIRE(agent.waitForStderr("agent_started", 20s));

  constexpr int kLines = 40000;
  PacedWriter writer(dir / "logs" / "app.log", kLines);
  REQUIRE(waitUntil([&] { return fileLines(out).size() >= 1000; }, 30s));
  writeConfig(dir, ", fields: {generation: two}", consoleSink(out, "json"));
  agent.signal(SIGHUP);
  REQUIRE(waitForLogCount(agent, "config_reloaded", 1));
  CHECK(agent.err().find("input app rebuilt") != std::string::npos);
  CHECK(agent.err().find("sink out rebuilt") == std::string::npos);  // unchanged: kept running
  writer.join();
  // Lines written after the reload, whether or not the writer was still going when it came (a slow
  // build reads everything before): the new input reads them.
  constexpr int kAfter = 1000;
  appendFile(dir / "logs" / "app.log", numberedLines(kLines, kLines + kAfter));

  REQUIRE(waitUntil([&] { return fileLines(out).size() >= kLines + kAfter; }, 60s));
  CHECK(stop(agent) == 0);
  const auto lines = fileLines(out);
  REQUIRE(lines.size() == kLines + kAfter);
  const auto expected = numberedMessages(0, kLines + kAfter);
  bool sawTwo = false;
  for (int i = 0; i < kLines + kAfter; ++i) {
    REQUIRE(lines[i].find("\"message\":\"" + expected[i] + "\"") != std::string::npos);
    const bool two = lines[i].find("\"generation\":\"two\"") != std::string::npos;
    CHECK_FALSE((sawTwo && !two));  // once the new input runs, every later line carries its fields
    sawTwo = sawTwo || two;
  }
  CHECK(sawTwo);
}

TEST_CASE("an invalid config on reload is reported with its location and the running config stays") {
  TempDir dir("logcapture-reload");
  fs::create_directories(dir / "logs");
  const auto out = dir / "out.log";
  const auto config = writeConfig(dir, "", consoleSink(out));
  ChildProcess agent({kBinary, "run", "-c", config});
  REQUIRE(agent.waitForStderr("agent_started", 20s));
  appendFile(dir / "logs" / "app.log", numberedLines(0, 100));
  REQUIRE(waitUntil([&] { return fileLines(out).size() >= 100; }, 30s));

  writeConfig(dir, ", format: yaml", consoleSink(dir / "other.out"));  // no such format
  agent.signal(SIGHUP);
  REQUIRE(waitForLogCount(agent, "config_reload_failed", 1));
  CHECK(agent.err().find("capture.yaml:") != std::string::npos);
  CHECK(agent.err().find("format") != std::string::npos);

  appendFile(dir / "logs" / "app.log", numberedLines(100, 200));
  REQUIRE(waitUntil([&] { return fileLines(out).size() >= 200; }, 30s));
  CHECK(stop(agent) == 0);
  CHECK(fileLines(out) == numberedMessages(0, 200));
  CHECK_FALSE(fs::exists(dir / "other.out"));
}

TEST_CASE("a reload that adds a sink starts it beside the running ones") {
  TempDir dir("logcapture-reload");
  fs::create_directories(dir / "logs");
  const auto out = dir / "out.log";
  const auto extra = dir / "extra.out";
  const auto config = writeConfig(dir, "", consoleSink(out));
  ChildProcess agent({kBinary, "run", "-c", config});
  REQUIRE(agent.waitForStderr("agent_started", 20s));
  appendFile(dir / "logs" / "app.log", numberedLines(0, 100));
  REQUIRE(waitUntil([&] { return fileLines(out).size() >= 100; }, 30s));

  writeConfig(dir, "",
              consoleSink(out) + "  - {name: extra, type: console, encoding: raw, path: " + extra.string() +
                  ", batch: {linger: 10ms}}\n");
  agent.signal(SIGHUP);
  REQUIRE(waitForLogCount(agent, "config_reloaded", 1));
  CHECK(agent.err().find("sink extra added") != std::string::npos);
  CHECK(agent.err().find("sink out rebuilt") == std::string::npos);

  appendFile(dir / "logs" / "app.log", numberedLines(100, 200));
  const bool arrived = waitUntil([&] { return fileLines(out).size() >= 200 && fileLines(extra).size() >= 100; }, 30s);
  if (!arrived) MESSAGE("stderr:\n" << agent.err());
  REQUIRE(arrived);
  CHECK(stop(agent) == 0);
  CHECK(fileLines(out) == numberedMessages(0, 200));
  CHECK(fileLines(extra) == numberedMessages(100, 200));
}

TEST_CASE("a burst of 100 SIGHUPs ends with the last config applied and the agent running") {
  TempDir dir("logcapture-reload");
  fs::create_directories(dir / "logs");
  const auto out = dir / "out.log";
  auto config = writeConfig(dir, ", fields: {generation: g0}", consoleSink(out, "json"));
  ChildProcess agent({kBinary, "run", "-c", config});
  REQUIRE(agent.waitForStderr("agent_started", 20s));
  for (int i = 1; i <= 100; ++i) {
    writeConfig(dir, ", fields: {generation: g" + std::to_string(i) + "}", consoleSink(out, "json"));
    agent.signal(SIGHUP);
    if (i % 10 == 0) agent.readOutput();
  }
  // Coalesced: fewer reloads than signals, and the last one read the last file.
  REQUIRE(waitUntil(
      [&] {
        appendFile(dir / "logs" / "app.log", "probe\n");
        std::this_thread::sleep_for(50ms);
        agent.readOutput();
        for (const auto& line : fileLines(out)) {
          if (line.find("\"generation\":\"g100\"") != std::string::npos) return true;
        }
        return false;
      },
      60s));
  agent.readOutput();
  // Each reload rebuilds the input, far slower than the burst: the signals are merged into few reloads
  // (the Reloader's own test below shows how, deterministically).
  const auto reloads = occurrences(agent.err(), "config_reloaded");
  CHECK(reloads >= 1);
  CHECK(reloads < 100);
  CHECK(agent.err().find("config_reload_failed") == std::string::npos);
  CHECK(stop(agent) == 0);
}

TEST_CASE("a reload that only changes a sink's inputs re-routes it without rebuilding it") {
  TempDir dir("logcapture-reload");
  fs::create_directories(dir / "logs");
  const auto out = dir / "out.log";
  const std::string inputs = fileInput("app", dir / "logs" / "app.log") + fileInput("sys", dir / "logs" / "sys.log");
  const auto sink = [&](const std::string& routed) {
    return "  - {name: out, type: console, encoding: raw, inputs: [" + routed + "], path: " + out.string() +
           ", batch: {linger: 10ms}}\n";
  };
  const auto config = writeAgentConfig(dir, inputs, sink("app"));
  ChildProcess agent({kBinary, "run", "-c", config});
  REQUIRE(agent.waitForStderr("agent_started", 20s));
  appendFile(dir / "logs" / "app.log", numberedLines(0, 100, "app "));
  REQUIRE(waitUntil([&] { return fileLines(out).size() >= 100; }, 30s));

  writeAgentConfig(dir, inputs, sink("app, sys"));
  agent.signal(SIGHUP);
  REQUIRE(waitForLogCount(agent, "config_reloaded", 1));
  CHECK(agent.err().find("sink out rerouted") != std::string::npos);
  CHECK(agent.err().find("sink out rebuilt") == std::string::npos);

  appendFile(dir / "logs" / "sys.log", numberedLines(0, 50, "sys "));
  REQUIRE(waitUntil([&] { return fileLines(out).size() >= 150; }, 30s));
  CHECK(stop(agent) == 0);
  auto expected = numberedMessages(0, 100, "app ");
  const auto sys = numberedMessages(0, 50, "sys ");
  expected.insert(expected.end(), sys.begin(), sys.end());
  CHECK(fileLines(out) == expected);
}

TEST_CASE("reload requests that come while a reload runs are merged into one that starts after the last") {
  std::mutex mutex;
  std::condition_variable changed;
  bool release = false;
  std::atomic<int> runs{0};
  logcapture::agent::Reloader reloader([&] {
    ++runs;
    std::unique_lock lock(mutex);
    changed.wait(lock, [&] { return release; });
    return logcapture::agent::ReloadOutcome{.applied = true, .error = {}, .changes = {}};
  });
  reloader.request();
  REQUIRE(waitUntil([&] { return runs == 1; }));
  for (int i = 0; i < 100; ++i) reloader.request();  // while the first one runs
  {
    std::lock_guard lock(mutex);
    release = true;
  }
  changed.notify_all();
  REQUIRE(waitUntil([&] { return reloader.completed() == 2; }));
  // One more waiter starts one more reload, after its request.
  CHECK(reloader.requestAndWait().applied);
  CHECK(reloader.completed() == 3);
  reloader.stop();
  CHECK(runs == 3);
}
