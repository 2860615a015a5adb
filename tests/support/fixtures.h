#pragma once

// Small fixtures shared by the tests: temporary directories, polling with a deadline, free ports.

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

namespace logcapture::testing {

// A fresh directory under the system's temporary directory, removed with everything in it.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& prefix = "logcapture-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::filesystem::path operator/(const std::string& name) const { return path / name; }
};

// Polls `done` until it holds or the timeout passes. For real files and servers, where there is no
// clock to drive; never a sleep to wait for a state.
template <class Predicate>
bool waitUntil(Predicate done, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released).
std::uint16_t freePort();

// "line 0\nline 1\n..." for [from, to): lines to write, each telling where it belongs.
std::string numberedLines(int from, int to, const std::string& prefix = "line ");
// The same lines as messages, without their newlines: what a sink should receive.
std::vector<std::string> numberedMessages(int from, int to, const std::string& prefix = "line ");

// Appends `text` to `file`, creating it.
void appendFile(const std::filesystem::path& file, const std::string& text);

// The lines of `file` without their newlines; none when it does not exist.
std::vector<std::string> fileLines(const std::filesystem::path& file);

// How many times `needle` occurs in `text` (a log event, say).
std::size_t occurrences(const std::string& text, const std::string& needle);

// Writes dir/capture.yaml for the agent: state in dir/state, no admin server, a 20 s shutdown
// deadline, then `inputs` and `sinks` (the items of each list) and `extra` (more top-level keys). The
// file is replaced atomically (a temp file renamed over it), so an agent reloading it never reads half
// of it. Returns its path.
std::string writeAgentConfig(const TempDir& dir, const std::string& inputs, const std::string& sinks,
                             const std::string& extra = "");

// Appends numberedLines(0, count) to `file` from its own thread, 200 lines every 2 ms (some 100,000
// lines a second), so that a reload, a crash or a rotation falls in the middle of them.
class PacedWriter {
 public:
  PacedWriter(std::filesystem::path file, int count);
  ~PacedWriter();  // join()
  PacedWriter(const PacedWriter&) = delete;
  PacedWriter& operator=(const PacedWriter&) = delete;
  void join();

 private:
  std::thread thread_;
};

}  // namespace logcapture::testing
