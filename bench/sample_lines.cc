#include "bench/sample_lines.h"

#include <cstdio>

namespace logcapture::bench {
namespace {

constexpr const char* kLevels[] = {"DEBUG", "INFO", "INFO", "INFO", "WARN", "ERROR"};
constexpr const char* kJsonLevels[] = {"debug", "info", "info", "info", "warn", "error"};
constexpr const char* kMethods[] = {"GET", "GET", "GET", "POST", "PUT", "DELETE"};
constexpr const char* kPaths[] = {"/api/v1/users",     "/api/v1/orders",  "/api/v2/catalog/items",
                                  "/healthz",          "/static/app.js",  "/api/v1/payments/authorize",
                                  "/internal/metrics", "/api/v1/session", "/api/v2/search"};
constexpr const char* kComponents[] = {"http-server", "db-pool", "scheduler", "cache", "auth", "billing-worker"};
constexpr const char* kMessages[] = {"request completed",
                                     "connection acquired from pool",
                                     "cache miss, loading from backing store",
                                     "retrying upstream call after timeout",
                                     "job finished",
                                     "token refreshed",
                                     "slow query detected",
                                     "payment authorised",
                                     "user session expired, redirecting to login"};
constexpr const char* kWords[] = {"alpha", "bravo", "charlie", "delta", "echo",   "foxtrot", "golf",
                                  "hotel", "india", "juliet",  "kilo",  "lima",   "mike",    "november",
                                  "oscar", "papa",  "quebec",  "romeo", "sierra", "tango",   "uniform"};

template <std::size_t N>
const char* pick(Rng& r, const char* const (&a)[N]) {
  return a[r.below(N)];
}

}  // namespace

// One line of 150..250 bytes (about 200 on average): an access log line, a JSON object (with quotes
// the json encoding has to escape), or an application log line, in equal shares. Deterministic per seed.
void makeSampleLine(Rng& r, std::uint64_t seq, std::string& out) {
  out.clear();
  char buf[512];
  const std::uint64_t secs = 1704067200 + seq / 2000;  // 2024-01-01, ~2000 lines per second
  const int hh = static_cast<int>((secs / 3600) % 24), mm = static_cast<int>((secs / 60) % 60),
            ss = static_cast<int>(secs % 60);
  const int ms = static_cast<int>(r.below(1000));
  const std::size_t target = 150 + r.below(101);
  int n;
  switch (r.below(3)) {
    case 0:
      n = std::snprintf(buf, sizeof buf,
                        "2024-01-01T%02d:%02d:%02d.%03dZ %s [%s-%u] %s %s/%llu status=%u bytes=%llu "
                        "dur=%llu.%llums req_id=%016llx",
                        hh, mm, ss, ms, pick(r, kLevels), pick(r, kComponents), static_cast<unsigned>(r.below(64)),
                        pick(r, kMethods), pick(r, kPaths), static_cast<unsigned long long>(r.below(1000000)),
                        r.below(10) == 0 ? 500u : 200u, static_cast<unsigned long long>(r.below(100000)),
                        static_cast<unsigned long long>(r.below(2000)), static_cast<unsigned long long>(r.below(10)),
                        static_cast<unsigned long long>(r.next()));
      break;
    case 1:
      n = std::snprintf(buf, sizeof buf,
                        "{\"ts\":\"2024-01-01T%02d:%02d:%02d.%03dZ\",\"level\":\"%s\",\"component\":\"%s\","
                        "\"msg\":\"%s\",\"path\":\"%s\",\"user_id\":%llu,\"latency_ms\":%llu.%llu",
                        hh, mm, ss, ms, pick(r, kJsonLevels), pick(r, kComponents), pick(r, kMessages), pick(r, kPaths),
                        static_cast<unsigned long long>(r.below(10000000)),
                        static_cast<unsigned long long>(r.below(5000)), static_cast<unsigned long long>(r.below(10)));
      break;
    default:
      n = std::snprintf(
          buf, sizeof buf, "%s %02d:%02d:%02d.%03d %s: %s (attempt %u, file /var/lib/app/data/%s-%llu.db)",
          pick(r, kLevels), hh, mm, ss, ms, pick(r, kComponents), pick(r, kMessages),
          static_cast<unsigned>(r.below(5) + 1), pick(r, kWords), static_cast<unsigned long long>(r.below(100000)));
      break;
  }
  out.append(buf, static_cast<std::size_t>(n));
  const bool json = out.front() == '{';
  if (json) out += ",\"tags\":\"";
  while (out.size() + (json ? 2 : 0) < target) {
    out += ' ';
    out += pick(r, kWords);
  }
  if (json) out += "\"}";
}

void appendJsonEscaped(std::string& out, std::string_view text) {
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
      out += buf;
    } else {
      out += c;
    }
  }
}

void makeSampleJsonLine(Rng& r, std::uint64_t seq, std::string& out) {
  std::string line;
  makeSampleLine(r, seq, line);
  if (line.front() == '{') {
    out.swap(line);
    return;
  }
  const std::uint64_t secs = 1704067200 + seq / 2000;
  char buf[96];
  std::snprintf(buf, sizeof buf, "{\"time\":\"2024-01-01T%02d:%02d:%02d.%03dZ\",\"level\":\"%s\",\"message\":\"",
                static_cast<int>((secs / 3600) % 24), static_cast<int>((secs / 60) % 60), static_cast<int>(secs % 60),
                static_cast<int>(seq % 1000), pick(r, kJsonLevels));
  out = buf;
  appendJsonEscaped(out, line);
  out += "\"}";
}

}  // namespace logcapture::bench
