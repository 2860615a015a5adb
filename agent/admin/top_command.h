#pragma once

// `logcapture top [--admin URL] [--token T] [--interval 1s]`: a live view of a running agent in the
// terminal, read from its admin API (admin_server.h) every interval, drawn by renderTop() (top_view.h).
// Keys steer the selected sink's breaker through the same endpoints as `logcapture breakers`.
//
// Thread-safety: runs on the calling thread, which owns the terminal until it returns. It blocks
// SIGINT, SIGTERM and SIGHUP on that thread while it runs and takes them as "quit"; the terminal is
// restored (endwin) on every way out, an exception included.

#include <ostream>
#include <string>

namespace logcapture::agent::admin {

struct TopCommand {
  std::string adminUrl = "http://127.0.0.1:9880";
  std::string token;  // sent as a bearer token when set; asked for when an action needs one
  std::string interval = "1s";
};

// Runs until `q`, Ctrl-C, SIGTERM or SIGHUP: 0. Usage errors (bad URL or interval, not a terminal)
// return kAdminUsage before the terminal is touched; an agent that cannot be reached is shown and
// retried, never an exit.
int runTopCommand(const TopCommand& cmd, std::ostream& err);

}  // namespace logcapture::agent::admin
