#include "agent/log.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <exception>
#include <mutex>
#include <nlohmann/json.hpp>
#include <utility>

namespace logcapture::log {
namespace {

// Event payloads carry their fields to the JSON formatter behind these separators (bytes that never
// occur in a message we write), so fields stay typed instead of being re-parsed from text.
constexpr char kEventMark = '\x1e';
constexpr char kFieldsMark = '\x1f';

constexpr const char* kTextPattern = "%Y-%m-%dT%H:%M:%S.%eZ %-5l %n: %v";

std::atomic<bool> jsonMode{false};

std::mutex& registryMutex() {
  static std::mutex m;
  return m;
}

std::shared_ptr<spdlog::sinks::stderr_sink_mt>& stderrSink() {
  static auto sink = [] {
    auto s = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    s->set_formatter(std::make_unique<spdlog::pattern_formatter>(kTextPattern, spdlog::pattern_time_type::utc));
    return s;
  }();
  return sink;
}

spdlog::level::level_enum& currentLevel() {
  static spdlog::level::level_enum level = spdlog::level::info;
  return level;
}

void appendTime(std::string& out, spdlog::log_clock::time_point tp) {
  const auto secs = std::chrono::time_point_cast<std::chrono::seconds>(tp);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(tp - secs).count();
  const std::time_t t = spdlog::log_clock::to_time_t(tp);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  out += buf;
}

class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    std::string time;
    appendTime(time, msg.time);
    nlohmann::ordered_json line;
    line["time"] = time;
    const auto level = spdlog::level::to_string_view(msg.level);
    line["level"] = std::string(level.data(), level.size());
    line["logger"] = std::string(msg.logger_name.data(), msg.logger_name.size());
    std::string_view payload(msg.payload.data(), msg.payload.size());
    if (!payload.empty() && payload.front() == kEventMark) {
      const auto sep = payload.find(kFieldsMark);
      line["message"] = std::string(payload.substr(1, sep - 1));
      if (sep != std::string_view::npos) {
        auto fields = nlohmann::ordered_json::parse(payload.substr(sep + 1), nullptr, false);
        if (fields.is_object()) {
          for (auto& [k, v] : fields.items()) {
            if (!line.contains(k)) line[k] = v;
          }
        }
      }
    } else {
      line["message"] = std::string(payload);
    }
    const std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    dest.append(text.data(), text.data() + text.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<JsonFormatter>(); }
};

std::unique_ptr<spdlog::formatter> makeFormatter(bool json) {
  if (json) return std::make_unique<JsonFormatter>();
  return std::make_unique<spdlog::pattern_formatter>(kTextPattern, spdlog::pattern_time_type::utc);
}

spdlog::level::level_enum toSpdlog(config::LogLevel level) {
  switch (level) {
    case config::LogLevel::Trace:
      return spdlog::level::trace;
    case config::LogLevel::Debug:
      return spdlog::level::debug;
    case config::LogLevel::Info:
      return spdlog::level::info;
    case config::LogLevel::Warn:
      return spdlog::level::warn;
    case config::LogLevel::Error:
      return spdlog::level::err;
    case config::LogLevel::Critical:
      return spdlog::level::critical;
    case config::LogLevel::Off:
      return spdlog::level::off;
  }
  return spdlog::level::info;
}

bool needsQuotes(std::string_view s) {
  if (s.empty()) return true;
  for (char ch : s) {
    if (ch == ' ' || ch == '"' || ch == '=' || static_cast<unsigned char>(ch) < 0x20) return true;
  }
  return false;
}

}  // namespace

void configure(const config::LogConfig& cfg) {
  std::lock_guard lock(registryMutex());
  jsonMode.store(cfg.format == config::LogFormat::Json);
  currentLevel() = toSpdlog(cfg.level);
  stderrSink()->set_formatter(makeFormatter(cfg.format == config::LogFormat::Json));
  spdlog::apply_all([](const std::shared_ptr<spdlog::logger>& l) { l->set_level(currentLevel()); });
}

