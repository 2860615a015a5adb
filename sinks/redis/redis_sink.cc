#include "sinks/redis/redis_sink.h"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "base/log.h"
#include "config/endpoint.h"

namespace logcapture::sinks::redis {

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr std::chrono::milliseconds kFirstBackoff = 100ms;
constexpr std::chrono::milliseconds kMaxBackoff = 5s;
// Why a connection refused with "max number of clients reached" is not kept.
constexpr const char* kClosedByServer = "the server closes the connection after refusing it";

struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

// Reads the next reply; null when the connection failed (then context->err says why).
Reply nextReply(redisContext* c) {
  void* raw = nullptr;
  if (redisGetReply(c, &raw) != REDIS_OK) {
    if (raw != nullptr) freeReplyObject(raw);
    return nullptr;
  }
  return Reply(static_cast<redisReply*>(raw));
}

std::string_view errorText(const redisReply& r) { return {r.str, r.len}; }

timeval toTimeval(std::chrono::milliseconds ms) {
  ms = std::max(ms, 1ms);  // a zero timeval means "no timeout" to the socket
  return timeval{static_cast<time_t>(ms.count() / 1000), static_cast<suseconds_t>((ms.count() % 1000) * 1000)};
}

std::chrono::milliseconds until(base::Deadline deadline) {
  return std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
}

std::string explain(ErrorClass c, std::string_view command, std::string_view reply) {
  std::string text = "redis refused " + std::string(command) + ": " + std::string(reply);
  switch (c) {
    case ErrorClass::ConnectionLost:
    case ErrorClass::KeyType:
    case ErrorClass::Refused:
      break;
    case ErrorClass::ClientsFull:
      text += " (the server has as many clients as its maxclients allows)";
      break;
    case ErrorClass::ServerBusy:
      text += " (the server cannot take writes now)";
      break;
    case ErrorClass::AccessDenied:
      text +=
          " (the sink's username/password or ACL do not allow it, or the server is being reconfigured;"
          " the records are not at fault)";
      break;
    case ErrorClass::Misrouted:
      text += " (the address is a cluster node that does not own the key; the sink does not follow redirects)";
      break;
    case ErrorClass::Unsupported:
      text += " (the server lacks the command, or it was renamed or disabled; the records are not at fault)";
      break;
  }
  return text;
}

// One row per error reply the sink knows: its first word and, where the word says too little (ERR),
// the start of the message. Looked up in order; a reply no row matches is Refused.
struct ReplyRow {
  std::string_view word;
  std::string_view message;  // empty: any
  ErrorClass cls;
};
constexpr std::array kReplies = {
    ReplyRow{"WRONGTYPE", "", ErrorClass::KeyType},
    ReplyRow{"NOAUTH", "", ErrorClass::AccessDenied},
    ReplyRow{"WRONGPASS", "", ErrorClass::AccessDenied},
    ReplyRow{"NOPERM", "", ErrorClass::AccessDenied},
    ReplyRow{"LOADING", "", ErrorClass::ServerBusy},
    ReplyRow{"BUSY", "", ErrorClass::ServerBusy},
    ReplyRow{"OOM", "", ErrorClass::ServerBusy},
    ReplyRow{"READONLY", "", ErrorClass::ServerBusy},
    ReplyRow{"MASTERDOWN", "", ErrorClass::ServerBusy},
    ReplyRow{"TRYAGAIN", "", ErrorClass::ServerBusy},
    ReplyRow{"CLUSTERDOWN", "", ErrorClass::ServerBusy},
    ReplyRow{"NOREPLICAS", "", ErrorClass::ServerBusy},
    ReplyRow{"MISCONF", "", ErrorClass::ServerBusy},
    ReplyRow{"MOVED", "", ErrorClass::Misrouted},
    ReplyRow{"ASK", "", ErrorClass::Misrouted},
    ReplyRow{"ERR", "max number of clients reached", ErrorClass::ClientsFull},
    ReplyRow{"ERR", "unknown command", ErrorClass::Unsupported},
    ReplyRow{"ERR", "unknown subcommand", ErrorClass::Unsupported},
};

}  // namespace

