#include "sinks/kafka/kafka_sink.h"

#include <algorithm>
#include <condition_variable>
#include <vector>

#include "base/log.h"

namespace logcapture::sinks::kafka {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// How long the poll thread blocks in rd_kafka_poll: the bound on how late it sees stop() or a fatal error.
constexpr milliseconds kPollInterval{100};
// How long the poll thread sends lingering messages at once (rd_kafka_flush) before it looks again
// whether every send has its whole batch in librdkafka: the bound on how long another send's batch,
// begun meanwhile, may leave in parts.
constexpr milliseconds kFlushSlice{2};
// How long a worker waits for room in librdkafka's queue before trying the record again.
constexpr milliseconds kRoomWait{10};
// Serving the reports of purged messages takes one poll; this bounds it should the client hang.
constexpr milliseconds kDrainLimit{5000};
// A failed replacement of a fatally broken producer is tried again after this long.
constexpr milliseconds kRebuildRetry{1000};
// How long a new producer's poll thread waits for the constant topic's metadata before serving reports.
// librdkafka asks for a topic's metadata only at its next topic scan, once a second: without asking
// at once, the first records wait that long. A cluster slower than this leaves it to the scan.
constexpr milliseconds kTopicLearnLimit{500};

int millisUntil(base::Deadline deadline) {
  const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<std::int64_t>(left, 0, std::numeric_limits<int>::max()));
}

std::string errorText(rd_kafka_resp_err_t err) {
  return std::string(rd_kafka_err2name(err)) + ": " + rd_kafka_err2str(err);
}

}  // namespace

// What one send() waits for. Each message's opaque is its Slot; the delivery report fills the slot
// and the send reads it. IMPORTANT: a send may return at its deadline while reports are still due,
// so the state is reference-counted: one reference for the send, one per message in librdkafka;
// the last one out frees it.
struct Delivery {
  struct Slot {
    Delivery* owner = nullptr;
    bool done = false;  // reported, or failed before reaching librdkafka
    Outcome outcome = Outcome::Success;
    std::string error;
  };

  Delivery(std::size_t n, std::string_view encoded) : slots(n), outstanding(n), payload(encoded) {
    for (auto& s : slots) s.owner = this;
  }
  void release() {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
  // Called with `mutex` held.
  void finish(Slot& slot, Outcome outcome, std::string error) {
    slot.done = true;
    slot.outcome = outcome;
    slot.error = std::move(error);
    --outstanding;
  }

  std::mutex mutex;
  std::condition_variable finished;
  std::vector<Slot> slots;  // never resized: messages point into it
  std::size_t outstanding;  // guarded by mutex: slots not done
  std::atomic<std::size_t> refs{1};
  // The batch's encodings, which librdkafka's messages point into (produced without a copy each): it
  // lives as long as the last message does, however early the send returns. Never modified.
  const std::string payload;
};

struct KafkaSink::Producer {
  KafkaSink* sink = nullptr;
  rd_kafka_t* rk = nullptr;
  rd_kafka_queue_t* reports = nullptr;  // the main queue, which rd_kafka_poll serves: yielded to wake the poll thread
  std::atomic<bool> fatal{false};

  Producer() = default;
  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;
  // IMPORTANT: drain() first, or the sends waiting on this producer's reports wait for their deadline.
  ~Producer() {
    if (reports != nullptr) rd_kafka_queue_destroy(reports);
    if (rk != nullptr) rd_kafka_destroy(rk);
  }

  // Fails everything still queued or in flight and serves those reports, so that no send waits on a
  // producer about to go and every Delivery is released.
  void drain() const {
    if (const rd_kafka_resp_err_t e = rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      sink->log_->warn("purge failed: {}", errorText(e));
    }
    const auto limit = Clock::now() + kDrainLimit;
    while (rd_kafka_outq_len(rk) > 0 && Clock::now() < limit) rd_kafka_poll(rk, 10);
  }
};

// Kept together as one friend: librdkafka's callbacks need the sink's private logger, flags and stats.
struct Callbacks {
  // librdkafka calls these from C: nothing may escape them. A failure is noted and the callback ends;
  // a delivery report that could not be recorded leaves its send to its deadline (Retriable).
  template <class Body>
  static void guarded(const Body& body) noexcept {
    try {
      body();
    } catch (const std::exception& e) {
      log::noteThreadFailure("kafka", e.what(), false);
    } catch (...) {
      log::noteThreadFailure("kafka", "an exception that is not a std::exception", false);
    }
  }

