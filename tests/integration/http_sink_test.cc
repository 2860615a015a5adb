// The HTTP sink against the in-tree receiver (tools/http_receiver.cc), started on a free port.

#include "sinks/http/http_sink.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <nlohmann/json.hpp>
#include <thread>

#include "sinks/encoding.h"
#include "tests/support/fixtures.h"
#include "tests/support/http_receiver.h"

namespace {

using namespace logcapture;
using namespace std::chrono_literals;
using sinks::Outcome;
using sinks::http::Format;
using sinks::http::HttpConfig;
using sinks::http::HttpSink;

using Receiver = testing::HttpReceiver;

// Records and the batch pointing at them; the batch is encoded as the sink's encoding says.
struct Lines {
  std::vector<base::Record> records;
  base::RecordBytes bytes;  // what the records' messages view
  std::shared_ptr<base::Source> source = std::make_shared<base::Source>();
  sinks::Batch batch;

  explicit Lines(const std::vector<std::string>& messages, config::Encoding encoding = config::Encoding::Raw) {
    source->input = "app";
    for (const auto& m : messages) {
      base::Record r;
      r.message = bytes.copy(m);
      r.time = std::chrono::system_clock::now();
      r.source = source.get();
      records.push_back(std::move(r));
    }
    for (const auto& r : records) {
      sinks::appendRecord(batch.encoded, r, encoding);
      batch.seal(&r);
    }
  }
};

config::SinkConfig sinkConfig(HttpConfig http, config::Encoding encoding = config::Encoding::Raw) {
  config::SinkConfig cfg;
  cfg.name = "web";
  cfg.type = config::sinkTypeOf<sinks::http::HttpConfig>();
  cfg.encoding = encoding;
  cfg.workers = 2;
  cfg.timeout = 5s;
  cfg.settings = std::move(http);
  return cfg;
}

HttpConfig endpoint(const Receiver& receiver, const std::string& path = "/ingest", Format format = Format::Ndjson) {
  HttpConfig h;
  h.url = receiver.base() + path;
  h.format = format;
  return h;
}

base::Deadline in(std::chrono::milliseconds d) { return std::chrono::steady_clock::now() + d; }

// A started sink, stopped at the end of the test.
struct Started {
  HttpSink sink;
  explicit Started(const config::SinkConfig& cfg) : sink(cfg) { REQUIRE_FALSE(sink.start().has_value()); }
  ~Started() { sink.stop(in(1s)); }
  sinks::SendResult send(const sinks::Batch& b, std::chrono::milliseconds d = 5s) { return sink.send(b, in(d)); }
};

}  // namespace

TEST_CASE("an ndjson batch arrives whole and in order") {
  Receiver receiver;
  Started http(sinkConfig(endpoint(receiver)));
  Lines lines({"one", "two", "three"});
  const auto r = http.send(lines.batch);
  CHECK(r.outcome == Outcome::Success);
  CHECK(r.error.empty());
  CHECK(receiver.records() == std::vector<std::string>{"one", "two", "three"});
  CHECK(receiver.stats()["records"] == 3);
  CHECK(receiver.last()["headers"]["Content-Type"] == "application/x-ndjson");
  CHECK(http.sink.stats().requests == 1);
  CHECK(http.sink.stats().bytesSent == std::string("one\ntwo\nthree\n").size());
}

TEST_CASE("a json_array batch arrives as one array") {
  Receiver receiver;
  Started http(sinkConfig(endpoint(receiver, "/ingest", Format::JsonArray), config::Encoding::Json));
  Lines lines({"one", "two"}, config::Encoding::Json);
  CHECK(http.send(lines.batch).outcome == Outcome::Success);
  const auto got = receiver.records();
  REQUIRE(got.size() == 2);
  CHECK(nlohmann::json::parse(got[0])["message"] == "one");
  CHECK(nlohmann::json::parse(got[1])["message"] == "two");
  CHECK(receiver.last()["headers"]["Content-Type"] == "application/json");
}

TEST_CASE("an es_bulk batch arrives and every document is counted") {
  Receiver receiver;
  auto h = endpoint(receiver, "/_bulk", Format::EsBulk);
  h.index = "logs-{{input}}";
  Started http(sinkConfig(h, config::Encoding::Json));
  Lines lines({"a", "b", "c"}, config::Encoding::Json);
  const auto r = http.send(lines.batch);
  CHECK(r.outcome == Outcome::Success);
  CHECK(r.failures.empty());
  CHECK(receiver.stats()["records"] == 3);
  CHECK(nlohmann::json::parse(receiver.records()[2])["message"] == "c");
}