ErrorClass classifyError(std::string_view reply) {
  const std::size_t space = reply.find(' ');
  const std::string_view word = reply.substr(0, space);
  const std::string_view message = space == std::string_view::npos ? std::string_view() : reply.substr(space + 1);
  for (const ReplyRow& row : kReplies) {
    if (word == row.word && message.starts_with(row.message)) return row.cls;
  }
  return ErrorClass::Refused;
}

Outcome outcomeOf(ErrorClass c) {
  switch (c) {
    case ErrorClass::KeyType:
      return Outcome::Permanent;
    case ErrorClass::ConnectionLost:
    case ErrorClass::ClientsFull:
    case ErrorClass::ServerBusy:
    case ErrorClass::AccessDenied:
    case ErrorClass::Misrouted:
    case ErrorClass::Unsupported:
    case ErrorClass::Refused:
      return Outcome::Retriable;
  }
  return Outcome::Retriable;
}

RedisSink::Connection::~Connection() {
  if (context != nullptr) redisFree(context);
  if (openGauge != nullptr) openGauge->fetch_sub(1, std::memory_order_relaxed);
}

RedisSink::RedisSink(const config::SinkConfig& cfg)
    : name_(cfg.name),
      cfg_(std::get<RedisConfig>(cfg.settings)),
      timeout_(std::chrono::duration_cast<std::chrono::milliseconds>(cfg.timeout)),
      maxIdle_(cfg.workers),
      maxlen_(std::to_string(cfg_.maxlen)) {}

RedisSink::~RedisSink() = default;

std::optional<std::string> RedisSink::start() {
  if (cfg_.address.starts_with("unix:")) {
    socketPath_ = cfg_.address.substr(5);
  } else if (cfg_.address.starts_with("/")) {
    socketPath_ = cfg_.address;
  } else if (auto endpoint = config::parseEndpoint(cfg_.address)) {
    host_ = endpoint->host;
    port_ = endpoint->port;
  } else {
    return "redis address '" + cfg_.address + "' is neither host:port nor a unix socket";
  }
  return std::nullopt;
}

void RedisSink::stop(base::Deadline) {
  std::vector<ConnectionPtr> closing;
  {
    std::lock_guard lock(mutex_);
    closing.swap(idle_);
  }
}

void RedisSink::countError(ErrorClass c) {
  switch (c) {
    case ErrorClass::ConnectionLost:
    case ErrorClass::ClientsFull:
      stats_.connectionErrors.fetch_add(1, std::memory_order_relaxed);
      return;
    case ErrorClass::ServerBusy:
      stats_.serverBusy.fetch_add(1, std::memory_order_relaxed);
      return;
    case ErrorClass::AccessDenied:
      stats_.accessDenied.fetch_add(1, std::memory_order_relaxed);
      return;
    case ErrorClass::Misrouted:
      stats_.misrouted.fetch_add(1, std::memory_order_relaxed);
      return;
    case ErrorClass::KeyType:
      stats_.rejected.fetch_add(1, std::memory_order_relaxed);
      return;
    case ErrorClass::Unsupported:
    case ErrorClass::Refused:
      stats_.refused.fetch_add(1, std::memory_order_relaxed);
      return;
  }
}

