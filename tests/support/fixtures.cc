#include "tests/support/fixtures.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <fstream>
#include <stdexcept>

namespace logcapture::testing {

TempDir::TempDir(const std::string& prefix) {
  static std::atomic<int> n{0};
  path =
      std::filesystem::temp_directory_path() / (prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(n++));
  std::filesystem::remove_all(path);
  std::filesystem::create_directories(path);
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
}

std::uint16_t freePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("cannot bind a free port on 127.0.0.1");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::string numberedLines(int from, int to, const std::string& prefix) {
  std::string out;
  for (int i = from; i < to; ++i) out += prefix + std::to_string(i) + "\n";
  return out;
}

std::vector<std::string> numberedMessages(int from, int to, const std::string& prefix) {
  std::vector<std::string> out;
  for (int i = from; i < to; ++i) out.push_back(prefix + std::to_string(i));
  return out;
}

void appendFile(const std::filesystem::path& file, const std::string& text) {
  std::ofstream out(file, std::ios::app | std::ios::binary);
  out << text;
}

std::vector<std::string> fileLines(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::size_t occurrences(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

std::string writeAgentConfig(const TempDir& dir, const std::string& inputs, const std::string& sinks,
                             const std::string& extra) {
  {
    std::ofstream out(dir / "capture.yaml.tmp");
    out << "agent:\n  state_dir: " << (dir / "state").string() << "\n  admin: {listen: \"\"}\n  shutdown_timeout: 20s\n"
        << "inputs:\n"
        << inputs << "sinks:\n"
        << sinks << extra;
  }
  std::filesystem::rename(dir / "capture.yaml.tmp", dir / "capture.yaml");
  return (dir / "capture.yaml").string();
}

PacedWriter::PacedWriter(std::filesystem::path file, int count)
    : thread_([file = std::move(file), count] {
        std::ofstream out(file, std::ios::app);
        for (int i = 0; i < count; ++i) {
          out << "line " << i << "\n";
          if (i % 200 == 199) {
            out.flush();
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
          }
        }
      }) {}

PacedWriter::~PacedWriter() { join(); }

void PacedWriter::join() {
  if (thread_.joinable()) thread_.join();
}

}  // namespace logcapture::testing
