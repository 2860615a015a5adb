#include "sinks/console/console_sink.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace logcapture::sinks::console {

ConsoleSink::ConsoleSink(const config::SinkConfig& cfg) : path_(std::get<ConsoleConfig>(cfg.settings).path) {}

ConsoleSink::~ConsoleSink() {
  if (ownsFd_ && fd_ >= 0) ::close(fd_);
}

std::optional<std::string> ConsoleSink::start() {
  if (path_.empty()) {
    fd_ = STDOUT_FILENO;
    return std::nullopt;
  }
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd_ < 0) return "cannot open " + path_ + " for appending: " + std::strerror(errno);
  ownsFd_ = true;
  return std::nullopt;
}

SendResult ConsoleSink::send(const Batch& batch, base::Deadline) {
  std::lock_guard lock(mutex_);
  const std::string& lines = batch.encoded;  // each record's encoding and its newline
  std::size_t written = 0;
  while (written < lines.size()) {
    const ssize_t n = ::write(fd_, lines.data() + written, lines.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      // A reader that went away or a full disk may come back; a partly written batch is written
      // again whole (at-least-once).
      return SendResult::failure(Outcome::Retriable, "write to " + (path_.empty() ? std::string("stdout") : path_) +
                                                         ": " + std::strerror(errno));
    }
    written += static_cast<std::size_t>(n);
  }
  return SendResult::success();
}

void ConsoleSink::stop(base::Deadline) {
  std::lock_guard lock(mutex_);
  if (ownsFd_ && fd_ >= 0) {
    ::fsync(fd_);
    ::close(fd_);
    fd_ = -1;
    ownsFd_ = false;
  }
}

std::unique_ptr<Sink> build(const ConsoleConfig&, const config::SinkConfig& cfg) {
  return std::make_unique<ConsoleSink>(cfg);
}

}  // namespace logcapture::sinks::console
