#include "agent/admin/request_intake.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "agent/inputs/input.h"
#include "base/log.h"

namespace logcapture::agent::admin {
namespace {

bool startsWithNoCase(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(text[i])) != prefix[i]) return false;
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

void closeConnection(int fd) {
  ::shutdown(fd, SHUT_RDWR);
  ::close(fd);
}

const char* reasonPhrase(int status) {
  switch (status) {
    case 408:
      return "Request Timeout";
    case 411:
      return "Length Required";
    case 413:
      return "Payload Too Large";
    case 431:
      return "Request Header Fields Too Large";
    default:
      return "Error";
  }
}

}  // namespace

RequestProgress requestProgress(std::string_view bytes, const IntakeLimits& limits) {
  // HTTP ends the headers with an empty line; httplib also takes bare LF line ends, so do we.
  std::size_t end = bytes.find("\r\n\r\n");
  std::size_t bodyAt = end == std::string_view::npos ? end : end + 4;
  if (const std::size_t lf = bytes.find("\n\n"); lf != std::string_view::npos && (end == bytes.npos || lf < end)) {
    end = lf;
    bodyAt = lf + 2;
  }
  if (end == std::string_view::npos) {
    return bytes.size() > limits.maxHeaderBytes ? RequestProgress::HeadersTooLarge : RequestProgress::Incomplete;
  }
  if (end > limits.maxHeaderBytes) return RequestProgress::HeadersTooLarge;
  std::uint64_t length = 0;
  std::string_view headers = bytes.substr(0, end);
  headers.remove_prefix(std::min(headers.size(), headers.find('\n')));  // the request line
  while (!headers.empty()) {
    headers.remove_prefix(1);  // the '\n' before this line
    const std::size_t next = headers.find('\n');
    const std::string_view line = headers.substr(0, next);
    headers.remove_prefix(std::min(headers.size(), next));
    if (startsWithNoCase(line, "transfer-encoding:")) return RequestProgress::Chunked;
    if (startsWithNoCase(line, "content-length:")) {
      const std::string_view value = trim(line.substr(15));
      const auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), length);
      // A malformed length is httplib's to refuse (400); it reads no body then.
      if (ec == std::errc::result_out_of_range) return RequestProgress::BodyTooLarge;
      if (ec != std::errc() || ptr != value.data() + value.size()) length = 0;
    }
  }
  if (length > limits.maxBodyBytes) return RequestProgress::BodyTooLarge;
  return bytes.size() - bodyAt >= length ? RequestProgress::Complete : RequestProgress::Incomplete;
}

bool isProbe(std::string_view bytes) {
  for (const std::string_view method : {"GET ", "HEAD "}) {
    if (!bytes.starts_with(method)) continue;
    const std::string_view target = bytes.substr(method.size());
    for (const std::string_view path : {"/health", "/ready"}) {
      if (target.starts_with(path) && target.size() > path.size() &&
          (target[path.size()] == ' ' || target[path.size()] == '?')) {
        return true;
      }
    }
  }
  return false;
}

RequestIntake::Lane::Lane(std::size_t threads, const Serve& serve) : serve_(serve) {
  for (std::size_t i = 0; i < threads; ++i) {
    threads_.emplace_back([this] {
      log::guardThread("admin", [this] {
        for (;;) {
          WholeRequest request;
          {
            std::unique_lock lock(mutex_);
            changed_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
            if (stopping_) return;
            request = std::move(queue_.front());
            queue_.pop_front();
          }
          serve_(std::move(request));
        }
      });
    });
  }
}

RequestIntake::Lane::~Lane() { stop(); }

void RequestIntake::Lane::push(WholeRequest request) {
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      queue_.push_back(std::move(request));
      request.fd = -1;
    }
  }
  if (request.fd >= 0) {
    closeConnection(request.fd);
    return;
  }
  changed_.notify_one();
}

void RequestIntake::Lane::stop() {
  std::deque<WholeRequest> left;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    left.swap(queue_);
  }
  changed_.notify_all();
  for (auto& r : left) closeConnection(r.fd);
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

RequestIntake::RequestIntake(IntakeLimits limits, Serve serve)
    : limits_(limits), serve_(std::move(serve)), wakeup_(std::make_unique<Wakeup>()) {}

RequestIntake::~RequestIntake() { stop(); }

void RequestIntake::start() {
  if (started_) return;
  started_ = true;
  probes_ = std::make_unique<Lane>(1, serve_);
  general_ = std::make_unique<Lane>(limits_.threads, serve_);
  thread_ = std::thread([this] { log::guardThread("admin", [this] { run(); }); });
}

