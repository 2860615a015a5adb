// The text forms of durations and sizes: what the loader accepts and what `check --print` writes.

#include "config/units.h"

#include <doctest/doctest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace logcapture::config {
namespace {

using namespace std::chrono_literals;

constexpr std::uint64_t kKiB = 1024;
constexpr std::uint64_t kMiB = kKiB * 1024;
constexpr std::uint64_t kGiB = kMiB * 1024;
constexpr std::uint64_t kTiB = kGiB * 1024;

// A parse result as text, so a failed CHECK shows what came back.
std::string shown(const std::optional<Duration>& d) { return d ? std::to_string(d->count()) + "ms" : "nullopt"; }
std::string shown(const std::optional<Bytes>& b) { return b ? std::to_string(b->value) + "B" : "nullopt"; }

}  // namespace
}  // namespace logcapture::config

namespace doctest {
template <>
struct StringMaker<std::optional<logcapture::config::Duration>> {
  static String convert(const std::optional<logcapture::config::Duration>& d) {
    return logcapture::config::shown(d).c_str();
  }
};
template <>
struct StringMaker<std::optional<logcapture::config::Bytes>> {
  static String convert(const std::optional<logcapture::config::Bytes>& b) {
    return logcapture::config::shown(b).c_str();
  }
};
template <>
struct StringMaker<logcapture::config::Bytes> {
  static String convert(logcapture::config::Bytes b) { return (std::to_string(b.value) + "B").c_str(); }
};
}  // namespace doctest