std::shared_ptr<spdlog::logger> component(const std::string& name) {
  std::lock_guard lock(registryMutex());
  if (auto existing = spdlog::get(name)) return existing;
  auto logger = std::make_shared<spdlog::logger>(name, stderrSink());
  logger->set_level(currentLevel());
  logger->flush_on(spdlog::level::trace);
  spdlog::register_logger(logger);
  return logger;
}

void event(spdlog::logger& logger, spdlog::level::level_enum level, std::string_view name,
           std::initializer_list<Field> fields) {
  if (!logger.should_log(level)) return;
  std::string payload;
  if (jsonMode.load(std::memory_order_relaxed)) {
    nlohmann::ordered_json object = nlohmann::ordered_json::object();
    for (const auto& f : fields) {
      std::visit(
          [&](const auto& v) {
            if constexpr (std::is_same_v<std::decay_t<decltype(v)>, std::string_view>) {
              object[std::string(f.key)] = std::string(v);
            } else {
              object[std::string(f.key)] = v;
            }
          },
          f.value);
    }
    payload += kEventMark;
    payload += name;
    payload += kFieldsMark;
    payload += object.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } else {
    payload = name;
    for (const auto& f : fields) {
      payload += ' ';
      payload += f.key;
      payload += '=';
      std::visit(
          [&](const auto& v) {
            using V = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<V, std::string_view>) {
              if (needsQuotes(v)) {
                payload +=
                    nlohmann::json(std::string(v)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
              } else {
                payload += v;
              }
            } else if constexpr (std::is_same_v<V, bool>) {
              payload += v ? "true" : "false";
            } else {
              payload += fmt::format("{}", v);
            }
          },
          f.value);
    }
  }
  logger.log(level, std::string_view(payload));
}

bool Throttle::note(Clock::time_point now, std::uint64_t count, std::string_view detail) {
  std::lock_guard lock(mutex_);
  if (!logged_ || (pending_.occurrences == 0 && now - lastLogged_ >= interval_)) {
    logged_ = true;
    lastLogged_ = now;
    return true;
  }
  pending_.occurrences += 1;
  pending_.count += count;
  pending_.lastDetail.assign(detail);
  return false;
}

bool Throttle::holding() {
  std::lock_guard lock(mutex_);
  return pending_.occurrences > 0;
}

Throttle::Summary Throttle::takeDue(Clock::time_point now) {
  std::lock_guard lock(mutex_);
  if (pending_.occurrences == 0 || now - lastLogged_ < interval_) return {};
  lastLogged_ = now;
  return std::exchange(pending_, Summary{});
}

namespace {
std::atomic<std::uint64_t> threadFailureCount{0};
std::atomic<bool> processFaulted{false};
}  // namespace

void noteThreadFailure(std::string_view name, std::string_view what, bool fatal) noexcept {
  threadFailureCount.fetch_add(1, std::memory_order_relaxed);
  if (fatal) processFaulted.store(true, std::memory_order_release);
  try {
    event(*component(std::string(name)), spdlog::level::critical, "thread_failed",
          {{"component", name},
           {"error", what},
           {"action", fatal ? "the agent stops; records not checkpointed are read again after a restart"
                            : "the component recovers and goes on"}});
  } catch (...) {
    // Logging itself failed (out of memory): the count and the fault flag still tell.
  }
}

void guardThread(std::string_view name, const std::function<void()>& body) noexcept {
  try {
    body();
  } catch (const std::exception& e) {
    noteThreadFailure(name, e.what(), true);
  } catch (...) {
    noteThreadFailure(name, "an exception of unknown type", true);
  }
}

std::uint64_t threadFailures() { return threadFailureCount.load(std::memory_order_relaxed); }

bool faulted() { return processFaulted.load(std::memory_order_acquire); }

}  // namespace logcapture::log