void RequestIntake::add(int fd) {
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      incoming_.push_back(fd);
      fd = -1;
    }
  }
  if (fd >= 0) {
    closeConnection(fd);
    return;
  }
  wakeup_->signal();
}

void RequestIntake::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  wakeup_->signal();
  if (thread_.joinable()) thread_.join();
  if (probes_) probes_->stop();
  if (general_) general_->stop();
  std::lock_guard lock(mutex_);
  for (const int fd : incoming_) closeConnection(fd);
  incoming_.clear();
}

void RequestIntake::admitNew() {
  std::vector<int> fresh;
  {
    std::lock_guard lock(mutex_);
    fresh.swap(incoming_);
  }
  const auto deadline = std::chrono::steady_clock::now() + limits_.requestTimeout;
  for (const int fd : fresh) {
    // The oldest waiting connection makes room: whoever holds connections open to crowd the server
    // out loses their own first, and a fresh probe always gets in.
    if (waiting_.size() >= limits_.maxWaiting && !waiting_.empty()) {
      closeConnection(waiting_.front().fd);
      waiting_.erase(waiting_.begin());
    }
    waiting_.push_back(Waiting{fd, {}, deadline});
  }
}

void RequestIntake::run() {
  std::vector<pollfd> fds;
  for (;;) {
    {
      std::lock_guard lock(mutex_);
      if (stopping_) break;
    }
    admitNew();
    fds.clear();
    fds.push_back(pollfd{wakeup_->fd(), POLLIN, 0});
    auto nearest = std::chrono::steady_clock::time_point::max();
    for (const auto& w : waiting_) {
      fds.push_back(pollfd{w.fd, POLLIN, 0});
      nearest = std::min(nearest, w.deadline);
    }
    int timeout = -1;
    if (nearest != std::chrono::steady_clock::time_point::max()) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(nearest - std::chrono::steady_clock::now());
      timeout = static_cast<int>(std::clamp<std::int64_t>(left.count(), 0, 60000));
    }
    const int ready = ::poll(fds.data(), fds.size(), timeout);
    if (ready < 0 && errno != EINTR) {
      log::noteThreadFailure("admin", std::string("poll: ") + std::strerror(errno), false);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    if (fds[0].revents != 0) wakeup_->clear();
    const auto now = std::chrono::steady_clock::now();
    std::vector<Waiting> kept;
    kept.reserve(waiting_.size());
    for (std::size_t i = 0; i < waiting_.size(); ++i) {
      Waiting& w = waiting_[i];
      if (ready > 0 && fds[i + 1].revents != 0 && !readFrom(w)) continue;
      if (now >= w.deadline) {
        refuse(w, 408, "the request did not arrive in time");
        continue;
      }
      kept.push_back(std::move(w));
    }
    waiting_.swap(kept);
  }
  for (const auto& w : waiting_) closeConnection(w.fd);
  waiting_.clear();
}

bool RequestIntake::readFrom(Waiting& w) {
  char buf[16 * 1024];
  bool ended = false;  // the client closed its side, or the connection failed
  for (;;) {
    const ssize_t n = ::recv(w.fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      w.bytes.append(buf, static_cast<std::size_t>(n));
      if (w.bytes.size() > limits_.maxHeaderBytes + limits_.maxBodyBytes + 4) break;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    ended = true;
    break;
  }
  switch (requestProgress(w.bytes, limits_)) {
    case RequestProgress::Incomplete:
      if (!ended) return true;
      closeConnection(w.fd);
      return false;
    case RequestProgress::Complete:
      dispatch(w);
      return false;
    case RequestProgress::HeadersTooLarge:
      refuse(w, 431, "the request headers are too large");
      return false;
    case RequestProgress::BodyTooLarge:
      refuse(w, 413, "the request body is too large");
      return false;
    case RequestProgress::Chunked:
      refuse(w, 411, "send the body with a Content-Length");
      return false;
  }
  return false;
}

void RequestIntake::dispatch(Waiting& w) {
  Lane& lane = isProbe(w.bytes) ? *probes_ : *general_;
  lane.push(WholeRequest{w.fd, std::move(w.bytes)});
}

void RequestIntake::refuse(Waiting& w, int status, std::string_view reason) {
  const std::string body = "{\"error\":\"" + std::string(reason) + "\"}\n";
  const std::string answer = "HTTP/1.1 " + std::to_string(status) + " " + reasonPhrase(status) +
                             "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
                             "\r\nConnection: close\r\n\r\n" + body;
  // Best effort and never waiting: a client that does not read its refusal loses it.
  [[maybe_unused]] const ssize_t sent = ::send(w.fd, answer.data(), answer.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  closeConnection(w.fd);
}

}  // namespace logcapture::agent::admin