RedisSink::ConnectionPtr RedisSink::connect(base::Deadline deadline, std::string& error) {
  const auto left = until(deadline);
  if (left <= 0ms) {
    error = "deadline passed before connecting to redis at " + cfg_.address;
    return nullptr;
  }
  const timeval tv = toTimeval(
      std::min(std::chrono::duration_cast<std::chrono::milliseconds>(cfg_.connectTimeout), std::min(left, timeout_)));
  redisContext* context = socketPath_.empty() ? redisConnectWithTimeout(host_.c_str(), port_, tv)
                                              : redisConnectUnixWithTimeout(socketPath_.c_str(), tv);
  if (context == nullptr) {
    error = "connect to redis at " + cfg_.address + ": out of memory";
    return nullptr;
  }
  auto c = std::make_unique<Connection>();
  c->context = context;
  if (context->err != 0) {
    error = "connect to redis at " + cfg_.address + ": " + context->errstr;
    return nullptr;
  }
  c->openGauge = &stats_.connected;
  stats_.connected.fetch_add(1, std::memory_order_relaxed);
  // The connect timeout also bounds AUTH and SELECT; send() sets the command timeout afterwards.
  if (redisSetTimeout(context, tv) != REDIS_OK || (socketPath_.empty() && redisEnableKeepAlive(context) != REDIS_OK)) {
    error = "set up the connection to redis at " + cfg_.address + ": " + context->errstr;
    return nullptr;
  }

  // Every reply is checked: an error here is the sink's configuration, never the records'.
  auto setup = [&](std::string_view what, std::initializer_list<std::string_view> args) {
    std::vector<const char*> argv;
    std::vector<std::size_t> lengths;
    for (auto a : args) {
      argv.push_back(a.data());
      lengths.push_back(a.size());
    }
    stats_.commands.fetch_add(1, std::memory_order_relaxed);
    Reply reply(static_cast<redisReply*>(
        redisCommandArgv(context, static_cast<int>(argv.size()), argv.data(), lengths.data())));
    if (!reply) {
      error = std::string(what) + " on redis at " + cfg_.address + ": " + context->errstr;
      return false;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
      const ErrorClass cls = classifyError(errorText(*reply));
      countError(cls);
      error = explain(cls, what, errorText(*reply));
      return false;
    }
    return true;
  };
  if (!cfg_.password.empty()) {
    const bool ok = cfg_.username.empty() ? setup("AUTH", {"AUTH", cfg_.password})
                                          : setup("AUTH", {"AUTH", cfg_.username, cfg_.password});
    if (!ok) return nullptr;
  }
  if (cfg_.db != 0) {
    const std::string db = std::to_string(cfg_.db);
    if (!setup("SELECT " + db, {"SELECT", db})) return nullptr;
  }
  return c;
}

RedisSink::ConnectionPtr RedisSink::acquire(base::Deadline deadline, SendResult& error) {
  {
    std::lock_guard lock(mutex_);
    if (!idle_.empty()) {
      ConnectionPtr c = std::move(idle_.back());
      idle_.pop_back();
      return c;
    }
    const auto now = Clock::now();
    if (now < retryAt_) {
      stats_.fastFailures.fetch_add(1, std::memory_order_relaxed);
      const auto wait = std::chrono::ceil<std::chrono::milliseconds>(retryAt_ - now);
      error = SendResult::failure(Outcome::Retriable,
                                  "reconnecting in " + std::to_string(wait.count()) + " ms after: " + lastError_);
      return nullptr;
    }
  }
  std::string why;
  ConnectionPtr c = connect(deadline, why);
  if (!c) {
    noteConnectFailure(why);
    error = SendResult::failure(Outcome::Retriable, why);
    return nullptr;
  }
  std::lock_guard lock(mutex_);
  backoff_ = 0ms;
  retryAt_ = {};
  if (lost_) stats_.reconnects.fetch_add(1, std::memory_order_relaxed);
  return c;
}

void RedisSink::noteConnectFailure(const std::string& error) {
  stats_.connectionErrors.fetch_add(1, std::memory_order_relaxed);
  bool first = false;
  {
    std::lock_guard lock(mutex_);
    backoff_ = backoff_ == 0ms ? kFirstBackoff : std::min(backoff_ * 2, kMaxBackoff);
    retryAt_ = Clock::now() + backoff_;
    lastError_ = error;
    if (!lost_) {
      first = lost_ = true;
      lostSince_ = Clock::now();
    }
  }
  if (first) {
    log::event(*log::component("redis"), spdlog::level::warn, "redis_connection_lost",
               {{"sink", name_}, {"address", cfg_.address}, {"error", error}});
  }
}

void RedisSink::noteLost(const std::string& error) {
  stats_.connectionErrors.fetch_add(1, std::memory_order_relaxed);
  std::vector<ConnectionPtr> closing;
  bool first = false;
  {
    std::lock_guard lock(mutex_);
    // Idle connections to a server that dropped this one are most likely dead too; a fresh connect
    // is cheaper than a failed batch per stale connection.
    closing.swap(idle_);
    if (!lost_) {
      first = lost_ = true;
      lostSince_ = Clock::now();
    }
  }
  if (first) {
    log::event(*log::component("redis"), spdlog::level::warn, "redis_connection_lost",
               {{"sink", name_}, {"address", cfg_.address}, {"error", error}});
  }
}

