// The logcapture command end to end: exit codes, messages, --print, run and shutdown.

#include <doctest/doctest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>

#include "tests/support/fixtures.h"
#include "tests/support/process.h"

namespace {

using logcapture::testing::ChildProcess;
using logcapture::testing::runProcess;
using namespace std::chrono_literals;

const std::string kBinary = LOGCAPTURE_BINARY;
const std::string kCaptureYaml = std::string(LOGCAPTURE_SOURCE_DIR) + "/capture.yaml";

struct TempDir : logcapture::testing::TempDir {
  TempDir() : logcapture::testing::TempDir("logcapture-cli") {}
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name) << text;
    return (path / name).string();
  }
};

std::string minimalConfig(const std::filesystem::path& stateDir, const std::string& extraAgent = "") {
  return "agent:\n  state_dir: " + stateDir.string() + "\n  admin: {listen: \"\"}\n" + extraAgent +
         "inputs: [{name: in, type: file, paths: [" + (stateDir.parent_path() / "logs" / "*.log").string() +
         "]}]\nsinks: [{name: out, type: console}]\n";
}

}  // namespace

TEST_CASE("check accepts the shipped capture.yaml with a one-line summary") {
  const auto r = runProcess({kBinary, "check", "-c", kCaptureYaml});
  CHECK(r.exitCode == 0);
  CHECK(r.out.find("ok (3 inputs, 6 sinks)") != std::string::npos);
  CHECK(r.err.empty());
}

TEST_CASE("check reports every error on stderr and exits 1") {
  TempDir dir;
  const auto file = dir.write("bad.yaml",
                              "inputs:\n  - {name: a, type: stdin, colour: red}\n"
                              "sinks:\n  - {name: b, type: console, workers: 0}\n");
  const auto r = runProcess({kBinary, "check", "-c", file});
  CHECK(r.exitCode == 1);
  CHECK(r.err.find(file + ":2:28: inputs[0].colour: unknown key 'colour'") != std::string::npos);
  CHECK(r.err.find(file + ":4:39: sinks[0].workers: must be between 1 and 64, found 0") != std::string::npos);
  CHECK(r.err.find("2 errors in the config") != std::string::npos);
  CHECK(r.out.empty());
}

TEST_CASE("check --print shows defaults and the printed config checks clean") {
  TempDir dir;
  const auto file = dir.write("c.yaml", minimalConfig(dir.path / "state"));
  const auto printed = runProcess({kBinary, "check", "--print", "-c", file});
  REQUIRE(printed.exitCode == 0);
  CHECK(printed.out.find("failure_threshold: 5") != std::string::npos);
  CHECK(printed.out.find("max_bytes: 64MiB") != std::string::npos);
  const auto again = dir.write("again.yaml", printed.out);
  CHECK(runProcess({kBinary, "check", "-c", again}).exitCode == 0);
}

TEST_CASE("check --print of the shipped capture.yaml checks clean") {
  TempDir dir;
  const auto printed = runProcess({kBinary, "check", "--print", "-c", kCaptureYaml});
  REQUIRE(printed.exitCode == 0);
  const auto again = runProcess({kBinary, "check", "-c", dir.write("again.yaml", printed.out)});
  CHECK(again.exitCode == 0);
  CHECK(again.err.empty());
}

TEST_CASE("check --print redacts secrets") {
  TempDir dir;
  const auto file = dir.write("c.yaml",
                              "agent: {admin: {token: hunter2}}\n"
                              "inputs: [{name: in, type: stdin}]\nsinks: [{name: out, type: console}]\n");
  const auto r = runProcess({kBinary, "check", "--print", "-c", file});
  REQUIRE(r.exitCode == 0);
  CHECK(r.out.find("hunter2") == std::string::npos);
  CHECK(r.out.find("<redacted>") != std::string::npos);
}

TEST_CASE("check --print redacts secrets in librdkafka properties, headers and URLs") {
  TempDir dir;
  const auto file = dir.write(
      "c.yaml",
      "inputs: [{name: in, type: stdin}]\nsinks:\n"
      "  - {name: k, type: kafka, brokers: ['127.0.0.1:9092'], topic: t, properties: {sasl.password: hunter3}}\n"
      "  - {name: h, type: http, url: 'https://u:hunter4@h/?api_key=hunter5', headers: {Authorization: hunter6}}\n");
  const auto r = runProcess({kBinary, "check", "--print", "-c", file});
  REQUIRE(r.exitCode == 0);
  for (const char* secret : {"hunter3", "hunter4", "hunter5", "hunter6"}) {
    CHECK_MESSAGE(r.out.find(secret) == std::string::npos, secret << " is printed:\n" << r.out);
  }
}

