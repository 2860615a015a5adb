#pragma once

// Value types shared by every config struct: durations, byte sizes, enums with their names.

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>
#include <variant>

namespace logcapture::config {

using Duration = std::chrono::milliseconds;

// A size in bytes; a distinct type so the loader parses "64KiB" and range checks print sizes.
struct Bytes {
  std::uint64_t value = 0;
  friend constexpr auto operator<=>(Bytes, Bytes) = default;
};

constexpr Bytes operator""_B(unsigned long long v) { return Bytes{v}; }
constexpr Bytes operator""_KiB(unsigned long long v) { return Bytes{v << 10}; }
constexpr Bytes operator""_MiB(unsigned long long v) { return Bytes{v << 20}; }
constexpr Bytes operator""_GiB(unsigned long long v) { return Bytes{v << 30}; }

// A breaker's sliding window is `size` calls (type: count, a number) or `size` of time (type: time,
// a duration).
// A sink's `workers`: a number of lanes that all send at once, or auto (as many lanes as max_workers,
// how many of them send at once adapted to the destination). Read as the number of lanes.
struct Workers {
  std::uint32_t count = 2;  // lanes: workers, or max_workers with auto
  bool adaptive = false;    // workers: auto
  Workers() = default;
  Workers(std::uint32_t n) : count(n) {}  // NOLINT(google-explicit-constructor): a number of workers
  operator std::uint32_t() const { return count; }  // NOLINT(google-explicit-constructor)
};

struct WindowSize {
  std::variant<std::uint64_t, Duration> value = std::uint64_t{100};
};

// Inclusive bounds checked when a value is loaded; either side may be open.
template <class T>
struct Limits {
  std::optional<T> min;
  std::optional<T> max;
};

// Per-key properties beside Limits: a required key has no default; a secret is redacted by --print.
struct Flags {
  bool required = false;
  bool secret = false;
};

class Section;  // config/section.h: the mapping being loaded, for check() functions

// Enums used in config declare their spellings with an overload of enumNames(T) found by ADL:
//   constexpr auto enumNames(Format) { return std::array{std::pair{Format::Raw, "raw"}, ...}; }
template <class E>
concept ConfigEnum = std::is_enum_v<E> && requires(E e) {
  enumNames(e);
};

template <ConfigEnum E>
constexpr std::string_view enumName(E value) {
  for (const auto& [e, name] : enumNames(value)) {
    if (e == value) return name;
  }
  return "?";
}

}  // namespace logcapture::config