void RedisSink::release(ConnectionPtr c) {
  if (c->broken != nullptr || c->context->err != 0) {
    noteLost(c->context->err != 0 ? c->context->errstr : c->broken);
    return;
  }
  std::optional<std::chrono::milliseconds> restoredAfter;
  {
    std::lock_guard lock(mutex_);
    if (idle_.size() < maxIdle_) idle_.push_back(std::move(c));
    if (lost_) {
      lost_ = false;
      restoredAfter = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - lostSince_);
    }
  }
  if (restoredAfter) {
    log::event(*log::component("redis"), spdlog::level::info, "redis_connection_restored",
               {{"sink", name_}, {"address", cfg_.address}, {"down_ms", restoredAfter->count()}});
  }
}

bool RedisSink::applyTimeout(Connection& c, base::Deadline deadline, SendResult& error) {
  const auto left = until(deadline);
  if (left <= 0ms) {
    error = SendResult::failure(Outcome::Retriable, "deadline passed before sending to redis");
    return false;
  }
  if (redisSetTimeout(c.context, toTimeval(std::min(left, timeout_))) != REDIS_OK) {
    error = connectionFailure(c, "setting the timeout");
    return false;
  }
  return true;
}

SendResult RedisSink::connectionFailure(Connection& c, std::string_view during) {
  c.broken = "the connection failed";
  std::string why = c.context->errstr;
  // hiredis reports a socket timeout as the read's EAGAIN.
  if (why == std::strerror(EAGAIN) || why == std::strerror(EWOULDBLOCK)) why = "timed out waiting for the reply";
  return SendResult::failure(Outcome::Retriable, "redis at " + cfg_.address + ", " + std::string(during) + ": " + why);
}

SendResult RedisSink::send(const Batch& batch, base::Deadline deadline) {
  if (batch.empty()) return SendResult::success();
  SendResult result;
  ConnectionPtr c = acquire(deadline, result);
  if (!c) return result;
  if (applyTimeout(*c, deadline, result)) {
    switch (cfg_.mode) {
      case Mode::List:
        result = sendList(*c, batch, deadline);
        break;
      case Mode::Stream:
      case Mode::Pubsub:
        result = sendEach(*c, batch, deadline);
        break;
    }
  }
  release(std::move(c));
  return result;
}

SendResult RedisSink::sendList(Connection& c, const Batch& batch, base::Deadline) {
  // One RPUSH for the batch: the list gets all records or none, in order.
  c.argv.assign({"RPUSH", cfg_.key.data()});
  c.lengths.assign({5, cfg_.key.size()});
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const std::string_view r = batch.encodedRecord(i);
    c.argv.push_back(r.data());
    c.lengths.push_back(r.size());
  }
  if (redisAppendCommandArgv(c.context, static_cast<int>(c.argv.size()), c.argv.data(), c.lengths.data()) != REDIS_OK) {
    return connectionFailure(c, "queueing RPUSH");
  }
  stats_.commands.fetch_add(1, std::memory_order_relaxed);
  const Reply reply = nextReply(c.context);
  if (!reply) return connectionFailure(c, "RPUSH " + cfg_.key);
  if (reply->type == REDIS_REPLY_ERROR) {
    const ErrorClass cls = classifyError(errorText(*reply));
    countError(cls);
    if (cls == ErrorClass::ClientsFull) c.broken = kClosedByServer;
    return SendResult::failure(outcomeOf(cls), explain(cls, "RPUSH " + cfg_.key, errorText(*reply)));
  }
  return SendResult::success();
}