TEST_CASE("a missing config file is an error naming the file and the fix") {
  const auto r = runProcess({kBinary, "check", "-c", "/nonexistent/capture.yaml"});
  CHECK(r.exitCode == 1);
  CHECK(r.err.find("/nonexistent/capture.yaml: cannot read the config file: No such file or directory") !=
        std::string::npos);
}

TEST_CASE("version prints the version") {
  const auto r = runProcess({kBinary, "version"});
  CHECK(r.exitCode == 0);
  CHECK(r.out.rfind("logcapture ", 0) == 0);
}

TEST_CASE("help is available for the program and each command") {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--help"}, {"run", "--help"}, {"check", "--help"}, {"version", "--help"}}) {
    std::vector<std::string> argv{kBinary};
    argv.insert(argv.end(), args.begin(), args.end());
    const auto r = runProcess(argv);
    CHECK(r.exitCode == 0);
    CHECK(r.out.find("Usage") != std::string::npos);
  }
}

TEST_CASE("an unknown option is a usage error with exit code 2") {
  const auto r = runProcess({kBinary, "check", "--frobnicate"});
  CHECK(r.exitCode == 2);
  CHECK(r.err.find("frobnicate") != std::string::npos);
}

TEST_CASE("run with an invalid config exits 1 without starting") {
  TempDir dir;
  const auto file = dir.write("bad.yaml", "inputs: 3\n");
  const auto r = runProcess({kBinary, "run", "-c", file});
  CHECK(r.exitCode == 1);
  CHECK(r.err.find("inputs: expected a list of mappings") != std::string::npos);
}

TEST_CASE("run is the default command and stops cleanly on SIGTERM") {
  TempDir dir;
  const auto file = dir.write("c.yaml", minimalConfig(dir.path / "state"));
  ChildProcess agent({kBinary, "-c", file});
  REQUIRE(agent.waitForStderr("agent_started", 20s));
  CHECK(std::filesystem::is_directory(dir.path / "state"));
  agent.signal(SIGTERM);
  const auto r = agent.wait(20s);
  CHECK(r.exitCode == 0);
  CHECK(r.err.find("agent_stopping") != std::string::npos);
  CHECK(r.err.find("agent_stopped") != std::string::npos);
}

TEST_CASE("run stops cleanly on SIGINT after reloading on SIGHUP") {
  TempDir dir;
  const auto file = dir.write("c.yaml", minimalConfig(dir.path / "state"));
  ChildProcess agent({kBinary, "run", "-c", file});
  REQUIRE(agent.waitForStderr("agent_started", 20s));
  agent.signal(SIGHUP);
  REQUIRE(agent.waitForStderr("config_reloaded", 20s));
  agent.signal(SIGINT);
  CHECK(agent.wait(20s).exitCode == 0);
}

TEST_CASE("run logs its effective config summary, as JSON lines in json mode") {
  TempDir dir;
  const auto file = dir.write("c.yaml", minimalConfig(dir.path / "state", "  log: {format: json}\n"));
  ChildProcess agent({kBinary, "run", "-c", file});
  REQUIRE(agent.waitForStderr("agent_started", 20s));
  agent.signal(SIGTERM);
  const auto r = agent.wait(20s);
  CHECK(r.exitCode == 0);
  const auto line = r.err.substr(0, r.err.find('\n'));
  CHECK(line.find("\"level\":\"info\"") != std::string::npos);
  CHECK(line.find("\"logger\":\"agent\"") != std::string::npos);
  CHECK(line.find("\"message\":\"agent_starting\"") != std::string::npos);
  CHECK(line.find("\"inputs\":\"in(file)\"") != std::string::npos);
  CHECK(line.find("\"sinks\":\"out(console)\"") != std::string::npos);
}

TEST_CASE("run exits 3 when the state directory cannot be created") {
  TempDir dir;
  const auto blocker = dir.write("file", "x");
  const auto file = dir.write("c.yaml", minimalConfig(std::filesystem::path(blocker) / "state"));
  const auto r = runProcess({kBinary, "run", "-c", file});
  CHECK(r.exitCode == 3);
  CHECK(r.err.find("state_dir_unusable") != std::string::npos);
}
