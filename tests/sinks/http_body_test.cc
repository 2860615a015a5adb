#include "sinks/http/http_body.h"

#include <curl/curl.h>
#include <doctest/doctest.h>
#include <zlib.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "sinks/encoding.h"
#include "tests/support/records.h"

namespace {

using namespace logcapture;
using base::Record;
using base::Source;
using sinks::Outcome;
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

// One row per status: what it means for a log shipper, and the class that follows.
struct StatusRow {
  long status;
  Outcome outcome;
};

TEST_CASE("an HTTP status is permanent only when the body caused it") {
  using sinks::http::classifyStatus;
  const std::vector<StatusRow> rows = {
      {100, Outcome::Retriable},
      {101, Outcome::Retriable},  // no final answer
      {200, Outcome::Success},
      {201, Outcome::Success},
      {202, Outcome::Success},
      {204, Outcome::Success},
      {299, Outcome::Success},
      // Redirects are not followed: the url is stale, which an operator fixes.
      {300, Outcome::Retriable},
      {301, Outcome::Retriable},
      {302, Outcome::Retriable},
      {303, Outcome::Retriable},
      {304, Outcome::Retriable},
      {307, Outcome::Retriable},
      {308, Outcome::Retriable},
      // What the body holds.
      {400, Outcome::Permanent},
      {413, Outcome::Permanent},
      {422, Outcome::Permanent},
      // Credentials.
      {401, Outcome::Retriable},
      {403, Outcome::Retriable},
      {407, Outcome::Retriable},
      // The url.
      {404, Outcome::Retriable},
      {405, Outcome::Retriable},
      {410, Outcome::Retriable},
      {414, Outcome::Retriable},
      {421, Outcome::Retriable},
      // Headers, format, compression: the config.
      {406, Outcome::Retriable},
      {411, Outcome::Retriable},
      {412, Outcome::Retriable},
      {415, Outcome::Retriable},
      {416, Outcome::Retriable},
      {417, Outcome::Retriable},
      {426, Outcome::Retriable},
      {428, Outcome::Retriable},
      {431, Outcome::Retriable},
      // The destination's state.
      {402, Outcome::Retriable},
      {408, Outcome::Retriable},
      {409, Outcome::Retriable},
      {423, Outcome::Retriable},
      {424, Outcome::Retriable},
      {425, Outcome::Retriable},
      {451, Outcome::Retriable},
      {429, Outcome::Throttled},
      {500, Outcome::Retriable},
      {501, Outcome::Retriable},
      {502, Outcome::Retriable},
      {503, Outcome::Retriable},
      {504, Outcome::Retriable},
      {505, Outcome::Retriable},
      {507, Outcome::Retriable},
      {511, Outcome::Retriable},
      // Codes no RFC defines.
      {0, Outcome::Retriable},
      {418, Outcome::Retriable},
      {499, Outcome::Retriable},
      {599, Outcome::Retriable},
      {600, Outcome::Retriable},
      {999, Outcome::Retriable},
  };
  for (const auto& row : rows) {
    CAPTURE(row.status);
    CHECK(classifyStatus(row.status) == row.outcome);
  }
}

TEST_CASE("a probe answered anything but 2xx or 405 fails in a class the breaker counts") {
  using sinks::http::classifyProbeStatus;
  const std::vector<StatusRow> rows = {
      {200, Outcome::Success},   {204, Outcome::Success},   {405, Outcome::Success},   {301, Outcome::Retriable},
      {400, Outcome::Retriable}, {401, Outcome::Retriable}, {403, Outcome::Retriable}, {404, Outcome::Retriable},
      {413, Outcome::Retriable}, {422, Outcome::Retriable}, {429, Outcome::Retriable}, {500, Outcome::Retriable},
      {503, Outcome::Retriable},
  };
  for (const auto& row : rows) {
    CAPTURE(row.status);
    CHECK(classifyProbeStatus(row.status) == row.outcome);
  }
}

TEST_CASE("a curl transfer error is retriable whatever its code") {
  using sinks::http::classifyTransfer;
  CHECK(classifyTransfer(CURLE_OK) == Outcome::Success);
  // Our url and TLS files, the network, the server's TLS, timeouts: none is the records' doing.
  for (const CURLcode rc : {CURLE_UNSUPPORTED_PROTOCOL,
                            CURLE_URL_MALFORMAT,
                            CURLE_COULDNT_RESOLVE_HOST,
                            CURLE_COULDNT_CONNECT,
                            CURLE_OPERATION_TIMEDOUT,
                            CURLE_SSL_CONNECT_ERROR,
                            CURLE_PEER_FAILED_VERIFICATION,
                            CURLE_SSL_CERTPROBLEM,
                            CURLE_SSL_CACERT_BADFILE,
                            CURLE_SEND_ERROR,
                            CURLE_RECV_ERROR,
                            CURLE_GOT_NOTHING,
                            CURLE_WEIRD_SERVER_REPLY,
                            CURLE_TOO_MANY_REDIRECTS,
                            CURLE_LOGIN_DENIED,
                            CURLE_AUTH_ERROR,
                            CURLE_OUT_OF_MEMORY,
                            CURLE_BAD_CONTENT_ENCODING,
                            CURLE_HTTP2,
                            CURLE_PROXY}) {
    CAPTURE(rc);
    CHECK(classifyTransfer(rc) == Outcome::Retriable);
  }
}

struct ItemRow {
  long status;
  std::string_view errorType;
  sinks::http::IndexSource index;
  Outcome outcome;
};

TEST_CASE("a bulk item is permanent when its document, or the index it named, was refused") {
  using sinks::http::IndexSource;
  const std::vector<ItemRow> rows = {
      {201, "", IndexSource::Config, Outcome::Success},
      {200, "", IndexSource::Record, Outcome::Success},
      {400, "mapper_parsing_exception", IndexSource::Config, Outcome::Permanent},
      {400, "illegal_argument_exception", IndexSource::Record, Outcome::Permanent},
      {409, "version_conflict_engine_exception", IndexSource::Config, Outcome::Permanent},
      {413, "", IndexSource::Config, Outcome::Permanent},
      // The index: the record's doing when the record named it, the config's otherwise.
      {404, "index_not_found_exception", IndexSource::Record, Outcome::Permanent},
      {404, "index_not_found_exception", IndexSource::Config, Outcome::Retriable},
      {403, "security_exception", IndexSource::Record, Outcome::Permanent},
      {403, "security_exception", IndexSource::Config, Outcome::Retriable},
      // A read-only index or a full disk blocks every document, whatever named the index.
      {403, "cluster_block_exception", IndexSource::Record, Outcome::Retriable},
      {429, "cluster_block_exception", IndexSource::Record, Outcome::Throttled},
      {401, "", IndexSource::Record, Outcome::Retriable},
      {429, "es_rejected_execution_exception", IndexSource::Config, Outcome::Throttled},
      {408, "", IndexSource::Config, Outcome::Retriable},
      {500, "", IndexSource::Config, Outcome::Retriable},
      {503, "unavailable_shards_exception", IndexSource::Record, Outcome::Retriable},
      {301, "", IndexSource::Config, Outcome::Retriable},
      {0, "", IndexSource::Config, Outcome::Retriable},
  };
  for (const auto& row : rows) {
    CAPTURE(row.status);
    CAPTURE(row.errorType);
    CHECK(sinks::http::classifyBulkItem(row.status, row.errorType, row.index) == row.outcome);
  }
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
  const std::vector<std::string> answers = {
      R"({"errors":true,"items":[{"index":{"status":500}}]})",  // one item for two records
      R"({"errors":true,"items":[{"index":{"status":500}},{"index":{"status":201}},{"index":{"status":201}}]})",
      "<html>",
      "",
      R"({"errors":true})",
      R"({"errors":true,"items":[{"index":{"status":201}},{"index":{}}]})",
      R"({"errors":true,"items":[{"index":{"status":"201"}},{"index":{"status":201}}]})",
      R"({"errors":true,"items":[{"index":201},{"index":{"status":201}}]})",
      R"({"errors":true,"items":[{"index":{"status":201}},{"index":{"status":201}}])",  // cut short
      R"({"errors":true,"items":[{"index":{"status":201}},{"index":{"status":201}}]}x)",
      R"({"errors":true,"items":[{"index":{"status":201}} {"index":{"status":201}}]})",
      R"({"errors":tru,"items":[]})",
      R"(["errors",true])",
      R"({"errors":true,"items":[{"index":{"status":201,"x":"a\u00zz"}},{"index":{"status":201}}]})",
  };
  for (const auto& answer : answers) {
    CAPTURE(answer);
    const auto r = readBulkResponse(answer, 2);
    CHECK(r.outcome == Outcome::Retriable);
    CHECK(r.failures.empty());
    CHECK(r.error.find("bulk answer") == 0);
  }
}

TEST_CASE("a bulk answer reads the same fed one byte at a time") {
  const std::string answer = R"({"took":3,"errors":true,"items":[
      {"index":{"_index":"logs","_id":"a\"b\\c","status":201,"_shards":{"total":2,"failed":0}}},
      {"create":{"status":400,"error":{"type":"mapper_parsing_exception","reason":"field [n] \"x\" \u00e9","caused_by":{"type":"x","reason":"y"}}}},
      {"index":{"status":[1,[2,{"deep":[]}]],"ignored":null}} ]})";
  sinks::http::BulkAnswerReader reader;
  reader.reset(3, sinks::http::IndexSource::Config);
  for (char c : answer) reader.feed(std::string_view(&c, 1));
  const auto r = reader.finish();
  // The third item's status is not a number: the answer cannot be matched.
  CHECK(r.outcome == Outcome::Retriable);

  const std::string good = R"({"took":3,"errors":true,"items":[
      {"index":{"_index":"logs","_id":"a\"b\\c","status":201,"_shards":{"total":2,"failed":0}}},
      {"create":{"status":400,"error":{"type":"mapper_parsing_exception","reason":"field [n] \"x\" \u00e9","caused_by":{"type":"x","reason":"y"}}}},
      {"index":{"status":503,"error":"no shard","extra":[1,[2,{"deep":[]}]]}} ]})";
  reader.reset(3, sinks::http::IndexSource::Config);
  for (char c : good) reader.feed(std::string_view(&c, 1));
  const auto ok = reader.finish();
  CHECK(ok.outcome == Outcome::Success);
  REQUIRE(ok.failures.size() == 2);
  CHECK(ok.failures[0].index == 1);
  CHECK(ok.failures[0].outcome == Outcome::Permanent);
  CHECK(ok.failures[0].error == R"(create status 400: mapper_parsing_exception: field [n] "x" \u00e9)");
  CHECK(ok.failures[1].index == 2);
  CHECK(ok.failures[1].outcome == Outcome::Retriable);
  CHECK(ok.failures[1].error == "index status 503: no shard");
}