  // The delivery report: runs on whichever thread polls the producer.
  static void onDelivery(rd_kafka_t*, const rd_kafka_message_t* message, void* opaque) noexcept {
    auto& producer = *static_cast<KafkaSink::Producer*>(opaque);
    auto& stats = producer.sink->stats_;
    stats.inFlight.fetch_sub(1, std::memory_order_relaxed);
    auto* slot = static_cast<Delivery::Slot*>(message->_private);
    Delivery* delivery = slot->owner;
    guarded([&] {
      const Outcome outcome = classify(message->err, producer.sink->topicSource_);
      if (outcome == Outcome::Success) {
        stats.delivered.fetch_add(1, std::memory_order_relaxed);
      } else {
        stats.errors.fetch_add(1, std::memory_order_relaxed);
      }
      std::string error = outcome == Outcome::Success ? std::string() : errorText(message->err);
      bool last = false;
      {
        std::lock_guard lock(delivery->mutex);
        delivery->finish(*slot, outcome, std::move(error));
        last = delivery->outstanding == 0;
      }
      if (last) delivery->finished.notify_all();
    });
    delivery->release();
  }

  static void onError(rd_kafka_t* rk, int code, const char* reason, void* opaque) noexcept {
    guarded([&] { error(rk, code, reason, opaque); });
  }

  static void onLog(const rd_kafka_t* rk, int level, const char* facility, const char* text) noexcept {
    guarded([&] { logLine(rk, level, facility, text); });
  }

  static void error(rd_kafka_t*, int code, const char* reason, void* opaque) {
    auto& producer = *static_cast<KafkaSink::Producer*>(opaque);
    KafkaSink& sink = *producer.sink;
    const auto err = static_cast<rd_kafka_resp_err_t>(code);
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
      // The poll thread replaces the producer and logs it once, with the underlying error.
      producer.fatal.store(true);
      return;
    }
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
      if (!sink.brokersDown_.exchange(true)) {
        sink.stats_.brokersDownEvents.fetch_add(1, std::memory_order_relaxed);
        log::event(*sink.log_, spdlog::level::warn, "kafka_brokers_down",
                   {{"sink", sink.cfg_.name}, {"reason", reason}});
      }
      return;
    }
    // Other errors are transient and librdkafka retries them; the delivery reports carry what matters.
    sink.log_->debug("librdkafka: {}: {}", rd_kafka_err2name(err), reason);
  }

  static void logLine(const rd_kafka_t* rk, int, const char* facility, const char* text) {
    auto* producer = static_cast<KafkaSink::Producer*>(rd_kafka_opaque(rk));
    if (producer == nullptr) return;
    // librdkafka logs connection failures as errors, per broker and per attempt; error_cb raises
    // what matters once (brokers down, fatal errors), so its own lines stay at debug.
    producer->sink->log_->debug("librdkafka {}: {}", facility, text);
  }

  static void noteDelivered(KafkaSink& sink) {
    if (sink.brokersDown_.load(std::memory_order_relaxed) && sink.brokersDown_.exchange(false)) {
      log::event(*sink.log_, spdlog::level::info, "kafka_brokers_reachable", {{"sink", sink.cfg_.name}});
    }
  }
};

namespace {

// Whether the configuration leaves linger to the sink: a linger.ms (or its alias) in `properties` is
// the user's choice, which librdkafka then keeps for every batch.
bool lingerIsOurs(const KafkaConfig& kc) {
  return !kc.properties.contains("linger.ms") && !kc.properties.contains("queue.buffering.max.ms");
}

// Counts the sends in one stage for as long as it lives.
class StageCount {
 public:
  explicit StageCount(std::atomic<int>& n) : n_(n) { n_.fetch_add(1, std::memory_order_acq_rel); }
  ~StageCount() { n_.fetch_sub(1, std::memory_order_acq_rel); }
  StageCount(const StageCount&) = delete;
  StageCount& operator=(const StageCount&) = delete;

 private:
  std::atomic<int>& n_;
};

}  // namespace

KafkaSink::KafkaSink(const config::SinkConfig& cfg)
    : cfg_(cfg),
      topic_(std::get<KafkaConfig>(cfg.settings).topic),
      topicSource_(topic_.constant() ? TopicSource::Config : TopicSource::Record),
      key_(std::get<KafkaConfig>(cfg.settings).key),
      flushWholeBatches_(lingerIsOurs(std::get<KafkaConfig>(cfg.settings))),
      log_(log::component("kafka")) {}

KafkaSink::~KafkaSink() {
  if (poller_.joinable()) stop(Clock::now());
}

std::shared_ptr<KafkaSink::Producer> KafkaSink::current() const {
  std::lock_guard lock(mutex_);
  return producer_;
}

