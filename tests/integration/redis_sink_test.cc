// The Redis sink against a real redis-server started by each test.

#include "sinks/redis/redis_sink.h"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <deque>
#include <thread>

#include "tests/support/fixtures.h"
#include "tests/support/redis_server.h"

namespace {

using namespace logcapture;
using namespace logcapture::sinks;
using namespace std::chrono_literals;
using logcapture::testing::RedisServer;
using logcapture::testing::RedisServerOptions;
using logcapture::testing::RedisSubscriber;
using logcapture::testing::RedisValue;
using logcapture::testing::waitUntil;
using redis::Mode;
using redis::RedisConfig;
using redis::RedisSink;

// Records and their raw encoding (the line itself), kept alive as long as the batch.
struct Lines {
  std::deque<base::Record> records;
  base::RecordBytes bytes;  // what the records' messages view
  Batch batch;

  explicit Lines(std::size_t n, const std::string& prefix = "line") {
    for (std::size_t i = 0; i < n; ++i) add(prefix + "-" + std::to_string(i));
  }
  void add(const std::string& line) {
    records.emplace_back().message = bytes.copy(line);
    batch.encoded += line;
    batch.seal(&records.back());
  }
  std::vector<std::string> messages() const {
    std::vector<std::string> out;
    for (const auto& r : records) out.emplace_back(r.message);
    return out;
  }
};

RedisConfig listAt(const std::string& address, const std::string& key = "logs") {
  RedisConfig r;
  r.address = address;
  r.mode = Mode::List;
  r.key = key;
  r.connectTimeout = 1s;
  return r;
}

config::SinkConfig sinkConfig(const RedisConfig& r, std::uint32_t workers = 2) {
  config::SinkConfig cfg;
  cfg.name = "cache";
  cfg.type = config::sinkTypeOf<sinks::redis::RedisConfig>();
  cfg.workers = workers;
  cfg.timeout = 5s;
  cfg.settings = r;
  return cfg;
}

base::Deadline in(std::chrono::milliseconds ms) { return std::chrono::steady_clock::now() + ms; }

// A started sink, stopped at the end of the test.
struct StartedSink {
  RedisSink sink;
  explicit StartedSink(const config::SinkConfig& cfg) : sink(cfg) { REQUIRE_FALSE(sink.start().has_value()); }
  ~StartedSink() { sink.stop(in(1s)); }
  SendResult send(const Batch& b) { return sink.send(b, in(5s)); }
};

// The value of one of the sink's own metrics (the first with that name and label value), if it has it.
std::optional<std::int64_t> metricValue(const RedisSink& sink, std::string_view name, std::string_view label = "") {
  for (const auto& m : sink.metrics()) {
    if (m.name == name && m.label.second == label) return m.value;
  }
  return std::nullopt;
}

std::vector<std::string> streamMessages(RedisServer& server, const std::string& key) {
  // XRANGE: [[id, ["message", record]], ...]
  const RedisValue range = server.command({"XRANGE", key, "-", "+"});
  std::vector<std::string> out;
  for (const auto& entry : range.elements) {
    REQUIRE(entry.elements.size() == 2);
    REQUIRE(entry.elements[1].elements.size() == 2);
    CHECK(entry.elements[1].elements[0].text == "message");
    out.push_back(entry.elements[1].elements[1].text);
  }
  return out;
}

TEST_CASE("redis error replies are classed by the reply table, row by row") {
  using redis::ErrorClass;
  struct Row {
    std::string_view reply;
    ErrorClass cls;
  };
  const std::vector<Row> rows = {
      {"WRONGTYPE Operation against a key holding the wrong kind of value", ErrorClass::KeyType},
      {"NOAUTH Authentication required.", ErrorClass::AccessDenied},
      {"WRONGPASS invalid username-password pair or user is disabled.", ErrorClass::AccessDenied},
      {"NOPERM this user has no permissions to run the 'rpush' command", ErrorClass::AccessDenied},
      {"LOADING Redis is loading the dataset in memory", ErrorClass::ServerBusy},
      {"BUSY Redis is busy running a script.", ErrorClass::ServerBusy},
      {"OOM command not allowed when used memory > 'maxmemory'.", ErrorClass::ServerBusy},
      {"READONLY You can't write against a read only replica.", ErrorClass::ServerBusy},
      {"MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.", ErrorClass::ServerBusy},
      {"TRYAGAIN Multiple keys request during rehashing of slot", ErrorClass::ServerBusy},
      {"CLUSTERDOWN The cluster is down", ErrorClass::ServerBusy},
      {"NOREPLICAS Not enough good replicas to write.", ErrorClass::ServerBusy},
      {"MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk.",
       ErrorClass::ServerBusy},
      {"MOVED 3999 127.0.0.1:6381", ErrorClass::Misrouted},
      {"ASK 3999 127.0.0.1:6381", ErrorClass::Misrouted},
      {"ERR max number of clients reached", ErrorClass::ClientsFull},
      {"ERR unknown command 'XADD', with args beginning with: ", ErrorClass::Unsupported},
      {"ERR unknown command", ErrorClass::Unsupported},
      {"ERR unknown subcommand 'foo'.", ErrorClass::Unsupported},
      {"ERR wrong number of arguments for 'rpush' command", ErrorClass::Refused},
      {"ERR syntax error", ErrorClass::Refused},
      {"ERR Protocol error: invalid bulk length", ErrorClass::Refused},
      {"ERR DB index is out of range", ErrorClass::Refused},
      {"EXECABORT Transaction discarded because of previous errors.", ErrorClass::Refused},
      {"BUSYKEY Target key name already exists.", ErrorClass::Refused},
      {"NOSCRIPT No matching script.", ErrorClass::Refused},
      {"WRONGTYPEX not a known word", ErrorClass::Refused},
      {"ERR", ErrorClass::Refused},
      {"", ErrorClass::Refused},
  };
  for (const auto& row : rows) {
    CAPTURE(row.reply);
    CHECK(redis::classifyError(row.reply) == row.cls);
  }
}

TEST_CASE("only a key of another type is a permanent redis error") {
  using redis::ErrorClass;
  using redis::outcomeOf;
  CHECK(outcomeOf(ErrorClass::KeyType) == sinks::Outcome::Permanent);
  for (const ErrorClass c :
       {ErrorClass::ConnectionLost, ErrorClass::ClientsFull, ErrorClass::ServerBusy, ErrorClass::AccessDenied,
        ErrorClass::Misrouted, ErrorClass::Unsupported, ErrorClass::Refused}) {
    CAPTURE(static_cast<int>(c));
    CHECK(outcomeOf(c) == sinks::Outcome::Retriable);
  }
}

TEST_CASE("redis list mode appends a batch with one RPUSH, in order") {
  RedisServer server;
  StartedSink s(sinkConfig(listAt(server.address())));
  Lines first(50, "a");
  Lines second(50, "b");
  CHECK(s.send(first.batch).outcome == sinks::Outcome::Success);
  CHECK(s.send(second.batch).outcome == sinks::Outcome::Success);
  std::vector<std::string> expected = first.messages();
  for (const auto& m : second.messages()) expected.push_back(m);
  CHECK(server.command({"LRANGE", "logs", "0", "-1"}).strings() == expected);
  CHECK(s.sink.stats().commands.load() == 2);
  CHECK(s.sink.stats().connected.load() == 1);
}

TEST_CASE("redis stream mode adds one entry per record, in order") {
  RedisServer server;
  RedisConfig r = listAt(server.address(), "events");
  r.mode = Mode::Stream;
  StartedSink s(sinkConfig(r));
  Lines lines(100);
  const SendResult result = s.send(lines.batch);
  CHECK(result.outcome == sinks::Outcome::Success);
  CHECK(result.failures.empty());
  CHECK(streamMessages(server, "events") == lines.messages());
  CHECK(s.sink.stats().commands.load() == 100);
}

TEST_CASE("redis stream mode trims the stream to about maxlen") {
  RedisServer server;
  RedisConfig r = listAt(server.address(), "events");
  r.mode = Mode::Stream;
  r.maxlen = 100;
  StartedSink s(sinkConfig(r));
  for (int i = 0; i < 20; ++i) {
    Lines lines(100, "batch" + std::to_string(i));
    REQUIRE(s.send(lines.batch).outcome == sinks::Outcome::Success);
  }
  // MAXLEN ~ trims whole macro nodes (100 entries by default): at least 100 stay, far fewer than 2,000.
  const long long length = server.command({"XLEN", "events"}).integer;
  CHECK(length >= 100);
  CHECK(length < 300);
  // The newest record is always kept.
  const RedisValue last = server.command({"XREVRANGE", "events", "+", "-", "COUNT", "1"});
  REQUIRE(last.elements.size() == 1);
  CHECK(last.elements[0].elements[1].elements[1].text == "batch19-99");
}

TEST_CASE("redis pubsub mode publishes every record, in order") {
  RedisServer server;
  RedisSubscriber subscriber(server, "live");
  RedisConfig r = listAt(server.address());
  r.mode = Mode::Pubsub;
  r.key.clear();
  r.channel = "live";
  StartedSink s(sinkConfig(r));
  Lines lines(200);
  CHECK(s.send(lines.batch).outcome == sinks::Outcome::Success);
  std::vector<std::string> received;
  for (std::size_t i = 0; i < lines.records.size(); ++i) {
    auto message = subscriber.next();
    if (!message) break;
    received.push_back(*message);
  }
  CHECK(received == lines.messages());
}

TEST_CASE("redis pubsub counts the records that reached no subscriber") {
  RedisServer server;
  RedisConfig r = listAt(server.address());
  r.mode = Mode::Pubsub;
  r.key.clear();
  r.channel = "live";
  StartedSink s(sinkConfig(r));
  Lines unheard(30);
  CHECK(s.send(unheard.batch).outcome == sinks::Outcome::Success);
  CHECK(s.sink.stats().unheard.load() == 30);

  RedisSubscriber subscriber(server, "live");
  Lines heard(20);
  CHECK(s.send(heard.batch).outcome == sinks::Outcome::Success);
  CHECK(subscriber.next() == "line-0");
  CHECK(s.sink.stats().unheard.load() == 30);
  CHECK(metricValue(s.sink, "logcapture_sink_published_unheard_records_total") == 30);
}

TEST_CASE("redis list and stream sinks report no pubsub counter") {
  RedisServer server;
  StartedSink s(sinkConfig(listAt(server.address())));
  CHECK_FALSE(metricValue(s.sink, "logcapture_sink_published_unheard_records_total").has_value());
  CHECK(metricValue(s.sink, "logcapture_redis_commands_total").has_value());
}

TEST_CASE("redis db selects the database the records go to") {
  RedisServer server;
  RedisConfig r = listAt(server.address());
  r.db = 3;
  StartedSink s(sinkConfig(r));
  Lines lines(10);
  CHECK(s.send(lines.batch).outcome == sinks::Outcome::Success);
  CHECK(server.command({"LLEN", "logs"}, 3).integer == 10);
  CHECK(server.command({"LLEN", "logs"}, 0).integer == 0);
}

TEST_CASE("redis password authenticates the sink's connections") {
  RedisServer server(RedisServerOptions{.password = "s3cret", .extraArgs = {}});
  RedisConfig r = listAt(server.address());
  r.password = "s3cret";
  StartedSink s(sinkConfig(r));
  Lines lines(10);
  CHECK(s.send(lines.batch).outcome == sinks::Outcome::Success);
  CHECK(server.command({"LLEN", "logs"}).integer == 10);
}

TEST_CASE("redis ACL username and password authenticate the sink's connections") {
  RedisServer server;
  REQUIRE_FALSE(server.command({"ACL", "SETUSER", "shipper", "on", ">pw", "~logs", "+rpush"}).isError());
  RedisConfig r = listAt(server.address());
  r.username = "shipper";
  r.password = "pw";
  StartedSink s(sinkConfig(r));
  Lines lines(10);
  CHECK(s.send(lines.batch).outcome == sinks::Outcome::Success);
  CHECK(server.command({"LLEN", "logs"}).integer == 10);
}

TEST_CASE("redis wrong password is retriable and says the records are not at fault") {
  RedisServer server(RedisServerOptions{.password = "s3cret", .extraArgs = {}});
  RedisConfig r = listAt(server.address());
  r.password = "wrong";
  StartedSink s(sinkConfig(r));
  Lines lines(10);
  const SendResult result = s.send(lines.batch);
  CHECK(result.outcome == sinks::Outcome::Retriable);
  CHECK(result.error.find("WRONGPASS") != std::string::npos);
  CHECK(result.error.find("not at fault") != std::string::npos);
  CHECK(s.sink.stats().accessDenied.load() == 1);
  CHECK(s.sink.stats().connected.load() == 0);
}

TEST_CASE("redis key of another type is a permanent failure") {
  RedisServer server;
  REQUIRE_FALSE(server.command({"SET", "logs", "a string"}).isError());
  StartedSink s(sinkConfig(listAt(server.address())));
  Lines lines(10);
  const SendResult result = s.send(lines.batch);
  CHECK(result.outcome == sinks::Outcome::Permanent);
  CHECK(result.error.find("WRONGTYPE") != std::string::npos);
  CHECK(result.failures.empty());
  CHECK(s.sink.stats().rejected.load() == 1);
  // The connection saw an error reply, not an error: it is kept.
  CHECK(s.sink.stats().connected.load() == 1);
}

TEST_CASE("redis without the command is retriable: the server is at fault, not the records") {
  RedisServer server(RedisServerOptions{.password = "", .extraArgs = {"--rename-command", "RPUSH", ""}});
  StartedSink s(sinkConfig(listAt(server.address())));
  Lines lines(10);
  const SendResult result = s.send(lines.batch);
  CHECK(result.outcome == sinks::Outcome::Retriable);
  CHECK(result.error.find("unknown command") != std::string::npos);
  CHECK(s.sink.stats().refused.load() == 1);
  CHECK(s.sink.stats().rejected.load() == 0);
}

TEST_CASE("redis at its maxclients is retriable, and the sink gets in once there is room") {
  RedisServer server(RedisServerOptions{.password = "", .extraArgs = {"--maxclients", "1"}});
  REQUIRE(server.command({"PING"}).text == "PONG");  // the one client the server takes
  StartedSink s(sinkConfig(listAt(server.address()), 1));
  Lines lines(10);
  const SendResult refused = s.send(lines.batch);
  CHECK(refused.outcome == sinks::Outcome::Retriable);
  CHECK(refused.error.find("max number of clients") != std::string::npos);
  const SendResult probed = s.sink.probe(in(1s));
  CHECK(probed.outcome == sinks::Outcome::Retriable);

  REQUIRE_FALSE(server.command({"CONFIG", "SET", "maxclients", "100"}).isError());
  CHECK(waitUntil([&] { return s.send(lines.batch).outcome == sinks::Outcome::Success; }, 10s));
  CHECK(server.command({"LLEN", "logs"}).integer == 10);
  CHECK(s.sink.probe(in(1s)).outcome == sinks::Outcome::Success);
}

TEST_CASE("redis stopped server fails fast as retriable, and the sink reconnects once it is back") {
  RedisServer server;
  StartedSink s(sinkConfig(listAt(server.address()), 1));
  Lines lines(10);
  REQUIRE(s.send(lines.batch).outcome == sinks::Outcome::Success);

  server.stop();
  // The pooled connection finds the server gone; the next call's connect is refused.
  for (int i = 0; i < 2; ++i) {
    const auto started = std::chrono::steady_clock::now();
    const SendResult result = s.send(lines.batch);
    CHECK(result.outcome == sinks::Outcome::Retriable);
    CHECK(std::chrono::steady_clock::now() - started < 1s);  // connect_timeout
  }
  // Within the reconnect delay the sink does not touch the server.
  const SendResult fast = s.send(lines.batch);
  CHECK(fast.outcome == sinks::Outcome::Retriable);
  CHECK(fast.error.find("reconnecting in") != std::string::npos);
  CHECK(s.sink.stats().fastFailures.load() >= 1);
  CHECK(s.sink.stats().connected.load() == 0);

  server.start();
  CHECK(waitUntil([&] { return s.send(lines.batch).outcome == sinks::Outcome::Success; }, 10s));
  CHECK(server.command({"LLEN", "logs"}).integer == 10);  // a fresh server: the first batch is gone
  CHECK(s.sink.stats().reconnects.load() == 1);
  CHECK(s.sink.probe(in(1s)).outcome == sinks::Outcome::Success);
}

TEST_CASE("redis busy running a script is retriable") {
  RedisServer server(RedisServerOptions{.password = "", .extraArgs = {"--busy-reply-threshold", "50"}});
  StartedSink s(sinkConfig(listAt(server.address())));
  // A script that never ends, sent on a connection that never reads its reply.
  redisContext* blocker = redisConnect("127.0.0.1", server.port());
  REQUIRE(blocker != nullptr);
  REQUIRE(blocker->err == 0);
  REQUIRE(redisAppendCommand(blocker, "EVAL %s 0", "while true do end") == REDIS_OK);
  int done = 0;
  while (done == 0) REQUIRE(redisBufferWrite(blocker, &done) == REDIS_OK);
  CHECK(waitUntil([&] { return server.command({"PING"}).isError(); }));

  Lines lines(10);
  const SendResult result = s.send(lines.batch);
  CHECK(result.outcome == sinks::Outcome::Retriable);
  CHECK(result.error.find("BUSY") != std::string::npos);
  CHECK(s.sink.stats().serverBusy.load() == 1);
  CHECK(s.sink.probe(in(1s)).outcome == sinks::Outcome::Retriable);

  CHECK_FALSE(server.command({"SCRIPT", "KILL"}).isError());
  redisFree(blocker);
  // The script stops at its next check, a moment after SCRIPT KILL returns.
  CHECK(waitUntil([&] { return !server.command({"PING"}).isError(); }));
  CHECK(s.send(lines.batch).outcome == sinks::Outcome::Success);
}

TEST_CASE("redis loading its dataset is retriable") {
  // A dump.rdb that loads slowly: the server answers LOADING while it reads the keys back.
  RedisServer server(RedisServerOptions{.password = "",
                                        .extraArgs = {"--enable-debug-command", "yes", "--key-load-delay", "1000",
                                                      "--loading-process-events-interval-bytes", "1024"}});
  REQUIRE_FALSE(server.command({"DEBUG", "POPULATE", "1000"}).isError());
  REQUIRE_FALSE(server.command({"SAVE"}).isError());
  server.stop();
  server.start();
  StartedSink s(sinkConfig(listAt(server.address())));
  Lines lines(10);
  const SendResult result = s.send(lines.batch);
  CHECK(result.outcome == sinks::Outcome::Retriable);
  CHECK(result.error.find("LOADING") != std::string::npos);
  CHECK(s.sink.stats().serverBusy.load() == 1);
  CHECK(waitUntil([&] { return s.send(lines.batch).outcome == sinks::Outcome::Success; }, 20s));
  CHECK(server.command({"LLEN", "logs"}).integer == 10);
}

TEST_CASE("redis unix socket address delivers") {
  RedisServer server;
  StartedSink s(sinkConfig(listAt("unix:" + server.socketPath().string())));
  Lines lines(10);
  CHECK(s.send(lines.batch).outcome == sinks::Outcome::Success);
  CHECK(server.command({"LRANGE", "logs", "0", "-1"}).strings() == lines.messages());
  RedisConfig plainPath = listAt(server.socketPath().string(), "other");
  StartedSink t(sinkConfig(plainPath));
  CHECK(t.send(lines.batch).outcome == sinks::Outcome::Success);
  CHECK(server.command({"LLEN", "other"}).integer == 10);
}

TEST_CASE("redis delivers 10,000 records of one batch") {
  RedisServer server;
  StartedSink list(sinkConfig(listAt(server.address())));
  RedisConfig r = listAt(server.address(), "events");
  r.mode = Mode::Stream;
  StartedSink stream(sinkConfig(r));
  Lines lines(10000, "record with some text to make it a realistic length");
  CHECK(list.send(lines.batch).outcome == sinks::Outcome::Success);
  CHECK(stream.send(lines.batch).outcome == sinks::Outcome::Success);
  CHECK(server.command({"LRANGE", "logs", "0", "-1"}).strings() == lines.messages());
  CHECK(streamMessages(server, "events") == lines.messages());
}

TEST_CASE("redis concurrent sends use one connection each and lose nothing") {
  RedisServer server;
  StartedSink s(sinkConfig(listAt(server.address()), 4));
  std::vector<std::thread> workers;
  std::atomic<int> failures{0};
  for (int w = 0; w < 4; ++w) {
    workers.emplace_back([&, w] {
      for (int i = 0; i < 50; ++i) {
        Lines lines(20, "w" + std::to_string(w));
        if (s.send(lines.batch).outcome != sinks::Outcome::Success) ++failures;
      }
    });
  }
  for (auto& t : workers) t.join();
  CHECK(failures.load() == 0);
  CHECK(server.command({"LLEN", "logs"}).integer == 4 * 50 * 20);
  CHECK(s.sink.stats().connected.load() <= 4);
}

}  // namespace

