#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "config/types.h"

namespace logcapture::config {
struct SinkConfig;
}
namespace logcapture::sinks {
class Sink;
}

namespace logcapture::sinks::redis {

using namespace std::chrono_literals;

enum class Mode { List, Stream, Pubsub };
constexpr auto enumNames(Mode) {
  return std::array{std::pair{Mode::List, "list"}, std::pair{Mode::Stream, "stream"},
                    std::pair{Mode::Pubsub, "pubsub"}};
}

struct RedisConfig {
  static constexpr const char* kType = "redis";  // the `type` key that selects these settings
  std::string address = "127.0.0.1:6379";
  std::uint32_t db = 0;
  std::string username;
  std::string password;
  Mode mode = Mode::List;
  std::string key;
  std::string channel;
  std::uint64_t maxlen = 0;
  config::Duration connectTimeout = 5s;
};
template <class V>
void describe(V& v, RedisConfig& c) {
  v.field("address", c.address, "host:port, or the path of a unix socket (unix:/path or /path)");
  v.field("db", c.db, "database number (SELECT)", config::Limits<std::uint32_t>{.min = 0, .max = 65535});
  v.field("username", c.username, "ACL user; empty: the default user");
  v.field("password", c.password, "password (AUTH); empty: none", config::Flags{.secret = true});
  v.field("mode", c.mode, "list: RPUSH; stream: XADD; pubsub: PUBLISH");
  // Each mode declares only its own keys, so a key of another mode is reported where it stands.
  if (!v.ok("mode")) {
    v.skipUnknownKeys();
  } else {
    switch (c.mode) {
      case Mode::List:
        v.field("key", c.key, "the list to RPUSH to");
        v.noteForeignKeys("redis sinks in mode: pubsub", {"channel"});
        v.noteForeignKeys("redis sinks in mode: stream", {"maxlen"});
        break;
      case Mode::Stream:
        v.field("key", c.key, "the stream to XADD to");
        v.field("maxlen", c.maxlen, "approximate stream length cap, XADD MAXLEN ~; 0: none");
        v.noteForeignKeys("redis sinks in mode: pubsub", {"channel"});
        break;
      case Mode::Pubsub:
        v.field("channel", c.channel, "the channel to PUBLISH to");
        v.noteForeignKeys("redis sinks in mode: list or stream", {"key"});
        v.noteForeignKeys("redis sinks in mode: stream", {"maxlen"});
        break;
    }
  }
  v.field("connect_timeout", c.connectTimeout, "deadline of a connection attempt",
          config::Limits<config::Duration>{.min = 1ms, .max = 10min});
}
void check(config::Section& s, RedisConfig& c);

// Builds the sink these settings are for, not yet started; defined beside it (redis_sink.cc).
std::unique_ptr<Sink> build(const RedisConfig& settings, const config::SinkConfig& cfg);

}  // namespace logcapture::sinks::redis
