#include "tests/support/kafka_broker.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <stdexcept>

namespace logcapture::testing {
namespace {

using namespace std::chrono_literals;

using Handle = std::unique_ptr<rd_kafka_t, decltype(&rd_kafka_destroy)>;

// A consumer handle on the cluster: it never creates topics, so asking about one changes nothing.
Handle consumer(const std::string& bootstrap) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  for (const auto& [name, value] : {std::pair{"bootstrap.servers", bootstrap.c_str()},
                                    std::pair{"group.id", "logcapture-tests"}, std::pair{"enable.auto.commit", "false"},
                                    std::pair{"allow.auto.create.topics", "false"}, std::pair{"log_level", "3"}}) {
    if (rd_kafka_conf_set(conf, name, value, err, sizeof err) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      throw std::runtime_error(err);
    }
  }
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    throw std::runtime_error(err);
  }
  return Handle(rk, rd_kafka_destroy);
}

// The topic's partition count; 0 when the cluster does not know the topic.
int partitions(rd_kafka_t* rk, const std::string& topic) {
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  if (rkt == nullptr) return 0;
  const rd_kafka_metadata_t* md = nullptr;
  const rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, 5000);
  rd_kafka_topic_destroy(rkt);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return 0;
  int n = 0;
  if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR) n = md->topics[0].partition_cnt;
  rd_kafka_metadata_destroy(md);
  return n;
}

}  // namespace

KafkaBroker::KafkaBroker(Options options) {
  std::vector<std::string> argv = {options.binary.empty() ? LOGCAPTURE_KAFKA_BROKER_BINARY : options.binary,
                                   "--brokers", std::to_string(options.brokers)};
  for (const auto& t : options.topics) {
    argv.push_back("--topic");
    argv.push_back(t);
  }
  process_ = std::make_unique<ChildProcess>(argv, std::vector<std::string>{}, true);
  if (!process_->waitForStdout("\n", 10s)) throw std::runtime_error("kafka broker did not start");
  const std::string& out = process_->out();
  const auto nl = out.find('\n');
  const std::string prefix = "bootstrap ";
  if (out.compare(0, prefix.size(), prefix) != 0) throw std::runtime_error("kafka broker said: " + out);
  bootstrap_ = out.substr(prefix.size(), nl - prefix.size());
  answered_ = nl + 1;
}

KafkaBroker::~KafkaBroker() {
  if (process_->writeStdin("quit\n")) process_->wait(10s);
}

std::vector<std::string> KafkaBroker::brokerList() const {
  std::vector<std::string> list;
  std::size_t begin = 0;
  while (begin <= bootstrap_.size()) {
    const auto comma = std::min(bootstrap_.find(',', begin), bootstrap_.size());
    list.push_back(bootstrap_.substr(begin, comma - begin));
    begin = comma + 1;
  }
  return list;
}

std::string KafkaBroker::command(const std::string& line) {
  if (!process_->writeStdin(line + "\n")) return "error the broker is gone";
  if (!process_->waitForStdout("\n", 10s, answered_)) return "error no answer";
  const std::string& out = process_->out();
  const auto nl = out.find('\n', answered_);
  std::string answer = out.substr(answered_, nl - answered_);
  answered_ = nl + 1;
  return answer;
}

std::int64_t KafkaBroker::messageCount(const std::string& topic) {
  const Handle rk = consumer(bootstrap_);
  const int n = partitions(rk.get(), topic);
  if (n == 0) return -1;
  std::int64_t total = 0;
  for (int p = 0; p < n; ++p) {
    std::int64_t low = 0;
    std::int64_t high = 0;
    if (rd_kafka_query_watermark_offsets(rk.get(), topic.c_str(), p, &low, &high, 5000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return -1;
    }
    total += high - low;
  }
  return total;
}

std::vector<KafkaBroker::Message> KafkaBroker::read(const std::string& topic, std::size_t count,
                                                    std::chrono::milliseconds timeout) {
  std::vector<Message> messages;
  const Handle rk = consumer(bootstrap_);
  const int n = partitions(rk.get(), topic);
  if (n == 0) return messages;
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(n);
  for (int p = 0; p < n; ++p) {
    rd_kafka_topic_partition_list_add(list, topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  }
  const rd_kafka_resp_err_t assigned = rd_kafka_assign(rk.get(), list);
  rd_kafka_topic_partition_list_destroy(list);
  if (assigned != RD_KAFKA_RESP_ERR_NO_ERROR) return messages;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (messages.size() < count && std::chrono::steady_clock::now() < deadline) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk.get(), 100);
    if (m == nullptr) continue;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      Message msg;
      msg.topic = topic;
      msg.partition = m->partition;
      msg.offset = m->offset;
      if (m->key != nullptr) msg.key.emplace(static_cast<const char*>(m->key), m->key_len);
      msg.value.assign(static_cast<const char*>(m->payload), m->len);
      messages.push_back(std::move(msg));
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(rk.get());
  std::stable_sort(messages.begin(), messages.end(), [](const Message& a, const Message& b) {
    return a.partition != b.partition ? a.partition < b.partition : a.offset < b.offset;
  });
  return messages;
}

}  // namespace logcapture::testing
