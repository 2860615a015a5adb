#pragma once

// A real redis-server for tests: started on a free 127.0.0.1 port (and a unix socket) in its own
// temporary directory, with no persistence, and stoppable and startable again on the same port.
//
// Thread-safety: one test thread drives a RedisServer; command() uses one connection of its own and
// must not be called from several threads at once. Each RedisSubscriber is likewise single-threaded.
// Errors of the test harness itself (the server does not start, the helper connection fails) throw
// std::runtime_error, which fails the test case.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tests/support/fixtures.h"
#include "tests/support/process.h"

struct redisContext;

namespace logcapture::testing {

// A reply, copied out of hiredis so a test can hold and compare it.
struct RedisValue {
  enum class Type { Nil, Integer, String, Status, Error, Array };
  Type type = Type::Nil;
  long long integer = 0;
  std::string text;  // String, Status and Error replies
  std::vector<RedisValue> elements;

  bool isError() const { return type == Type::Error; }
  // The text of each element of an array reply (LRANGE), or of the reply itself.
  std::vector<std::string> strings() const;
};

struct RedisServerOptions {
  std::string password;                // --requirepass; command() authenticates with it
  std::vector<std::string> extraArgs;  // more redis-server options, e.g. {"--busy-reply-threshold", "100"}
};

class RedisServer {
 public:
  // Starts the server and waits until it answers PING.
  explicit RedisServer(RedisServerOptions options = {});
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  // Starts it again after stop(), on the same port and socket; returns once it answers PING, which
  // may be while it is still LOADING a dump.rdb that a SAVE left in dir().
  void start();
  // Shuts it down (SIGTERM) and waits for the process to exit; new connections are refused after.
  void stop();
  bool running() const { return process_ != nullptr; }

  std::uint16_t port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  const std::filesystem::path& socketPath() const { return socket_; }
  const std::filesystem::path& dir() const { return dir_.path; }

  // Sends one command on the fixture's own connection (database 0 unless `db` is given) and returns
  // the reply; error replies are returned as Type::Error. Reconnects after a stop()/start().
  RedisValue command(const std::vector<std::string>& args, std::uint32_t db = 0);

 private:
  redisContext* connection(std::uint32_t db);
  void dropConnection();

  RedisServerOptions options_;
  TempDir dir_{"logcapture-redis"};
  std::uint16_t port_;
  std::filesystem::path socket_;
  std::unique_ptr<ChildProcess> process_;
  redisContext* context_ = nullptr;
  std::uint32_t selectedDb_ = 0;
};

// A SUBSCRIBE connection that hands over the messages published to one channel, in order.
class RedisSubscriber {
 public:
  // Returns once the subscription is confirmed, so messages published after it are seen.
  RedisSubscriber(const RedisServer& server, const std::string& channel);
  ~RedisSubscriber();
  RedisSubscriber(const RedisSubscriber&) = delete;
  RedisSubscriber& operator=(const RedisSubscriber&) = delete;

  // The next message's payload, or nullopt when none arrives within the timeout.
  std::optional<std::string> next(std::chrono::milliseconds timeout = std::chrono::seconds(5));

 private:
  redisContext* context_ = nullptr;
};

}  // namespace logcapture::testing
