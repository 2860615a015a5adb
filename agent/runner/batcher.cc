#include "agent/runner/batcher.h"

#include <algorithm>
#include <functional>
#include <string>

#include "sinks/encoding.h"

namespace logcapture::agent {

std::uint32_t laneOf(const base::Record& r, std::uint32_t lanes) {
  if (lanes <= 1 || !r.source) return 0;
  const std::size_t h = std::hash<std::string>{}(r.source->path) ^ (std::hash<std::string>{}(r.source->input) << 1);
  return static_cast<std::uint32_t>(h % lanes);
}

Batcher::Batcher(const config::BatchConfig& batch, config::Encoding encoding, std::uint32_t lanes)
    : cfg_(batch), encoding_(encoding), open_(std::max<std::uint32_t>(lanes, 1)) {}

void Batcher::add(Claim& claim, Clock::time_point now, const Closed& closed) {
  const Delivery* delivery = claim.delivery();
  const auto& records = delivery->records();
  if (records.empty()) {
    claim.release();
    return;
  }
  const std::uint64_t maxBytes = cfg_.maxBytes.value;
  OpenBatch& o = open_[laneOf(records.front(), static_cast<std::uint32_t>(open_.size()))];
  for (const base::Record& r : records) {
    sinks::Batch& b = o.pending.batch;
    const std::size_t before = b.encoded.size();
    sinks::appendRecord(b.encoded, r, encoding_);
    if (b.encoded.size() > maxBytes && !b.empty()) {
      // This record starts the next batch: move its bytes over.
      std::string tail = b.encoded.substr(before);
      b.encoded.resize(before);
      close(o, closed);
      o.pending.batch.encoded += tail;  // into the room close() reserved
    }
    if (o.pending.batch.empty()) o.firstAt = now;
    if (o.lastDelivery != delivery) {
      o.pending.claims.push_back(claim.another());
      o.lastDelivery = delivery;
    }
    o.pending.batch.seal(&r);
    if (o.pending.batch.size() >= cfg_.maxRecords || o.pending.batch.bytes() >= maxBytes) close(o, closed);
  }
  claim.release();
}

void Batcher::closeDue(Clock::time_point now, const Closed& closed) {
  for (auto& o : open_) {
    if (!o.pending.batch.empty() && now >= o.firstAt + cfg_.linger) close(o, closed);
  }
}

std::optional<Batcher::Clock::time_point> Batcher::nextDue() const {
  std::optional<Clock::time_point> due;
  for (const auto& o : open_) {
    if (!o.pending.batch.empty() && (!due || o.firstAt + cfg_.linger < *due)) due = o.firstAt + cfg_.linger;
  }
  return due;
}

void Batcher::close(OpenBatch& o, const Closed& closed) {
  PendingBatch pb = std::move(o.pending);
  o.pending = PendingBatch{};
  o.lastDelivery = nullptr;
  // The next batch of a lane is likely the size of this one: room for that, and a little more, up
  // front. Grown by doubling instead, a buffered batch would hold up to twice the memory it counts,
  // and every doubling copies it again.
  {
    const sinks::Batch& last = pb.batch;
    const std::size_t maxBytes = cfg_.maxBytes.value;
    o.pending.batch.encoded.reserve(std::min(last.encoded.size() + last.encoded.size() / 16 + 1024, maxBytes + 1024));
    const std::size_t records = std::min<std::size_t>(last.size() + last.size() / 16 + 16, cfg_.maxRecords);
    o.pending.batch.records.reserve(records);
    o.pending.batch.ends.reserve(records);
  }
  if (pb.batch.empty()) {
    pb.finish();
    return;
  }
  pb.lane = static_cast<std::uint32_t>(&o - open_.data());
  pb.sequence = sequence_++;
  pb.formedAt = o.firstAt;
  closed(std::move(pb));
}

}  // namespace logcapture::agent
