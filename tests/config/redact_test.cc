// Secrets kept out of `check --print` and of config errors: the rules of config/redact.h, and the
// printed config of sinks that carry secrets in properties, headers and URLs.

#include "config/redact.h"

#include <doctest/doctest.h>
#include <yaml-cpp/yaml.h>

#include <string>

#include "config/loader.h"
#include "config/printer.h"

namespace {

using namespace logcapture::config;

Config load(const std::string& sinks) {
  const std::string text = "inputs:\n  - {name: a, type: stdin}\nsinks:\n" + sinks;
  try {
    return loadString(text, "test.yaml", "/etc/logcapture", [](const std::string&) { return std::nullopt; }).config;
  } catch (const ConfigError& e) {
    FAIL("rejected: " << std::string(e.what()));
  }
  return {};
}

// The errors of a config that must be rejected, one per line.
std::string errorsOf(const std::string& sinks) {
  try {
    loadString("inputs:\n  - {name: a, type: stdin}\nsinks:\n" + sinks, "test.yaml", "/etc/logcapture",
               [](const std::string&) { return std::nullopt; });
  } catch (const ConfigError& e) {
    std::string out;
    for (const auto& d : e.errors()) out += d.format() + "\n";
    return out;
  }
  FAIL("the config loaded, but it should have been rejected");
  return {};
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("names that say they hold a secret are secret names, whatever their case and separators") {
  for (const char* name : {"password",
                           "sasl.password",
                           "ssl.key.password",
                           "ssl.keystore.password",
                           "sasl.oauthbearer.client.secret",
                           "client_secret",
                           "accessToken",
                           "X-Auth-Token",
                           "Authorization",
                           "api_key",
                           "API-Key",
                           "x-api-key",
                           "ssl.key.pem",
                           "passwd",
                           "pwd",
                           "X-Amz-Signature",
                           "X-Amz-Credential",
                           "sig",
                           "Cookie",
                           "private_key",
                           "secret_key"}) {
    CAPTURE(name);
    CHECK(isSecretName(name));
  }
  for (const char* name : {"key", "key_file", "ssl.key.location", "compression.type", "topic", "user", "username",
                           "session.timeout.ms", "client.id", "acks", "index", "env", "host"}) {
    CAPTURE(name);
    CHECK_FALSE(isSecretName(name));
  }
}

TEST_CASE("every header may carry a credential but those known to carry none") {
  for (const char* name : {"Authorization", "X-Honeycomb-Team", "DD-API-KEY", "X-Custom", "Cookie"}) {
    CAPTURE(name);
    CHECK(isCredentialHeader(name));
  }
  for (const char* name : {"Content-Type", "accept", "User-Agent", "X-Scope-OrgID"}) {
    CAPTURE(name);
    CHECK_FALSE(isCredentialHeader(name));
  }
}

TEST_CASE("a URL loses the password of its userinfo and keeps the rest") {
  CHECK(redactUrl("https://elastic:changeme@es.example:9200/_bulk") ==
        "https://elastic:<redacted>@es.example:9200/_bulk");
  CHECK(redactUrl("https://ghp_abc123@example.com/x") == "https://<redacted>@example.com/x");
  CHECK(redactUrl("http://h:1/p@q") == "http://h:1/p@q");  // an @ in the path is no userinfo
  CHECK(redactUrl("http://127.0.0.1:9200/_bulk") == "http://127.0.0.1:9200/_bulk");
  CHECK(redactUrl("127.0.0.1:6379") == "127.0.0.1:6379");
  CHECK(redactUrl("") == "");
}

TEST_CASE("a URL loses the values of secret-looking query parameters and keeps the others") {
  CHECK(redactUrl("https://h/in?api_key=s3cr3t&pretty=true") == "https://h/in?api_key=<redacted>&pretty=true");
  CHECK(redactUrl("https://h/in?key=AIza&x=1#top") == "https://h/in?key=<redacted>&x=1#top");
  CHECK(redactUrl("https://b.blob/c?sv=2020&sig=abc%2F&se=2030") == "https://b.blob/c?sv=2020&sig=<redacted>&se=2030");
  CHECK(redactUrl("https://s3/o?X-Amz-Credential=AK%2F&X-Amz-Signature=f00") ==
        "https://s3/o?X-Amz-Credential=<redacted>&X-Amz-Signature=<redacted>");
  CHECK(redactUrl("https://h/in?access_token=t&flag") == "https://h/in?access_token=<redacted>&flag");
}

TEST_CASE("check --print redacts librdkafka properties whose names say they hold secrets") {
  const Config config = load(
      "  - {name: k, type: kafka, brokers: ['127.0.0.1:9092'], topic: t, properties: {sasl.password: kafka-pw-1, "
      "ssl.key.password: kafka-pw-2, ssl.keystore.password: kafka-pw-3, ssl.key.pem: kafka-pw-4, "
      "sasl.username: alice, compression.type: lz4}}\n");
  const std::string printed = toYaml(config);
  INFO("printed:\n" << printed);
  for (const char* secret : {"kafka-pw-1", "kafka-pw-2", "kafka-pw-3", "kafka-pw-4"}) {
    CHECK_MESSAGE(!contains(printed, secret), secret << " is printed");
  }
  const YAML::Node properties = YAML::Load(printed)["sinks"][0]["properties"];
  CHECK(properties["sasl.password"].as<std::string>() == "<redacted>");
  CHECK(properties["sasl.username"].as<std::string>() == "alice");
  CHECK(properties["compression.type"].as<std::string>() == "lz4");
}

TEST_CASE("check --print redacts every http header but those known to carry no credential") {
  const Config config = load(
      "  - {name: h, type: http, url: 'http://h/', headers: {Authorization: 'ApiKey hdr-secret-1', "
      "X-Honeycomb-Team: hdr-secret-2, DD-API-KEY: hdr-secret-3, Content-Type: application/x-ndjson, "
      "X-Scope-OrgID: tenant-a}}\n");
  const std::string printed = toYaml(config);
  INFO("printed:\n" << printed);
  for (const char* secret : {"hdr-secret-1", "hdr-secret-2", "hdr-secret-3"}) {
    CHECK_MESSAGE(!contains(printed, secret), secret << " is printed");
  }
  const YAML::Node headers = YAML::Load(printed)["sinks"][0]["headers"];
  CHECK(headers["Authorization"].as<std::string>() == "<redacted>");
  CHECK(headers["Content-Type"].as<std::string>() == "application/x-ndjson");
  CHECK(headers["X-Scope-OrgID"].as<std::string>() == "tenant-a");
}

TEST_CASE("check --print redacts credentials inside url and health_url") {
  const Config config = load(
      "  - {name: h, type: http, url: 'https://elastic:url-secret-1@es:9200/_bulk?api_key=url-secret-2&pretty=true', "
      "health_url: 'https://probe:url-secret-3@es:9200/', format: es_bulk}\n");
  const std::string printed = toYaml(config);
  INFO("printed:\n" << printed);
  for (const char* secret : {"url-secret-1", "url-secret-2", "url-secret-3"}) {
    CHECK_MESSAGE(!contains(printed, secret), secret << " is printed");
  }
  const YAML::Node sink = YAML::Load(printed)["sinks"][0];
  CHECK(sink["url"].as<std::string>() == "https://elastic:<redacted>@es:9200/_bulk?api_key=<redacted>&pretty=true");
  CHECK(sink["health_url"].as<std::string>() == "https://probe:<redacted>@es:9200/");
  // What --print shows still checks clean.
  CHECK_NOTHROW(loadString(printed, "printed.yaml", "/etc/logcapture"));
}

TEST_CASE("a config error about a secret value does not quote the value") {
  const std::string errors = errorsOf(
      "  - {name: k, type: kafka, brokers: ['127.0.0.1:9092'], topic: t, properties: {sasl.password: 'pw-1${x'}}\n"
      "  - {name: h, type: http, url: 'http://h/', auth: {strategy: basic, user: u, password: 'pw-2${y'}, "
      "headers: {X-Api-Token: 'pw-3${z'}}\n");
  INFO("errors:\n" << errors);
  CHECK(contains(errors, "unterminated ${"));
  for (const char* secret : {"pw-1", "pw-2", "pw-3"}) CHECK_MESSAGE(!contains(errors, secret), secret << " is shown");
}

TEST_CASE("an invalid http url is reported without the credentials in it") {
  const std::string errors = errorsOf("  - {name: h, type: http, url: 'ftp://user:url-pw@h/'}\n");
  INFO("errors:\n" << errors);
  CHECK(contains(errors, "ftp://user:<redacted>@h/"));
  CHECK_FALSE(contains(errors, "url-pw"));
}