std::variant<std::shared_ptr<KafkaSink::Producer>, std::string> KafkaSink::makeProducer() {
  const auto& kc = std::get<KafkaConfig>(cfg_.settings);
  std::unique_ptr<rd_kafka_conf_t, decltype(&rd_kafka_conf_destroy)> conf(rd_kafka_conf_new(), rd_kafka_conf_destroy);
  char err[512];
  std::string brokers;
  for (const auto& b : kc.brokers) brokers += (brokers.empty() ? "" : ",") + b;
  const auto workers = static_cast<std::uint64_t>(std::max<std::uint32_t>(cfg_.workers, 1));
  // Our own buffer holds the backlog, where it is bounded, counted and persisted; librdkafka's queue
  // only needs room for what the workers have in flight.
  const std::uint64_t queueMessages = std::clamp<std::uint64_t>(2 * cfg_.batch.maxRecords * workers, 1000, 10000000);
  const std::uint64_t queueKbytes =
      std::clamp<std::uint64_t>(2 * cfg_.batch.maxBytes.value * workers / 1024, 1024, 2097151);
  // Undelivered messages expire about when the send waiting for them gives up, so an abandoned
  // message does not linger and get delivered long after its batch was retried.
  const auto timeoutMs = std::max<std::int64_t>(std::chrono::duration_cast<milliseconds>(cfg_.timeout).count(), 10);
  const std::vector<std::pair<std::string, std::string>> defaults = {
      {"bootstrap.servers", brokers},
      {"client.id", "logcapture-" + cfg_.name},
      {"enable.idempotence", "true"},
      // A send produces its whole batch at once and then waits for the reports. A partition's share
      // that fills batch.num.messages leaves at once; a smaller one (a batch spread over partitions)
      // lingers only until every send has its batch in librdkafka, when the poll thread flushes
      // (see pollLoop). Linger covers the producing of a batch; the sticky partitioner, which
      // places keyless records, keeps a partition for twice as long.
      {"linger.ms", "5"},
      {"batch.num.messages", std::to_string(std::clamp<std::uint32_t>(cfg_.batch.maxRecords, 1, 1000000))},
      {"queue.buffering.max.messages", std::to_string(queueMessages)},
      {"queue.buffering.max.kbytes", std::to_string(queueKbytes)},
      {"message.timeout.ms", std::to_string(timeoutMs)},
  };
  for (const auto& [name, value] : defaults) {
    if (rd_kafka_conf_set(conf.get(), name.c_str(), value.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
      return "librdkafka rejects " + name + "=" + value + ": " + err;
    }
  }
  for (const auto& [name, value] : kc.properties) {
    if (rd_kafka_conf_set(conf.get(), name.c_str(), value.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
      return "librdkafka rejects property " + name + ": " + err;
    }
  }
  auto producer = std::make_shared<Producer>();
  producer->sink = this;
  rd_kafka_conf_set_opaque(conf.get(), producer.get());
  rd_kafka_conf_set_dr_msg_cb(conf.get(), Callbacks::onDelivery);
  rd_kafka_conf_set_error_cb(conf.get(), Callbacks::onError);
  rd_kafka_conf_set_log_cb(conf.get(), Callbacks::onLog);
  // rd_kafka_new takes the configuration only when it succeeds.
  producer->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf.get(), err, sizeof err);
  if (producer->rk == nullptr) return std::string("librdkafka cannot create the producer: ") + err;
  conf.release();
  producer->reports = rd_kafka_queue_get_main(producer->rk);
  if (producer->reports == nullptr) return std::string("librdkafka gives no main queue for the producer");
  return producer;
}

std::optional<std::string> KafkaSink::start() {
  auto made = makeProducer();
  if (auto* problem = std::get_if<std::string>(&made)) return *problem;
  {
    std::lock_guard lock(mutex_);
    producer_ = std::get<std::shared_ptr<Producer>>(std::move(made));
  }
  stopping_ = false;
  poller_ = std::thread([this] { log::guardThread("kafka", [this] { pollLoop(); }); });
  return std::nullopt;
}

void KafkaSink::pollLoop() {
  learnTopic();
  auto nextRebuild = Clock::now();
  while (!stopping_.load()) {
    // Delivery reports complete sends only while this loop runs: a failure is noted and the loop goes on.
    try {
      const auto producer = current();
      if (flushWholeBatches_ && awaiting_.load(std::memory_order_acquire) > 0 &&
          producing_.load(std::memory_order_acquire) == 0) {
        // Every send has its whole batch in librdkafka and waits for its reports: nothing more is
        // coming to fill a partition's share, so lingering would only delay them. A flush sends what
        // lingers at once and serves the reports as they come; when nothing is left, poll until the
        // next send wakes this thread.
        if (rd_kafka_flush(producer->rk, static_cast<int>(kFlushSlice.count())) == RD_KAFKA_RESP_ERR_NO_ERROR) {
          rd_kafka_poll(producer->rk, static_cast<int>(kPollInterval.count()));
        }
      } else {
        rd_kafka_poll(producer->rk, static_cast<int>(kPollInterval.count()));
      }
      if (producer->fatal.load() && Clock::now() >= nextRebuild) {
        nextRebuild = Clock::now() + kRebuildRetry;
        replaceProducer();
      }
    } catch (const std::exception& e) {
      log::noteThreadFailure("kafka", e.what(), false);
      std::this_thread::sleep_for(kPollInterval);
    } catch (...) {
      log::noteThreadFailure("kafka", "an exception that is not a std::exception", false);
      std::this_thread::sleep_for(kPollInterval);
    }
  }
}

void KafkaSink::replaceProducer() {
  const auto old = current();
  char reason[512] = "";
  const rd_kafka_resp_err_t cause = rd_kafka_fatal_error(old->rk, reason, sizeof reason);
  auto made = makeProducer();
  if (auto* problem = std::get_if<std::string>(&made)) {
    // Retried by the poll loop; logged at debug so a lasting failure does not flood the log.
    log_->debug("cannot replace the failed producer: {}", *problem);
    return;
  }
  {
    std::lock_guard lock(mutex_);
    producer_ = std::get<std::shared_ptr<Producer>>(std::move(made));
  }
  stats_.rebuilds.fetch_add(1, std::memory_order_relaxed);
  log::event(*log_, spdlog::level::warn, "kafka_producer_replaced",
             {{"sink", cfg_.name}, {"error", rd_kafka_err2name(cause)}, {"reason", reason}});
  // Sends still waiting on the old producer get their reports now (Retriable) rather than at their
  // deadline; one still producing into it fails its remaining records, since produce returns _FATAL.
  old->drain();
  learnTopic();
}

void KafkaSink::learnTopic() {
  if (topicSource_ != TopicSource::Config) return;
  // The probe's metadata request for the topic is what librdkafka needs; what it found, the sends
  // and the breaker's probes learn for themselves.
  (void)probe(Clock::now() + kTopicLearnLimit);
}

SendResult KafkaSink::send(const Batch& batch, base::Deadline deadline) {
  stats_.requests.fetch_add(1, std::memory_order_relaxed);
  if (batch.empty()) return SendResult::success();
  const auto producer = current();
  if (producer == nullptr) return SendResult::failure(Outcome::Retriable, "kafka sink is not running");

  // A send returning at its deadline leaves its undelivered messages in librdkafka, and the batch
  // they would point into is gone by then. Purging them instead is no option: rd_kafka_purge acts on
  // the whole producer, every worker's messages with it, and messages already in flight may be
  // written anyway. So the batch's encodings are copied once, whole, into the reference-counted
  // Delivery, and each message points into that copy (no RD_KAFKA_MSG_F_COPY): one allocation and
  // one memcpy per batch instead of one of each per message.
  auto* delivery = new Delivery(batch.size(), batch.encoded);
  std::optional<StageCount> producing(std::in_place, producing_);
  std::string topic;
  std::string key;
  const bool keyed = !key_.text().empty();
  std::size_t next = 0;
  auto failHere = [&](std::size_t i, Outcome outcome, std::string error) {
    stats_.errors.fetch_add(1, std::memory_order_relaxed);
    std::lock_guard lock(delivery->mutex);
    delivery->finish(delivery->slots[i], outcome, std::move(error));
  };
  std::string stopReason;  // why the records from `next` on were not produced
  for (; next < batch.size() && stopReason.empty(); ++next) {
    const base::Record& record = batch.record(next);
    if (auto missing = topic_.render(record, topic)) {
      failHere(next, Outcome::Permanent, "topic template field " + *missing + " missing");
      continue;
    }
    if (keyed) {
      if (auto missing = key_.render(record, key)) {
        failHere(next, Outcome::Permanent, "key template field " + *missing + " missing");
        continue;
      }
    }
    const std::string_view encoded = batch.encodedRecord(next);
    char* value = const_cast<char*>(delivery->payload.data()) + (encoded.data() - batch.encoded.data());
    // Counted before the call: the report may come on another thread before producev returns.
    delivery->refs.fetch_add(1, std::memory_order_relaxed);
    stats_.inFlight.fetch_add(1, std::memory_order_relaxed);
    while (true) {
      const rd_kafka_resp_err_t err = rd_kafka_producev(
          producer->rk, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_MSGFLAGS(0),
          RD_KAFKA_V_VALUE(value, encoded.size()), RD_KAFKA_V_KEY(keyed ? key.data() : nullptr, keyed ? key.size() : 0),
          RD_KAFKA_V_OPAQUE(&delivery->slots[next]), RD_KAFKA_V_END);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        stats_.produced.fetch_add(1, std::memory_order_relaxed);
        break;
      }
      if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL && Clock::now() < deadline) {
        // Room comes back as reports are served; serving them here also completes other sends.
        rd_kafka_poll(producer->rk, std::min(millisUntil(deadline), static_cast<int>(kRoomWait.count())));
        continue;
      }
      delivery->refs.fetch_sub(1, std::memory_order_relaxed);  // the send's own reference remains
      stats_.inFlight.fetch_sub(1, std::memory_order_relaxed);
      const Outcome outcome = classify(err, topicSource_);
      if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        stopReason = "librdkafka's queue stayed full until the deadline";
        failHere(next, Outcome::Retriable, stopReason);
      } else if (outcome == Outcome::Permanent) {
        failHere(next, outcome, errorText(err));  // this record alone: the next one may fit
      } else {
        // Fatal, or a client-wide state: the records after this one would fail the same way.
        stopReason = errorText(err);
        failHere(next, Outcome::Retriable, stopReason);
      }
      break;
    }
  }

  // The whole batch is in librdkafka: wake the poll thread, which sends it at once when no other
  // send is still producing (see pollLoop).
  const StageCount awaiting(awaiting_);
  producing.reset();
  if (flushWholeBatches_) rd_kafka_queue_yield(producer->reports);

  std::unique_lock lock(delivery->mutex);
  for (std::size_t i = next; i < batch.size(); ++i) {
    stats_.errors.fetch_add(1, std::memory_order_relaxed);
    delivery->finish(delivery->slots[i], Outcome::Retriable, "not produced: " + stopReason);
  }
  delivery->finished.wait_until(lock, deadline, [&] { return delivery->outstanding == 0; });

  SendResult result;
  std::size_t delivered = 0;
  bool retriable = false;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const auto& slot = delivery->slots[i];
    if (slot.done && slot.outcome == Outcome::Success) {
      ++delivered;
      continue;
    }
    RecordFailure f;
    f.index = static_cast<std::uint32_t>(i);
    f.outcome = slot.done ? slot.outcome : Outcome::Retriable;
    f.error = slot.done ? slot.error : "no delivery report by the deadline";
    retriable = retriable || f.outcome == Outcome::Retriable;
    result.failures.push_back(std::move(f));
  }
  lock.unlock();
  delivery->release();

  if (delivered > 0) Callbacks::noteDelivered(*this);
  if (result.failures.empty()) return result;
  const bool uniform = std::all_of(result.failures.begin(), result.failures.end(), [&](const RecordFailure& f) {
    return f.outcome == result.failures.front().outcome;
  });
  if (delivered == 0 && uniform)
    return SendResult::failure(result.failures.front().outcome, result.failures.front().error);
  // Some records went through: the destination works, and only a retriable record counts against it.
  if (retriable) {
    result.outcome = Outcome::Retriable;
    for (const auto& f : result.failures) {
      if (f.outcome == Outcome::Retriable) {
        result.error = f.error;
        break;
      }
    }
  }
  return result;
}

