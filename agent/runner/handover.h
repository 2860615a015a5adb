#pragma once

// The hand-over of a sink's batches when a reload rebuilds the sink, so that none is lost or sent
// twice and each file stays in order:
//   1. the replacement starts held: it takes records from the fan-out but sends nothing;
//   2. the fan-out routes to the replacement; a predecessor that held it back takes what it was
//      offered whatever its bound (SinkRunner::holdBackIntake(false));
//   3. the predecessor halts at once (SinkRunner::release): its send in flight ends within `timeout`,
//      its batcher closes its open batches, and every batch it still holds comes back, claims intact,
//      in order per lane;
//   4. the replacement takes them ahead of everything it received meanwhile (SinkRunner::adopt),
//      re-formed here for its settings, and starts sending.
// agent/pipeline/pipeline.cc runs the steps; nothing here sends or takes a lock.
// A fallback sink re-encodes the batches it takes over with reencoded() too (agent/runner/fallback.h).

#include <cstdint>
#include <vector>

#include "agent/runner/sink_buffer.h"
#include "config/config.h"

namespace logcapture::agent {

// `old`'s records encoded in `encoding`, for a sink other than the one that formed it (a replacement, or a
// fallback taking it over): its claims, disk frame and retained records move with them, its lane and
// formation time stay, its attempts start again.
PendingBatch reencoded(PendingBatch&& old, config::Encoding encoding);

// The batches a predecessor released, re-encoded in `encoding` and re-laned for `lanes` workers: one
// list per lane, each in the order released (a source's records were in one lane, in order, and stay
// so). Claims move with their records; a batch without records is finished.
std::vector<std::vector<PendingBatch>> reformForAdoption(std::vector<PendingBatch> released, config::Encoding encoding,
                                                         std::uint32_t lanes);

}  // namespace logcapture::agent
