#pragma once

// The on-disk format of a disk buffer (agent/disk_buffer.h): segment files of frames, each frame one
// batch of records as read (the line and its metadata, not the sink's encoding, which is redone when
// the batch is read back, so a sink whose encoding changed still sends what it buffered).
//
//   segment := magic "LCBUF01\n" frame*
//   frame   := u32 payload length, u32 CRC32C of the payload, payload      (little-endian)
//   payload := u8 version, i64 formed-at (Unix ns), u32 sources, source*, u32 records, record*
//   source  := str input, path, namespace, pod, pod uid, container, container id; u32 fields, (str, str)*
//   record  := u32 source index, i64 time (Unix ns), u64 offset, u8 stream, u8 flags (1 truncated,
//              2 json), u8 json error, u32 json members, member table (16 bytes each), str message
//   str     := u32 length, bytes
//
// A reader trusts nothing: a frame whose CRC does not match, whose length is implausible, or whose
// payload does not parse is skipped, and reading resumes at the next offset where a whole frame checks
// (a write torn by a crash, or a damaged stretch, loses only itself). Each skipped stretch is counted
// as one corrupt frame.
//
// Pure functions and a file reader; any thread.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/pipeline/queue.h"
#include "base/record.h"

namespace logcapture::agent::disk {

inline constexpr std::string_view kSegmentMagic = "LCBUF01\n";
inline constexpr std::size_t kFrameHeaderBytes = 8;
// Far above any batch (batch.max_bytes is at most 1 GiB of encoding); a larger length is garbage.
inline constexpr std::uint32_t kMaxPayloadBytes = 0xC0000000u;

// A batch read back from disk: its records, and the sources and bytes they view.
// IMPORTANT: the records point into `chunk.storage` and `sources`: keep the StoredBatch while they are used.
struct StoredBatch {
  std::vector<std::shared_ptr<const base::Source>> sources;
  Chunk chunk;
  std::chrono::system_clock::time_point formedAt{};
};

// Appends one frame holding `records` to `out`.
void appendFrame(std::string& out, const std::vector<const base::Record*>& records,
                 std::chrono::system_clock::time_point formedAt);

// The batch a frame's payload holds; null when it does not parse.
std::unique_ptr<StoredBatch> decodePayload(std::string_view payload);

// True when `header` (kFrameHeaderBytes) and `payload` belong together.
bool frameIntact(std::string_view header, std::string_view payload);

// One frame found in a segment.
struct ScannedFrame {
  std::uint64_t offset = 0;  // of its header in the file
  std::uint32_t length = 0;  // of its payload
  std::unique_ptr<StoredBatch> batch;
};

struct SegmentScan {
  bool opened = false;    // false: the file could not be read (error says why)
  bool badMagic = false;  // not a segment at all (garbage, or empty)
  std::uint64_t size = 0;
  std::vector<ScannedFrame> frames;
  std::uint64_t corrupt = 0;  // frames skipped (torn, bad CRC, unparsable)
  std::string error;
};

// Reads every frame of the segment at `path`.
SegmentScan scanSegment(const std::string& path);
// The same, of a segment's bytes.
SegmentScan scanFrames(std::string_view data);

}  // namespace logcapture::agent::disk
