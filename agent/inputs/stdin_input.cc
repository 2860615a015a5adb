#include "agent/inputs/stdin_input.h"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <thread>
#include <vector>

#include "base/log.h"

namespace logcapture::agent {
namespace {
using Clock = std::chrono::steady_clock;

std::unique_ptr<decode::Decoder> decoderFor(const config::InputConfig& cfg, decode::DecodeStats& stats) {
  auto source = std::make_shared<base::Source>();
  source->input = cfg.name;
  source->fields = std::make_shared<const std::map<std::string, std::string>>(cfg.fields);
  return std::make_unique<decode::Decoder>(cfg, std::move(source), stats);
}
}  // namespace

StdinInput::StdinInput(const config::InputConfig& cfg, RecordQueue& queue, int fd,
                       std::chrono::milliseconds partialLine)
    : name_(cfg.name),
      cfg_(cfg),
      queue_(queue),
      fd_(fd),
      partialLine_(partialLine),
      decoder_(decoderFor(cfg_, decodeStats_)),
      splitter_(cfg.maxLineBytes.value) {
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
  abandon_ = true;
  queue_.wakeProducers();
  wakeup_.signal();
  if (thread_.joinable()) thread_.join();
}

bool StdinInput::start() {
  thread_ = std::thread([this] { log::guardThread("stdin", [this] { run(); }); });
  return true;
}

void StdinInput::stop(base::Deadline deadline) {
  stopping_ = true;
  wakeup_.signal();
  // The reader may wait for room in the queue (a sink holding every input back): it has until the
  // deadline, then gives up what it holds rather than hold up a reload or the shutdown for ever.
  while (thread_.joinable() && !ended_.load() && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  abandon_ = true;
  queue_.wakeProducers();
  if (thread_.joinable()) thread_.join();
}

bool StdinInput::reconfigure(const config::InputConfig& next) {
  if (next.type != config::InputType::Stdin || next.name != name_) return false;
  {
    std::lock_guard lock(nextMutex_);
    next_ = next;
  }
  hasNext_ = true;
  wakeup_.signal();
  return true;
}

void StdinInput::applyNext() {
  std::optional<config::InputConfig> next;
  {
    std::lock_guard lock(nextMutex_);
    next.swap(next_);
    hasNext_ = false;
  }
  if (!next) return;
  // A multiline record begun under the old rules ends under them; the line in progress (the splitter's)
  // carries on, so a reload cuts nothing that is still being written.
  Chunk held;
  decoder_->flush(Clock::now(), true, held);
  push(std::move(held));
  cfg_ = std::move(*next);
  decoder_ = decoderFor(cfg_, decodeStats_);
  splitter_.setMaxLineBytes(cfg_.maxLineBytes.value);
}

void StdinInput::push(Chunk&& chunk) {
  const std::size_t count = chunk.records.size();
  // Stdin cannot be read again: no checkpoint, and what the queue refuses is lost.
  const auto result = pushRecords(queue_, stats_, std::move(chunk), nullptr, &abandon_);
  if (result == RecordQueue::PushResult::Closed && count > 0) {
    stats_.unqueuedAtStop.fetch_add(count, std::memory_order_relaxed);
    log::event(*log::component("stdin"), spdlog::level::err, "stdin_records_lost",
               {{"input", name_},
                {"records", std::to_string(count)},
                {"reason", "the queue had no room for them by the stop's deadline, and stdin cannot be read again"},
                {"hint", "a longer agent.shutdown_timeout, or a sink buffer that does not block"}});
  }
}

void StdinInput::run() {
  struct Ended {
    std::atomic<bool>& flag;
    ~Ended() { flag = true; }
  } ended{ended_};
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
    // Waits for input, a stop or new settings (the eventfd), or what is held coming due; without an
    // eventfd a stop is seen at the next poll, so it polls.
    std::optional<Clock::time_point> due;
    if (wakeup_.fd() < 0) due = Clock::now() + std::chrono::milliseconds(250);
    const auto sooner = [&](Clock::time_point t) {
      if (!due || t < *due) due = t;
    };
    if (auto deadline = decoder_->deadline()) sooner(*deadline);
    if (splitter_.holding()) sooner(lastData + partialLine_);
    int timeout = -1;
    if (due) {
      timeout = static_cast<int>(std::clamp<std::int64_t>(
          std::chrono::ceil<std::chrono::milliseconds>(*due - Clock::now()).count(), 0, 60000));
    }
    const std::chrono::milliseconds wait(timeout < 0 ? 250 : timeout);  // the sleep after a failed poll
    const int ready = ::poll(fds, 2, timeout);
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
    if (fds[1].revents & POLLIN) wakeup_.clear();  // a stop (seen at the loop's top) or new settings
    // New settings apply to every byte read after reconfigure() returned.
    if (hasNext_.load()) applyNext();
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
        if (finishedListener_) finishedListener_();
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
