// Reload against a real destination: a rebuilt sink hands what it holds to its replacement, so a
// reload that fixes a sink's address delivers every line it had buffered, once and in order; a removed
// sink's backlog is dropped at the reload's deadline, so its lines no longer hold the checkpoints back.

#include <doctest/doctest.h>
#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "tests/support/fixtures.h"
#include "tests/support/http_receiver.h"
#include "tests/support/process.h"

namespace {

using logcapture::testing::appendFile;
using logcapture::testing::ChildProcess;
using logcapture::testing::fileLines;
using logcapture::testing::freePort;
using logcapture::testing::HttpReceiver;
using logcapture::testing::numberedLines;
using logcapture::testing::numberedMessages;
using logcapture::testing::occurrences;
using logcapture::testing::TempDir;
using logcapture::testing::waitUntil;
using logcapture::testing::writeAgentConfig;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

const std::string kBinary = LOGCAPTURE_BINARY;

std::string writeConfig(const TempDir& dir, const std::string& url) {
  return writeAgentConfig(
      dir, "  - {name: app, type: file, start_at: beginning, paths: [" + (dir / "app.log").string() + "]}\n",
      "  - {name: web, type: http, url: \"" + url +
          "\", format: ndjson, encoding: raw, timeout: 1s, "
          "batch: {max_records: 500, linger: 10ms}, retry: {max_attempts: 2, initial_backoff: 10ms, max_backoff: "
          "50ms}, "
          "breaker: {failure_threshold: 2, open_timeout: 200ms, max_open_timeout: 400ms, jitter: 0}}\n");
}

// The agent has logged `times` applied reloads within `timeout`.
bool reloaded(ChildProcess& agent, std::size_t times, std::chrono::milliseconds timeout = 30s) {
  return waitUntil(
      [&] {
        agent.readOutput();
        return occurrences(agent.err(), "config_reloaded") >= times;
      },
      timeout);
}

bool logged(ChildProcess& agent, const std::string& needle) {
  return waitUntil(
      [&] {
        agent.readOutput();
        return agent.err().find(needle) != std::string::npos;
      },
      30s);
}

}  // namespace

TEST_CASE("a reload that fixes a failing sink's url delivers what it buffered, once and in order") {
  TempDir dir("logcapture-reload");
  HttpReceiver receiver;
  const auto nowhere = "http://127.0.0.1:" + std::to_string(freePort()) + "/ingest";
  appendFile(dir / "app.log", numberedLines(0, 5000));
  ChildProcess agent({kBinary, "run", "-c", writeConfig(dir, nowhere)});
  REQUIRE(logged(agent, "breaker_open sink=web"));

  writeConfig(dir, receiver.base() + "/ingest");
  agent.signal(SIGHUP);
  REQUIRE(logged(agent, "config_reloaded"));
  CHECK(agent.err().find("sink web rebuilt") != std::string::npos);
  appendFile(dir / "app.log", numberedLines(5000, 6000));
  REQUIRE(waitUntil([&] { return receiver.records().size() >= 6000; }, 30s));

  agent.signal(SIGTERM);
  const auto result = agent.wait(30s);
  CHECK(result.exitCode == 0);
  if (result.exitCode != 0) MESSAGE(result.err);
  CHECK(receiver.records() == numberedMessages(0, 6000));
}

