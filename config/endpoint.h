#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace logcapture::config {

struct Endpoint {
  std::string host;  // without the brackets of an IPv6 literal
  std::uint16_t port = 0;
};

// "host:port", "1.2.3.4:80", "[::1]:9092"; nullopt when malformed or the port is not 1-65535.
std::optional<Endpoint> parseEndpoint(std::string_view text);

}  // namespace logcapture::config