SendResult KafkaSink::probe(base::Deadline deadline) {
  const auto producer = current();
  if (producer == nullptr) return SendResult::failure(Outcome::Retriable, "kafka sink is not running");
  // A constant topic is asked about by name: a cluster that answers while the topic is missing or
  // forbidden to us is not ready for a batch. The answer also refreshes librdkafka's view of the topic.
  rd_kafka_topic_t* topic = nullptr;
  if (topicSource_ == TopicSource::Config) {
    topic = rd_kafka_topic_new(producer->rk, topic_.text().c_str(), nullptr);
    if (topic == nullptr) {
      return SendResult::failure(Outcome::Retriable,
                                 "topic " + topic_.text() + ": " + errorText(rd_kafka_last_error()));
    }
  }
  const rd_kafka_metadata_t* metadata = nullptr;
  const rd_kafka_resp_err_t err =
      rd_kafka_metadata(producer->rk, 0, topic, &metadata, std::max(1, millisUntil(deadline)));
  if (topic != nullptr) rd_kafka_topic_destroy(topic);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return SendResult::failure(Outcome::Retriable, "metadata request: " + errorText(err));
  }
  SendResult result;
  if (topic != nullptr) {
    const rd_kafka_metadata_topic_t* found = nullptr;
    for (int i = 0; i < metadata->topic_cnt; ++i) {
      if (topic_.text() == metadata->topics[i].topic) found = &metadata->topics[i];
    }
    if (found == nullptr) {
      result = SendResult::failure(Outcome::Retriable, "topic " + topic_.text() + ": not in the metadata");
    } else if (found->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      result = SendResult::failure(Outcome::Retriable, "topic " + topic_.text() + ": " + errorText(found->err));
    } else if (found->partition_cnt == 0) {
      result = SendResult::failure(Outcome::Retriable, "topic " + topic_.text() + ": no partitions");
    }
  }
  rd_kafka_metadata_destroy(metadata);
  return result;
}

