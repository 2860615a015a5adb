// The whole pipeline through the logcapture binary: inputs -> queue -> fan-out -> runner -> console sink.

#include <doctest/doctest.h>
#include <signal.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "tests/support/fixtures.h"
#include "tests/support/process.h"

namespace {

using logcapture::testing::appendFile;
using logcapture::testing::ChildProcess;
using logcapture::testing::fileLines;
using logcapture::testing::TempDir;
using logcapture::testing::waitUntil;
using logcapture::testing::writeAgentConfig;
using namespace std::chrono_literals;
using logcapture::testing::numberedLines;
using logcapture::testing::numberedMessages;
namespace fs = std::filesystem;

const std::string kBinary = LOGCAPTURE_BINARY;

}  // namespace

TEST_CASE("stdin lines reach the console sink in order and the agent exits 0 at end of input") {
  TempDir dir("logcapture-e2e");
  const auto config = writeAgentConfig(dir, "  - {name: pipe, type: stdin}\n",
                                       "  - {name: out, type: console, encoding: raw, batch: {linger: 10ms}}\n");
  ChildProcess agent({kBinary, "run", "-c", config}, {}, true);
  REQUIRE(agent.waitForStderr("agent_started", 20s));
  REQUIRE(agent.writeStdin(numberedLines(0, 5000)));
  agent.closeStdin();
  const auto r = agent.wait(30s);
  CHECK(r.exitCode == 0);
  std::vector<std::string> got;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) got.push_back(line);
  CHECK(got == numberedMessages(0, 5000));
  CHECK(r.err.find("every input reached its end") != std::string::npos);
}

TEST_CASE("json encoding carries the record's time, message, input and static fields") {
  TempDir dir("logcapture-e2e");
  const auto config = writeAgentConfig(dir, "  - {name: pipe, type: stdin, fields: {env: test}}\n",
                                       "  - {name: out, type: console, batch: {linger: 10ms}}\n");
  ChildProcess agent({kBinary, "run", "-c", config}, {}, true);
  REQUIRE(agent.writeStdin("hello \"world\"\n"));
  agent.closeStdin();
  const auto r = agent.wait(30s);
  CHECK(r.exitCode == 0);
  CHECK(r.out.find("\"message\":\"hello \\\"world\\\"\"") != std::string::npos);
  CHECK(r.out.find("\"input\":\"pipe\"") != std::string::npos);
  CHECK(r.out.find("\"env\":\"test\"") != std::string::npos);
  CHECK(r.out.find("\"@timestamp\":\"") != std::string::npos);
}

TEST_CASE("a file tailed through a restart arrives whole, nothing read twice") {
  TempDir dir("logcapture-e2e");
  fs::create_directories(dir / "logs");
  const auto out = dir / "out.log";
  const auto config = writeAgentConfig(
      dir, "  - {name: app, type: file, paths: [" + (dir / "logs" / "*.log").string() + "], start_at: beginning}\n",
      "  - {name: out, type: console, encoding: raw, path: " + out.string() + ", batch: {linger: 10ms}}\n");
  appendFile(dir / "logs" / "app.log", numberedLines(0, 10000));
  {
    ChildProcess agent({kBinary, "run", "-c", config});
    REQUIRE(waitUntil([&] { return fileLines(out).size() >= 10000; }, 30s));
    agent.signal(SIGTERM);
    CHECK(agent.wait(30s).exitCode == 0);
  }
  appendFile(dir / "logs" / "app.log", numberedLines(10000, 12000));
  {
    ChildProcess agent({kBinary, "run", "-c", config});
    REQUIRE(waitUntil([&] { return fileLines(out).size() >= 12000; }, 30s));
    agent.signal(SIGTERM);
    CHECK(agent.wait(30s).exitCode == 0);
  }
  CHECK(fileLines(out) == numberedMessages(0, 12000));
}

