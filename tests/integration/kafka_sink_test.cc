// The Kafka sink against a real Kafka protocol endpoint: librdkafka's mock cluster, run by the
// logcapture-kafka-broker helper, which also injects broker-down and produce errors.

#include "sinks/kafka/kafka_sink.h"

#include <doctest/doctest.h>

#include <deque>
#include <map>
#include <memory>
#include <set>
#include <vector>

#include "sinks/encoding.h"
#include "tests/support/fixtures.h"
#include "tests/support/kafka_broker.h"

namespace {

using namespace logcapture;
using namespace std::chrono_literals;
using sinks::Batch;
using sinks::Outcome;
using sinks::kafka::KafkaSink;
using testing::KafkaBroker;
using Clock = std::chrono::steady_clock;

config::SinkConfig sinkConfig(const KafkaBroker& broker, std::string topic, std::string key = "",
                              std::map<std::string, std::string> properties = {}) {
  config::SinkConfig c;
  c.name = "events";
  c.type = config::sinkTypeOf<sinks::kafka::KafkaConfig>();
  c.encoding = config::Encoding::Raw;
  c.timeout = 5s;
  sinks::kafka::KafkaConfig k;
  k.brokers = broker.brokerList();
  k.topic = std::move(topic);
  k.key = std::move(key);
  k.properties = std::move(properties);
  c.settings = std::move(k);
  return c;
}

// Records and the batch pointing at them; the records live as long as this does.
class Records {
 public:
  std::shared_ptr<const base::Source> source(std::map<std::string, std::string> fields = {}) {
    auto s = std::make_shared<base::Source>();
    s->input = "app";
    s->fields = std::make_shared<const std::map<std::string, std::string>>(std::move(fields));
    return s;
  }
  void add(std::string message, std::shared_ptr<const base::Source> from = nullptr) {
    base::Record r;
    r.time = std::chrono::system_clock::now();
    r.message = bytes_.copy(message);
    sources_.push_back(from ? std::move(from) : source());
    r.source = sources_.back().get();
    records_.push_back(std::move(r));
    sinks::appendRecord(batch_.encoded, records_.back(), config::Encoding::Raw);
    batch_.seal(&records_.back());
  }
  void addMany(std::size_t n, const std::string& prefix = "line ") {
    for (std::size_t i = 0; i < n; ++i) add(prefix + std::to_string(i));
  }
  const Batch& batch() const { return batch_; }

 private:
  std::deque<base::Record> records_;  // stable addresses as records are added
  base::RecordBytes bytes_;           // what the records' messages view
  std::vector<std::shared_ptr<const base::Source>> sources_;
  Batch batch_;
};

// A started sink, stopped at the end of the scope.
struct RunningSink {
  explicit RunningSink(const config::SinkConfig& cfg) : sink(cfg) { REQUIRE_FALSE(sink.start().has_value()); }
  ~RunningSink() { sink.stop(Clock::now() + 5s); }
  sinks::SendResult send(const Batch& b, std::chrono::milliseconds within = 10s) {
    return sink.send(b, Clock::now() + within);
  }
  KafkaSink sink;
};

}  // namespace

