#include "agent/runner/handover.h"

#include <algorithm>

#include "agent/runner/batcher.h"
#include "sinks/encoding.h"

namespace logcapture::agent {

std::vector<std::vector<PendingBatch>> reformForAdoption(std::vector<PendingBatch> released, config::Encoding encoding,
                                                         std::uint32_t lanes) {
  std::vector<std::vector<PendingBatch>> byLane(std::max<std::uint32_t>(lanes, 1));
  for (auto& old : released) {
    if (old.batch.empty()) {
      old.finish();
      continue;
    }
    PendingBatch pb;
    for (std::size_t i = 0; i < old.batch.size(); ++i) {
      sinks::appendRecord(pb.batch.encoded, old.batch.record(i), encoding);
      pb.batch.seal(old.batch.records[i]);
    }
    pb.claims = std::move(old.claims);
    pb.lane = laneOf(pb.batch.record(0), static_cast<std::uint32_t>(byLane.size()));
    pb.formedAt = old.formedAt;
    byLane[pb.lane].push_back(std::move(pb));
  }
  return byLane;
}

}  // namespace logcapture::agent
