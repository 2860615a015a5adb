// Crashes: the logcapture binary killed with SIGKILL mid-stream, then started again on the same state
// directory. A checkpoint only ever covers what the sink acknowledged, so after the restart nothing is
// lost; what the first run sent after its last saved checkpoint is sent again (at least once), and
// each file's lines still arrive in order from where the checkpoint stood.

#include <doctest/doctest.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
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
using logcapture::testing::PacedWriter;
using logcapture::testing::TempDir;
using logcapture::testing::waitUntil;
using logcapture::testing::writeAgentConfig;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

const std::string kBinary = LOGCAPTURE_BINARY;

// The agent tailing `dir/logs/*.log` into the receiver, one line per record, with the shipped defaults
// (start_at: end): a rotated file leaves the glob, and only its checkpoint knows it.
std::string writeConfig(const TempDir& dir, const HttpReceiver& http) {
  return writeAgentConfig(dir, "  - {name: app, type: file, paths: [\"" + (dir / "logs").string() + "/*.log\"]}\n",
                          "  - {name: search, type: http, url: \"" + http.base() +
                              "/ingest\", format: ndjson, encoding: raw, batch: {max_records: 500, linger: 10ms}}\n");
}

// Waits for the agent's start; its stderr is shown if it does not start.
void requireStarted(ChildProcess& agent) {
  if (!agent.waitForStderr("agent_started", 20s)) FAIL("the agent did not start, stderr:\n" << agent.err());
}

// Numbers of the lines "<prefix><n>" among `records`, in arrival order.
std::vector<int> numbersOf(const std::vector<std::string>& records, const std::string& prefix) {
  std::vector<int> numbers;
  for (const auto& r : records) {
    if (r.starts_with(prefix)) numbers.push_back(std::stoi(r.substr(prefix.size())));
  }
  return numbers;
}

// Lines 0..count-1 arrived at least once, and in the only order a crash allows: the first run's lines
// from 0, then the second run's from some line at or before where the first stopped. Returns the line
// the second run started at (`count` when the first run delivered everything).
int checkResumedInOrder(const std::vector<int>& got, int count) {
  REQUIRE_FALSE(got.empty());
  std::size_t restart = 1;
  while (restart < got.size() && got[restart] == got[restart - 1] + 1) ++restart;
  CHECK(got.front() == 0);
  const int firstRunEnd = got[restart - 1];  // the last line the first run delivered
  if (restart == got.size()) {
    CHECK(firstRunEnd == count - 1);
    return count;
  }
  const int resumedAt = got[restart];
  MESSAGE("first run delivered lines 0.." << firstRunEnd << ", the second resumed at line " << resumedAt << " ("
                                          << firstRunEnd + 1 - resumedAt << " sent twice)");
  CHECK(resumedAt <= firstRunEnd + 1);
  std::vector<int> expected;
  for (int i = resumedAt; i < count; ++i) expected.push_back(i);
  CHECK(std::vector<int>(got.begin() + std::ptrdiff_t(restart), got.end()) == expected);
  return resumedAt;
}

constexpr int kLines = 400000;  // some 4 s of writing

// Starts the agent, writes kLines paced lines to `file`, and kills the agent with SIGKILL once lines have
// arrived, 2 s in, while the lines are still being written; returns once all are written.
void runAndKill(const std::string& config, HttpReceiver& http, const fs::path& file) {
  appendFile(file, "");
  ChildProcess agent({kBinary, "run", "-c", config});
  requireStarted(agent);
  const auto started = std::chrono::steady_clock::now();
  PacedWriter writer(file, kLines);
  REQUIRE(waitUntil(
      [&] {
        agent.readOutput();
        return std::chrono::steady_clock::now() - started > 2s && http.stats()["records"].get<int>() > 0;
      },
      30s));
  agent.signal(SIGKILL);
  CHECK(agent.wait(10s).exitCode == 128 + SIGKILL);
  CHECK(http.stats()["records"].get<int>() < kLines);  // killed mid-stream, not after the end
  writer.join();
}

}  // namespace

