// A format: json input through the logcapture binary: a line no decoder should follow all the way down
// goes out as text, flagged, between the lines around it, and the agent and its checkpoint go on.

#include <doctest/doctest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

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
namespace fs = std::filesystem;

const std::string kBinary = LOGCAPTURE_BINARY;

// The offset checkpointed for `file`, or -1 when it has none.
std::int64_t checkpointOf(const fs::path& stateDir, const fs::path& file) {
  std::ifstream in(stateDir / "checkpoints.json");
  const auto doc = nlohmann::json::parse(in, nullptr, false);
  if (!doc.is_object() || !doc.contains("files")) return -1;
  for (const auto& f : doc["files"]) {
    if (f.value("path", "") == file.string()) return f.value("offset", std::int64_t{-1});
  }
  return -1;
}

std::vector<nlohmann::json> shipped(const fs::path& out) {
  std::vector<nlohmann::json> records;
  for (const auto& line : fileLines(out)) records.push_back(nlohmann::json::parse(line));
  return records;
}

TEST_CASE("a 240 KB json line nested 120,000 levels deep is shipped as text, the agent stays up and moves past it") {
  TempDir dir("logcapture-json");
  const auto log = dir / "app.log";
  const auto out = dir / "out.ndjson";
  const std::string deep = "{\"a\":" + std::string(120'000, '[') + std::string(120'000, ']') + "}";
  REQUIRE(deep.size() > 240'000);
  appendFile(log, "{\"n\":1,\"message\":\"before\"}\n" + deep + "\n{\"n\":2,\"message\":\"after\"}\n");
  const auto config = writeAgentConfig(
      dir, "  - {name: app, type: file, format: json, start_at: beginning, paths: [\"" + log.string() + "\"]}\n",
      "  - {name: out, type: console, encoding: json, path: \"" + out.string() + "\", batch: {linger: 10ms}}\n");
  {
    ChildProcess agent({kBinary, "run", "-c", config});
    REQUIRE(agent.waitForStderr("agent_started", 20s));
    if (!waitUntil([&] { return fileLines(out).size() >= 3; }, 30s)) {
      agent.readOutput();
      FAIL("the three lines did not arrive; stderr:\n" << agent.err());
    }
    // Still up: a line written now arrives too.
    appendFile(log, "{\"n\":3}\n");
    REQUIRE(waitUntil([&] { return fileLines(out).size() >= 4; }, 30s));
    REQUIRE(waitUntil([&] { return checkpointOf(dir / "state", log) == std::int64_t(fs::file_size(log)); }, 30s));
    agent.signal(SIGTERM);
    CHECK(agent.wait(30s).exitCode == 0);
  }
  const auto records = shipped(out);
  REQUIRE(records.size() == 4);
  CHECK(records[0]["message"] == "before");
  CHECK(records[0]["n"] == 1);
  CHECK(records[1]["message"] == deep);
  CHECK(records[1]["json_error"] == "too_deep");
  CHECK_FALSE(records[1].contains("a"));
  CHECK(records[2]["message"] == "after");
  CHECK_FALSE(records[2].contains("json_error"));
  CHECK(records[3]["n"] == 3);
  CHECK(checkpointOf(dir / "state", log) == std::int64_t(fs::file_size(log)));

  // A restart starts past the line: nothing is shipped again, and new lines arrive.
  {
    ChildProcess agent({kBinary, "run", "-c", config});
    REQUIRE(agent.waitForStderr("agent_started", 20s));
    appendFile(log, "{\"n\":4}\n");
    REQUIRE(waitUntil([&] { return fileLines(out).size() >= 5; }, 30s));
    agent.signal(SIGTERM);
    CHECK(agent.wait(30s).exitCode == 0);
  }
  const auto after = shipped(out);
  REQUIRE(after.size() == 5);
  CHECK(after[4]["n"] == 4);
}

}  // namespace
