#pragma once

// The Redis sink (hiredis, blocking API): `mode: list` appends a batch with one RPUSH, `stream` adds
// one XADD entry per record (field "message"), `pubsub` sends one PUBLISH per record. Commands of a
// batch are pipelined: all written, then all replies read.
//
// NOTE on threads: start() and stop() run on the pipeline's thread; send() and probe() run on the
// runner's worker threads at once. Each call takes a connection from the pool for its whole duration,
// so a connection is only ever used by one thread; the pool (idle_) and the reconnect state
// (backoff_, retryAt_, lost_, ...) are guarded by mutex_, which is never held across network I/O.
// Stats are relaxed atomics, readable from any thread.
//
// What a caller may rely on:
// - Error replies are classed by the reply table (classifyError below); a connection that saw an
//   I/O or protocol error is closed, never reused.
// - After a failed connect, sends within a growing delay (100 ms doubling to 5 s, reset by a
//   successful connect) fail at once with Retriable "reconnecting in X ms", without touching the server.
// - In stream and pubsub modes a record refused while others were accepted is reported as a
//   RecordFailure; the call is then Retriable if any refusal was retriable, else Success.
// - Each socket read and write waits at most min(timeout, time left to the deadline); replies still
//   unread at the deadline make the call Retriable (records may have arrived: at-least-once).
// - Any error while connecting (refused, AUTH, SELECT) is Retriable: the records are not at fault.
// - probe() sends PING: an error reply, or a failure to connect or to read, is Retriable.
// - `key` and `channel` are used as written; {{field}} placeholders are not rendered.
// - mode: pubsub is fire-and-forget, as Redis Pub/Sub is: a PUBLISH the server accepted is delivered,
//   whether or not a client was subscribed. Records that reached no subscriber are counted (unheard,
//   and the metric logcapture_sink_published_unheard_records_total); the sink logs once when records
//   start reaching no one and once when they are heard again.
// - Connection loss and restoration are logged once each (redis_connection_lost / _restored).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "sinks/sink.h"

struct redisContext;

namespace logcapture::sinks::redis {

// Why a command failed, as far as the sink's callers care. Only KeyType is the records' doing (the
// dead letter); every other class is a fault of the server, the network or our configuration and
// credentials, which counts against the breaker while the records wait.
enum class ErrorClass : std::uint8_t {
  ConnectionLost,  // refused connect, I/O error, EOF, timeout, protocol error: the server may come back
  ClientsFull,     // "ERR max number of clients reached": the server took the connection only to close it
  ServerBusy,      // LOADING, BUSY, OOM, READONLY, MASTERDOWN, TRYAGAIN, CLUSTERDOWN, NOREPLICAS, MISCONF
  AccessDenied,    // NOAUTH, WRONGPASS, NOPERM: the sink's credentials, not the records, are at fault
  Misrouted,       // MOVED, ASK: the address is a cluster node that does not own the key (no redirects)
  Unsupported,     // "ERR unknown command": the server lacks the command, or renamed or disabled it
  KeyType,         // WRONGTYPE: the key holds another type, and the records cannot be written to it
  Refused,         // every other error reply (ERR ..., EXECABORT, prefixes unknown): not the records'
};

// The class of an error reply, by its first word and, for ERR, the message ("WRONGTYPE Operation
// against a key ..."). A pure table, tested row by row.
ErrorClass classifyError(std::string_view reply);
// KeyType Permanent; every other class Retriable.
Outcome outcomeOf(ErrorClass c);

struct RedisStats {
  std::atomic<std::uint64_t> commands{0};          // commands written: RPUSH, XADD, PUBLISH, PING
  std::atomic<std::uint64_t> connectionErrors{0};  // failed connects, connections lost mid-call, clients full
  std::atomic<std::uint64_t> serverBusy{0};        // LOADING, BUSY, OOM, ... replies
  std::atomic<std::uint64_t> accessDenied{0};      // NOAUTH / WRONGPASS / NOPERM replies
  std::atomic<std::uint64_t> misrouted{0};         // MOVED / ASK replies
  std::atomic<std::uint64_t> rejected{0};          // permanent error replies (WRONGTYPE)
  std::atomic<std::uint64_t> refused{0};           // other error replies: unknown command, ERR ...
  std::atomic<std::uint64_t> unheard{0};           // records PUBLISH delivered to no subscriber
  std::atomic<std::uint64_t> fastFailures{0};      // calls refused within the reconnect delay
  std::atomic<std::uint64_t> reconnects{0};        // connections made after one was lost or refused
  std::atomic<std::int64_t> connected{0};          // connections open now (idle or in use)
};

class RedisSink final : public Sink {
 public:
  explicit RedisSink(const config::SinkConfig& cfg);
  ~RedisSink() override;

