#pragma once

// Logging: named spdlog loggers per component, all writing to stderr in one format.
//
// Thread-safety: configure() is called once by the main thread before other threads start (and again
// on reload); component() and event() are safe from any thread.

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace logcapture::log {

enum class Level { Trace, Debug, Info, Warn, Error, Critical, Off };
enum class Format { Text, Json };

// How the agent logs. The agent fills it from its configuration (agent.log).
struct Settings {
  Level level = Level::Info;
  Format format = Format::Text;
};

// Sets the level and format (text | json) of every logger, existing and future.
void configure(const Settings& settings);

// The logger of one component ("agent", "config", "breaker", "tailer", ...), created on first use.
std::shared_ptr<spdlog::logger> component(const std::string& name);

struct Field {
  std::string_view key;
  std::variant<std::string_view, std::int64_t, std::uint64_t, double, bool> value;

  Field(std::string_view k, std::string_view v) : key(k), value(v) {}
  Field(std::string_view k, const std::string& v) : key(k), value(std::string_view(v)) {}
  Field(std::string_view k, const char* v) : key(k), value(std::string_view(v)) {}
  Field(std::string_view k, bool v) : key(k), value(v) {}
  Field(std::string_view k, double v) : key(k), value(v) {}
  template <class I>
  requires std::is_integral_v<I> &&(!std::is_same_v<I, bool>)Field(std::string_view k, I v) : key(k) {
    if constexpr (std::is_signed_v<I>) {
      value = static_cast<std::int64_t>(v);
    } else {
      value = static_cast<std::uint64_t>(v);
    }
  }
};

// A structured event: `name` is the message (e.g. "breaker_open"), fields are key/value pairs.
// Text format: `name key=value key="a value"`; JSON format: the fields sit beside time, level,
// logger and message in the line's object.
void event(spdlog::logger& logger, spdlog::level::level_enum level, std::string_view name,
           std::initializer_list<Field> fields);

// Paces an event that may repeat fast (a sink failing every batch, records dropped): the first one
// is logged in full, later ones are counted and summarised at most once per interval, so the log
// stays readable and bounded while the counts stay exact.
// Thread-safe: mutex_ guards the counts; meant for failure paths, not for every record.
class Throttle {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::seconds kDefaultInterval{10};
  explicit Throttle(Clock::duration interval = kDefaultInterval) : interval_(interval) {}

  // Notes one occurrence of `count` items (records, failures) with its detail (the error). True when it
  // is to be logged now: the first one, or the first after a quiet interval.
  bool note(Clock::time_point now, std::uint64_t count, std::string_view detail);

  struct Summary {
    std::uint64_t occurrences = 0;  // noted and not logged since the last logged or summarised one
    std::uint64_t count = 0;        // their items
    std::string lastDetail;
  };
  // The occurrences not logged, once an interval has passed since the last logged one; empty
  // (occurrences == 0) before that or when there were none. Taking it starts a new interval.
  Summary takeDue(Clock::time_point now);
  // True while occurrences wait for their summary.
  bool holding();
  // When takeDue() will return what is held; empty while nothing is held.
  std::optional<Clock::time_point> dueAt();

 private:
  const Clock::duration interval_;
  std::mutex mutex_;
  bool logged_ = false;  // something was logged and its interval runs since lastLogged_
  Clock::time_point lastLogged_{};
  Summary pending_;
};

// Runs a thread's body so that nothing dies silently. An exception escaping `body` is logged once as
// `thread_failed` with its component and what it said, counted (threadFailures()), and marks the process
// faulted: the daemon's main loop sees faulted() and stops the agent with its own exit code, so a
// supervisor restarts it from its checkpoints rather than std::terminate ending it without a word.
// A component that can recover (retry its loop) catches inside its body instead and calls
// noteThreadFailure() itself. Thread-safe.
void guardThread(std::string_view component, const std::function<void()>& body) noexcept;
// Logs and counts an exception a component caught and recovered from (`fatal` false), or one that
// must stop the agent (`fatal` true: marks the process faulted).
void noteThreadFailure(std::string_view component, std::string_view what, bool fatal) noexcept;
// Exceptions that escaped or were caught at a thread's top, since the process started.
std::uint64_t threadFailures();
// True once a fatal thread failure was noted; the daemon then stops the agent.
bool faulted();
// Called (on the failing thread, after faulted() turned true) at each fatal failure, so that the daemon's
// main loop, which sleeps between its turns, looks at once. Set once, before any thread may fail.
void onFault(void (*listener)());

}  // namespace logcapture::log