TEST_CASE("an agent killed with SIGKILL mid-stream loses no line once it is started again") {
  TempDir dir("logcapture-crash");
  fs::create_directories(dir / "logs");
  HttpReceiver http;
  const std::string config = writeConfig(dir, http);
  runAndKill(config, http, dir / "logs" / "app.log");

  ChildProcess agent({kBinary, "run", "-c", config});
  requireStarted(agent);
  CHECK(waitUntil(
      [&] {
        agent.readOutput();
        const auto got = numbersOf(http.records(), "line ");
        return !got.empty() && got.back() == kLines - 1;
      },
      60s));
  agent.signal(SIGTERM);
  CHECK(agent.wait(30s).exitCode == 0);
  // The restart used the checkpoint saved before the kill: it did not send the whole file again. And
  // that checkpoint was fresh: saved as acks came, it repeats what was in flight and a few saves' worth
  // (some 3,000 lines here), where one saved every second repeated a second of writing (92,000).
  const auto got = numbersOf(http.records(), "line ");
  const int resumedAt = checkResumedInOrder(got, kLines);
  CHECK(resumedAt > 0);
  const int sentTwice = static_cast<int>(got.size()) - kLines;
  CHECK(sentTwice <= 30000);
}

TEST_CASE("a file rotated while the agent is down after SIGKILL is finished under its new name") {
  TempDir dir("logcapture-crash");
  fs::create_directories(dir / "logs");
  HttpReceiver http;
  const std::string config = writeConfig(dir, http);
  runAndKill(config, http, dir / "logs" / "app.log");
  // Rotated by rename while nothing watches, and a new file started under the old name.
  fs::rename(dir / "logs" / "app.log", dir / "logs" / "app.log.1");
  appendFile(dir / "logs" / "app.log", numberedLines(0, 1000, "next "));

  ChildProcess agent({kBinary, "run", "-c", config});
  requireStarted(agent);
  CHECK(waitUntil(
      [&] {
        agent.readOutput();
        const auto records = http.records();
        const auto old = numbersOf(records, "line ");
        return !old.empty() && old.back() == kLines - 1 && numbersOf(records, "next ").size() == 1000;
      },
      60s));
  agent.signal(SIGTERM);
  CHECK(agent.wait(30s).exitCode == 0);
  const auto records = http.records();
  // The renamed file is known by its identity, not its name: it resumes at its checkpoint.
  CHECK(checkResumedInOrder(numbersOf(records, "line "), kLines) > 0);
  // The new file was never read before the crash: it arrives once, from its first line.
  std::vector<std::string> next;
  std::copy_if(records.begin(), records.end(), std::back_inserter(next),
               [](const std::string& r) { return r.starts_with("next "); });
  CHECK(next == numberedMessages(0, 1000, "next "));
}

TEST_CASE("lines appended and rotated away while the agent was stopped arrive once after it starts again") {
  TempDir dir("logcapture-crash");
  fs::create_directories(dir / "logs");
  const auto file = dir / "logs" / "app.log";
  appendFile(file, numberedLines(0, 50, "before "));  // there before the first start: start_at end skips them
  HttpReceiver http;
  const std::string config = writeConfig(dir, http);
  {
    ChildProcess agent({kBinary, "run", "-c", config});
    requireStarted(agent);
    appendFile(file, numberedLines(0, 150));
    CHECK(waitUntil(
        [&] {
          agent.readOutput();
          return http.stats()["records"].get<int>() >= 150;
        },
        30s));
    agent.signal(SIGTERM);
    CHECK(agent.wait(30s).exitCode == 0);
  }
  // While it is down: 100 more lines, then logrotate renames the file and a new one gets 100 lines.
  appendFile(file, numberedLines(150, 250));
  fs::rename(file, dir / "logs" / "app.log.1");
  appendFile(file, numberedLines(250, 350));

  ChildProcess agent({kBinary, "run", "-c", config});
  requireStarted(agent);
  CHECK(waitUntil(
      [&] {
        agent.readOutput();
        return http.stats()["records"].get<int>() >= 350;
      },
      30s));
  agent.signal(SIGTERM);
  CHECK(agent.wait(30s).exitCode == 0);
  std::vector<int> expected(350);
  for (int i = 0; i < 350; ++i) expected[static_cast<std::size_t>(i)] = i;
  const auto records = http.records();
  CHECK(numbersOf(records, "line ") == expected);
  CHECK(numbersOf(records, "before ").empty());
  CHECK(records.size() == 350);
}
