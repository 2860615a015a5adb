#include "tests/support/redis_server.h"

#include <hiredis/hiredis.h>
#include <poll.h>
#include <signal.h>

#include <fstream>
#include <sstream>
#include <stdexcept>

namespace logcapture::testing {

namespace {

RedisValue copyReply(const redisReply& r) {
  RedisValue v;
  switch (r.type) {
    case REDIS_REPLY_INTEGER:
      v.type = RedisValue::Type::Integer;
      v.integer = r.integer;
      break;
    case REDIS_REPLY_STRING:
      v.type = RedisValue::Type::String;
      v.text.assign(r.str, r.len);
      break;
    case REDIS_REPLY_STATUS:
      v.type = RedisValue::Type::Status;
      v.text.assign(r.str, r.len);
      break;
    case REDIS_REPLY_ERROR:
      v.type = RedisValue::Type::Error;
      v.text.assign(r.str, r.len);
      break;
    case REDIS_REPLY_ARRAY:
      v.type = RedisValue::Type::Array;
      for (std::size_t i = 0; i < r.elements; ++i) v.elements.push_back(copyReply(*r.element[i]));
      break;
    default:
      v.type = RedisValue::Type::Nil;
      break;
  }
  return v;
}

RedisValue roundTrip(redisContext* c, const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<std::size_t> lens;
  for (const auto& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  auto* reply = static_cast<redisReply*>(redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data()));
  if (reply == nullptr) throw std::runtime_error("redis " + args.front() + ": " + c->errstr);
  RedisValue v = copyReply(*reply);
  freeReplyObject(reply);
  return v;
}

redisContext* connectTo(std::uint16_t port) {
  redisContext* c = redisConnectWithTimeout("127.0.0.1", port, timeval{2, 0});
  if (c == nullptr) throw std::runtime_error("redisConnect: out of memory");
  if (c->err != 0) {
    std::string error = c->errstr;
    redisFree(c);
    throw std::runtime_error("cannot connect to redis on port " + std::to_string(port) + ": " + error);
  }
  redisSetTimeout(c, timeval{10, 0});
  return c;
}

}  // namespace

std::vector<std::string> RedisValue::strings() const {
  if (type != Type::Array) return {text};
  std::vector<std::string> out;
  for (const auto& e : elements) out.push_back(e.text);
  return out;
}

RedisServer::RedisServer(RedisServerOptions options)
    : options_(std::move(options)), port_(freePort()), socket_(dir_ / "redis.sock") {
  start();
}

RedisServer::~RedisServer() {
  dropConnection();
  if (process_) stop();
}

void RedisServer::start() {
  if (process_) return;
  std::vector<std::string> argv = {"/usr/bin/redis-server",
                                   "--port",
                                   std::to_string(port_),
                                   "--bind",
                                   "127.0.0.1",
                                   "--dir",
                                   dir_.path.string(),
                                   "--save",
                                   "",
                                   "--appendonly",
                                   "no",
                                   "--unixsocket",
                                   socket_.string(),
                                   "--unixsocketperm",
                                   "700",
                                   "--logfile",
                                   (dir_ / "redis.log").string(),
                                   "--daemonize",
                                   "no"};
  if (!options_.password.empty()) {
    argv.push_back("--requirepass");
    argv.push_back(options_.password);
  }
  argv.insert(argv.end(), options_.extraArgs.begin(), options_.extraArgs.end());
  process_ = std::make_unique<ChildProcess>(argv);

  // Answering PING, even with NOAUTH or LOADING (a dump.rdb left by SAVE), means the server is up.
  const bool up = waitUntil(
      [&] {
        redisContext* c = redisConnectWithTimeout("127.0.0.1", port_, timeval{0, 200000});
        if (c == nullptr) return false;
        bool ok = false;
        if (c->err == 0) {
          auto* reply = static_cast<redisReply*>(redisCommand(c, "PING"));
          ok = reply != nullptr &&
               (reply->type == REDIS_REPLY_STATUS ||
                (reply->type == REDIS_REPLY_ERROR && (std::string_view(reply->str).starts_with("NOAUTH") ||
                                                      std::string_view(reply->str).starts_with("LOADING"))));
          if (reply != nullptr) freeReplyObject(reply);
        }
        redisFree(c);
        return ok;
      },
      std::chrono::seconds(10));
  if (!up) {
    std::ifstream log(dir_ / "redis.log");
    std::stringstream text;
    text << log.rdbuf();
    process_.reset();
    throw std::runtime_error("redis-server did not answer PING on port " + std::to_string(port_) + ":\n" + text.str());
  }
}

void RedisServer::stop() {
  dropConnection();
  if (!process_) return;
  process_->signal(SIGTERM);
  process_->wait(std::chrono::seconds(10));
  process_.reset();
}

void RedisServer::dropConnection() {
  if (context_ != nullptr) redisFree(context_);
  context_ = nullptr;
}

redisContext* RedisServer::connection(std::uint32_t db) {
  if (context_ != nullptr && context_->err != 0) dropConnection();
  if (context_ == nullptr) {
    context_ = connectTo(port_);
    selectedDb_ = 0;
    if (!options_.password.empty()) {
      const RedisValue auth = roundTrip(context_, {"AUTH", options_.password});
      if (auth.isError()) throw std::runtime_error("AUTH: " + auth.text);
    }
  }
  if (db != selectedDb_) {
    const RedisValue select = roundTrip(context_, {"SELECT", std::to_string(db)});
    if (select.isError()) throw std::runtime_error("SELECT: " + select.text);
    selectedDb_ = db;
  }
  return context_;
}

RedisValue RedisServer::command(const std::vector<std::string>& args, std::uint32_t db) {
  if (args.empty()) throw std::invalid_argument("an empty redis command");
  redisContext* c = connection(db);
  try {
    return roundTrip(c, args);
  } catch (...) {
    dropConnection();
    throw;
  }
}

RedisSubscriber::RedisSubscriber(const RedisServer& server, const std::string& channel) {
  context_ = connectTo(server.port());
  // The fixture's password, if any, is not known here; subscribers are for password-less servers.
  const RedisValue confirm = roundTrip(context_, {"SUBSCRIBE", channel});
  if (confirm.type != RedisValue::Type::Array) {
    redisFree(context_);
    throw std::runtime_error("SUBSCRIBE " + channel + " was not confirmed: " + confirm.text);
  }
}

RedisSubscriber::~RedisSubscriber() { redisFree(context_); }

std::optional<std::string> RedisSubscriber::next(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    void* raw = nullptr;
    // Messages already read from the socket come first; a blocking read with a socket timeout would
    // leave the context broken after the first quiet spell, so wait with poll() instead.
    if (redisGetReplyFromReader(context_, &raw) != REDIS_OK) throw std::runtime_error(context_->errstr);
    if (raw != nullptr) {
      const RedisValue v = copyReply(*static_cast<redisReply*>(raw));
      freeReplyObject(raw);
      // ["message", channel, payload]
      if (v.type == RedisValue::Type::Array && v.elements.size() == 3 && v.elements[0].text == "message") {
        return v.elements[2].text;
      }
      continue;
    }
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    pollfd p{context_->fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return std::nullopt;
    if (redisBufferRead(context_) != REDIS_OK) throw std::runtime_error(context_->errstr);
  }
}

}  // namespace logcapture::testing