TEST_CASE("a kafka error is permanent only when the record caused it, row by row") {
  using sinks::kafka::classify;
  using sinks::kafka::TopicSource;
  struct Row {
    rd_kafka_resp_err_t err;
    Outcome constantTopic;  // the topic is the config's
    Outcome recordTopic;    // the record chose the topic
  };
  constexpr Outcome S = Outcome::Success;
  constexpr Outcome R = Outcome::Retriable;
  constexpr Outcome P = Outcome::Permanent;
  const std::vector<Row> rows = {
      {RD_KAFKA_RESP_ERR_NO_ERROR, S, S},
      // The record: its size or content.
      {RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, P, P},
      {RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE, P, P},
      {RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE, P, P},
      {RD_KAFKA_RESP_ERR_INVALID_RECORD, P, P},
      {RD_KAFKA_RESP_ERR__BAD_MSG, P, P},
      {RD_KAFKA_RESP_ERR__KEY_SERIALIZATION, P, P},
      {RD_KAFKA_RESP_ERR__VALUE_SERIALIZATION, P, P},
      // The topic: the record's only when the record chose it.
      {RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART, R, P},
      {RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC, R, P},
      {RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION, R, P},
      {RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED, R, P},
      {RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION, R, P},
      {RD_KAFKA_RESP_ERR__INVALID_ARG, R, P},
      // The cluster, the network, our credentials, the producer.
      {RD_KAFKA_RESP_ERR_INVALID_MSG, R, R},
      {RD_KAFKA_RESP_ERR_INVALID_TIMESTAMP, R, R},
      {RD_KAFKA_RESP_ERR_POLICY_VIOLATION, R, R},
      {RD_KAFKA_RESP_ERR__MSG_TIMED_OUT, R, R},
      {RD_KAFKA_RESP_ERR__TIMED_OUT, R, R},
      {RD_KAFKA_RESP_ERR__TRANSPORT, R, R},
      {RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN, R, R},
      {RD_KAFKA_RESP_ERR__RESOLVE, R, R},
      {RD_KAFKA_RESP_ERR__SSL, R, R},
      {RD_KAFKA_RESP_ERR__AUTHENTICATION, R, R},
      {RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED, R, R},
      {RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED, R, R},
      {RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED, R, R},
      {RD_KAFKA_RESP_ERR__QUEUE_FULL, R, R},
      {RD_KAFKA_RESP_ERR__PURGE_QUEUE, R, R},
      {RD_KAFKA_RESP_ERR__PURGE_INFLIGHT, R, R},
      {RD_KAFKA_RESP_ERR__FATAL, R, R},
      {RD_KAFKA_RESP_ERR__FENCED, R, R},
      {RD_KAFKA_RESP_ERR__INCONSISTENT, R, R},
      {RD_KAFKA_RESP_ERR__GAPLESS_GUARANTEE, R, R},
      {RD_KAFKA_RESP_ERR__BAD_COMPRESSION, R, R},
      {RD_KAFKA_RESP_ERR__ISR_INSUFF, R, R},
      {RD_KAFKA_RESP_ERR__DESTROY, R, R},
      {RD_KAFKA_RESP_ERR__FAIL, R, R},
      {RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE, R, R},
      {RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, R, R},
      {RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, R, R},
      {RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION, R, R},
      {RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, R, R},
      {RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND, R, R},
      {RD_KAFKA_RESP_ERR_KAFKA_STORAGE_ERROR, R, R},
      {RD_KAFKA_RESP_ERR_INVALID_REQUIRED_ACKS, R, R},
      {RD_KAFKA_RESP_ERR_UNSUPPORTED_VERSION, R, R},
      {RD_KAFKA_RESP_ERR_UNSUPPORTED_FOR_MESSAGE_FORMAT, R, R},
      {RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER, R, R},
      {RD_KAFKA_RESP_ERR_DUPLICATE_SEQUENCE_NUMBER, R, R},
      {RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH, R, R},
      {RD_KAFKA_RESP_ERR_UNKNOWN_PRODUCER_ID, R, R},
      {RD_KAFKA_RESP_ERR_PRODUCER_FENCED, R, R},
      {RD_KAFKA_RESP_ERR_THROTTLING_QUOTA_EXCEEDED, R, R},
      {RD_KAFKA_RESP_ERR_UNKNOWN, R, R},
  };
  for (const auto& row : rows) {
    CAPTURE(rd_kafka_err2name(row.err));
    CHECK(classify(row.err, TopicSource::Config) == row.constantTopic);
    CHECK(classify(row.err, TopicSource::Record) == row.recordTopic);
  }
}

TEST_CASE("kafka sink delivers every record in order to a single-partition topic") {
  KafkaBroker broker({.topics = {"logs:1"}});
  RunningSink s(sinkConfig(broker, "logs"));
  Records r;
  r.addMany(200);
  const auto result = s.send(r.batch());
  CHECK(result.outcome == Outcome::Success);
  CHECK(result.failures.empty());
  const auto messages = broker.read("logs", 200);
  REQUIRE(messages.size() == 200);
  for (std::size_t i = 0; i < messages.size(); ++i) CHECK(messages[i].value == "line " + std::to_string(i));
  CHECK(s.sink.stats().delivered == 200);
  CHECK(s.sink.stats().inFlight == 0);
}

TEST_CASE("kafka sink delivers every keyless record exactly once to a 4-partition topic") {
  KafkaBroker broker({.topics = {"logs:4"}});
  RunningSink s(sinkConfig(broker, "logs"));
  constexpr std::size_t kBatches = 6;
  constexpr std::size_t kPerBatch = 1000;
  for (std::size_t b = 0; b < kBatches; ++b) {
    Records r;
    for (std::size_t i = 0; i < kPerBatch; ++i) r.add("line " + std::to_string(b * kPerBatch + i));
    REQUIRE(s.send(r.batch()).outcome == Outcome::Success);
  }
  const auto messages = broker.read("logs", kBatches * kPerBatch);
  std::map<std::string, int> copies;
  for (const auto& m : messages) ++copies[m.value];
  CHECK(copies.size() == kBatches * kPerBatch);
  for (std::size_t i = 0; i < kBatches * kPerBatch; ++i) CHECK(copies["line " + std::to_string(i)] == 1);
  CHECK(broker.messageCount("logs") == static_cast<std::int64_t>(kBatches * kPerBatch));
}

