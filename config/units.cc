#include "config/units.h"

#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>

namespace logcapture::config {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  }
  return true;
}

// Splits "1.5ms" into the number and the unit; false if there is no number.
bool splitNumber(std::string_view text, double& number, std::string_view& unit, std::size_t& used) {
  std::size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  if (i == 0) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + i, number);
  if (ec != std::errc() || end != text.data() + i) return false;
  std::size_t j = i;
  // Unit letters, including the UTF-8 bytes of "µ".
  while (j < text.size() &&
         (std::isalpha(static_cast<unsigned char>(text[j])) || static_cast<unsigned char>(text[j]) >= 0x80)) {
    ++j;
  }
  unit = text.substr(i, j - i);
  used = j;
  return true;
}

}  // namespace

std::optional<Duration> parseDuration(std::string_view text) {
  if (text == "0") return Duration::zero();
  static constexpr std::array<std::pair<std::string_view, double>, 9> kUnits{{{"ns", 1e-6},
                                                                              {"us", 1e-3},
                                                                              {"µs", 1e-3},
                                                                              {"ms", 1},
                                                                              {"s", 1e3},
                                                                              {"m", 60e3},
                                                                              {"min", 60e3},
                                                                              {"h", 3600e3},
                                                                              {"d", 86400e3}}};
  if (text.empty()) return std::nullopt;
  double totalMs = 0;
  while (!text.empty()) {
    double number = 0;
    std::string_view unit;
    std::size_t used = 0;
    if (!splitNumber(text, number, unit, used) || unit.empty()) return std::nullopt;
    bool known = false;
    for (const auto& [name, ms] : kUnits) {
      if (unit == name) {
        totalMs += number * ms;
        known = true;
        break;
      }
    }
    if (!known) return std::nullopt;
    text.remove_prefix(used);
  }
  // Beyond ~292 years the count would overflow; no setting needs that.
  if (!std::isfinite(totalMs) || totalMs > 9.2e15) return std::nullopt;
  return Duration(static_cast<Duration::rep>(std::llround(totalMs)));
}

std::optional<Bytes> parseBytes(std::string_view text) {
  static constexpr std::array<std::pair<std::string_view, std::uint64_t>, 10> kUnits{
      {{"", 1},
       {"b", 1},
       {"kib", std::uint64_t{1} << 10},
       {"mib", std::uint64_t{1} << 20},
       {"gib", std::uint64_t{1} << 30},
       {"tib", std::uint64_t{1} << 40},
       {"kb", 1000},
       {"mb", 1000 * 1000},
       {"gb", 1000 * 1000 * 1000},
       {"tb", std::uint64_t{1000} * 1000 * 1000 * 1000}}};
  double number = 0;
  std::string_view unit;
  std::size_t used = 0;
  if (!splitNumber(text, number, unit, used) || used != text.size()) return std::nullopt;
  for (const auto& [name, factor] : kUnits) {
    if (!iequals(unit, name)) continue;
    const std::string_view digits = text.substr(0, text.size() - unit.size());
    std::uint64_t whole = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), whole);
    if (ec == std::errc() && end == digits.data() + digits.size()) {
      // Whole numbers stay exact: no detour through a double.
      if (whole > std::numeric_limits<std::uint64_t>::max() / factor) return std::nullopt;
      return Bytes{whole * factor};
    }
    if (ec == std::errc::result_out_of_range) return std::nullopt;
    const double bytes = number * static_cast<double>(factor);
    if (!std::isfinite(bytes) || bytes >= 9.2e18) return std::nullopt;
    return Bytes{static_cast<std::uint64_t>(std::llround(bytes))};
  }
  return std::nullopt;
}

std::string formatDuration(Duration d) {
  const auto ms = d.count();
  if (ms == 0) return "0s";
  static constexpr std::array<std::pair<const char*, long long>, 4> kUnits{
      {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}}};
  for (const auto& [name, size] : kUnits) {
    if (ms % size == 0) return std::to_string(ms / size) + name;
  }
  return std::to_string(ms) + "ms";
}

std::string formatBytes(Bytes b) {
  static constexpr std::array<std::pair<const char*, int>, 4> kUnits{
      {{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}}};
  for (const auto& [name, shift] : kUnits) {
    const std::uint64_t size = std::uint64_t{1} << shift;
    if (b.value != 0 && b.value % size == 0) return std::to_string(b.value / size) + name;
  }
  return std::to_string(b.value);
}

}  // namespace logcapture::config