SendResult RedisSink::sendEach(Connection& c, const Batch& batch, base::Deadline deadline) {
  const bool stream = cfg_.mode == Mode::Stream;
  const std::string& target = stream ? cfg_.key : cfg_.channel;
  const std::string command = (stream ? "XADD " : "PUBLISH ") + target;
  // The arguments before the record are the same for every record.
  if (stream) {
    c.argv.assign({"XADD", target.data()});
    c.lengths.assign({4, target.size()});
    if (cfg_.maxlen > 0) {
      c.argv.insert(c.argv.end(), {"MAXLEN", "~", maxlen_.data()});
      c.lengths.insert(c.lengths.end(), {6, 1, maxlen_.size()});
    }
    c.argv.insert(c.argv.end(), {"*", "message", nullptr});
    c.lengths.insert(c.lengths.end(), {1, 7, 0});
  } else {
    c.argv.assign({"PUBLISH", target.data(), nullptr});
    c.lengths.assign({7, target.size(), 0});
  }
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const std::string_view r = batch.encodedRecord(i);
    c.argv.back() = r.data();
    c.lengths.back() = r.size();
    if (redisAppendCommandArgv(c.context, static_cast<int>(c.argv.size()), c.argv.data(), c.lengths.data()) !=
        REDIS_OK) {
      return connectionFailure(c, "queueing " + command);
    }
  }
  stats_.commands.fetch_add(batch.size(), std::memory_order_relaxed);

  std::vector<RecordFailure> failures;
  bool anyRetriable = false;
  std::size_t unheard = 0;  // records PUBLISH delivered to no subscriber
  // Replies read before the connection failed or the deadline passed say those records were written:
  // only the records whose replies are unread are sent again.
  const auto unread = [&](std::size_t from, SendResult lost) {
    if (from == 0) return false;
    for (std::size_t j = from; j < batch.size(); ++j) {
      failures.push_back({static_cast<std::uint32_t>(j), Outcome::Retriable, lost.error});
    }
    anyRetriable = true;
    return true;
  };
  for (std::size_t i = 0; i < batch.size(); ++i) {
    // The socket timeout bounds each read; this bounds the whole pipeline.
    if (i > 0 && Clock::now() >= deadline) {
      c.broken = "replies left unread at the deadline";
      unread(i, SendResult::failure(Outcome::Retriable, "redis at " + cfg_.address + ": deadline passed after " +
                                                            std::to_string(i) + " of " + std::to_string(batch.size()) +
                                                            " " + command + " replies"));
      break;
    }
    const Reply reply = nextReply(c.context);
    if (!reply) {
      SendResult lost = connectionFailure(c, command);
      if (!unread(i, lost)) return lost;
      break;
    }
    if (reply->type != REDIS_REPLY_ERROR) {
      // PUBLISH answers how many clients received the message.
      if (!stream && reply->type == REDIS_REPLY_INTEGER && reply->integer == 0) ++unheard;
      continue;
    }
    const ErrorClass cls = classifyError(errorText(*reply));
    countError(cls);
    if (cls == ErrorClass::ClientsFull) c.broken = kClosedByServer;
    const Outcome outcome = outcomeOf(cls);
    anyRetriable = anyRetriable || outcome == Outcome::Retriable;
    failures.push_back({static_cast<std::uint32_t>(i), outcome, explain(cls, command, errorText(*reply))});
  }
  if (!stream) notePublished(batch.size() - failures.size(), unheard);
  if (failures.empty()) return SendResult::success();
  const bool shared = failures.size() == batch.size() &&
                      std::all_of(failures.begin(), failures.end(),
                                  [&](const RecordFailure& f) { return f.outcome == failures.front().outcome; });
  if (shared) return SendResult::failure(failures.front().outcome, std::move(failures.front().error));
  SendResult result;
  result.outcome = anyRetriable                      ? Outcome::Retriable
                   : failures.size() == batch.size() ? Outcome::Permanent
                                                     : Outcome::Success;
  result.error = failures.front().error;
  result.failures = std::move(failures);
  return result;
}

