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
  if (s.ok("mode")) {
    if (c.mode == Mode::Pubsub && c.channel.empty()) {
      s.error("mode", "mode: pubsub needs 'channel', the channel to PUBLISH to");
    } else if (c.mode != Mode::Pubsub && c.key.empty()) {
      s.error("mode", std::string("mode: ") + std::string(config::enumName(c.mode)) + " needs 'key', the name of the " +
                          (c.mode == Mode::List ? "list" : "stream"));
    }
  }
  if (!c.username.empty() && c.password.empty()) {
    s.error("username", "an ACL user needs a 'password' as well");
  }
}

}  // namespace logcapture::sinks::redis
