#pragma once

// Runs the logcapture binary (or any program) as a child process for end-to-end tests.

#include <sys/types.h>

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

namespace logcapture::testing {

struct ProcessResult {
  int exitCode = -1;  // the exit status, or 128 + signal when killed by one
  std::string out;
  std::string err;
};

// A child with its stdout and stderr captured; killed (SIGKILL) if still running at destruction.
class ChildProcess {
 public:
  // With `pipeStdin`, the child reads what writeStdin() sends; otherwise its stdin is /dev/null.
  ChildProcess(const std::vector<std::string>& argv, const std::vector<std::string>& extraEnv = {},
               bool pipeStdin = false);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  void signal(int sig) const;
  // Reads output until `needle` appears in stderr or the timeout passes; true if it appeared.
  bool waitForStderr(const std::string& needle, std::chrono::milliseconds timeout);
  // The same for stdout, looking from byte `from` on.
  bool waitForStdout(const std::string& needle, std::chrono::milliseconds timeout, std::size_t from = 0);
  // Reads the output that is ready now, without waiting: a test polling something else calls it so a
  // chatty child never blocks on a full pipe.
  void readOutput() { pump(std::chrono::milliseconds(0)); }
  // Output so far (pump first with one of the waits, or readOutput()).
  const std::string& out() const { return result_.out; }
  const std::string& err() const { return result_.err; }
  // Writes to the child's stdin (pipeStdin only); false when the child closed it.
  bool writeStdin(std::string_view text);
  // Writes as much of `text` as the child takes within `timeout` (it may stop reading); returns how many
  // bytes it took.
  std::size_t writeStdinFor(std::string_view text, std::chrono::milliseconds timeout);
  // Sends end-of-file to the child's stdin.
  void closeStdin();
  // Waits for the exit, reading output; kills the child when the timeout passes (exitCode -1).
  ProcessResult wait(std::chrono::milliseconds timeout);

 private:
  void pump(std::chrono::milliseconds timeout);

  pid_t pid_ = -1;
  int outFd_ = -1;
  int errFd_ = -1;
  int inFd_ = -1;
  ProcessResult result_;
  bool exited_ = false;
};

// Runs a command to completion (killed after the timeout).
ProcessResult runProcess(const std::vector<std::string>& argv,
                         std::chrono::milliseconds timeout = std::chrono::seconds(30),
                         const std::vector<std::string>& extraEnv = {});

}  // namespace logcapture::testing