// Keyed records of several batches, each key's records numbered in the order they were sent.
struct KeyedRun {
  static constexpr std::size_t kKeys = 8;
  static constexpr std::size_t kBatches = 6;
  static constexpr std::size_t kPerBatch = 1000;
  std::vector<KafkaBroker::Message> messages;

  explicit KeyedRun(KafkaBroker& broker) {
    RunningSink s(sinkConfig(broker, "logs", "{{host}}"));
    std::vector<std::size_t> sent(kKeys, 0);
    for (std::size_t b = 0; b < kBatches; ++b) {
      Records r;
      std::vector<std::shared_ptr<const base::Source>> hosts;
      for (std::size_t k = 0; k < kKeys; ++k) hosts.push_back(r.source({{"host", "h" + std::to_string(k)}}));
      for (std::size_t i = 0; i < kPerBatch; ++i) {
        const std::size_t k = (i * 7 + b) % kKeys;
        r.add("h" + std::to_string(k) + " " + std::to_string(sent[k]++), hosts[k]);
      }
      REQUIRE(s.send(r.batch()).outcome == Outcome::Success);
    }
    messages = broker.read("logs", kBatches * kPerBatch);
  }
};

TEST_CASE("kafka sink delivers every keyed record exactly once to a 4-partition topic") {
  KafkaBroker broker({.topics = {"logs:4"}});
  const KeyedRun run(broker);
  std::map<std::string, int> copies;
  for (const auto& m : run.messages) ++copies[m.value];
  CHECK(copies.size() == KeyedRun::kBatches * KeyedRun::kPerBatch);
  for (const auto& [value, n] : copies) CHECK_MESSAGE(n == 1, value);
  CHECK(broker.messageCount("logs") == static_cast<std::int64_t>(KeyedRun::kBatches * KeyedRun::kPerBatch));
}

TEST_CASE("kafka sink keeps each key's records in one partition of a 4-partition topic, in the order sent") {
  KafkaBroker broker({.topics = {"logs:4"}});
  const KeyedRun run(broker);
  REQUIRE(run.messages.size() == KeyedRun::kBatches * KeyedRun::kPerBatch);
  std::map<std::string, std::int32_t> partitionOf;
  std::map<std::string, std::size_t> next;  // the number the key's next record must carry
  std::set<std::int32_t> used;
  for (const auto& m : run.messages) {  // partition by partition, in offset order
    REQUIRE(m.key.has_value());
    const auto [at, first] = partitionOf.emplace(*m.key, m.partition);
    CHECK_MESSAGE(at->second == m.partition, *m.key);
    CHECK(m.value == *m.key + " " + std::to_string(next[*m.key]++));
    used.insert(m.partition);
  }
  CHECK(partitionOf.size() == KeyedRun::kKeys);
  // Eight keys over four partitions: the records did spread, so the order held across partitions.
  CHECK(used.size() > 1);
}

TEST_CASE("kafka sink routes records to the topic and key rendered from their fields") {
  KafkaBroker broker({.topics = {"logs-web:1", "logs-db:1"}});
  RunningSink s(sinkConfig(broker, "logs-{{service}}", "{{host}}"));
  Records r;
  const auto web = r.source({{"service", "web"}, {"host", "h1"}});
  const auto db = r.source({{"service", "db"}, {"host", "h2"}});
  r.add("w1", web);
  r.add("d1", db);
  r.add("w2", web);
  CHECK(s.send(r.batch()).outcome == Outcome::Success);
  const auto webMessages = broker.read("logs-web", 2);
  const auto dbMessages = broker.read("logs-db", 1);
  REQUIRE(webMessages.size() == 2);
  REQUIRE(dbMessages.size() == 1);
  CHECK(webMessages[0].value == "w1");
  CHECK(webMessages[1].value == "w2");
  CHECK(webMessages[0].key == "h1");
  CHECK(dbMessages[0].value == "d1");
  CHECK(dbMessages[0].key == "h2");
}

TEST_CASE("a record without the topic template's field fails alone as permanent") {
  KafkaBroker broker({.topics = {"logs-web:1"}});
  RunningSink s(sinkConfig(broker, "logs-{{service}}"));
  Records r;
  r.add("routed", r.source({{"service", "web"}}));
  r.add("unrouted");
  const auto result = s.send(r.batch());
  CHECK(result.outcome == Outcome::Success);
  REQUIRE(result.failures.size() == 1);
  CHECK(result.failures[0].index == 1);
  CHECK(result.failures[0].outcome == Outcome::Permanent);
  CHECK(result.failures[0].error == "topic template field service missing");
  CHECK(broker.messageCount("logs-web") == 1);
}

