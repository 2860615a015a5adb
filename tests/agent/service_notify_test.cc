// The systemd notify protocol as systemd sees it: a datagram socket named by NOTIFY_SOCKET receives
// READY=1, WATCHDOG=1 at half the WATCHDOG_USEC interval, RELOADING=1 on SIGHUP and STOPPING=1.

#include <doctest/doctest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "tests/support/fixtures.h"
#include "tests/support/process.h"

namespace {

using logcapture::testing::ChildProcess;
using logcapture::testing::TempDir;
using logcapture::testing::waitUntil;
using namespace std::chrono_literals;

const std::string kBinary = LOGCAPTURE_BINARY;

// What systemd listens on: every datagram is one notification.
class NotifySocket {
 public:
  explicit NotifySocket(const std::filesystem::path& path) : path_(path) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  }
  ~NotifySocket() { ::close(fd_); }

  // Reads what has arrived, waiting up to `timeout` for the first datagram.
  void receive(std::chrono::milliseconds timeout) {
    pollfd p{fd_, POLLIN, 0};
    while (::poll(&p, 1, static_cast<int>(timeout.count())) > 0) {
      char buf[4096];
      const auto n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) break;
      messages_.emplace_back(buf, static_cast<std::size_t>(n));
      timeout = 0ms;
    }
  }
  std::size_t count(const std::string& needle) const {
    std::size_t n = 0;
    for (const auto& m : messages_) n += m.find(needle) != std::string::npos ? 1 : 0;
    return n;
  }
  const std::vector<std::string>& messages() const { return messages_; }

 private:
  std::filesystem::path path_;
  int fd_ = -1;
  std::vector<std::string> messages_;
};

}  // namespace

TEST_CASE("under systemd the agent notifies ready, watchdog, reloading and stopping") {
  TempDir dir("logcapture-notify");
  NotifySocket systemd(dir / "notify.sock");
  const auto config = dir / "c.yaml";
  std::ofstream(config) << "agent:\n  state_dir: " << (dir / "state").string() << "\n  admin: {listen: \"\"}\n"
                        << "inputs: [{name: in, type: file, paths: [" << (dir / "*.log").string() << "]}]\n"
                        << "sinks: [{name: out, type: console}]\n";
  ChildProcess agent({kBinary, "run", "-c", config.string()},
                     {"NOTIFY_SOCKET=" + (dir / "notify.sock").string(), "WATCHDOG_USEC=200000"});
  REQUIRE(waitUntil(
      [&] {
        systemd.receive(50ms);
        return systemd.count("READY=1") >= 1 && systemd.count("WATCHDOG=1") >= 3;
      },
      20s));
  CHECK(systemd.messages().front().find("READY=1") != std::string::npos);
  CHECK(systemd.messages().front().find("STATUS=") != std::string::npos);
  CHECK(systemd.messages().front().find("breakers: 1 closed") != std::string::npos);

  agent.signal(SIGHUP);
  REQUIRE(waitUntil(
      [&] {
        systemd.receive(50ms);
        return systemd.count("RELOADING=1") == 1 && systemd.count("READY=1") == 2;
      },
      20s));

  agent.signal(SIGTERM);
  CHECK(agent.wait(20s).exitCode == 0);
  systemd.receive(100ms);
  CHECK(systemd.count("STOPPING=1") == 1);
}
