#include "agent/dead_letter.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "agent/log.h"
#include "sinks/encoding.h"

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
  if (fd_ >= 0) return true;
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path_).parent_path(), ec);
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd_ < 0) return false;
  struct stat st {};
  if (::fstat(fd_, &st) == 0) size_ = static_cast<std::uint64_t>(st.st_size);
  return true;
}

std::size_t DeadLetter::append(const sinks::Batch& batch,
                               const std::vector<std::pair<std::uint32_t, std::string>>& failed) {
  if (failed.empty()) return 0;
  std::string time;
  sinks::appendJsonTimestamp(time, std::chrono::system_clock::now());
  std::string lines;
  std::lock_guard lock(mutex_);
  std::size_t accepted = 0;
  for (const auto& [index, error] : failed) {
    const std::size_t before = lines.size();
    lines += "{\"time\":" + time + ",\"sink\":";
    sinks::appendJsonString(lines, sink_);
    lines += ",\"error\":";
    sinks::appendJsonString(lines, error);
    lines += ",\"record\":";
    if (rawEncoding_) {
      sinks::appendJsonString(lines, batch.encodedRecord(index));
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
  auto logger = log::component("sink");
  if (accepted < failed.size() && !warnedFull_) {
    warnedFull_ = true;
    log::event(
        *logger, spdlog::level::warn, "dead_letter_full",
        {{"sink", sink_},
         {"path", path_},
         {"max_bytes", maxBytes_},
         {"hint", "records past the cap are dropped and counted; move the file away or raise dead_letter.max_bytes"}});
  }
  if (accepted > 0) {
    bool ok = openLocked();
    std::size_t done = 0;
    while (ok && done < lines.size()) {
      const ssize_t n = ::write(fd_, lines.data() + done, lines.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0)
        ok = false;
      else
        done += static_cast<std::size_t>(n);
    }
    if (ok && ::fdatasync(fd_) != 0) ok = false;
    if (!ok) {
      if (!warnedBroken_) {
        warnedBroken_ = true;
        log::event(*logger, spdlog::level::err, "dead_letter_unwritable",
                   {{"sink", sink_}, {"path", path_}, {"error", std::strerror(errno)}});
      }
      accepted = 0;
    } else {
      size_ += lines.size();
    }
  }
  written_.fetch_add(accepted, std::memory_order_relaxed);
  dropped_.fetch_add(failed.size() - accepted, std::memory_order_relaxed);
  return accepted;
}

}  // namespace logcapture::agent