TEST_CASE("a record over message.max.bytes fails alone as permanent and the others are delivered") {
  KafkaBroker broker({.topics = {"logs:1"}});
  RunningSink s(sinkConfig(broker, "logs", "", {{"message.max.bytes", "2000"}}));
  Records r;
  r.add("small 1");
  r.add(std::string(5000, 'x'));
  r.add("small 2");
  const auto result = s.send(r.batch());
  CHECK(result.outcome == Outcome::Success);
  REQUIRE(result.failures.size() == 1);
  CHECK(result.failures[0].index == 1);
  CHECK(result.failures[0].outcome == Outcome::Permanent);
  CHECK(result.failures[0].error.find("MSG_SIZE_TOO_LARGE") != std::string::npos);
  const auto messages = broker.read("logs", 2);
  REQUIRE(messages.size() == 2);
  CHECK(messages[0].value == "small 1");
  CHECK(messages[1].value == "small 2");
}

TEST_CASE("kafka sink is retriable by the deadline while the broker is down and delivers once it is up") {
  KafkaBroker broker({.topics = {"logs:1"}});
  RunningSink s(sinkConfig(broker, "logs"));
  Records warmup;
  warmup.add("before");
  REQUIRE(s.send(warmup.batch()).outcome == Outcome::Success);

  REQUIRE(broker.command("down 1") == "ok");
  Records during;
  during.addMany(10, "during ");
  const auto started = Clock::now();
  const auto down = s.send(during.batch(), 1s);
  CHECK(down.outcome == Outcome::Retriable);
  CHECK_FALSE(down.error.empty());
  CHECK(Clock::now() - started < 2s);

  REQUIRE(broker.command("up 1") == "ok");
  Records after;
  after.addMany(10, "after ");
  CHECK(s.send(after.batch()).outcome == Outcome::Success);
}

TEST_CASE("a produce error librdkafka retries itself ends in success") {
  KafkaBroker broker({.topics = {"logs:1"}});
  RunningSink s(sinkConfig(broker, "logs"));
  REQUIRE(broker.command("error produce NOT_LEADER_FOR_PARTITION 3") == "ok");
  Records r;
  r.addMany(5);
  CHECK(s.send(r.batch()).outcome == Outcome::Success);
  CHECK(broker.read("logs", 5).size() == 5);
}

// librdkafka keeps the refused topic in error until its next metadata refresh, so the sink going on
// is shown with a record for another topic.
TEST_CASE("a topic authorization error from the broker is permanent for its records and other topics go on") {
  KafkaBroker broker({.topics = {"logs:1", "audit:1"}});
  RunningSink s(sinkConfig(broker, "{{topic}}"));
  REQUIRE(broker.command("error produce TOPIC_AUTHORIZATION_FAILED 1") == "ok");
  Records refused;
  refused.add("refused", refused.source({{"topic", "logs"}}));
  const auto result = s.send(refused.batch());
  CHECK(result.outcome == Outcome::Permanent);
  CHECK(result.error.find("TOPIC_AUTHORIZATION_FAILED") != std::string::npos);

  Records next;
  next.add("accepted", next.source({{"topic", "audit"}}));
  const auto accepted = s.send(next.batch());
  CHECK_MESSAGE(accepted.outcome == Outcome::Success, accepted.error);
  const auto messages = broker.read("audit", 1);
  REQUIRE(messages.size() == 1);
  CHECK(messages[0].value == "accepted");
  CHECK(broker.messageCount("logs") == 0);
}

TEST_CASE("a constant topic refused for authorization is retriable: the credentials are at fault") {
  KafkaBroker broker({.topics = {"logs:1"}});
  RunningSink s(sinkConfig(broker, "logs"));
  // One refusal per record: a batch whose share lingers is flushed, so it may go out in several requests.
  REQUIRE(broker.command("error produce TOPIC_AUTHORIZATION_FAILED 3") == "ok");
  Records refused;
  refused.addMany(3);
  const auto result = s.send(refused.batch());
  CHECK(result.outcome == Outcome::Retriable);
  CHECK(result.error.find("TOPIC_AUTHORIZATION_FAILED") != std::string::npos);
  CHECK(result.failures.empty());
  // librdkafka fails the topic's records at once until its next metadata refresh, about a second.
  CHECK(testing::waitUntil([&] { return s.send(refused.batch()).outcome == Outcome::Success; }, 15s));
  CHECK(broker.messageCount("logs") == 3);
}

