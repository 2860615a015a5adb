#pragma once

// Cuts a byte stream into lines, holding an incomplete last line until its newline comes, and cuts
// lines longer than max_line_bytes (UTF-8-safe) instead of growing without bound.
//
// One thread uses a splitter; it is not thread-safe.

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "agent/decode/formats.h"

namespace logcapture::agent {

class LineSplitter {
 public:
  explicit LineSplitter(std::size_t maxLineBytes) : maxLineBytes_(maxLineBytes) {}

  // Feeds the bytes that start at stream offset `offset`. For each line: onLine(line, endOffset,
  // truncated), where endOffset is the offset just past its newline (or past the bytes consumed,
  // for the cut part of an over-long line). The line view is valid during the call only.
  template <class OnLine>
  void feed(std::string_view bytes, std::uint64_t offset, OnLine&& onLine);
  // Emits the held incomplete line, if any (timeout, rotation, shutdown).
  template <class OnLine>
  void flush(std::uint64_t offset, OnLine&& onLine);
  bool holding() const { return !partial_.empty(); }
  // Forgets held bytes (the file was truncated).
  void reset() {
    partial_.clear();
    skipping_ = false;
  }

 private:
  const std::size_t maxLineBytes_;
  std::string partial_;
  bool skipping_ = false;  // dropping the rest of a line that was already cut
};

template <class OnLine>
void LineSplitter::feed(std::string_view bytes, std::uint64_t offset, OnLine&& onLine) {
  std::size_t pos = 0;
  while (pos < bytes.size()) {
    const char* nl = static_cast<const char*>(std::memchr(bytes.data() + pos, '\n', bytes.size() - pos));
    const std::size_t end = nl ? static_cast<std::size_t>(nl - bytes.data()) : bytes.size();
    std::string_view segment = bytes.substr(pos, end - pos);
    const std::uint64_t endOffset = offset + end + (nl ? 1 : 0);
    if (skipping_) {
      if (nl) skipping_ = false;
    } else if (nl && partial_.empty() && segment.size() <= maxLineBytes_) {
      onLine(segment, endOffset, false);  // the common case: no copy
    } else if (partial_.size() + segment.size() <= maxLineBytes_) {
      partial_.append(segment);
      if (nl) {
        onLine(std::string_view(partial_), endOffset, false);
        partial_.clear();
      }
    } else {
      // Over-long: emit the first maxLineBytes and drop the rest of the line.
      partial_.append(segment.substr(0, maxLineBytes_ - partial_.size() + 4));
      partial_.resize(decode::utf8Cut(partial_, maxLineBytes_));
      onLine(std::string_view(partial_), endOffset, true);
      partial_.clear();
      skipping_ = nl == nullptr;
    }
    pos = end + (nl ? 1 : 0);
  }
}

template <class OnLine>
void LineSplitter::flush(std::uint64_t offset, OnLine&& onLine) {
  if (partial_.empty()) return;
  onLine(std::string_view(partial_), offset, false);
  partial_.clear();
}

}  // namespace logcapture::agent
