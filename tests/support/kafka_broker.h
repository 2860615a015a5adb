#pragma once

// A Kafka cluster for tests: the logcapture-kafka-broker helper (librdkafka's mock cluster) run as a
// child process, with its fault commands and a real consumer to see what the topics hold.
//
// Thread-safety: one test thread uses an instance.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tests/support/process.h"

namespace logcapture::testing {

class KafkaBroker {
 public:
  struct Options {
    std::string binary = {};  // the helper to run; empty: the one built with the tests
    int brokers = 1;
    std::vector<std::string> topics;  // "name" or "name:partitions", created before the first client comes
  };
  struct Message {
    std::string topic;
    std::int32_t partition = 0;
    std::int64_t offset = 0;
    std::optional<std::string> key;
    std::string value;
  };

  // Starts the helper and waits for its bootstrap address; throws if it does not come up.
  explicit KafkaBroker(Options options);
  KafkaBroker() : KafkaBroker(Options{}) {}
  ~KafkaBroker();
  KafkaBroker(const KafkaBroker&) = delete;
  KafkaBroker& operator=(const KafkaBroker&) = delete;

  // host:port,... for bootstrap.servers.
  const std::string& bootstrap() const { return bootstrap_; }
  std::vector<std::string> brokerList() const;
  // The helper's process id, for benchmarks that tell its CPU time from the agent's.
  pid_t pid() const { return process_->pid(); }

  // Sends one command (`down 1`, `up 1`, `rtt 1 200`, `error produce MSG_SIZE_TOO_LARGE 1`) and
  // returns the answer line: "ok", or "error ..." (also when the helper does not answer).
  std::string command(const std::string& line);

  // Messages in the topic, from its partitions' high watermarks; -1 when the cluster cannot tell.
  std::int64_t messageCount(const std::string& topic);
  // Reads the topic's messages from the beginning until `count` arrived or the timeout passed;
  // partition by partition in offset order.
  std::vector<Message> read(const std::string& topic, std::size_t count,
                            std::chrono::milliseconds timeout = std::chrono::seconds(10));

 private:
  std::unique_ptr<ChildProcess> process_;
  std::string bootstrap_;
  std::size_t answered_ = 0;  // bytes of the helper's stdout already consumed
};

}  // namespace logcapture::testing