void KafkaSink::stop(base::Deadline deadline) {
  stopping_ = true;
  if (poller_.joinable()) poller_.join();
  std::shared_ptr<Producer> producer;
  {
    std::lock_guard lock(mutex_);
    producer.swap(producer_);
  }
  if (producer == nullptr) return;
  const rd_kafka_resp_err_t err = rd_kafka_flush(producer->rk, millisUntil(deadline));
  const std::int64_t left = stats_.inFlight.load(std::memory_order_relaxed);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR || left > 0) {
    log::event(*log_, spdlog::level::warn, "kafka_unflushed",
               {{"sink", cfg_.name}, {"records", left}, {"error", rd_kafka_err2name(err)}});
  }
  producer->drain();
}

// The record's doing, Permanent: its size (message.max.bytes here or the topic's max.message.bytes at
// the broker), content the broker's validation refuses, and, when the record chose the topic, a topic
// that does not exist, has an invalid name or is forbidden to us. With a constant topic those are the
// configuration's or our credentials' and Retriable: the breaker opens, and the records wait until the
// topic is created or the ACL granted (librdkafka reports a missing topic only after
// topic.metadata.propagation.max.ms, so a topic being created is waited for). Everything else is
// the cluster, the network or the producer: Retriable.
Outcome classify(rd_kafka_resp_err_t err, TopicSource topic) {
  const Outcome byTopic = topic == TopicSource::Record ? Outcome::Permanent : Outcome::Retriable;
  switch (err) {
    case RD_KAFKA_RESP_ERR_NO_ERROR:
      return Outcome::Success;
    // The record itself.
    case RD_KAFKA_RESP_ERR__BAD_MSG:
    case RD_KAFKA_RESP_ERR__KEY_SERIALIZATION:
    case RD_KAFKA_RESP_ERR__VALUE_SERIALIZATION:
    case RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE:
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
      return Outcome::Permanent;
    // The topic (and an invalid argument to produce, which is the topic's name).
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
      return byTopic;
    // A corrupt message (CRC) is damage on the way; an invalid timestamp is the producer's clock (the
    // sink sets none); a policy is the cluster's.
    case RD_KAFKA_RESP_ERR_INVALID_MSG:
    case RD_KAFKA_RESP_ERR_INVALID_TIMESTAMP:
    case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
      return Outcome::Retriable;
    // Transport, timeouts, brokers down, leadership moves, quotas, authentication and cluster-wide
    // authorization, fatal and purged producers, and the markers of the enum's ranges, which no report
    // carries.
    case RD_KAFKA_RESP_ERR__BEGIN:
    case RD_KAFKA_RESP_ERR__BAD_COMPRESSION:
    case RD_KAFKA_RESP_ERR__DESTROY:
    case RD_KAFKA_RESP_ERR__FAIL:
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__CRIT_SYS_RESOURCE:
    case RD_KAFKA_RESP_ERR__RESOLVE:
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__PARTITION_EOF:
    case RD_KAFKA_RESP_ERR__FS:
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
    case RD_KAFKA_RESP_ERR__ISR_INSUFF:
    case RD_KAFKA_RESP_ERR__NODE_UPDATE:
    case RD_KAFKA_RESP_ERR__SSL:
    case RD_KAFKA_RESP_ERR__WAIT_COORD:
    case RD_KAFKA_RESP_ERR__UNKNOWN_GROUP:
    case RD_KAFKA_RESP_ERR__IN_PROGRESS:
    case RD_KAFKA_RESP_ERR__PREV_IN_PROGRESS:
    case RD_KAFKA_RESP_ERR__EXISTING_SUBSCRIPTION:
    case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
    case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
    case RD_KAFKA_RESP_ERR__CONFLICT:
    case RD_KAFKA_RESP_ERR__STATE:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PROTOCOL:
    case RD_KAFKA_RESP_ERR__NOT_IMPLEMENTED:
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
    case RD_KAFKA_RESP_ERR__NO_OFFSET:
    case RD_KAFKA_RESP_ERR__OUTDATED:
    case RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE:
    case RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE:
    case RD_KAFKA_RESP_ERR__WAIT_CACHE:
    case RD_KAFKA_RESP_ERR__INTR:
    case RD_KAFKA_RESP_ERR__KEY_DESERIALIZATION:
    case RD_KAFKA_RESP_ERR__VALUE_DESERIALIZATION:
    case RD_KAFKA_RESP_ERR__PARTIAL:
    case RD_KAFKA_RESP_ERR__READ_ONLY:
    case RD_KAFKA_RESP_ERR__NOENT:
    case RD_KAFKA_RESP_ERR__UNDERFLOW:
    case RD_KAFKA_RESP_ERR__INVALID_TYPE:
    case RD_KAFKA_RESP_ERR__RETRY:
    case RD_KAFKA_RESP_ERR__PURGE_QUEUE:
    case RD_KAFKA_RESP_ERR__PURGE_INFLIGHT:
    case RD_KAFKA_RESP_ERR__FATAL:
    case RD_KAFKA_RESP_ERR__INCONSISTENT:
    case RD_KAFKA_RESP_ERR__GAPLESS_GUARANTEE:
    case RD_KAFKA_RESP_ERR__MAX_POLL_EXCEEDED:
    case RD_KAFKA_RESP_ERR__UNKNOWN_BROKER:
    case RD_KAFKA_RESP_ERR__NOT_CONFIGURED:
    case RD_KAFKA_RESP_ERR__FENCED:
    case RD_KAFKA_RESP_ERR__APPLICATION:
    case RD_KAFKA_RESP_ERR__ASSIGNMENT_LOST:
    case RD_KAFKA_RESP_ERR__NOOP:
    case RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET:
    case RD_KAFKA_RESP_ERR__END:
    case RD_KAFKA_RESP_ERR_UNKNOWN:
    case RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE:
    case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
    case RD_KAFKA_RESP_ERR_BROKER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_REPLICA_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_STALE_CTRL_EPOCH:
    case RD_KAFKA_RESP_ERR_OFFSET_METADATA_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION:
    case RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS:
    case RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_COORDINATOR:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
    case RD_KAFKA_RESP_ERR_INVALID_REQUIRED_ACKS:
    case RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION:
    case RD_KAFKA_RESP_ERR_INCONSISTENT_GROUP_PROTOCOL:
    case RD_KAFKA_RESP_ERR_INVALID_GROUP_ID:
    case RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID:
    case RD_KAFKA_RESP_ERR_INVALID_SESSION_TIMEOUT:
    case RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS:
    case RD_KAFKA_RESP_ERR_INVALID_COMMIT_OFFSET_SIZE:
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_UNSUPPORTED_SASL_MECHANISM:
    case RD_KAFKA_RESP_ERR_ILLEGAL_SASL_STATE:
    case RD_KAFKA_RESP_ERR_UNSUPPORTED_VERSION:
    case RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS:
    case RD_KAFKA_RESP_ERR_INVALID_PARTITIONS:
    case RD_KAFKA_RESP_ERR_INVALID_REPLICATION_FACTOR:
    case RD_KAFKA_RESP_ERR_INVALID_REPLICA_ASSIGNMENT:
    case RD_KAFKA_RESP_ERR_INVALID_CONFIG:
    case RD_KAFKA_RESP_ERR_NOT_CONTROLLER:
    case RD_KAFKA_RESP_ERR_INVALID_REQUEST:
    case RD_KAFKA_RESP_ERR_UNSUPPORTED_FOR_MESSAGE_FORMAT:
    case RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER:
    case RD_KAFKA_RESP_ERR_DUPLICATE_SEQUENCE_NUMBER:
    case RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH:
    case RD_KAFKA_RESP_ERR_INVALID_TXN_STATE:
    case RD_KAFKA_RESP_ERR_INVALID_PRODUCER_ID_MAPPING:
    case RD_KAFKA_RESP_ERR_INVALID_TRANSACTION_TIMEOUT:
    case RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS:
    case RD_KAFKA_RESP_ERR_TRANSACTION_COORDINATOR_FENCED:
    case RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_SECURITY_DISABLED:
    case RD_KAFKA_RESP_ERR_OPERATION_NOT_ATTEMPTED:
    case RD_KAFKA_RESP_ERR_KAFKA_STORAGE_ERROR:
    case RD_KAFKA_RESP_ERR_LOG_DIR_NOT_FOUND:
    case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
    case RD_KAFKA_RESP_ERR_UNKNOWN_PRODUCER_ID:
    case RD_KAFKA_RESP_ERR_REASSIGNMENT_IN_PROGRESS:
    case RD_KAFKA_RESP_ERR_DELEGATION_TOKEN_AUTH_DISABLED:
    case RD_KAFKA_RESP_ERR_DELEGATION_TOKEN_NOT_FOUND:
    case RD_KAFKA_RESP_ERR_DELEGATION_TOKEN_OWNER_MISMATCH:
    case RD_KAFKA_RESP_ERR_DELEGATION_TOKEN_REQUEST_NOT_ALLOWED:
    case RD_KAFKA_RESP_ERR_DELEGATION_TOKEN_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_DELEGATION_TOKEN_EXPIRED:
    case RD_KAFKA_RESP_ERR_INVALID_PRINCIPAL_TYPE:
    case RD_KAFKA_RESP_ERR_NON_EMPTY_GROUP:
    case RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND:
    case RD_KAFKA_RESP_ERR_FETCH_SESSION_ID_NOT_FOUND:
    case RD_KAFKA_RESP_ERR_INVALID_FETCH_SESSION_EPOCH:
    case RD_KAFKA_RESP_ERR_LISTENER_NOT_FOUND:
    case RD_KAFKA_RESP_ERR_TOPIC_DELETION_DISABLED:
    case RD_KAFKA_RESP_ERR_FENCED_LEADER_EPOCH:
    case RD_KAFKA_RESP_ERR_UNKNOWN_LEADER_EPOCH:
    case RD_KAFKA_RESP_ERR_UNSUPPORTED_COMPRESSION_TYPE:
    case RD_KAFKA_RESP_ERR_STALE_BROKER_EPOCH:
    case RD_KAFKA_RESP_ERR_OFFSET_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_MEMBER_ID_REQUIRED:
    case RD_KAFKA_RESP_ERR_PREFERRED_LEADER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_GROUP_MAX_SIZE_REACHED:
    case RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID:
    case RD_KAFKA_RESP_ERR_ELIGIBLE_LEADERS_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_ELECTION_NOT_NEEDED:
    case RD_KAFKA_RESP_ERR_NO_REASSIGNMENT_IN_PROGRESS:
    case RD_KAFKA_RESP_ERR_GROUP_SUBSCRIBED_TO_TOPIC:
    case RD_KAFKA_RESP_ERR_UNSTABLE_OFFSET_COMMIT:
    case RD_KAFKA_RESP_ERR_THROTTLING_QUOTA_EXCEEDED:
    case RD_KAFKA_RESP_ERR_PRODUCER_FENCED:
    case RD_KAFKA_RESP_ERR_RESOURCE_NOT_FOUND:
    case RD_KAFKA_RESP_ERR_DUPLICATE_RESOURCE:
    case RD_KAFKA_RESP_ERR_UNACCEPTABLE_CREDENTIAL:
    case RD_KAFKA_RESP_ERR_INCONSISTENT_VOTER_SET:
    case RD_KAFKA_RESP_ERR_INVALID_UPDATE_VERSION:
    case RD_KAFKA_RESP_ERR_FEATURE_UPDATE_FAILED:
    case RD_KAFKA_RESP_ERR_PRINCIPAL_DESERIALIZATION_FAILURE:
    case RD_KAFKA_RESP_ERR_END_ALL:
      return Outcome::Retriable;
  }
  return Outcome::Retriable;
}

std::vector<SinkMetric> KafkaSink::metrics() const {
  const auto load = [](const auto& a) { return static_cast<std::int64_t>(a.load(std::memory_order_relaxed)); };
  return {
      {"logcapture_kafka_produced_total", "Messages handed to librdkafka.", load(stats_.produced)},
      {"logcapture_kafka_delivered_total", "Messages whose delivery report said delivered.", load(stats_.delivered)},
      {"logcapture_kafka_errors_total", "Messages that failed, at produce time or in their delivery report.",
       load(stats_.errors)},
      {"logcapture_kafka_in_flight", "Messages handed to librdkafka and not yet reported.", load(stats_.inFlight),
       SinkMetric::Kind::Gauge},
      {"logcapture_kafka_producer_rebuilds_total", "Producers replaced after a fatal librdkafka error.",
       load(stats_.rebuilds)},
      {"logcapture_kafka_all_brokers_down_total", "Times librdkafka said every broker is down.",
       load(stats_.brokersDownEvents)},
  };
}

std::unique_ptr<Sink> build(const KafkaConfig&, const config::SinkConfig& cfg) {
  return std::make_unique<KafkaSink>(cfg);
}

}  // namespace logcapture::sinks::kafka