TEST_CASE("a loki batch goes to the push path and every value is counted") {
  Receiver receiver;
  auto h = endpoint(receiver, "", Format::Loki);
  h.labels = {{"job", "logcapture"}, {"input", "{{input}}"}};
  Started http(sinkConfig(h));
  Lines lines({"x", "y"});
  CHECK(http.send(lines.batch).outcome == Outcome::Success);
  CHECK(receiver.last()["path"] == "/loki/api/v1/push");
  CHECK(receiver.records() == std::vector<std::string>{"x", "y"});
}

TEST_CASE("a gzip body is sent compressed and arrives whole") {
  Receiver receiver;
  auto h = endpoint(receiver);
  h.compression = sinks::http::Compression::Gzip;
  Started http(sinkConfig(h));
  std::vector<std::string> messages(200, "the same line again and again");
  Lines lines(messages);
  CHECK(http.send(lines.batch).outcome == Outcome::Success);
  const auto last = receiver.last();
  CHECK(last["headers"]["Content-Encoding"] == "gzip");
  CHECK(std::stoull(last["content_length"].get<std::string>()) < lines.batch.bytes() / 4);
  CHECK(receiver.stats()["records"] == 200);
  CHECK(http.sink.stats().bytesSent < lines.batch.bytes() / 4);
}

TEST_CASE("basic auth sends the user and password") {
  Receiver receiver;
  auto h = endpoint(receiver);
  h.auth.strategy = sinks::http::AuthStrategy::Basic;
  h.auth.user = "shipper";
  h.auth.password = "s3cret";
  Started http(sinkConfig(h));
  Lines lines({"x"});
  CHECK(http.send(lines.batch).outcome == Outcome::Success);
  CHECK(receiver.last()["headers"]["Authorization"] == "Basic c2hpcHBlcjpzM2NyZXQ=");
}

TEST_CASE("bearer auth and extra headers are sent") {
  Receiver receiver;
  auto h = endpoint(receiver);
  h.auth.strategy = sinks::http::AuthStrategy::Bearer;
  h.auth.token = "tok-123";
  h.headers = {{"X-Tenant", "blue"}};
  Started http(sinkConfig(h));
  Lines lines({"x"});
  CHECK(http.send(lines.batch).outcome == Outcome::Success);
  const auto last = receiver.last();
  CHECK(last["headers"]["Authorization"] == "Bearer tok-123");
  CHECK(last["headers"]["X-Tenant"] == "blue");
}

TEST_CASE("method PUT is used when configured") {
  Receiver receiver;
  auto h = endpoint(receiver);
  h.method = sinks::http::Method::Put;
  Started http(sinkConfig(h));
  Lines lines({"x"});
  CHECK(http.send(lines.batch).outcome == Outcome::Success);
  CHECK(receiver.last()["method"] == "PUT");
  CHECK(receiver.stats()["records"] == 1);
}

TEST_CASE("successive batches reuse one connection") {
  Receiver receiver;
  Started http(sinkConfig(endpoint(receiver)));
  Lines lines({"x", "y"});
  for (int i = 0; i < 5; ++i) REQUIRE(http.send(lines.batch).outcome == Outcome::Success);
  CHECK(http.sink.stats().connections == 1);
  CHECK(receiver.stats()["connections"] == 1);
  CHECK(receiver.stats()["records"] == 10);
}

TEST_CASE("concurrent sends deliver every record exactly once over at most workers connections") {
  Receiver receiver;
  auto cfg = sinkConfig(endpoint(receiver));
  cfg.workers = 3;
  Started http(cfg);
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        Lines lines({"t" + std::to_string(t) + "-" + std::to_string(i)});
        if (http.send(lines.batch).outcome != Outcome::Success) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(failures == 0);
  auto got = receiver.records();
  std::sort(got.begin(), got.end());
  CHECK(std::adjacent_find(got.begin(), got.end()) == got.end());
  CHECK(got.size() == 60);
  CHECK(http.sink.stats().connections <= 3);
  CHECK(http.sink.stats().inFlight == 0);
}