SendResult RedisSink::probe(base::Deadline deadline) {
  SendResult result;
  ConnectionPtr c = acquire(deadline, result);
  if (!c) return result;
  if (applyTimeout(*c, deadline, result)) {
    stats_.commands.fetch_add(1, std::memory_order_relaxed);
    Reply reply(static_cast<redisReply*>(redisCommand(c->context, "PING")));
    if (!reply) {
      result = connectionFailure(*c, "PING");
    } else if (reply->type == REDIS_REPLY_ERROR) {
      // Whatever the reply, a probe that fails must count against the breaker.
      const ErrorClass cls = classifyError(errorText(*reply));
      countError(cls);
      if (cls == ErrorClass::ClientsFull) c->broken = kClosedByServer;
      result = SendResult::failure(Outcome::Retriable, explain(cls, "PING", errorText(*reply)));
    }
  }
  release(std::move(c));
  return result;
}

void RedisSink::notePublished(std::size_t accepted, std::size_t unheard) {
  stats_.unheard.fetch_add(unheard, std::memory_order_relaxed);
  // Logged when records start reaching no one and when they are heard again, not per record.
  bool changed = false;
  if (unheard > 0) {
    changed = !unheard_.exchange(true, std::memory_order_relaxed);
  } else if (accepted > 0) {
    changed = unheard_.exchange(false, std::memory_order_relaxed);
  }
  if (!changed) return;
  if (unheard > 0) {
    log::event(*log::component("redis"), spdlog::level::warn, "redis_publish_unheard",
               {{"sink", name_},
                {"channel", cfg_.channel},
                {"detail", "no client is subscribed: pubsub records published now reach no one"},
                {"hint", "counted in logcapture_sink_published_unheard_records_total"}});
  } else {
    log::event(*log::component("redis"), spdlog::level::info, "redis_publish_heard",
               {{"sink", name_}, {"channel", cfg_.channel}});
  }
}

std::vector<SinkMetric> RedisSink::metrics() const {
  const auto load = [](const auto& a) { return static_cast<std::int64_t>(a.load(std::memory_order_relaxed)); };
  constexpr std::string_view kErrors = "logcapture_redis_errors_total";
  constexpr std::string_view kErrorsHelp =
      "Failed redis calls by kind: connection (connect failed, lost mid-call, clients full), busy (LOADING, BUSY, "
      "OOM, ...), access_denied (NOAUTH, WRONGPASS, NOPERM), misrouted (MOVED, ASK), rejected (WRONGTYPE: the "
      "records go to the dead letter), refused (other error replies), fast (refused within the reconnect delay).";
  std::vector<SinkMetric> out{
      {"logcapture_redis_commands_total", "Commands written to redis: RPUSH, XADD, PUBLISH, PING.",
       load(stats_.commands)},
      {kErrors, kErrorsHelp, load(stats_.connectionErrors), SinkMetric::Kind::Counter, {"kind", "connection"}},
      {kErrors, kErrorsHelp, load(stats_.serverBusy), SinkMetric::Kind::Counter, {"kind", "busy"}},
      {kErrors, kErrorsHelp, load(stats_.accessDenied), SinkMetric::Kind::Counter, {"kind", "access_denied"}},
      {kErrors, kErrorsHelp, load(stats_.misrouted), SinkMetric::Kind::Counter, {"kind", "misrouted"}},
      {kErrors, kErrorsHelp, load(stats_.rejected), SinkMetric::Kind::Counter, {"kind", "rejected"}},
      {kErrors, kErrorsHelp, load(stats_.refused), SinkMetric::Kind::Counter, {"kind", "refused"}},
      {kErrors, kErrorsHelp, load(stats_.fastFailures), SinkMetric::Kind::Counter, {"kind", "fast"}},
      {"logcapture_redis_reconnects_total", "Connections made to redis after one was lost or refused.",
       load(stats_.reconnects)},
      {"logcapture_redis_connections", "Connections to redis open now, idle or in use.", load(stats_.connected),
       SinkMetric::Kind::Gauge},
  };
  if (cfg_.mode == Mode::Pubsub) {
    out.push_back({"logcapture_sink_published_unheard_records_total",
                   "Records a pubsub sink published while no client was subscribed to its channel (delivered to no "
                   "one).",
                   load(stats_.unheard)});
  }
  return out;
}

std::unique_ptr<Sink> build(const RedisConfig&, const config::SinkConfig& cfg) {
  return std::make_unique<RedisSink>(cfg);
}

}  // namespace logcapture::sinks::redis
