// The reader of checkpoints.json on arbitrary text: it either gives entries within the bounds load()
// promises or says why the file is corrupt; nothing else (an exception, a crash) may happen, since the
// agent must start whatever the file holds.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include <sys/types.h>

#include "agent/inputs/checkpoint/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace logcapture::agent::checkpoint;
  std::vector<Entry> entries;
  if (parseCheckpoints(std::string(reinterpret_cast<const char*>(data), size), entries)) return 0;
  for (const Entry& e : entries) {
    const bool valid = !e.input.empty() && !e.path.empty() && e.id.fingerprintBytes <= kFingerprintBytes &&
                       e.offset <= static_cast<std::uint64_t>(std::numeric_limits<off_t>::max()) &&
                       e.lastSeen.time_since_epoch().count() >= 0;
    if (!valid) {
      std::fprintf(stderr, "checkpoint entry out of bounds: input '%s' offset %llu\n", e.input.c_str(),
                   static_cast<unsigned long long>(e.offset));
      std::abort();
    }
  }
  return 0;
}
