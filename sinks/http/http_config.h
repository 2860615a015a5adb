#pragma once

#include <map>
#include <memory>
#include <string>

#include "config/types.h"

namespace logcapture::config {
struct SinkConfig;
}
namespace logcapture::sinks {
class Sink;
}

namespace logcapture::sinks::http {

enum class Format { Ndjson, JsonArray, EsBulk, Loki };
constexpr auto enumNames(Format) {
  return std::array{std::pair{Format::Ndjson, "ndjson"}, std::pair{Format::JsonArray, "json_array"},
                    std::pair{Format::EsBulk, "es_bulk"}, std::pair{Format::Loki, "loki"}};
}
enum class Method { Post, Put };
constexpr auto enumNames(Method) { return std::array{std::pair{Method::Post, "POST"}, std::pair{Method::Put, "PUT"}}; }
enum class Compression { None, Gzip };
constexpr auto enumNames(Compression) {
  return std::array{std::pair{Compression::None, "none"}, std::pair{Compression::Gzip, "gzip"}};
}
enum class AuthStrategy { None, Basic, Bearer };
constexpr auto enumNames(AuthStrategy) {
  return std::array{std::pair{AuthStrategy::None, "none"}, std::pair{AuthStrategy::Basic, "basic"},
                    std::pair{AuthStrategy::Bearer, "bearer"}};
}

struct AuthConfig {
  AuthStrategy strategy = AuthStrategy::None;
  std::string user;
  std::string password;
  std::string token;
};
template <class V>
void describe(V& v, AuthConfig& c) {
  v.field("strategy", c.strategy, "none, basic (user, password) or bearer (token)");
  if (!v.ok("strategy")) return v.skipUnknownKeys();
  switch (c.strategy) {
    case AuthStrategy::None:
      v.noteForeignKeys("auth with strategy: basic", {"user", "password"});
      v.noteForeignKeys("auth with strategy: bearer", {"token"});
      break;
    case AuthStrategy::Basic:
      v.field("user", c.user, "user name", config::Flags{.required = true});
      v.field("password", c.password, "password", config::Flags{.secret = true});
      v.noteForeignKeys("auth with strategy: bearer", {"token"});
      break;
    case AuthStrategy::Bearer:
      v.field("token", c.token, "token", config::Flags{.required = true, .secret = true});
      v.noteForeignKeys("auth with strategy: basic", {"user", "password"});
      break;
  }
}

struct TlsConfig {
  bool verify = true;
  std::string caFile;
  std::string certFile;
  std::string keyFile;
};
template <class V>
void describe(V& v, TlsConfig& c) {
  v.field("verify", c.verify, "verify the server's certificate and host name");
  v.field("ca_file", c.caFile, "CA bundle (PEM); empty: the system's");
  v.field("cert_file", c.certFile, "client certificate (PEM) for mutual TLS");
  v.field("key_file", c.keyFile, "client key (PEM) for mutual TLS");
}
void check(config::Section& s, TlsConfig& c);

struct HttpConfig {
  static constexpr const char* kType = "http";  // the `type` key that selects these settings
  std::string url;
  Method method = Method::Post;
  Format format = Format::Ndjson;
  Compression compression = Compression::None;
  std::map<std::string, std::string> headers;
  AuthConfig auth;
  TlsConfig tls;
  std::string healthUrl;
  std::string index = "logcapture";
  std::map<std::string, std::string> labels;
};
template <class V>
void describe(V& v, HttpConfig& c) {
  v.field("url", c.url, "endpoint, http:// or https://", config::Flags{.required = true});
  v.field("method", c.method, "POST or PUT");
  v.field("format", c.format, "ndjson, json_array, es_bulk (Elasticsearch _bulk) or loki (push API)");
  v.field("compression", c.compression, "none or gzip (Content-Encoding)");
  v.field("headers", c.headers, "extra request headers");
  v.section("auth", c.auth);
  v.section("tls", c.tls);
  v.field("health_url", c.healthUrl, "URL probed with GET while half-open (breaker.probe); empty: url");
  if (!v.ok("format")) return v.skipUnknownKeys();
  switch (c.format) {
    case Format::EsBulk:
      v.field("index", c.index, "Elasticsearch index; may use {{field}}");
      v.noteForeignKeys("http sinks with format: loki", {"labels"});
      break;
    case Format::Loki:
      v.field("labels", c.labels, "Loki stream labels; values may use {{field}}");
      v.noteForeignKeys("http sinks with format: es_bulk", {"index"});
      break;
    case Format::Ndjson:
    case Format::JsonArray:
      v.noteForeignKeys("http sinks with format: es_bulk", {"index"});
      v.noteForeignKeys("http sinks with format: loki", {"labels"});
      break;
  }
}
void check(config::Section& s, HttpConfig& c);

// Builds the sink these settings are for, not yet started; defined beside it (http_sink.cc).
std::unique_ptr<Sink> build(const HttpConfig& settings, const config::SinkConfig& cfg);

}  // namespace logcapture::sinks::http