namespace {

// Between the sink and redis-server: passes everything, except that it closes the first connection
// right after forwarding `cutAfter` replies ":0\r\n" (PUBLISH to no subscriber) to the sink.
class CuttingProxy {
 public:
  CuttingProxy(std::uint16_t upstream, int cutAfter) : upstream_(upstream), cutAfter_(cutAfter) {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(listener_, 16) == 0);
    socklen_t len = sizeof a;
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    acceptor_ = std::thread([this] { accept(); });
  }
  ~CuttingProxy() {
    stopping_ = true;
    ::shutdown(listener_, SHUT_RDWR);
    acceptor_.join();
    for (auto& t : pipes_) t.join();
    ::close(listener_);
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  void accept() {
    for (;;) {
      const int client = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0 || stopping_) {
        if (client >= 0) ::close(client);
        return;
      }
      const int server = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      a.sin_port = htons(upstream_);
      if (::connect(server, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(client);
        ::close(server);
        continue;
      }
      pipes_.emplace_back([this, client, server] { pipe(client, server); });
    }
  }
  void pipe(int client, int server) {
    static constexpr std::string_view kReply = ":0\r\n";
    int seen = 0;       // replies forwarded on this connection
    std::string carry;  // the end of the last read, for a reply split between two reads
    char buf[65536];
    while (!stopping_) {
      pollfd fds[2] = {{client, POLLIN, 0}, {server, POLLIN, 0}};
      if (::poll(fds, 2, 100) <= 0) continue;
      if (fds[0].revents) {
        const ssize_t n = ::read(client, buf, sizeof buf);
        if (n <= 0 || ::send(server, buf, static_cast<std::size_t>(n), MSG_NOSIGNAL) != n) break;
      }
      if (fds[1].revents) {
        const ssize_t n = ::read(server, buf, sizeof buf);
        if (n <= 0) break;
        std::size_t forward = static_cast<std::size_t>(n);
        bool cut = false;
        if (!cutDone_) {
          const std::string text = carry + std::string(buf, forward);
          for (std::size_t pos = 0; (pos = text.find(kReply, pos)) != std::string::npos; pos += kReply.size()) {
            if (pos + kReply.size() <= carry.size()) continue;  // counted with the last read
            if (++seen == cutAfter_) {
              forward = pos + kReply.size() - carry.size();
              cut = true;
              break;
            }
          }
          carry = text.substr(text.size() - std::min(text.size(), kReply.size() - 1));
        }
        if (::send(client, buf, forward, MSG_NOSIGNAL) != static_cast<ssize_t>(forward)) break;
        if (cut && !cutDone_.exchange(true)) break;
      }
    }
    ::close(client);
    ::close(server);
  }

  std::uint16_t upstream_;
  int cutAfter_;
  int listener_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> cutDone_{false};
  std::thread acceptor_;
  std::vector<std::thread> pipes_;  // joined by the destructor
};

}  // namespace

TEST_CASE("redis pubsub sends again only the records whose replies were lost with the connection") {
  RedisServer server;
  CuttingProxy proxy(server.port(), 40);
  RedisConfig r = listAt(proxy.address());
  r.mode = Mode::Pubsub;
  r.key.clear();
  r.channel = "live";
  StartedSink s(sinkConfig(r, 1));
  Lines lines(100);
  const SendResult result = s.send(lines.batch);
  CHECK(result.outcome == sinks::Outcome::Retriable);
  REQUIRE(result.failures.size() == 60);
  for (std::size_t i = 0; i < result.failures.size(); ++i) {
    CHECK(result.failures[i].index == 40 + i);
    CHECK(result.failures[i].outcome == sinks::Outcome::Retriable);
  }
  // The connection is made again for the next batch.
  Lines more(10, "more");
  CHECK(s.send(more.batch).outcome == sinks::Outcome::Success);
}
