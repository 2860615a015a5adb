#include "agent/runner/handover.h"

#include <algorithm>

#include "agent/runner/batcher.h"
#include "sinks/encoding.h"

namespace logcapture::agent {

PendingBatch reencoded(PendingBatch&& old, config::Encoding encoding) {
  PendingBatch pb;
  pb.batch.encoded.reserve(old.batch.encoded.size());
  pb.batch.records.reserve(old.batch.size());
  pb.batch.ends.reserve(old.batch.size());
  for (std::size_t i = 0; i < old.batch.size(); ++i) {
    sinks::appendRecord(pb.batch.encoded, old.batch.record(i), encoding);
    pb.batch.seal(old.batch.records[i]);
  }
  pb.claims = std::move(old.claims);
  pb.lane = old.lane;
  pb.sequence = old.sequence;
  pb.formedAt = old.formedAt;
  pb.retained = std::move(old.retained);
  pb.frame = std::move(old.frame);
  return pb;
}

std::vector<std::vector<PendingBatch>> reformForAdoption(std::vector<PendingBatch> released, config::Encoding encoding,
                                                         std::uint32_t lanes) {
  std::vector<std::vector<PendingBatch>> byLane(std::max<std::uint32_t>(lanes, 1));
  for (auto& old : released) {
    if (old.batch.empty()) {
      old.finish();
      continue;
    }
    PendingBatch pb = reencoded(std::move(old), encoding);
    pb.sequence = 0;
    pb.lane = laneOf(pb.batch.record(0), static_cast<std::uint32_t>(byLane.size()));
    byLane[pb.lane].push_back(std::move(pb));
  }
  return byLane;
}

}  // namespace logcapture::agent
