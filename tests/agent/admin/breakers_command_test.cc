// The table of `logcapture breakers list`, from breaker views, without a network.

#include "agent/admin/breakers_command.h"

#include <doctest/doctest.h>

using Json = nlohmann::ordered_json;

namespace {

Json view(const std::string& sink, const std::string& state, double seconds, std::uint64_t delivered,
          const Json& nextRetry = nullptr) {
  return Json{{"sink", sink},
              {"state", state},
              {"time_in_state_seconds", seconds},
              {"next_retry_at", nextRetry},
              {"opens", 2},
              {"totals", {{"failures", 7}}},
              {"sink_stats", {{"delivered", delivered}, {"buffer", {{"records", 40}}}, {"dropped", {{"total", 0}}}}}};
}

}  // namespace

TEST_CASE("the breakers table aligns its columns and shows durations and retry times readably") {
  const Json breakers = Json::array(
      {view("events", "closed", 3725, 1234567), view("search", "open", 12.7, 0, "2026-11-23T14:15:42.123456789Z")});
  CHECK(logcapture::agent::admin::breakersTable(breakers) ==
        "SINK    STATE   MODE     IN STATE  OPENS  FAILURES  DELIVERED  BUFFERED  ON DISK  DROPPED  NEXT RETRY\n"
        "events  closed  enforce  1h02m     2      7         1234567    40        -        0        -\n"
        "search  open    enforce  12s       2      7         0          40        -        0        "
        "2026-11-23T14:15:42Z\n");
}

TEST_CASE("the breakers table shows a metrics-only breaker's mode beside its state") {
  Json tuned = view("search", "open", 5, 0);
  tuned["mode"] = "metrics_only";
  const std::string table =
      logcapture::agent::admin::breakersTable(Json::array({tuned, view("events", "closed", 5, 0)}));
  CHECK(table.find("search  open    metrics_only  ") != std::string::npos);
  CHECK(table.find("events  closed  enforce       ") != std::string::npos);
}

TEST_CASE("the breakers table shows a disk buffer's records and bytes on disk") {
  Json disk = view("events", "open", 5, 0);
  disk["sink_stats"]["buffer"]["disk"] = {{"records", 1200}, {"bytes", 3 * 1024 * 1024}, {"corrupt_records", 2}};
  const std::string table = logcapture::agent::admin::breakersTable(Json::array({disk}));
  CHECK(table.find("1200 (3MiB), 2 corrupt") != std::string::npos);
}

TEST_CASE("the breakers table shows what a sink with a fallback handed over, and to which sink") {
  Json primary = view("cache", "open", 5, 0);
  primary["sink_stats"]["fallback"] = "archive";
  primary["sink_stats"]["failed_over"] = {{"total", 350}};
  const std::string table =
      logcapture::agent::admin::breakersTable(Json::array({primary, view("archive", "closed", 5, 350)}));
  CHECK(table.find("DROPPED  FAILED OVER     NEXT RETRY") != std::string::npos);
  CHECK(table.find("  350 to archive  ") != std::string::npos);
  CHECK(table.find("  0        -               -\n") != std::string::npos);
}
