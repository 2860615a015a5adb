#pragma once

// Drives a Decoder as the file tailer does: the input is a file's bytes, read in chunks, cut into lines by
// the LineSplitter (which cuts over-long lines), each line decoded into a chunk whose storage adopted the
// bytes read, held records flushed when their deadline passes and all of them at the end.
//
// The first byte of the input chooses the settings, so the fuzzer explores them with the bytes:
//   bits 0-1  max_line_bytes: 64, 300, 4096 or 1 MiB
//   bits 2-3  time between reads: 0, 10 ms, 700 ms or 3 s (held records time out after 1 s or 5 s)
//   bits 4-5  bytes per read: all at once, 1, 7 or 64
// Checked besides the sanitizers: records come out in non-decreasing offset order, never past the bytes
// read, every record's bytes are readable, and nothing is held after the final flush.

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string_view>

#include "agent/inputs/decode/decoder.h"
#include "agent/inputs/line_splitter.h"
#include "agent/pipeline/queue.h"
#include "config/config.h"
#include "tests/fuzz/quiet_logs.h"

namespace logcapture::fuzz {

inline void require(bool condition, const char* what) {
  if (condition) return;
  std::fprintf(stderr, "decoder invariant broken: %s\n", what);
  std::abort();
}

// Decodes `file` with `cfg` (whose maxLineBytes the options byte replaces).
inline void decodeFile(config::InputConfig cfg, std::uint8_t options, std::string_view file) {
  using namespace std::chrono_literals;
  static constexpr std::size_t kMaxLine[] = {64, 300, 4096, 1 << 20};
  static constexpr std::chrono::milliseconds kStep[] = {0ms, 10ms, 700ms, 3000ms};
  static constexpr std::size_t kRead[] = {0, 1, 7, 64};
  quietLogs();
  cfg.maxLineBytes = config::Bytes{kMaxLine[options & 3]};
  const auto step = kStep[(options >> 2) & 3];
  const std::size_t readBytes = kRead[(options >> 4) & 3] == 0 ? file.size() + 1 : kRead[(options >> 4) & 3];

  auto source = std::make_shared<base::Source>();
  source->input = "fuzz";
  source->path = "/var/log/pods/ns_pod_uid/app/0.log";
  agent::decode::DecodeStats stats;
  agent::decode::Decoder decoder(cfg, source, stats);
  agent::LineSplitter splitter(cfg.maxLineBytes.value);
  const auto readTime = std::chrono::system_clock::time_point(1700000000s);
  std::chrono::steady_clock::time_point now{};
  std::uint64_t offset = 0;
  std::uint64_t lastRecordOffset = 0;
  std::uint64_t checksum = 0;

  const auto check = [&](agent::Chunk& chunk) {
    for (const base::Record& r : chunk.records) {
      require(r.offset >= lastRecordOffset, "record offsets never decrease");
      require(r.offset <= offset, "a record's offset is within the bytes read");
      lastRecordOffset = r.offset;
      for (const char c : r.message) checksum += static_cast<unsigned char>(c);
    }
  };
  const auto onLine = [&](agent::Chunk& chunk) {
    return [&](std::string_view line, std::uint64_t end, bool truncated) {
      decoder.line(line, end, truncated, readTime, now, chunk);
    };
  };

  for (std::size_t at = 0; at < file.size(); at += readBytes) {
    const std::string_view bytes = file.substr(at, readBytes);
    // A buffer of its own per read, adopted by the chunk as the tailer's is: ASan sees a view past it.
    auto buffer = std::make_unique<char[]>(bytes.size());
    std::memcpy(buffer.get(), bytes.data(), bytes.size());
    const std::string_view read(buffer.get(), bytes.size());
    agent::Chunk chunk;
    chunk.storage.adopt(std::move(buffer), bytes.size());
    splitter.feed(read, offset, onLine(chunk));
    offset += bytes.size();
    check(chunk);

    now += step;
    agent::Chunk held;
    if (auto deadline = decoder.deadline(); deadline && *deadline <= now) decoder.flush(now, false, held);
    check(held);
  }
  agent::Chunk last;
  splitter.flush(offset, onLine(last));
  decoder.flush(now, true, last);
  check(last);
  require(!decoder.deadline(), "nothing is held after a forced flush");
  if (checksum == 1) std::fputc('\0', stderr);  // keeps the reads of the messages
}

}  // namespace logcapture::fuzz