TEST_CASE("a file rotated by rename under continuous writes arrives exactly once and in order") {
  TempDir dir("logcapture-e2e");
  fs::create_directories(dir / "logs");
  const auto out = dir / "out.log";
  const auto config = writeAgentConfig(
      dir, "  - {name: app, type: file, paths: [" + (dir / "logs" / "app.log").string() + "], start_at: beginning}\n",
      "  - {name: out, type: console, encoding: raw, path: " + out.string() + ", batch: {linger: 10ms}}\n");
  appendFile(dir / "logs" / "app.log", "");
  ChildProcess agent({kBinary, "run", "-c", config});
  REQUIRE(agent.waitForStderr("agent_started", 20s));
  constexpr int kLines = 30000;
  std::thread writer([&] {
    std::ofstream file(dir / "logs" / "app.log", std::ios::app);
    for (int i = 0; i < kLines; ++i) {
      file << "line " << i << "\n";
      if (i % 10000 == 9999) {
        file.close();
        fs::rename(dir / "logs" / "app.log", dir / "logs" / ("app.log." + std::to_string(i / 10000)));
        file.open(dir / "logs" / "app.log", std::ios::app);
      } else if (i % 100 == 0) {
        // A steady writer: each file lives long enough to be seen (a file created and rotated away
        // to a name outside the pattern between two looks is invisible to any tailer).
        file.flush();
        std::this_thread::sleep_for(1ms);
      }
    }
  });
  writer.join();
  // The rotated files' names do not match the pattern: each is drained by the tailer that held it.
  REQUIRE(waitUntil([&] { return fileLines(out).size() >= kLines; }, 60s));
  agent.signal(SIGTERM);
  CHECK(agent.wait(30s).exitCode == 0);
  CHECK(fileLines(out) == numberedMessages(0, kLines));
}

TEST_CASE("cri container logs are joined and carry the pod's metadata end to end") {
  TempDir dir("logcapture-e2e");
  const auto podDir = dir / "pods" / "shop_cart-7d9f_0a1b2c3d-1111-2222-3333-444455556666" / "api";
  fs::create_directories(podDir);
  appendFile(podDir / "0.log",
             "2024-05-01T10:00:00.000000001Z stdout P first half \n"
             "2024-05-01T10:00:00.000000002Z stdout F second half\n"
             "2024-05-01T10:00:01.000000000Z stderr F an error\n");
  const auto out = dir / "out.log";
  const auto config =
      writeAgentConfig(dir,
                       "  - {name: pods, type: file, format: cri, start_at: beginning, paths: [" +
                           (dir / "pods" / "*" / "*" / "*.log").string() + "]}\n",
                       "  - {name: out, type: console, path: " + out.string() + ", batch: {linger: 10ms}}\n");
  ChildProcess agent({kBinary, "run", "-c", config});
  REQUIRE(waitUntil([&] { return fileLines(out).size() >= 2; }, 30s));
  agent.signal(SIGTERM);
  CHECK(agent.wait(30s).exitCode == 0);
  const auto lines = fileLines(out);
  REQUIRE(lines.size() == 2);
  CHECK(lines[0].find("\"message\":\"first half second half\"") != std::string::npos);
  CHECK(lines[0].find("\"@timestamp\":\"2024-05-01T10:00:00.000000001Z\"") != std::string::npos);
  CHECK(lines[0].find("\"stream\":\"stdout\"") != std::string::npos);
  CHECK(lines[1].find("\"stream\":\"stderr\"") != std::string::npos);
}

TEST_CASE("records reach every sink their input is routed to, and only those") {
  TempDir dir("logcapture-e2e");
  fs::create_directories(dir / "logs");
  const auto a = dir / "a.out";
  const auto b = dir / "b.out";
  const auto config = writeAgentConfig(
      dir,
      "  - {name: app, type: file, start_at: beginning, paths: [" + (dir / "logs" / "app.log").string() + "]}\n" +
          "  - {name: sys, type: file, start_at: beginning, paths: [" + (dir / "logs" / "sys.log").string() + "]}\n",
      "  - {name: both, type: console, encoding: raw, path: " + a.string() + ", batch: {linger: 10ms}}\n" +
          "  - {name: sysonly, type: console, encoding: raw, inputs: [sys], path: " + b.string() +
          ", batch: {linger: 10ms}}\n");
  appendFile(dir / "logs" / "app.log", numberedLines(0, 100, "app "));
  appendFile(dir / "logs" / "sys.log", numberedLines(0, 50, "sys "));
  ChildProcess agent({kBinary, "run", "-c", config});
  REQUIRE(waitUntil([&] { return fileLines(a).size() >= 150 && fileLines(b).size() >= 50; }, 30s));
  agent.signal(SIGTERM);
  CHECK(agent.wait(30s).exitCode == 0);
  CHECK(fileLines(a).size() == 150);
  CHECK(fileLines(b) == numberedMessages(0, 50, "sys "));
}
