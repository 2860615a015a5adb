#pragma once

// The agent as a child of a bench program, for the benches that run the real binary.

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace logcapture::bench {

struct Exit {
  int status = 0;
  rusage usage{};
};

// The agent as a child of this process (not through ChildProcess) so that wait4() returns its rusage.
// Its output goes to `log`.
class Agent {
 public:
  // `wrapper` runs the agent under another program (perf record ... --), which must pass SIGTERM on.
  Agent(const std::string& binary, const std::filesystem::path& config, const std::filesystem::path& log,
        std::vector<std::string> wrapper = {}) {
    std::vector<std::string> argv = std::move(wrapper);
    for (const auto& a : {binary, std::string("run"), std::string("-c"), config.string()}) argv.push_back(a);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) throw std::runtime_error("cannot open " + log.string());
    pid_ = ::fork();
    if (pid_ == 0) {
      // Only async-signal-safe calls between fork and exec.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      const int in = ::open("/dev/null", O_RDONLY);
      if (in < 0 || ::dup2(in, 0) < 0 || ::dup2(out, 1) < 0 || ::dup2(out, 2) < 0) ::_exit(127);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    ::close(out);
    if (pid_ < 0) throw std::runtime_error("fork failed");
  }
  ~Agent() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  pid_t pid() const { return pid_; }
  // Without reaping it, so that stop() still gets its rusage.
  bool running() const {
    siginfo_t info{};
    return pid_ > 0 && ::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
           info.si_pid == 0;
  }

  // SIGTERM, then waits for the exit (SIGKILL past the timeout).
  Exit stop(std::chrono::seconds timeout) {
    Exit e;
    ::kill(pid_, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const pid_t got = ::wait4(pid_, &e.status, WNOHANG, &e.usage);
      if (got == pid_) break;
      if (std::chrono::steady_clock::now() >= deadline) {
        std::fprintf(stderr, "the agent did not stop within %llds; killing it\n",
                     static_cast<long long>(timeout.count()));
        ::kill(pid_, SIGKILL);
        ::wait4(pid_, &e.status, 0, &e.usage);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    pid_ = -1;
    return e;
  }

 private:
  pid_t pid_ = -1;
};

}  // namespace logcapture::bench