namespace logcapture::config {

TEST_SUITE("config") {
  TEST_CASE("parseDuration reads each single unit") {
    CHECK(parseDuration("250ms") == Duration(250));
    CHECK(parseDuration("30s") == Duration(30s));
    CHECK(parseDuration("5m") == Duration(5min));
    CHECK(parseDuration("5min") == Duration(5min));
    CHECK(parseDuration("1h") == Duration(1h));
    CHECK(parseDuration("1d") == Duration(24h));
    CHECK(parseDuration("2000us") == Duration(2));
    CHECK(parseDuration("3000000ns") == Duration(3));
  }

  TEST_CASE("parseDuration reads the micro sign as microseconds") {
    // "µs" is in the unit table beside "us", so it must be reachable.
    CHECK(parseDuration("2000µs") == Duration(2));
    CHECK(parseDuration("1s500000µs") == Duration(1500));
  }

  TEST_CASE("parseDuration takes a lone zero without a unit") {
    CHECK(parseDuration("0") == Duration::zero());
    CHECK(parseDuration("0s") == Duration::zero());
    CHECK(parseDuration("0ms") == Duration::zero());
  }

  TEST_CASE("parseDuration adds up compound durations") {
    CHECK(parseDuration("1m30s") == Duration(90s));
    CHECK(parseDuration("1h30m15s") == Duration(1h + 30min + 15s));
    CHECK(parseDuration("1s500ms") == Duration(1500));
    CHECK(parseDuration("1d12h") == Duration(36h));
  }

  TEST_CASE("parseDuration reads decimal numbers") {
    CHECK(parseDuration("1.5s") == Duration(1500));
    CHECK(parseDuration("0.25s") == Duration(250));
    CHECK(parseDuration("0.1s") == Duration(100));
    CHECK(parseDuration("1.5h") == Duration(90min));
    CHECK(parseDuration("2.5m") == Duration(150s));
  }

  TEST_CASE("parseDuration refuses text that is not a duration") {
    for (const std::string text : {"", "s", "30", "5 s", " 5s", "5s ", "-5s", "+5s", "5x", "30y", "1.2.3s", "5sx",
                                   "1e3s", "ms5", "1m30", "five seconds", ".s"}) {
      CAPTURE(text);
      const auto d = parseDuration(text);
      CHECK_MESSAGE(!d, "parsed as " << shown(d));
    }
  }

  TEST_CASE("parseDuration refuses a duration that overflows") {
    CHECK(parseDuration("100000000d") == Duration(100000000LL * 86400000LL));
    CHECK_FALSE(parseDuration("1000000000d"));
    CHECK_FALSE(parseDuration("99999999999999999999h"));
    CHECK_FALSE(parseDuration(std::string(400, '9') + "s"));
  }

  TEST_CASE("parseBytes reads plain numbers as bytes") {
    CHECK(parseBytes("0") == Bytes{0});
    CHECK(parseBytes("512") == Bytes{512});
    CHECK(parseBytes("512B") == Bytes{512});
  }

  TEST_CASE("parseBytes reads binary units") {
    CHECK(parseBytes("64KiB") == Bytes{64 * kKiB});
    CHECK(parseBytes("1MiB") == Bytes{kMiB});
    CHECK(parseBytes("2GiB") == Bytes{2 * kGiB});
    CHECK(parseBytes("1TiB") == Bytes{kTiB});
  }

  TEST_CASE("parseBytes reads decimal units") {
    CHECK(parseBytes("10KB") == Bytes{10000});
    CHECK(parseBytes("5MB") == Bytes{5000000});
    CHECK(parseBytes("1GB") == Bytes{1000000000});
    CHECK(parseBytes("2TB") == Bytes{2000000000000});
  }

  TEST_CASE("parseBytes reads size units in any letter case") {
    CHECK(parseBytes("64kib") == Bytes{64 * kKiB});
    CHECK(parseBytes("64KIB") == Bytes{64 * kKiB});
    CHECK(parseBytes("1mib") == Bytes{kMiB});
    CHECK(parseBytes("2gIb") == Bytes{2 * kGiB});
    CHECK(parseBytes("1mb") == Bytes{1000000});
    CHECK(parseBytes("1Gb") == Bytes{1000000000});
    CHECK(parseBytes("7b") == Bytes{7});
  }

  TEST_CASE("parseBytes reads decimal numbers with a unit") {
    CHECK(parseBytes("1.5KiB") == Bytes{1536});
    CHECK(parseBytes("0.5MiB") == Bytes{512 * kKiB});
    CHECK(parseBytes("2.5GB") == Bytes{2500000000});
  }

  TEST_CASE("parseBytes refuses text that is not a size") {
    for (const std::string text : {"", "KiB", "-1", "-1KiB", "+1KiB", "1 KiB", " 1KiB", "1KiBs", "1PiB", "1k", "1Ki",
                                   "1.2.3", "1e3", "0x10", "1KiB1KiB", "ten"}) {
      CAPTURE(text);
      const auto b = parseBytes(text);
      CHECK_MESSAGE(!b, "parsed as " << shown(b));
    }
  }

  TEST_CASE("parseBytes refuses a size that overflows 64 bits") {
    CHECK_FALSE(parseBytes("16777216TiB"));  // 2^64
    CHECK_FALSE(parseBytes("99999999TiB"));
    CHECK_FALSE(parseBytes("18446744073709551616"));
    CHECK_FALSE(parseBytes(std::string(400, '9')));
  }

  TEST_CASE("parseBytes gives a size above 2^63 bytes exactly or not at all") {
    // Such a size must come back as written, or be refused; never as some other number.
    const struct {
      std::string text;
      std::uint64_t exact;
    } cases[] = {{"10000000000000000000", 10000000000000000000ull},
                 {"9223372036854775808", 9223372036854775808ull},
                 {"10000000TiB", 10000000 * kTiB}};
    for (const auto& c : cases) {
      CAPTURE(c.text);
      const auto b = parseBytes(c.text);
      if (b) CHECK_MESSAGE(b->value == c.exact, "parsed as " << shown(b) << ", expected " << c.exact << "B");
    }
  }

  TEST_CASE("parseBytes reads a plain byte count above 2^53 exactly") {
    CHECK(parseBytes("9007199254740993") == Bytes{9007199254740993ull});
    CHECK(parseBytes("123456789012345678") == Bytes{123456789012345678ull});
  }

  TEST_CASE("formatDuration writes the largest unit that is exact") {
    CHECK(formatDuration(Duration::zero()) == "0s");
    CHECK(formatDuration(Duration(1)) == "1ms");
    CHECK(formatDuration(Duration(250)) == "250ms");
    CHECK(formatDuration(Duration(1500)) == "1500ms");
    CHECK(formatDuration(30s) == "30s");
    CHECK(formatDuration(90s) == "90s");
    CHECK(formatDuration(5min) == "5m");
    CHECK(formatDuration(90min) == "90m");
    CHECK(formatDuration(1h) == "1h");
    CHECK(formatDuration(24h) == "1d");
    CHECK(formatDuration(7 * 24h) == "7d");
    CHECK(formatDuration(36h) == "36h");
  }

  TEST_CASE("formatBytes writes the largest binary unit that is exact") {
    CHECK(formatBytes(Bytes{0}) == "0");
    CHECK(formatBytes(Bytes{1}) == "1");
    CHECK(formatBytes(Bytes{1000}) == "1000");
    CHECK(formatBytes(Bytes{1024}) == "1KiB");
    CHECK(formatBytes(Bytes{1536}) == "1536");
    CHECK(formatBytes(Bytes{64 * kKiB}) == "64KiB");
    CHECK(formatBytes(Bytes{kMiB}) == "1MiB");
    CHECK(formatBytes(Bytes{1536 * kKiB}) == "1536KiB");
    CHECK(formatBytes(Bytes{3 * kGiB}) == "3GiB");
    CHECK(formatBytes(Bytes{kTiB}) == "1TiB");
    CHECK(formatBytes(Bytes{1024 * kTiB}) == "1024TiB");
  }

  TEST_CASE("a formatted duration parses back to the same duration") {
    std::vector<Duration> values{
        Duration::zero(), Duration(1), Duration(999), Duration(1001), 1s, 90s, 5min, 61min, 1h, 25h, 24h, 7 * 24h};
    values.push_back(Duration(100000LL * 86400000LL));  // 100000 days
    values.push_back(Duration(123456789));
    for (const auto d : values) {
      CAPTURE(d.count());
      const std::string text = formatDuration(d);
      CAPTURE(text);
      CHECK(parseDuration(text) == d);
    }
  }

  TEST_CASE("a formatted size parses back to the same size") {
    const std::vector<std::uint64_t> values{0,         1,         512,      1000,        1023,       1024,
                                            1025,      64 * kKiB, kMiB - 1, kMiB,        5 * kMiB,   kGiB + 1,
                                            64 * kGiB, kTiB,      kTiB + 1, 4096 * kTiB, 1ull << 53, 1ull << 62};
    for (const auto v : values) {
      CAPTURE(v);
      const std::string text = formatBytes(Bytes{v});
      CAPTURE(text);
      CHECK(parseBytes(text) == Bytes{v});
    }
  }
}

}  // namespace logcapture::config
