#pragma once

// The Kafka sink: one librdkafka producer per sink; a batch succeeds record by record, on the
// delivery reports, never on a successful produce call.
//
// NOTE on threads:
// - start() and stop() run on the pipeline's thread; send() and probe() on the runner's workers, at
//   once. They share one producer (rd_kafka_t is thread-safe), reached through producer_, a shared_ptr
//   that mutex_ guards: a send copies it once and keeps that producer for the whole batch.
// - The poll thread (started by start(), joined by stop()) serves the producer's callbacks: delivery
//   reports complete the sends waiting for them; a fatal error makes the poll thread replace the
//   producer. First, and after each replacement, it asks for a constant topic's metadata (a bounded
//   wait). While sends wait for their reports and none is still producing, it flushes (rd_kafka_flush)
//   in short slices instead of polling; a send wakes it (rd_kafka_queue_yield) once its batch is in
//   librdkafka. producing_ and awaiting_, atomics, count the sends in each stage for it.
// - Workers waiting for room in librdkafka's queue poll too, so reports may also arrive on them; a
//   delivery report touches only the waiting send's own state, under that send's mutex.
// - stats_ are relaxed atomics, written from any of these threads.
//
// What a caller may rely on:
// - send() returns by its deadline plus the time of one rd_kafka_producev call. Success means every
//   record's delivery report said delivered (with acks=all under idempotence, the default).
// - Records failing for themselves (too large, refused by the broker's validation, a template field
//   missing, and with a templated topic a topic that does not exist or is forbidden) come back as
//   Permanent failures of those records alone; everything else is Retriable, a constant topic that
//   does not exist or is forbidden included.
// - probe() asks for metadata: with a constant topic, that topic's, and a topic in error (unknown,
//   forbidden) fails the probe; with a templated topic, the brokers'. Every failure is Retriable.
// - The producer's defaults suit sends of whole batches: enable.idempotence true, linger.ms 5,
//   batch.num.messages = batch.max_records; `properties` override each. Once every send under way has
//   its whole batch in librdkafka, the poll thread flushes, so that a batch spread over partitions
//   leaves at once instead of lingering; a linger.ms (or queue.buffering.max.ms) set in `properties`
//   turns that off, and every batch then lingers as told.
// - Records not reported by the deadline stay in librdkafka (with their copy of the batch) and may still be
//   delivered: at-least-once, a resend may duplicate them.

#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <variant>

#include "config/config.h"
#include "sinks/record_template.h"
#include "sinks/sink.h"

namespace logcapture::sinks::kafka {

struct KafkaStats {
  std::atomic<std::uint64_t> requests{0};           // send() calls
  std::atomic<std::uint64_t> produced{0};           // messages handed to librdkafka
  std::atomic<std::uint64_t> delivered{0};          // delivery reports that said delivered
  std::atomic<std::uint64_t> errors{0};             // records failed, at produce time or in their report
  std::atomic<std::uint64_t> rebuilds{0};           // producers replaced after a fatal error
  std::atomic<std::int64_t> inFlight{0};            // handed to librdkafka, not yet reported
  std::atomic<std::uint64_t> brokersDownEvents{0};  // librdkafka said every broker is down
};

// Where a record's topic comes from: the config's constant `topic`, or the record's fields.
enum class TopicSource : std::uint8_t { Config, Record };

// How a librdkafka error, from produce or from a delivery report, classifies for a record: Permanent
// only for what the record caused (its size or content, and the topic when the record chose it);
// Retriable for the rest. The rules are beside the definition.
Outcome classify(rd_kafka_resp_err_t err, TopicSource topic);

class KafkaSink final : public Sink {
 public:
  explicit KafkaSink(const config::SinkConfig& cfg);
  ~KafkaSink() override;
  KafkaSink(const KafkaSink&) = delete;
  KafkaSink& operator=(const KafkaSink&) = delete;

  std::optional<std::string> start() override;
  SendResult send(const Batch& batch, base::Deadline deadline) override;
  SendResult probe(base::Deadline deadline) override;
  void stop(base::Deadline deadline) override;
  std::vector<SinkMetric> metrics() const override;

  const KafkaStats& stats() const { return stats_; }

  struct Producer;  // one rd_kafka_t and what its callbacks need

 private:
  friend struct Callbacks;

  std::shared_ptr<Producer> current() const;
  std::variant<std::shared_ptr<Producer>, std::string> makeProducer();
  void pollLoop();
  void replaceProducer();
  // Asks for the constant topic's metadata now, on the poll thread, so that the first records need not
  // wait for librdkafka's next topic scan.
  void learnTopic();

  const config::SinkConfig cfg_;
  const RecordTemplate topic_;
  const TopicSource topicSource_;
  const RecordTemplate key_;
  // linger.ms is the sink's (not set in properties): the poll thread flushes once every send has its
  // whole batch in librdkafka.
  const bool flushWholeBatches_;
  std::shared_ptr<spdlog::logger> log_;

  mutable std::mutex mutex_;
  std::shared_ptr<Producer> producer_;  // guarded by mutex_

  std::atomic<bool> brokersDown_{false};  // librdkafka said so and no record was delivered since
  std::atomic<bool> stopping_{false};
  std::atomic<int> producing_{0};  // sends handing their batch to librdkafka
  std::atomic<int> awaiting_{0};   // sends with their whole batch in librdkafka, waiting for its reports
  std::thread poller_;
  KafkaStats stats_;
};

}  // namespace logcapture::sinks::kafka
