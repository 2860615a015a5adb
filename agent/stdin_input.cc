#include "agent/stdin_input.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "agent/log.h"

namespace logcapture::agent {
namespace {
using Clock = std::chrono::steady_clock;
}

StdinInput::StdinInput(const config::InputConfig& cfg, RecordQueue& queue, int fd)
    : cfg_(cfg), queue_(queue), fd_(fd), splitter_(cfg.maxLineBytes.value) {
  auto source = std::make_shared<Source>();
  source->input = cfg.name;
  source->fields = std::make_shared<const std::map<std::string, std::string>>(cfg.fields);
  decoder_ = std::make_unique<decode::Decoder>(cfg_, std::move(source), decodeStats_);
}

StdinInput::~StdinInput() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
}

bool StdinInput::start() {
  thread_ = std::thread([this] { run(); });
  return true;
}

void StdinInput::stop(Deadline) {
  stopping_ = true;
  wakeup_.signal();
  if (thread_.joinable()) thread_.join();
}

void StdinInput::push(Chunk&& chunk) {
  pushRecords(queue_, stats_, std::move(chunk), nullptr);  // stdin cannot be read again: no checkpoint
}

void StdinInput::run() {
  std::vector<char> buffer(256 * 1024);
  std::uint64_t offset = 0;
  // Lines are copied into their chunk's storage: a pipe gives small reads, and the buffer is reused.
  auto onLine = [&](Chunk& out, auto readTime, auto now) {
    return [&, readTime, now](std::string_view line, std::uint64_t end, bool truncated) {
      if (truncated) stats_.truncated.fetch_add(1, std::memory_order_relaxed);
      decoder_->line(line, end, truncated, readTime, now, out);
    };
  };
  Clock::time_point partialSince{};
  while (!stopping_.load()) {
    pollfd fds[2] = {{fd_, POLLIN, 0}, {wakeup_.fd(), POLLIN, 0}};
    std::chrono::milliseconds wait{250};
    if (auto deadline = decoder_->deadline()) {
      wait = std::clamp(std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - Clock::now()),
                        std::chrono::milliseconds(0), wait);
    }
    ::poll(fds, 2, static_cast<int>(wait.count()));
    Chunk chunk;
    const auto now = Clock::now();
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      const ssize_t n = ::read(fd_, buffer.data(), buffer.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {  // EOF (or an unreadable stdin): everything held goes out, then we are done
        if (n < 0) {
          log::event(*log::component("stdin"), spdlog::level::err, "stdin_read_failed",
                     {{"input", cfg_.name}, {"error", std::strerror(errno)}});
        }
        splitter_.flush(offset, onLine(chunk, std::chrono::system_clock::now(), now));
        decoder_->flush(now, true, chunk);
        push(std::move(chunk));
        finished_ = true;
        return;
      }
      chunk.storage.reserve(static_cast<std::size_t>(n));
      splitter_.feed(std::string_view(buffer.data(), static_cast<std::size_t>(n)), offset,
                     onLine(chunk, std::chrono::system_clock::now(), now));
      offset += static_cast<std::uint64_t>(n);
      stats_.bytes.fetch_add(static_cast<std::uint64_t>(n), std::memory_order_relaxed);
      partialSince =
          splitter_.holding() ? (partialSince == Clock::time_point{} ? now : partialSince) : Clock::time_point{};
    }
    // A writer that pauses mid-line still has that line shipped after a while.
    if (splitter_.holding() && now - partialSince >= std::chrono::seconds(5)) {
      splitter_.flush(offset, onLine(chunk, std::chrono::system_clock::now(), now));
      partialSince = {};
    }
    decoder_->flush(now, false, chunk);
    push(std::move(chunk));
  }
  Chunk chunk;
  splitter_.flush(offset, onLine(chunk, std::chrono::system_clock::now(), Clock::now()));
  decoder_->flush(Clock::now(), true, chunk);
  push(std::move(chunk));
}

}  // namespace logcapture::agent