TEST_CASE("a constant topic the cluster does not know is retriable, and the probe fails until it is back") {
  KafkaBroker broker({.topics = {"logs:1"}});
  RunningSink s(sinkConfig(broker, "logs"));
  Records r;
  r.add("before");
  REQUIRE(s.send(r.batch()).outcome == Outcome::Success);
  REQUIRE(broker.command("topic logs UNKNOWN_TOPIC_OR_PART") == "ok");
  // librdkafka learns it at its next metadata request, which the probe makes.
  const auto probed = s.sink.probe(Clock::now() + 5s);
  CHECK(probed.outcome == Outcome::Retriable);
  CHECK(probed.error.find("UNKNOWN_TOPIC_OR_PART") != std::string::npos);
  const auto missing = s.send(r.batch(), 3s);
  CHECK(missing.outcome == Outcome::Retriable);
  CHECK(missing.failures.empty());

  REQUIRE(broker.command("topic logs NO_ERROR") == "ok");
  CHECK(testing::waitUntil([&] { return s.sink.probe(Clock::now() + 2s).outcome == Outcome::Success; }));
  CHECK(testing::waitUntil([&] { return s.send(r.batch(), 3s).outcome == Outcome::Success; }, 15s));
}

TEST_CASE("a message-too-large answer from the broker is permanent for the record") {
  KafkaBroker broker({.topics = {"logs:1"}});
  RunningSink s(sinkConfig(broker, "logs"));
  REQUIRE(broker.command("error produce MSG_SIZE_TOO_LARGE 1") == "ok");
  Records refused;
  refused.add("refused");
  const auto result = s.send(refused.batch());
  CHECK(result.outcome == Outcome::Permanent);
  CHECK(result.error.find("MSG_SIZE_TOO_LARGE") != std::string::npos);
}

TEST_CASE("kafka sink replaces a producer that failed fatally and sends again") {
  KafkaBroker broker({.topics = {"logs:1"}});
  // With the gapless guarantee a refused produce request is a fatal error of the idempotent producer.
  RunningSink s(sinkConfig(broker, "logs", "", {{"enable.gapless.guarantee", "true"}}));
  REQUIRE(broker.command("error produce TOPIC_AUTHORIZATION_FAILED 1") == "ok");
  Records refused;
  refused.add("refused");
  CHECK(s.send(refused.batch()).outcome != Outcome::Success);
  CHECK(testing::waitUntil([&] { return s.sink.stats().rebuilds == 1; }));

  Records next;
  next.add("accepted");
  CHECK(s.send(next.batch()).outcome == Outcome::Success);
  CHECK(broker.messageCount("logs") == 1);
}

TEST_CASE("stop flushes what librdkafka still holds") {
  KafkaBroker broker({.topics = {"logs:1"}});
  // A long linger keeps the messages in librdkafka past the send's short deadline.
  KafkaSink sink(sinkConfig(broker, "logs", "", {{"linger.ms", "1000"}}));
  REQUIRE_FALSE(sink.start().has_value());
  Records r;
  r.addMany(50);
  CHECK(sink.send(r.batch(), Clock::now() + 100ms).outcome == Outcome::Retriable);
  CHECK(sink.stats().inFlight == 50);
  sink.stop(Clock::now() + 5s);
  CHECK(sink.stats().inFlight == 0);
  CHECK(broker.messageCount("logs") == 50);
}

TEST_CASE("kafka sink delivers a batch of 10,000 records") {
  KafkaBroker broker({.topics = {"logs:1"}});
  // The default batch of 1000 records and 2 workers leave room for 4000 messages in librdkafka, so
  // the send also waits for room.
  RunningSink s(sinkConfig(broker, "logs"));
  Records r;
  r.addMany(10000);
  const auto started = Clock::now();
  const auto result = s.send(r.batch(), 30s);
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
  MESSAGE("10,000 records delivered in " << took.count() << " ms");
  CHECK(result.outcome == Outcome::Success);
  CHECK(result.failures.empty());
  CHECK(broker.messageCount("logs") == 10000);
}

TEST_CASE("kafka probe succeeds while the cluster answers and is retriable while it is down") {
  KafkaBroker broker({.topics = {"logs:1"}});
  RunningSink s(sinkConfig(broker, "logs"));
  CHECK(s.sink.probe(Clock::now() + 5s).outcome == Outcome::Success);
  REQUIRE(broker.command("down 1") == "ok");
  const auto down = s.sink.probe(Clock::now() + 500ms);
  CHECK(down.outcome == Outcome::Retriable);
}
