#include "base/log.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <ctime>
#include <exception>
#include <mutex>
#include <utility>

#include "base/json_text.h"

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

void appendJson(std::string& out, std::string_view text) {
  base::appendJsonString(out, text, base::Utf8Count::Uncounted);
}

// A double as JSON writes it: shortest round trip, with ".0" on whole numbers; null when not finite.
void appendJsonNumber(std::string& out, double v) {
  if (!std::isfinite(v)) {
    out += "null";
    return;
  }
  const std::string text = fmt::format("{}", v);
  out += text;
  if (text.find_first_of(".eE") == std::string::npos) out += ".0";
}

// The keys of every JSON line; an event's field of the same name is left out.
bool reservedKey(std::string_view key) {
  return key == "time" || key == "level" || key == "logger" || key == "message";
}

class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    std::string line = "{\"time\":\"";
    appendTime(line, msg.time);
    line += "\",\"level\":";
    const auto level = spdlog::level::to_string_view(msg.level);
    appendJson(line, std::string_view(level.data(), level.size()));
    line += ",\"logger\":";
    appendJson(line, std::string_view(msg.logger_name.data(), msg.logger_name.size()));
    line += ",\"message\":";
    std::string_view payload(msg.payload.data(), msg.payload.size());
    if (!payload.empty() && payload.front() == kEventMark) {
      // An event: its name, then its fields as written by event(), each with its leading comma.
      const auto sep = payload.find(kFieldsMark);
      appendJson(line, payload.substr(1, sep - 1));
      if (sep != std::string_view::npos) line += payload.substr(sep + 1);
    } else {
      appendJson(line, payload);
    }
    line += "}\n";
    dest.append(line.data(), line.data() + line.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<JsonFormatter>(); }
};

std::unique_ptr<spdlog::formatter> makeFormatter(bool json) {
  if (json) return std::make_unique<JsonFormatter>();
  return std::make_unique<spdlog::pattern_formatter>(kTextPattern, spdlog::pattern_time_type::utc);
}

spdlog::level::level_enum toSpdlog(Level level) {
  switch (level) {
    case Level::Trace:
      return spdlog::level::trace;
    case Level::Debug:
      return spdlog::level::debug;
    case Level::Info:
      return spdlog::level::info;
    case Level::Warn:
      return spdlog::level::warn;
    case Level::Error:
      return spdlog::level::err;
    case Level::Critical:
      return spdlog::level::critical;
    case Level::Off:
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

void configure(const Settings& settings) {
  std::lock_guard lock(registryMutex());
  jsonMode.store(settings.format == Format::Json);
  currentLevel() = toSpdlog(settings.level);
  stderrSink()->set_formatter(makeFormatter(settings.format == Format::Json));
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
    payload += kEventMark;
    payload += name;
    payload += kFieldsMark;
    for (const auto& f : fields) {
      if (reservedKey(f.key)) continue;
      payload += ',';
      appendJson(payload, f.key);
      payload += ':';
      std::visit(
          [&](const auto& v) {
            using V = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<V, std::string_view>) {
              appendJson(payload, v);
            } else if constexpr (std::is_same_v<V, bool>) {
              payload += v ? "true" : "false";
            } else if constexpr (std::is_same_v<V, double>) {
              appendJsonNumber(payload, v);
            } else {
              payload += std::to_string(v);
            }
          },
          f.value);
    }
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
                appendJson(payload, v);
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

std::optional<Throttle::Clock::time_point> Throttle::dueAt() {
  std::lock_guard lock(mutex_);
  if (pending_.occurrences == 0) return std::nullopt;
  return lastLogged_ + interval_;
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
std::atomic<void (*)()> faultListener{nullptr};
}  // namespace

void onFault(void (*listener)()) { faultListener.store(listener, std::memory_order_release); }

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
  if (fatal) {
    if (auto* listener = faultListener.load(std::memory_order_acquire)) listener();
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
