#include "sinks/encoding.h"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "tests/support/records.h"

namespace {

using namespace logcapture;
using agent::Record;
using agent::Source;

Record record(std::string message) {
  Record r;
  r.message = testing::keptText(message);
  r.time = std::chrono::system_clock::time_point(std::chrono::nanoseconds(1704067200123456789));
  auto s = std::make_shared<Source>();
  s->input = "app";
  s->path = "/var/log/a.log";
  s->fields = std::make_shared<const std::map<std::string, std::string>>(
      std::map<std::string, std::string>{{"env", "prod"}, {"input", "not this"}});
  r.source = testing::keptSource(s);
  return r;
}

nlohmann::json encode(const Record& r) {
  std::string out;
  sinks::appendJsonRecord(out, r);
  return nlohmann::json::parse(out);
}

}  // namespace

TEST_CASE("a json record carries @timestamp, message, source and static fields") {
  const auto j = encode(record("hello \"world\"\n\ttab"));
  CHECK(j["@timestamp"] == "2024-01-01T00:00:00.123456789Z");
  CHECK(j["message"] == "hello \"world\"\n\ttab");
  CHECK(j["input"] == "app");
  CHECK(j["path"] == "/var/log/a.log");
  CHECK(j["env"] == "prod");
  CHECK_FALSE(j.contains("truncated"));
}

TEST_CASE("the record's own keys win over static fields of the same name") {
  CHECK(encode(record("x"))["input"] == "app");
}

TEST_CASE("invalid UTF-8 and control bytes still give valid JSON") {
  const auto j =
      encode(record(std::string("a\xff"
                                "b\x01",
                                4)));
  CHECK(j["message"] ==
        "a\xEF\xBF\xBD"
        "b\x01");
}

TEST_CASE("kubernetes fields, stream and truncation are encoded") {
  auto r = record("x");
  auto s = std::make_shared<Source>(*r.source);
  s->kubeNamespace = "ns";
  s->pod = "web-1";
  s->podUid = "uid";
  s->container = "nginx";
  s->containerId = "abc";
  r.source = testing::keptSource(s);
  r.stream = agent::Stream::Stderr;
  r.truncated = true;
  const auto j = encode(r);
  CHECK(j["kubernetes"]["pod"] == "web-1");
  CHECK(j["kubernetes"]["namespace"] == "ns");
  CHECK(j["stream"] == "stderr");
  CHECK(j["truncated"] == true);
}

TEST_CASE("a json input record's keys join the object and its message becomes the message") {
  auto r = record(R"({"message":"from app","level":"warn","env":"ignored","n":3})");
  r.json = true;
  const auto j = encode(r);
  CHECK(j["message"] == "from app");
  CHECK(j["level"] == "warn");
  CHECK(j["n"] == 3);
  CHECK(j["env"] == "prod");
}

TEST_CASE("records encoded one after another into one buffer stay separate") {
  auto a = record(R"({"message":"first"})");
  a.json = true;
  auto b = record(R"({"message":"second"})");
  b.json = true;
  std::string out;
  sinks::appendJsonRecord(out, a);
  out += '\n';
  sinks::appendJsonRecord(out, b);
  const auto nl = out.find('\n');
  CHECK(nlohmann::json::parse(out.substr(0, nl))["message"] == "first");
  CHECK(nlohmann::json::parse(out.substr(nl + 1))["message"] == "second");
}

TEST_CASE("raw encoding is the line alone") {
  std::string out;
  sinks::appendRecord(out, record("just the line"), config::Encoding::Raw);
  CHECK(out == "just the line");
}
