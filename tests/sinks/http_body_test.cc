#include "sinks/http/http_body.h"

#include <doctest/doctest.h>
#include <zlib.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "sinks/encoding.h"
#include "tests/support/records.h"

namespace {

using namespace logcapture;
using agent::Record;
using agent::Source;
using circuit::Outcome;
using sinks::http::BodyBuilder;
using sinks::http::Format;
using sinks::http::HttpConfig;

std::shared_ptr<const Source> source(const std::string& app) {
  auto s = std::make_shared<Source>();
  s->input = "app";
  s->fields =
      std::make_shared<const std::map<std::string, std::string>>(std::map<std::string, std::string>{{"app", app}});
  return s;
}

Record record(std::string message, const std::string& app = "web", std::int64_t ns = 1704067200000000001) {
  Record r;
  r.message = testing::keptText(message);
  r.time = std::chrono::system_clock::time_point(std::chrono::nanoseconds(ns));
  r.source = testing::keptSource(source(app));
  return r;
}

sinks::Batch batchOf(const std::vector<Record>& records, config::Encoding encoding) {
  sinks::Batch b;
  for (const auto& r : records) {
    sinks::appendRecord(b.encoded, r, encoding);
    b.seal(&r);
  }
  return b;
}

std::string body(const HttpConfig& cfg, const std::vector<Record>& records,
                 config::Encoding encoding = config::Encoding::Json) {
  std::string out = "stale";
  BodyBuilder(cfg, encoding).build(batchOf(records, encoding), out);
  return out;
}

HttpConfig withFormat(Format f) {
  HttpConfig cfg;
  cfg.format = f;
  return cfg;
}

}  // namespace

TEST_CASE("an ndjson body is each record followed by a newline") {
  const std::vector<Record> records{record("a"), record("b")};
  CHECK(body(withFormat(Format::Ndjson), records, config::Encoding::Raw) == "a\nb\n");
  CHECK(BodyBuilder(withFormat(Format::Ndjson), config::Encoding::Raw).contentType() == "application/x-ndjson");
}

TEST_CASE("a json_array body is a JSON array of the records") {
  const std::vector<Record> records{record("a"), record("b")};
  const auto j = nlohmann::json::parse(body(withFormat(Format::JsonArray), records));
  REQUIRE(j.size() == 2);
  CHECK(j[0]["message"] == "a");
  CHECK(j[1]["message"] == "b");
  CHECK(BodyBuilder(withFormat(Format::JsonArray), config::Encoding::Json).contentType() == "application/json");
}

TEST_CASE("raw records travel as JSON strings in a json_array body") {
  const std::vector<Record> records{record("say \"hi\""), record("[not json")};
  const auto j = nlohmann::json::parse(body(withFormat(Format::JsonArray), records, config::Encoding::Raw));
  CHECK(j == nlohmann::json::array({"say \"hi\"", "[not json"}));
}

TEST_CASE("an es_bulk body pairs an action naming the rendered index with each record") {
  auto cfg = withFormat(Format::EsBulk);
  cfg.index = "logs-{{app}}";
  const std::vector<Record> records{record("a", "web"), record("b", "db")};
  const std::string text = body(cfg, records);
  REQUIRE(text.back() == '\n');
  std::vector<nlohmann::json> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  REQUIRE(lines.size() == 4);
  CHECK(lines[0] == nlohmann::json::parse(R"({"index":{"_index":"logs-web"}})"));
  CHECK(lines[1]["message"] == "a");
  CHECK(lines[2]["index"]["_index"] == "logs-db");
  CHECK(lines[3]["message"] == "b");
}

TEST_CASE("an es_bulk body wraps a raw line in an object") {
  auto cfg = withFormat(Format::EsBulk);
  CHECK(body(cfg, {record("plain")}, config::Encoding::Raw) ==
        "{\"index\":{\"_index\":\"logcapture\"}}\n{\"message\":\"plain\"}\n");
}

TEST_CASE("a loki body groups records by rendered labels and keeps batch order within a stream") {
  auto cfg = withFormat(Format::Loki);
  cfg.labels = {{"job", "logcapture"}, {"app", "{{app}}"}};
  const std::vector<Record> records{record("w1", "web", 1000), record("d1", "db", 2000), record("w2", "web", 3000)};
  const auto j = nlohmann::json::parse(body(cfg, records, config::Encoding::Raw));
  REQUIRE(j["streams"].size() == 2);
  CHECK(j["streams"][0]["stream"] == nlohmann::json::parse(R"({"app":"web","job":"logcapture"})"));
  CHECK(j["streams"][0]["values"] == nlohmann::json::parse(R"([["1000","w1"],["3000","w2"]])"));
  CHECK(j["streams"][1]["stream"]["app"] == "db");
  CHECK(j["streams"][1]["values"] == nlohmann::json::parse(R"([["2000","d1"]])"));
}

TEST_CASE("a loki line carries a json record as its text") {
  auto cfg = withFormat(Format::Loki);
  cfg.labels = {{"job", "x"}};
  const auto j = nlohmann::json::parse(body(cfg, {record("hello")}));
  const auto line = j["streams"][0]["values"][0][1].get<std::string>();
  CHECK(nlohmann::json::parse(line)["message"] == "hello");
}

