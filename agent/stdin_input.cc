#include "agent/stdin_input.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>
#include <vector>

#include "agent/log.h"

namespace logcapture::agent {
namespace {
using Clock = std::chrono::steady_clock;
}  // namespace

StdinInput::StdinInput(const config::InputConfig& cfg, RecordQueue& queue, int fd,
                       std::chrono::milliseconds partialLine)
    : cfg_(cfg), queue_(queue), fd_(fd), partialLine_(partialLine), splitter_(cfg.maxLineBytes.value) {
  auto source = std::make_shared<Source>();
  source->input = cfg.name;
  source->fields = std::make_shared<const std::map<std::string, std::string>>(cfg.fields);
  decoder_ = std::make_unique<decode::Decoder>(cfg_, std::move(source), decodeStats_);
  if (wakeup_.fd() < 0) {
    stats_.wakeupFailures.fetch_add(1, std::memory_order_relaxed);
    log::event(*log::component("stdin"), spdlog::level::warn, "wakeup_unavailable",
               {{"input", cfg_.name},
                {"error", std::strerror(wakeup_.error())},
                {"effect", "a stop is noticed at the next poll instead of at once"}});
  }
}

StdinInput::~StdinInput() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
}

bool StdinInput::start() {
  thread_ = std::thread([this] { log::guardThread("stdin", [this] { run(); }); });
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
  Clock::time_point lastData = Clock::now();  // when a read last returned bytes
  bool pollFailed = false;
  while (!stopping_.load()) {
    pollfd fds[2] = {{fd_, POLLIN, 0}, {wakeup_.fd(), POLLIN, 0}};
    std::chrono::milliseconds wait{250};
    if (auto deadline = decoder_->deadline()) {
      wait = std::clamp(std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - Clock::now()),
                        std::chrono::milliseconds(0), wait);
    }
    const int ready = ::poll(fds, 2, static_cast<int>(wait.count()));
    if (ready < 0) {
      if (errno == EINTR) continue;
      if (!pollFailed) {
        pollFailed = true;
        log::event(*log::component("stdin"), spdlog::level::err, "poll_failed",
                   {{"input", cfg_.name}, {"error", std::strerror(errno)}, {"fallback", "sleeping the poll interval"}});
      }
      std::this_thread::sleep_for(wait);  // never a busy loop
      continue;
    }
    Chunk chunk;
    const auto now = Clock::now();
    bool read = false;
    // POLLNVAL: not an open descriptor (started with stdin closed); the read says so, and the input ends.
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL)) {
      const ssize_t n = ::read(fd_, buffer.data(), buffer.size());
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) {  // EOF (or an unreadable stdin): everything held goes out, then we are done
        if (n < 0) {
          log::event(*log::component("stdin"), spdlog::level::err, "stdin_read_failed",
                     {{"input", cfg_.name}, {"error", std::strerror(errno)}});
        }
        if (splitter_.holding()) stats_.partialLines.fetch_add(1, std::memory_order_relaxed);
        splitter_.flush(offset, onLine(chunk, std::chrono::system_clock::now(), now));
        decoder_->flush(now, true, chunk);
        push(std::move(chunk));
        finished_ = true;
        return;
      }
      read = true;
      lastData = now;
      chunk.storage.reserve(static_cast<std::size_t>(n));
      splitter_.feed(std::string_view(buffer.data(), static_cast<std::size_t>(n)), offset,
                     onLine(chunk, std::chrono::system_clock::now(), now));
      offset += static_cast<std::uint64_t>(n);
      stats_.bytes.fetch_add(static_cast<std::uint64_t>(n), std::memory_order_relaxed);
    }
    // A writer that pauses mid-line still has that line shipped after a while; but only when nothing
    // was waiting to be read (the queue may have held this thread back while the rest of the line came).
    if (!read && splitter_.holding() && now - lastData >= partialLine_) {
      stats_.partialLines.fetch_add(1, std::memory_order_relaxed);
      splitter_.flush(offset, onLine(chunk, std::chrono::system_clock::now(), now));
    }
    decoder_->flush(now, false, chunk);
    push(std::move(chunk));
  }
  // Stdin cannot be read again: what is held goes out now.
  Chunk chunk;
  if (splitter_.holding()) stats_.partialLines.fetch_add(1, std::memory_order_relaxed);
  splitter_.flush(offset, onLine(chunk, std::chrono::system_clock::now(), Clock::now()));
  decoder_->flush(Clock::now(), true, chunk);
  push(std::move(chunk));
}

}  // namespace logcapture::agent
