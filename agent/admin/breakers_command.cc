#include "agent/admin/breakers_command.h"

#include <algorithm>
#include <array>
#include <optional>
#include <vector>

#include "agent/admin/admin_client.h"
#include "config/units.h"

namespace logcapture::agent::admin {
namespace {

using Json = nlohmann::ordered_json;

std::string number(const Json& j) { return j.is_number() ? std::to_string(j.get<std::uint64_t>()) : "-"; }

// A disk buffer's records and bytes on disk, with its corrupt frames when there were some; "-" in memory.
std::string onDisk(const Json& stats) {
  const Json disk = stats.value("buffer", Json::object()).value("disk", Json());
  if (!disk.is_object()) return "-";
  std::string out = number(disk.value("records", Json()));
  if (disk.value("bytes", Json()).is_number()) {
    out += " (" + config::formatBytes(config::Bytes{disk["bytes"].get<std::uint64_t>()}) + ")";
  }
  if (disk.value("corrupt_records", 0) > 0) out += ", " + number(disk["corrupt_records"]) + " corrupt";
  return out;
}

}  // namespace

std::string elapsed(double seconds) {
  const auto s = static_cast<std::int64_t>(seconds);
  char buf[32];
  if (s < 60) {
    std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(s));
  } else if (s < 3600) {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  } else if (s < 86400) {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(s / 3600),
                  static_cast<long long>(s % 3600 / 60));
  } else {
    std::snprintf(buf, sizeof buf, "%lldd%02lldh", static_cast<long long>(s / 86400),
                  static_cast<long long>(s % 86400 / 3600));
  }
  return buf;
}

std::string breakersTable(const Json& breakers) {
  // FAILED OVER only when a sink has a fallback: records handed to it, and its name.
  const bool fallbacks = std::any_of(breakers.begin(), breakers.end(), [](const Json& b) {
    return b.value("sink_stats", Json::object()).value("fallback", Json()).is_string();
  });
  const std::size_t kColumns = fallbacks ? 12 : 11;
  using Row = std::vector<std::string>;
  std::vector<Row> rows{{"SINK", "STATE", "MODE", "IN STATE", "OPENS", "FAILURES", "DELIVERED", "BUFFERED", "ON DISK",
                         "DROPPED", "NEXT RETRY"}};
  if (fallbacks) rows[0].insert(rows[0].end() - 1, "FAILED OVER");
  for (const auto& b : breakers) {
    const Json stats = b.value("sink_stats", Json::object());
    std::string nextRetry = "-";
    if (b.contains("next_retry_at") && b["next_retry_at"].is_string()) {
      const std::string t = b["next_retry_at"].get<std::string>();
      nextRetry = t.size() > 19 ? t.substr(0, 19) + "Z" : t;  // to the second
    }
    // An agent from before modes existed only enforces.
    rows.push_back({b.value("sink", "?"), b.value("state", "?"), b.value("mode", "enforce"),
                    elapsed(b.value("time_in_state_seconds", 0.0)), number(b.value("opens", Json())),
                    number(b.value("totals", Json::object()).value("failures", Json())),
                    number(stats.value("delivered", Json())),
                    number(stats.value("buffer", Json::object()).value("records", Json())), onDisk(stats),
                    number(stats.value("dropped", Json::object()).value("total", Json())), nextRetry});
    if (fallbacks) {
      const Json to = stats.value("fallback", Json());
      rows.back().insert(rows.back().end() - 1,
                         to.is_string() ? number(stats.value("failed_over", Json::object()).value("total", Json())) +
                                              " to " + to.get<std::string>()
                                        : "-");
    }
  }
  std::vector<std::size_t> width(kColumns, 0);
  for (const auto& row : rows) {
    for (std::size_t c = 0; c < kColumns; ++c) width[c] = std::max(width[c], row[c].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t c = 0; c < kColumns; ++c) {
      line += row[c];
      if (c + 1 < kColumns) line += std::string(width[c] - row[c].size() + 2, ' ');
    }
    out += line + "\n";
  }
  return out;
}

int runBreakersCommand(const BreakersCommand& cmd, std::ostream& out, std::ostream& err) {
  if (cmd.action != "list" && cmd.sink.empty()) {
    err << "breakers " << cmd.action << " needs the sink's name: logcapture breakers " << cmd.action << " SINK\n";
    return kBreakersUsage;
  }
  std::string urlError;
  std::optional<AdminClient> client = AdminClient::forUrl(cmd.adminUrl, urlError);
  if (!client) {
    err << urlError << "\n";
    return kBreakersUsage;
  }
  client->setToken(cmd.token);

  const bool list = cmd.action == "list";
  const std::string path = list ? (cmd.sink.empty() ? "/api/v1/breakers" : "/api/v1/breakers/" + cmd.sink)
                                : "/api/v1/breakers/" + cmd.sink + "/" + breakerAction(cmd.action);
  const AdminAnswer res = list ? client->get(path) : client->post(path);
  if (!res.reached) {
    err << "cannot reach the admin server at " << client->base() << ": " << res.error
        << " (is the agent running with agent.admin.listen set?)\n";
    return kBreakersUnreachable;
  }
  if (res.status != 200) {
    err << "error: " << apiError(res) << " (HTTP " << res.status << ")\n";
    return kBreakersApiError;
  }
  const Json body = Json::parse(res.body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) {
    err << "error: the admin server answered something other than JSON: " << res.body.substr(0, 200) << "\n";
    return kBreakersApiError;
  }
  if (list) {
    out << breakersTable(cmd.sink.empty() ? body.value("breakers", Json::array()) : Json::array({body}));
    return kBreakersOk;
  }
  out << cmd.sink << ": " << body.value("state", "?") << " (was " << body.value("previous_state", "?") << ")\n";
  return kBreakersOk;
}

}  // namespace logcapture::agent::admin
