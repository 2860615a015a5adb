#include "sinks/redis/redis_config.h"

#include "config/endpoint.h"
#include "config/section.h"

namespace logcapture::sinks::redis {

void check(config::Section& s, RedisConfig& c) {
  const bool socket = c.address.starts_with("unix:") || c.address.starts_with("/");
  if (socket) {
    if (c.address.starts_with("unix:")) c.address = "unix:" + s.resolvePath(c.address.substr(5));
  } else if (!config::parseEndpoint(c.address)) {
    s.error("address",
            "expected host:port such as 127.0.0.1:6379, or a unix socket as unix:/path, found '" + c.address + "'");
  }
  if (!s.ok("mode")) return;
  switch (c.mode) {
    case Mode::List:
    case Mode::Stream:
      if (c.key.empty()) {
        s.error("mode", std::string("mode: ") + std::string(config::enumName(c.mode)) +
                            " needs 'key', the name of the " + (c.mode == Mode::List ? "list" : "stream"));
      }
      if (s.has("channel")) s.error("channel", "'channel' only applies to mode: pubsub; use 'key'");
      break;
    case Mode::Pubsub:
      if (c.channel.empty()) s.error("mode", "mode: pubsub needs 'channel', the channel to PUBLISH to");
      if (s.has("key")) s.error("key", "'key' does not apply to mode: pubsub; use 'channel'");
      break;
  }
  if (s.has("maxlen") && c.mode != Mode::Stream) s.error("maxlen", "'maxlen' only applies to mode: stream");
  if (!c.username.empty() && c.password.empty()) {
    s.error("username", "an ACL user needs a 'password' as well");
  }
}

}  // namespace logcapture::sinks::redis