TEST_CASE("a 503 answer is retriable and carries the Retry-After") {
  Receiver receiver;
  Started http(sinkConfig(endpoint(receiver)));
  receiver.control({{"status", 503}, {"retry_after", 2}, {"times", 1}});
  Lines lines({"x"});
  const auto r = http.send(lines.batch);
  CHECK(r.outcome == Outcome::Retriable);
  CHECK(r.retryAfter == std::chrono::milliseconds(2000));
  CHECK(r.error.find("503") != std::string::npos);
  CHECK(receiver.stats()["records"] == 0);
  CHECK(http.sink.stats().retriable == 1);
  CHECK(http.send(lines.batch).outcome == Outcome::Success);  // "times": 1 is over
}

TEST_CASE("a 429 answer is throttled") {
  Receiver receiver;
  Started http(sinkConfig(endpoint(receiver)));
  receiver.control({{"status", 429}, {"retry_after", 1}});
  Lines lines({"x"});
  const auto r = http.send(lines.batch);
  CHECK(r.outcome == Outcome::Throttled);
  CHECK(r.retryAfter == std::chrono::milliseconds(1000));
  CHECK(http.sink.stats().throttled == 1);
}

TEST_CASE("a 400 answer is permanent with the status and the body in the error") {
  Receiver receiver;
  Started http(sinkConfig(endpoint(receiver)));
  receiver.control({{"status", 400}});
  Lines lines({"x"});
  const auto r = http.send(lines.batch);
  CHECK(r.outcome == Outcome::Permanent);
  CHECK_FALSE(r.tooLarge);
  CHECK(r.error.find("HTTP 400") != std::string::npos);
  CHECK(r.error.find("told to fail") != std::string::npos);
  CHECK(http.sink.stats().permanent == 1);
}

TEST_CASE("a 401 answer is retriable: the credentials are at fault, not the records") {
  Receiver receiver;
  Started http(sinkConfig(endpoint(receiver)));
  for (const int status : {401, 403, 404}) {
    CAPTURE(status);
    receiver.control({{"status", status}, {"times", 1}});
    Lines lines({"x"});
    const auto r = http.send(lines.batch);
    CHECK(r.outcome == Outcome::Retriable);
    CHECK(r.error.find("HTTP " + std::to_string(status)) != std::string::npos);
  }
  CHECK(http.sink.stats().retriable == 3);
  CHECK(http.sink.stats().permanent == 0);
}

TEST_CASE("a redirect is not followed and is retriable") {
  Receiver receiver;
  Started http(sinkConfig(endpoint(receiver)));
  receiver.control({{"status", 301}, {"times", 1}});
  Lines lines({"x"});
  const auto r = http.send(lines.batch);
  CHECK(r.outcome == Outcome::Retriable);
  CHECK(r.error.find("HTTP 301") != std::string::npos);
  CHECK(receiver.stats()["requests"] == 1);
}

TEST_CASE("a 413 answer asks for a smaller batch") {
  Receiver receiver;
  Started http(sinkConfig(endpoint(receiver)));
  receiver.control({{"status", 413}});
  Lines lines({"x", "y"});
  const auto r = http.send(lines.batch);
  CHECK(r.outcome == Outcome::Permanent);
  CHECK(r.tooLarge);
}

TEST_CASE("refused bulk items are the only failures, each with the class of its status") {
  Receiver receiver;
  Started http(sinkConfig(endpoint(receiver, "/_bulk", Format::EsBulk), config::Encoding::Json));
  receiver.control(
      {{"fail_items", {1, {{"index", 2}, {"status", 429}}, {{"index", 3}, {"status", 400}}}}, {"item_status", 503}});
  Lines lines({"a", "b", "c", "d", "e"}, config::Encoding::Json);
  const auto r = http.send(lines.batch);
  CHECK(r.outcome == Outcome::Success);
  REQUIRE(r.failures.size() == 3);
  CHECK(r.failures[0].index == 1);
  CHECK(r.failures[0].outcome == Outcome::Retriable);
  CHECK(r.failures[1].index == 2);
  CHECK(r.failures[1].outcome == Outcome::Throttled);
  CHECK(r.failures[2].index == 3);
  CHECK(r.failures[2].outcome == Outcome::Permanent);
  CHECK(r.failures[2].error.find("injected_failure") != std::string::npos);
  CHECK(receiver.stats()["records"] == 2);
  CHECK(http.sink.stats().itemFailures == 3);
}

