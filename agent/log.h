#pragma once

// Logging: named spdlog loggers per component, all writing to stderr in one format.
//
// Thread-safety: configure() is called once by the main thread before other threads start (and again
// on reload); component() and event() are safe from any thread.

#include <spdlog/spdlog.h>

#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <variant>

#include "config/config.h"

namespace logcapture::log {

// Sets the level and format (text | json) of every logger, existing and future.
void configure(const config::LogConfig& cfg);

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

}  // namespace logcapture::log