TEST_CASE("a reload that removes a failing sink lets the checkpoints move on, so a restart reads nothing twice") {
  TempDir dir("logcapture-reload");
  const auto out = dir / "out.log";
  const auto nowhere = "http://127.0.0.1:" + std::to_string(freePort()) + "/ingest";
  const std::string input =
      "  - {name: app, type: file, start_at: beginning, paths: [" + (dir / "app.log").string() + "]}\n";
  const std::string console =
      "  - {name: out, type: console, encoding: raw, path: " + out.string() + ", batch: {linger: 10ms}}\n";
  const std::string failing = "  - {name: web, type: http, url: \"" + nowhere +
                              "\", format: ndjson, encoding: raw, timeout: 1s, "
                              "breaker: {failure_threshold: 2, open_timeout: 200ms, max_open_timeout: 400ms}}\n";
  // A short shutdown_timeout: the reload's deadline, by which the removed sink gives up its backlog.
  const auto writeConfig = [&](const std::string& sinks) {
    const auto path = writeAgentConfig(dir, input, sinks);
    std::ifstream in(path);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    text.replace(text.find("shutdown_timeout: 20s"), 21, "shutdown_timeout: 1s");
    std::ofstream(dir / "capture.yaml.tmp") << text;
    fs::rename(dir / "capture.yaml.tmp", path);
    return path;
  };
  appendFile(dir / "app.log", numberedLines(0, 3000));
  const auto config = writeConfig(console + failing);
  {
    ChildProcess agent({kBinary, "run", "-c", config});
    REQUIRE(logged(agent, "breaker_open sink=web"));
    REQUIRE(waitUntil([&] { return fileLines(out).size() >= 3000; }, 30s));

    writeConfig(console);
    agent.signal(SIGHUP);
    REQUIRE(logged(agent, "config_reloaded"));
    CHECK(agent.err().find("sink web removed") != std::string::npos);
    appendFile(dir / "app.log", numberedLines(3000, 4000));
    REQUIRE(waitUntil([&] { return fileLines(out).size() >= 4000; }, 30s));
    agent.signal(SIGTERM);
    const auto result = agent.wait(30s);
    CHECK(result.exitCode == 0);
    if (result.exitCode != 0) MESSAGE(result.err);
  }
  // Every line was finished by every sink it went to (the removed one's dropped), so its checkpoint
  // stands at the end of the file: a restart reads only what was written since.
  appendFile(dir / "app.log", numberedLines(4000, 4100));
  ChildProcess agent({kBinary, "run", "-c", config});
  REQUIRE(waitUntil([&] { return fileLines(out).size() >= 4100; }, 30s));
  agent.signal(SIGTERM);
  CHECK(agent.wait(30s).exitCode == 0);
  CHECK(fileLines(out) == numberedMessages(0, 4100));
}

TEST_CASE("a reload that changes an input held back by a down sink with when_full: block ends by its deadline") {
  TempDir dir("logcapture-reload");
  HttpReceiver receiver;
  const auto nowhere = "http://127.0.0.1:" + std::to_string(freePort()) + "/ingest";
  const auto writeConfig = [&](const std::string& fields, const std::string& url) {
    const auto path = writeAgentConfig(
        dir,
        "  - {name: app, type: file, start_at: beginning, paths: [" + (dir / "app.log").string() + "]" + fields + "}\n",
        "  - {name: web, type: http, url: \"" + url +
            "\", format: ndjson, encoding: raw, timeout: 1s, batch: {max_records: 50, max_bytes: 16KiB, linger: 10ms}, "
            "buffer: {max_bytes: 64KiB, when_full: block}, "
            "breaker: {failure_threshold: 2, open_timeout: 200ms, max_open_timeout: 400ms}}\n",
        "queue: {max_records: 100, when_full: block}\n");
    // The reload's deadline.
    std::ifstream in(path);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    text.replace(text.find("shutdown_timeout: 20s"), 21, "shutdown_timeout: 2s");
    std::ofstream(dir / "capture.yaml.tmp") << text;
    fs::rename(dir / "capture.yaml.tmp", path);
    return path;
  };
  // Far more than the queue, the sink's intake and its buffer hold, in many reads of the tailer (each
  // read is one chunk, and one chunk larger than a bound is let in alone): the input waits on the queue.
  constexpr int kLines = 20000;
  const std::string prefix = std::string(200, 'x') + " ";
  appendFile(dir / "app.log", numberedLines(0, kLines, prefix));
  ChildProcess agent({kBinary, "run", "-c", writeConfig("", nowhere)});
  REQUIRE(logged(agent, "breaker_open sink=web"));

  writeConfig(", fields: {generation: two}", nowhere);
  agent.signal(SIGHUP);
  REQUIRE(logged(agent, "config_reloaded"));
  CHECK(agent.err().find("input app rebuilt") != std::string::npos);

  // The sink fixed: every line arrives (some twice: the old input's lines were still unfinished when its
  // replacement started from the checkpoint).
  writeConfig(", fields: {generation: two}", receiver.base() + "/ingest");
  agent.signal(SIGHUP);
  REQUIRE(reloaded(agent, 2));
  std::vector<std::string> got;
  REQUIRE(waitUntil(
      [&] {
        got = receiver.records();
        std::sort(got.begin(), got.end());
        got.erase(std::unique(got.begin(), got.end()), got.end());
        return got.size() >= kLines;
      },
      60s));
  auto expected = numberedMessages(0, kLines, prefix);
  std::sort(expected.begin(), expected.end());
  CHECK(got == expected);
  agent.signal(SIGTERM);
  const auto result = agent.wait(30s);
  CHECK(result.exitCode == 0);
  if (result.exitCode != 0) MESSAGE(result.err);
}

