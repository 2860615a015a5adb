// The disk buffer's segment reader on arbitrary bytes: whatever a crash, a failing disk or a stranger
// left in a segment file, the agent must start. Each frame it returns lies within the bytes and holds
// records whose text and JSON members lie within what it decoded; nothing else (a crash, a hang, an
// exception) may happen. Half the inputs get the segment's magic, so that the frames are reached.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "agent/runner/buffer_segment.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace logcapture::agent::disk;
  std::string bytes(reinterpret_cast<const char*>(data), size);
  if (size > 0 && (data[0] & 1) != 0) bytes = std::string(kSegmentMagic) + bytes.substr(1);
  const SegmentScan scan = scanFrames(bytes);
  for (const ScannedFrame& f : scan.frames) {
    if (f.offset + kFrameHeaderBytes + f.length > bytes.size() || f.batch == nullptr) {
      std::fprintf(stderr, "frame at %llu of %u bytes out of bounds\n", static_cast<unsigned long long>(f.offset),
                   f.length);
      std::abort();
    }
    for (const auto& r : f.batch->chunk.records) {
      // Reading each byte is what ASan checks: a view past its storage fails here.
      volatile char sink = 0;
      for (const char c : r.message) sink = static_cast<char>(sink ^ c);
      (void)sink;
    }
  }
  return 0;
}
