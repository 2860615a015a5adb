#pragma once

// A child process on a pseudo-terminal of a set size, for tests of a full-screen program: what it
// writes to the terminal is read raw (escape sequences included), and keys are typed into it.

#include <sys/types.h>

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

namespace logcapture::testing {

class TerminalProcess {
 public:
  // Starts argv[0] (a path) on a new pseudo-terminal of `columns` x `rows`, its controlling terminal,
  // with the default signal mask and `extraEnv` added to the environment.
  TerminalProcess(const std::vector<std::string>& argv, const std::vector<std::string>& extraEnv, int columns,
                  int rows);
  // Kills the child (SIGKILL) if it still runs.
  ~TerminalProcess();
  TerminalProcess(const TerminalProcess&) = delete;
  TerminalProcess& operator=(const TerminalProcess&) = delete;

  pid_t pid() const { return pid_; }
  // Reads what the child wrote until `needle` appears after byte `from`, or the timeout passes.
  bool waitFor(std::string_view needle, std::chrono::milliseconds timeout, std::size_t from = 0);
  // Reads what is ready now, without waiting.
  void readOutput() { pump(std::chrono::milliseconds(0)); }
  // Everything the child wrote so far.
  const std::string& screen() const { return screen_; }
  // Types `keys` as if at the keyboard (Ctrl-C is "\x03").
  void type(std::string_view keys);
  // Waits for the exit, reading the output; the exit status, 128 + signal when killed by one, or -1
  // (the child killed) when the timeout passes.
  int wait(std::chrono::milliseconds timeout);

 private:
  void pump(std::chrono::milliseconds timeout);

  pid_t pid_ = -1;
  int master_ = -1;
  std::string screen_;
  bool exited_ = false;
};

}  // namespace logcapture::testing
