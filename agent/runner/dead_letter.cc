#include "agent/runner/dead_letter.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "base/json_text.h"
#include "base/log.h"

namespace logcapture::agent {
DeadLetter::DeadLetter(std::string stateDir, const config::SinkConfig& sink)
    : sink_(sink.name),
      path_((std::filesystem::path(stateDir) / "dead-letter" / (sink.name + ".ndjson")).string()),
      maxBytes_(sink.deadLetter.maxBytes.value),
      rawEncoding_(sink.encoding == config::Encoding::Raw) {}

DeadLetter::~DeadLetter() {
  if (fd_ >= 0) ::close(fd_);
}

bool DeadLetter::openLocked() {
  if (fd_ >= 0) {
    // Moved away or removed (as dead_letter_full advises): the records go to a new file, with its own cap.
    struct stat byPath {};
    struct stat opened {};
    if (::stat(path_.c_str(), &byPath) == 0 && ::fstat(fd_, &opened) == 0 && byPath.st_dev == opened.st_dev &&
        byPath.st_ino == opened.st_ino) {
      return true;
    }
    ::close(fd_);
    fd_ = -1;
    size_ = 0;
    warnedFull_ = false;
  }
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path_).parent_path(), ec);
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd_ < 0) return false;
  struct stat st {};
  if (::fstat(fd_, &st) == 0) size_ = static_cast<std::uint64_t>(st.st_size);
  return true;
}

DeadLetter::Appended DeadLetter::append(const sinks::Batch& batch,
                                        const std::vector<std::pair<std::uint32_t, std::string>>& failed) {
  Appended out;
  if (failed.empty()) return out;
  std::string time;
  base::appendJsonTimestamp(time, std::chrono::system_clock::now());
  std::string lines;
  std::lock_guard lock(mutex_);
  // Opened first, so that the cap counts what the file holds already (an earlier run's records).
  int ioError = openLocked() ? 0 : errno;
  std::size_t accepted = 0;
  for (const auto& [index, error] : failed) {
    const std::size_t before = lines.size();
    lines += "{\"time\":" + time + ",\"sink\":";
    base::appendJsonString(lines, sink_);
    lines += ",\"error\":";
    base::appendJsonString(lines, error);
    lines += ",\"record\":";
    if (rawEncoding_) {
      base::appendJsonString(lines, batch.encodedRecord(index));
    } else {
      lines += batch.encodedRecord(index);
    }
    lines += "}\n";
    if (size_ + lines.size() > maxBytes_) {
      lines.resize(before);
      break;
    }
    ++accepted;
  }
  out.overCap = failed.size() - accepted;
  auto logger = log::component("sink");
  if (out.overCap > 0 && !warnedFull_) {
    warnedFull_ = true;
    log::event(
        *logger, spdlog::level::warn, "dead_letter_full",
        {{"sink", sink_},
         {"path", path_},
         {"max_bytes", maxBytes_},
         {"hint", "records past the cap are dropped and counted; move the file away or raise dead_letter.max_bytes"}});
  }
  if (accepted == 0) {
    dropped_.fetch_add(out.overCap, std::memory_order_relaxed);
    return out;
  }
  std::size_t done = 0;
  while (ioError == 0 && done < lines.size()) {
    const ssize_t n = ::write(fd_, lines.data() + done, lines.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ioError = errno;
    } else if (n == 0) {
      ioError = EIO;
    } else {
      done += static_cast<std::size_t>(n);
    }
  }
  if (ioError == 0 && ::fdatasync(fd_) != 0) ioError = errno;
  if (ioError != 0) {
    if (fd_ >= 0) {
      // Cut a torn line so that the file stays one whole JSON object per line; reopened next time.
      if (done > 0 && ::ftruncate(fd_, static_cast<off_t>(size_)) != 0) {
        logger->debug("dead letter {}: cannot cut back a torn write: {}", path_, std::strerror(errno));
      }
      ::close(fd_);
      fd_ = -1;
    }
    out.unwritable = accepted;
    if (!broken_) {
      broken_ = true;
      log::event(*logger, spdlog::level::err, "dead_letter_unwritable",
                 {{"sink", sink_},
                  {"path", path_},
                  {"error", std::strerror(ioError)},
                  {"hint",
                   "records the destination refused for good are dropped and counted (dead_letter_failed) "
                   "until the file can be written again"}});
    }
  } else {
    size_ += lines.size();
    out.written = accepted;
    if (broken_) {
      broken_ = false;
      log::event(*logger, spdlog::level::info, "dead_letter_writable", {{"sink", sink_}, {"path", path_}});
    }
  }
  written_.fetch_add(out.written, std::memory_order_relaxed);
  dropped_.fetch_add(out.overCap + out.unwritable, std::memory_order_relaxed);
  return out;
}

}  // namespace logcapture::agent
