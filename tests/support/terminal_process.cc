#include "tests/support/terminal_process.h"

#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <stdexcept>

namespace logcapture::testing {

TerminalProcess::TerminalProcess(const std::vector<std::string>& argv, const std::vector<std::string>& extraEnv,
                                 int columns, int rows) {
  // Everything the child needs is built before the fork: between fork and exec only async-signal-safe
  // calls are allowed in a threaded process.
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);
  env.insert(env.end(), extraEnv.begin(), extraEnv.end());
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  sigset_t none;
  sigemptyset(&none);

  winsize size{};
  size.ws_col = static_cast<unsigned short>(columns);
  size.ws_row = static_cast<unsigned short>(rows);
  pid_ = forkpty(&master_, nullptr, nullptr, &size);
  if (pid_ < 0) throw std::runtime_error("forkpty failed");
  if (pid_ == 0) {
    // The test runner may block signals; the program starts with none blocked, as from a shell.
    pthread_sigmask(SIG_SETMASK, &none, nullptr);
    execve(args[0], args.data(), envp.data());
    _exit(127);
  }
}

TerminalProcess::~TerminalProcess() {
  if (!exited_ && pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  if (master_ >= 0) close(master_);
}

void TerminalProcess::pump(std::chrono::milliseconds timeout) {
  if (master_ < 0) return;
  pollfd p{master_, POLLIN, 0};
  const int ready = poll(&p, 1, static_cast<int>(timeout.count()));
  if (ready <= 0) return;
  char buf[4096];
  for (;;) {
    const ssize_t n = read(master_, buf, sizeof buf);
    if (n > 0) {
      screen_.append(buf, static_cast<std::size_t>(n));
      pollfd again{master_, POLLIN, 0};
      if (poll(&again, 1, 0) <= 0) return;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return;  // EIO: the child closed its terminal
  }
}

bool TerminalProcess::waitFor(std::string_view needle, std::chrono::milliseconds timeout, std::size_t from) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (screen_.size() > from && screen_.find(needle, from) != std::string::npos) return true;
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pump(std::min(left, std::chrono::milliseconds(50)));
  }
}

void TerminalProcess::type(std::string_view keys) {
  std::size_t done = 0;
  while (done < keys.size()) {
    const ssize_t n = write(master_, keys.data() + done, keys.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw std::runtime_error("cannot type into the terminal");
    done += static_cast<std::size_t>(n);
  }
}

int TerminalProcess::wait(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    const pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exited_ = true;
      pump(std::chrono::milliseconds(0));  // what it wrote last
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
      exited_ = true;
      return -1;
    }
    pump(std::chrono::milliseconds(20));
  }
}

}  // namespace logcapture::testing
