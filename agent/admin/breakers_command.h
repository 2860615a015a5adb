#pragma once

// `logcapture breakers [list|open|close|reset|auto] [SINK]`: the admin API's breaker endpoints from the
// command line. `list` prints one aligned row per sink; the actions print the breaker's new state.
//
// Thread-safety: runs on the calling thread; no shared state.

#include <nlohmann/json.hpp>
#include <ostream>
#include <string>

#include "agent/admin/admin_client.h"

namespace logcapture::agent::admin {

// Exit codes of `logcapture breakers`, for scripts (documented in README.md).
enum BreakersExit : int {
  kBreakersOk = kAdminOk,
  kBreakersApiError = kAdminApiError,
  kBreakersUsage = kAdminUsage,
  kBreakersUnreachable = kAdminUnreachable,
};

struct BreakersCommand {
  std::string action = "list";  // list | open | close | reset | auto
  std::string sink;             // required by the actions; narrows `list` to one sink
  std::string adminUrl = "http://127.0.0.1:9880";
  std::string token;  // sent as a bearer token when set
};

// Runs the command against the admin server; prints results on `out`, errors on `err`.
int runBreakersCommand(const BreakersCommand& cmd, std::ostream& out, std::ostream& err);

// The table `list` prints, from breaker views (GET /api/v1/breakers's "breakers").
std::string breakersTable(const nlohmann::ordered_json& breakers);

// A time in state, to the second, in at most two units: "42s", "3m05s", "2h07m", "1d03h".
std::string elapsed(double seconds);

}  // namespace logcapture::agent::admin