  std::optional<std::string> start() override;
  SendResult send(const Batch& batch, base::Deadline deadline) override;
  SendResult probe(base::Deadline deadline) override;
  void stop(base::Deadline deadline) override;
  std::vector<SinkMetric> metrics() const override;

  const RedisStats& stats() const { return stats_; }

 private:
  // One server connection, with argument arrays reused from batch to batch.
  struct Connection {
    redisContext* context = nullptr;
    std::atomic<std::int64_t>* openGauge = nullptr;  // stats_.connected, counted down on close
    // Why the connection must not be reused (replies left unread, the server closing it); null: healthy.
    const char* broken = nullptr;
    std::vector<const char*> argv;
    std::vector<std::size_t> lengths;
    Connection() = default;
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;
    ~Connection();
  };
  using ConnectionPtr = std::unique_ptr<Connection>;

  // A pooled connection, or a new one; on failure `error` says why (Retriable).
  ConnectionPtr acquire(base::Deadline deadline, SendResult& error);
  ConnectionPtr connect(base::Deadline deadline, std::string& error);
  // Returns a healthy connection to the pool, or closes a broken one (and the idle ones with it).
  void release(ConnectionPtr connection);
  void noteConnectFailure(const std::string& error);
  void noteLost(const std::string& error);
  // Sets the socket timeout for this call: the smaller of `timeout` and what is left of `deadline`.
  bool applyTimeout(Connection& c, base::Deadline deadline, SendResult& error);
  SendResult connectionFailure(Connection& c, std::string_view during);
  SendResult sendList(Connection& c, const Batch& batch, base::Deadline deadline);
  SendResult sendEach(Connection& c, const Batch& batch, base::Deadline deadline);
  void countError(ErrorClass c);
  // Counts the records of a PUBLISH pipeline that reached no subscriber, logging the change of state.
  void notePublished(std::size_t accepted, std::size_t unheard);

  const std::string name_;
  const RedisConfig cfg_;
  const std::chrono::milliseconds timeout_;  // SinkConfig::timeout, the cap of one call
  const std::size_t maxIdle_;                // workers: more connections are never needed at once
  std::string maxlen_;                       // XADD MAXLEN's argument, as text
  std::string host_;                         // TCP host and port, or
  int port_ = 0;
  std::string socketPath_;  // the unix socket

  RedisStats stats_;
  std::atomic<bool> unheard_{false};  // the last PUBLISH reached no one: logged once until heard again
  std::mutex mutex_;
  std::vector<ConnectionPtr> idle_;                  // guarded by mutex_
  std::chrono::milliseconds backoff_{0};             // guarded by mutex_; 0: connect at once
  std::chrono::steady_clock::time_point retryAt_;    // guarded by mutex_; no connect before it
  bool lost_ = false;                                // guarded by mutex_; loss logged, restoration not yet
  std::string lastError_;                            // guarded by mutex_; why the last connect failed
  std::chrono::steady_clock::time_point lostSince_;  // guarded by mutex_
};

}  // namespace logcapture::sinks::redis