TEST_CASE("a reload that changes a stdin input held back by a down sink ends at once, and loses and cuts nothing") {
  TempDir dir("logcapture-reload");
  HttpReceiver receiver;
  const auto nowhere = "http://127.0.0.1:" + std::to_string(freePort()) + "/ingest";
  const auto writeConfig = [&](const std::string& fields, const std::string& url) {
    return writeAgentConfig(
        dir, "  - {name: pipe, type: stdin" + fields + "}\n",
        "  - {name: web, type: http, url: \"" + url +
            "\", format: ndjson, encoding: raw, timeout: 1s, batch: {max_records: 50, max_bytes: 16KiB, linger: 10ms}, "
            "buffer: {max_bytes: 64KiB, when_full: block}, "
            "breaker: {failure_threshold: 2, open_timeout: 200ms, max_open_timeout: 400ms}}\n",
        "queue: {max_records: 100, when_full: block}\n");
  };
  ChildProcess agent({kBinary, "run", "-c", writeConfig("", nowhere)}, {}, /*pipeStdin=*/true);
  // Far more than the queue, the sink and the pipe hold: the agent stops taking it, its reader waits on
  // the queue. The text ends mid-line wherever the agent stopped taking it.
  const std::string prefix = std::string(200, 'x') + " ";
  const std::string text = numberedLines(0, 50000, prefix);
  const std::size_t written = agent.writeStdinFor(text, 3s);
  REQUIRE(written > 0);
  REQUIRE(written < text.size());
  REQUIRE(logged(agent, "breaker_open sink=web"));

  writeConfig(", fields: {generation: two}", nowhere);
  agent.signal(SIGHUP);
  REQUIRE(reloaded(agent, 1, 10s));
  CHECK(agent.err().find("input pipe reconfigured") != std::string::npos);

  // The sink fixed, the rest of the line being written sent, then the end of the input: every line
  // arrives once, in order, the one cut by the writer whole.
  writeConfig(", fields: {generation: two}", receiver.base() + "/ingest");
  agent.signal(SIGHUP);
  REQUIRE(reloaded(agent, 2));
  const std::size_t lineEnd = text.find('\n', written);
  REQUIRE(agent.writeStdinFor(std::string_view(text).substr(written, lineEnd + 1 - written), 30s) ==
          lineEnd + 1 - written);
  agent.closeStdin();
  const auto result = agent.wait(60s);
  CHECK(result.exitCode == 0);
  if (result.exitCode != 0) MESSAGE(result.err);
  std::vector<std::string> expected;
  for (std::size_t pos = 0; pos <= lineEnd; pos = text.find('\n', pos) + 1) {
    expected.push_back(text.substr(pos, text.find('\n', pos) - pos));
  }
  CHECK(receiver.records() == expected);
}