TEST_CASE("a gzip body inflates back to the original") {
  std::string original;
  for (int i = 0; i < 1000; ++i) original += "line " + std::to_string(i) + "\n";
  std::string packed;
  REQUIRE_FALSE(sinks::http::gzip(original, packed).has_value());
  CHECK(packed.size() < original.size() / 2);
  REQUIRE(packed.size() > 2);
  CHECK(static_cast<unsigned char>(packed[0]) == 0x1f);
  CHECK(static_cast<unsigned char>(packed[1]) == 0x8b);

  z_stream z{};
  REQUIRE(inflateInit2(&z, 15 + 16) == Z_OK);
  std::string unpacked(original.size() + 16, '\0');
  z.next_in = reinterpret_cast<Bytef*>(packed.data());
  z.avail_in = static_cast<uInt>(packed.size());
  z.next_out = reinterpret_cast<Bytef*>(unpacked.data());
  z.avail_out = static_cast<uInt>(unpacked.size());
  CHECK(inflate(&z, Z_FINISH) == Z_STREAM_END);
  unpacked.resize(z.total_out);
  inflateEnd(&z);
  CHECK(unpacked == original);
}

TEST_CASE("HTTP statuses map to 2xx success, 408 and 5xx retriable, 429 throttled, other permanent") {
  using sinks::http::classifyStatus;
  CHECK(classifyStatus(200) == Outcome::Success);
  CHECK(classifyStatus(204) == Outcome::Success);
  CHECK(classifyStatus(408) == Outcome::Retriable);
  CHECK(classifyStatus(500) == Outcome::Retriable);
  CHECK(classifyStatus(503) == Outcome::Retriable);
  CHECK(classifyStatus(429) == Outcome::Throttled);
  CHECK(classifyStatus(400) == Outcome::Permanent);
  CHECK(classifyStatus(401) == Outcome::Permanent);
  CHECK(classifyStatus(413) == Outcome::Permanent);
  CHECK(classifyStatus(301) == Outcome::Permanent);
}

TEST_CASE("Retry-After is read as seconds or as an HTTP date") {
  using sinks::http::parseRetryAfter;
  using std::chrono::milliseconds;
  const auto now = std::chrono::system_clock::from_time_t(784111777);  // Sun, 06 Nov 1994 08:49:37 GMT
  CHECK(parseRetryAfter(" 2\r\n", now) == milliseconds(2000));
  CHECK(parseRetryAfter("Sun, 06 Nov 1994 08:49:47 GMT", now) == milliseconds(10000));
  CHECK(parseRetryAfter("Sun, 06 Nov 1994 08:49:00 GMT", now) == milliseconds(0));
  CHECK_FALSE(parseRetryAfter("soon", now).has_value());
  CHECK_FALSE(parseRetryAfter("", now).has_value());
}

TEST_CASE("a Retry-After date past the range of the clock is a delay of a day, not of nothing") {
  using sinks::http::parseRetryAfter;
  using std::chrono::milliseconds;
  const auto now = std::chrono::system_clock::from_time_t(784111777);  // Sun, 06 Nov 1994 08:49:37 GMT
  CHECK(parseRetryAfter("Sat, 01 Jan 2300 00:00:00 GMT", now) == milliseconds(86400 * 1000));
  // The input the http_response fuzz target found (tests/fuzz/corpus/http_response/retry_after_year_210200).
  CHECK(parseRetryAfter("Fri- 31 Dec 210200", now) == milliseconds(86400 * 1000));
}

TEST_CASE("a bulk answer without errors is a plain success") {
  const auto r = sinks::http::readBulkResponse(R"({"took":1,"errors":false,"items":[{"index":{"status":201}}]})", 1);
  CHECK(r.outcome == Outcome::Success);
  CHECK(r.failures.empty());
}

TEST_CASE("a bulk answer with refused items lists only those, classed by their status") {
  const auto r = sinks::http::readBulkResponse(R"({"errors":true,"items":[
      {"index":{"status":201}},
      {"index":{"status":429,"error":{"type":"es_rejected_execution_exception","reason":"queue full"}}},
      {"create":{"status":400,"error":{"type":"mapper_parsing_exception","reason":"bad field"}}},
      {"index":{"status":503,"error":{"type":"unavailable_shards_exception","reason":"no shard"}}}]})",
                                               4);
  CHECK(r.outcome == Outcome::Success);
  REQUIRE(r.failures.size() == 3);
  CHECK(r.failures[0].index == 1);
  CHECK(r.failures[0].outcome == Outcome::Throttled);
  CHECK(r.failures[1].index == 2);
  CHECK(r.failures[1].outcome == Outcome::Permanent);
  CHECK(r.failures[1].error.find("mapper_parsing_exception") != std::string::npos);
  CHECK(r.failures[1].error.find("bad field") != std::string::npos);
  CHECK(r.failures[2].index == 3);
  CHECK(r.failures[2].outcome == Outcome::Retriable);
}

TEST_CASE("a bulk answer that cannot be matched to the batch fails the whole batch as retriable") {
  using sinks::http::readBulkResponse;
  CHECK(readBulkResponse(R"({"errors":true,"items":[{"index":{"status":500}}]})", 2).outcome == Outcome::Retriable);
  CHECK(readBulkResponse("<html>", 1).outcome == Outcome::Retriable);
}
