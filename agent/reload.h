#pragma once

// The result of one config reload, as the daemon reports it to the log and to POST /api/v1/reload.

#include <string>
#include <vector>

namespace logcapture::agent {

struct ReloadOutcome {
  // False when the new config was invalid or could not be applied; the running config then stays.
  bool applied = false;
  std::string error;                 // why not applied: the config errors, one per line
  std::vector<std::string> changes;  // what the reload did, e.g. "sink redis rebuilt", "input app added"
};

}  // namespace logcapture::agent