TEST_CASE("a bulk answer of many megabytes is read without keeping it") {
  // 100,000 items padded to some 300 bytes each: a 30 MB answer, one item in a thousand refused.
  constexpr std::size_t kItems = 100000;
  const std::string padding(250, 'p');
  std::string answer = R"({"took":30,"errors":true,"items":[)";
  for (std::size_t i = 0; i < kItems; ++i) {
    if (i > 0) answer += ',';
    if (i % 1000 == 7) {
      answer += R"({"index":{"_id":")" + padding +
                R"(","status":400,"error":{"type":"mapper_parsing_exception","reason":"bad"}}})";
    } else {
      answer += R"({"index":{"_id":")" + padding + R"(","status":201}})";
    }
  }
  answer += "]}";
  REQUIRE(answer.size() > (16u << 20));
  sinks::http::BulkAnswerReader reader;
  reader.reset(kItems, sinks::http::IndexSource::Config);
  for (std::size_t at = 0; at < answer.size(); at += 16384) reader.feed(std::string_view(answer).substr(at, 16384));
  const auto r = reader.finish();
  CHECK(r.outcome == Outcome::Success);
  REQUIRE(r.failures.size() == kItems / 1000);
  CHECK(r.failures.front().index == 7);
  CHECK(r.failures.back().index == kItems - 1000 + 7);
}

TEST_CASE("a bulk answer nested without end is refused, not followed") {
  std::string answer = R"({"errors":true,"items":)";
  answer += std::string(1000000, '[');
  const auto r = sinks::http::readBulkResponse(answer, 1);
  CHECK(r.outcome == Outcome::Retriable);
  CHECK(r.error.find("nests too deep") != std::string::npos);
}

TEST_CASE("a bulk item refused for an index the record named is permanent, for the config's index retriable") {
  const std::string answer =
      R"({"errors":true,"items":[{"index":{"status":404,"error":{"type":"index_not_found_exception","reason":"no such index"}}}]})";
  CHECK(sinks::http::readBulkResponse(answer, 1, sinks::http::IndexSource::Record).failures.at(0).outcome ==
        Outcome::Permanent);
  CHECK(sinks::http::readBulkResponse(answer, 1, sinks::http::IndexSource::Config).failures.at(0).outcome ==
        Outcome::Retriable);
}
