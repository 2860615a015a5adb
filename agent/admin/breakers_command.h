#pragma once

// `logcapture breakers [list|open|close|reset|auto] [SINK]`: the admin API's breaker endpoints from the
// command line. `list` prints one aligned row per sink; the actions print the breaker's new state.
//
// Thread-safety: runs on the calling thread; no shared state.

#include <nlohmann/json.hpp>
#include <ostream>
#include <string>

namespace logcapture::agent::admin {

// Exit codes of `logcapture breakers`, for scripts (documented in README.md).
enum BreakersExit : int {
  kBreakersOk = 0,
  kBreakersApiError = 1,     // the server answered with an error (unknown sink, refused, ...)
  kBreakersUsage = 2,        // bad command line
  kBreakersUnreachable = 3,  // the admin server did not answer
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

}  // namespace logcapture::agent::admin
