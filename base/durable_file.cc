#include "base/durable_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace logcapture::base {
namespace {

std::string errnoText(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

}  // namespace

int readFile(const std::string& path, std::string& out) {
  out.clear();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  char buf[64 * 1024];
  int error = 0;
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) error = errno;
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return error;
}

bool writeAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

std::string replaceFile(const std::filesystem::path& file, const std::filesystem::path& temp, std::string_view data) {
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0 && errno == ENOENT && temp.has_parent_path()) {
    // The directory is made on first use, and again if it was removed under a running agent.
    std::error_code ec;
    std::filesystem::create_directories(temp.parent_path(), ec);
    fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  }
  if (fd < 0) return errnoText("creating the temp file");
  std::string error;
  if (!writeAll(fd, data)) {
    error = errnoText("writing the temp file");
  } else if (::fsync(fd) != 0) {
    error = errnoText("fsync of the temp file");
  }
  if (::close(fd) != 0 && error.empty()) error = errnoText("closing the temp file");
  if (error.empty() && ::rename(temp.c_str(), file.c_str()) != 0) error = errnoText("renaming the temp file");
  if (!error.empty()) {
    ::unlink(temp.c_str());
    return error;
  }
  // The rename is durable only once the directory entry is.
  const std::filesystem::path dir = file.has_parent_path() ? file.parent_path() : std::filesystem::path(".");
  const int dirFd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirFd < 0) return errnoText("opening the directory");
  if (::fsync(dirFd) != 0) error = errnoText("fsync of the directory");
  ::close(dirFd);
  return error;
}

}  // namespace logcapture::base
