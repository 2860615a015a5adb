#include "agent/inputs/stdin_input.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <string>
#include <thread>

namespace {

using namespace logcapture;
using namespace logcapture::agent;
using namespace logcapture::base;
using namespace std::chrono_literals;

config::InputConfig stdinConfig() {
  config::InputConfig cfg;
  cfg.name = "pipe";
  cfg.type = config::InputType::Stdin;
  return cfg;
}

std::vector<std::string> drain(RecordQueue& q) {
  std::vector<std::string> out;
  Chunk c;
  while (q.pop(c, 0ms)) {
    for (auto& r : c.records) out.emplace_back(r.message);
  }
  return out;
}

}  // namespace

TEST_CASE("stdin is read to EOF, the unfinished last line included, and then reports finished") {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  RecordQueue q(config::QueueConfig{});
  StdinInput input(stdinConfig(), q, fds[0]);
  REQUIRE(input.start());
  const std::string text = "one\ntwo\nthree";
  REQUIRE(write(fds[1], text.data(), text.size()) == static_cast<ssize_t>(text.size()));
  close(fds[1]);
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!input.finished() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(5ms);
  REQUIRE(input.finished());
  CHECK(drain(q) == std::vector<std::string>{"one", "two", "three"});
  CHECK(input.stats().records.load() == 3);
  CHECK(input.stats().partialLines.load() == 1);
  input.stop(std::chrono::steady_clock::now() + 1s);
  close(fds[0]);
}

TEST_CASE("stopping stdin flushes a held line and does not wait for EOF") {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  RecordQueue q(config::QueueConfig{});
  StdinInput input(stdinConfig(), q, fds[0]);
  REQUIRE(input.start());
  REQUIRE(write(fds[1], "a\nb", 3) == 3);
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (input.stats().bytes.load() < 3 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  input.stop(std::chrono::steady_clock::now() + 1s);
  CHECK(drain(q) == std::vector<std::string>{"a", "b"});
  CHECK(input.stats().partialLines.load() == 1);
  CHECK_FALSE(input.finished());
  close(fds[1]);
  close(fds[0]);
}

TEST_CASE("a queue full for longer than the partial-line timeout splits no stdin line") {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  config::QueueConfig qc;
  qc.maxRecords = 10;
  qc.whenFull = config::WhenFull::Block;
  RecordQueue q(qc);
  constexpr auto kPartialLine = 100ms;
  StdinInput input(stdinConfig(), q, fds[0], kPartialLine);
  REQUIRE(input.start());
  // Lines of 7 bytes: the pipe hands them over in pieces of its own size, most ending inside a line.
  constexpr int kLines = 100000;
  std::string text;
  std::vector<std::string> expected;
  for (int i = 0; i < kLines; ++i) {
    std::string n = std::to_string(i % 1000000);
    n = std::string(6 - n.size(), '0') + n;
    text += n + "\n";
    expected.push_back(n);
  }
  std::thread writer([&] {
    for (std::size_t done = 0; done < text.size();) {
      const auto n = write(fds[1], text.data() + done, text.size() - done);
      if (n <= 0) break;
      done += static_cast<std::size_t>(n);
    }
    close(fds[1]);
  });
  // The reader is held back by the full queue for longer than the timeout, while the pipe holds more.
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!q.blocked() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(5ms);
  REQUIRE(q.blocked());
  std::this_thread::sleep_for(3 * kPartialLine);
  std::vector<std::string> got;
  Chunk c;
  while (got.size() < expected.size() && std::chrono::steady_clock::now() < deadline + 20s) {
    if (!q.pop(c, 10ms)) continue;
    for (auto& r : c.records) got.emplace_back(r.message);
  }
  writer.join();
  CHECK(got == expected);
  CHECK(input.stats().partialLines.load() == 0);
  input.stop(std::chrono::steady_clock::now() + 1s);
  close(fds[0]);
}

TEST_CASE("a standard input that is not an open descriptor ends the input instead of spinning") {
  // As `logcapture run <&-` leaves it: poll() answers POLLNVAL at once, every time.
  const int closed = 0x3fffffff;
  REQUIRE(fcntl(closed, F_GETFD) == -1);
  RecordQueue q(config::QueueConfig{});
  StdinInput input(stdinConfig(), q, closed);
  REQUIRE(input.start());
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!input.finished() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(5ms);
  CHECK(input.finished());
  input.stop(std::chrono::steady_clock::now() + 1s);
}

TEST_CASE("new settings reach a stdin input in place: the line being written is not cut, and carries them") {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  RecordQueue q(config::QueueConfig{});
  StdinInput input(stdinConfig(), q, fds[0]);
  REQUIRE(input.start());
  REQUIRE(write(fds[1], "before\nhello wor", 16) == 16);
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (input.stats().bytes.load() < 16 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  REQUIRE(input.stats().bytes.load() == 16);
  auto next = stdinConfig();
  next.fields = {{"generation", "two"}};
  REQUIRE(input.reconfigure(next));
  auto other = stdinConfig();
  other.name = "renamed";
  CHECK_FALSE(input.reconfigure(other));  // another input: the pipeline rebuilds instead
  REQUIRE(write(fds[1], "ld\nafter\n", 9) == 9);
  close(fds[1]);
  while (!input.finished() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(5ms);
  REQUIRE(input.finished());
  std::vector<std::pair<std::string, std::string>> got;  // message, its generation field
  Chunk c;
  while (q.pop(c, 0ms)) {
    for (auto& r : c.records) {
      const auto& fields = *c.source->fields;
      got.emplace_back(r.message, fields.count("generation") ? fields.at("generation") : "");
    }
  }
  CHECK(got ==
        std::vector<std::pair<std::string, std::string>>{{"before", ""}, {"hello world", "two"}, {"after", "two"}});
  CHECK(input.stats().partialLines.load() == 0);
  input.stop(std::chrono::steady_clock::now() + 1s);
  close(fds[0]);
}

TEST_CASE("stopping a stdin input the full queue holds back returns at its deadline and counts what is lost") {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  config::QueueConfig qc;
  qc.maxRecords = 1;
  qc.whenFull = config::WhenFull::Block;
  RecordQueue q(qc);
  Chunk full;
  full.records.emplace_back();
  REQUIRE(q.push(std::move(full)) == RecordQueue::PushResult::Accepted);
  StdinInput input(stdinConfig(), q, fds[0]);
  REQUIRE(input.start());
  REQUIRE(write(fds[1], "a\nb\n", 4) == 4);
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!q.blocked() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(5ms);
  REQUIRE(q.blocked());
  const auto before = std::chrono::steady_clock::now();
  input.stop(before + 200ms);
  CHECK(std::chrono::steady_clock::now() - before < 5s);
  CHECK(input.stats().unqueuedAtStop.load() == 2);
  close(fds[1]);
  close(fds[0]);
}