TEST_CASE("an es_bulk answer larger than 16 MiB is read item by item") {
  Receiver receiver;
  auto cfg = sinkConfig(endpoint(receiver, "/_bulk", Format::EsBulk), config::Encoding::Json);
  cfg.timeout = 30s;  // the receiver takes a while to write 20 MB under the thread sanitizer
  Started http(cfg);
  // 2,000 items of some 10 KB each: a 20 MB answer.
  receiver.control({{"fail_items", {5, 1999}}, {"item_status", 400}, {"pad_items", 10000}});
  std::vector<std::string> messages;
  for (int i = 0; i < 2000; ++i) messages.push_back("m" + std::to_string(i));
  Lines lines(messages, config::Encoding::Json);
  const auto r = http.send(lines.batch, 30s);
  CHECK_MESSAGE(r.outcome == Outcome::Success, r.error);
  REQUIRE(r.failures.size() == 2);
  CHECK(r.failures[0].index == 5);
  CHECK(r.failures[0].outcome == Outcome::Permanent);
  CHECK(r.failures[1].index == 1999);
  CHECK(r.failures[1].error.find("injected_failure") != std::string::npos);
  CHECK(receiver.stats()["records"] == 1998);
}

TEST_CASE("a receiver stalled beyond the deadline fails retriable at about the deadline") {
  Receiver receiver;
  Started http(sinkConfig(endpoint(receiver)));
  receiver.control({{"delay_ms", 3000}, {"times", 1}});
  Lines lines({"x"});
  const auto started = std::chrono::steady_clock::now();
  const auto r = http.send(lines.batch, 400ms);
  const auto took = std::chrono::steady_clock::now() - started;
  CHECK(r.outcome == Outcome::Retriable);
  CHECK(took >= 350ms);
  CHECK(took < 1500ms);
}

TEST_CASE("the sink's timeout caps a later deadline") {
  Receiver receiver;
  auto cfg = sinkConfig(endpoint(receiver));
  cfg.timeout = 300ms;
  Started http(cfg);
  receiver.control({{"delay_ms", 3000}, {"times", 1}});
  Lines lines({"x"});
  const auto started = std::chrono::steady_clock::now();
  CHECK(http.send(lines.batch, 10s).outcome == Outcome::Retriable);
  CHECK(std::chrono::steady_clock::now() - started < 1500ms);
}

TEST_CASE("nothing listening is retriable") {
  HttpConfig h;
  h.url = "http://127.0.0.1:" + std::to_string(testing::freePort()) + "/ingest";
  Started http(sinkConfig(h));
  Lines lines({"x"});
  const auto r = http.send(lines.batch, 2s);
  CHECK(r.outcome == Outcome::Retriable);
  CHECK_FALSE(r.error.empty());
  CHECK(http.sink.stats().retriable == 1);
}

TEST_CASE("a probe succeeds against an endpoint that only takes POST") {
  Receiver receiver;
  Started http(sinkConfig(endpoint(receiver)));
  CHECK(http.sink.probe(in(2s)).outcome == Outcome::Success);
  CHECK(receiver.last()["method"] == "GET");
  Lines lines({"after the probe"});
  CHECK(http.send(lines.batch).outcome == Outcome::Success);
  CHECK(receiver.last()["method"] == "POST");
  CHECK(receiver.records() == std::vector<std::string>{"after the probe"});
}

TEST_CASE("a probe of the health URL fails as its status says") {
  Receiver receiver;
  auto h = endpoint(receiver);
  h.healthUrl = receiver.base() + "/health";
  Started http(sinkConfig(h));
  receiver.control({{"status", 503}});
  CHECK(http.sink.probe(in(2s)).outcome == Outcome::Retriable);
  CHECK(receiver.last()["path"] == "/health");
}

TEST_CASE("a probe answered 429, 401 or 404 is retriable, so the breaker counts it") {
  Receiver receiver;
  Started http(sinkConfig(endpoint(receiver)));
  for (const int status : {429, 401, 404, 400}) {
    CAPTURE(status);
    receiver.control({{"status", status}, {"retry_after", 3}});
    const auto r = http.sink.probe(in(2s));
    CHECK(r.outcome == Outcome::Retriable);
    CHECK(r.error.find("HTTP " + std::to_string(status)) != std::string::npos);
    CHECK(r.retryAfter == std::chrono::milliseconds(3000));
  }
  receiver.control({{"status", 200}});
  CHECK(http.sink.probe(in(2s)).outcome == Outcome::Success);
}
