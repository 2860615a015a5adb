#include "agent/stdin_input.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <string>
#include <thread>

namespace {

using namespace logcapture;
using namespace logcapture::agent;
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
  CHECK_FALSE(input.finished());
  close(fds[1]);
  close(fds[0]);
}
