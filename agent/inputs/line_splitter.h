#pragma once

// Cuts a byte stream into lines, holding an incomplete last line until its newline comes, and cuts
// lines longer than max_line_bytes (UTF-8-safe) instead of growing without bound.
//
// A line goes out only once its newline is read, with the offset just past that newline, so a
// checkpoint never falls inside a line: a line being read when the reader stops is read again, whole,
// after a restart. The same holds for an over-long line: its cut head is held (at most max_line_bytes)
// while the rest is skipped, and goes out when the newline ends the line. Only flush() lets out a line
// without its newline, for the reader to call when no more of it can come.
//
// One thread uses a splitter; it is not thread-safe.

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "base/utf8.h"

namespace logcapture::agent {

class LineSplitter {
 public:
  explicit LineSplitter(std::size_t maxLineBytes) : maxLineBytes_(maxLineBytes) {}

  // Feeds the bytes that start at stream offset `offset`. For each line: onLine(line, endOffset,
  // truncated), where endOffset is the offset just past its newline. The line view is valid during the
  // call only.
  template <class OnLine>
  void feed(std::string_view bytes, std::uint64_t offset, OnLine&& onLine);
  // Emits the held incomplete line (or cut head), if any, ending at `offset` (the bytes read so far):
  // for a writer that stopped mid-line, a file rotated or deleted, stdin at its end. The rest of a cut
  // line is still skipped up to its newline.
  template <class OnLine>
  void flush(std::uint64_t offset, OnLine&& onLine);
  // True while bytes of an unfinished line are held (not while only skipping the rest of a flushed one).
  bool holding() const { return !partial_.empty() || cut_; }
  // A new limit (a reload changed max_line_bytes); a held line already longer is cut at its next feed.
  void setMaxLineBytes(std::size_t maxLineBytes) { maxLineBytes_ = maxLineBytes; }
  // Forgets held bytes (the file was truncated).
  void reset() {
    partial_.clear();
    cut_ = false;
    skipping_ = false;
  }

 private:
  std::size_t maxLineBytes_;
  std::string partial_;    // the line so far; when cut_, its first max_line_bytes
  bool cut_ = false;       // partial_ is the head of an over-long line whose rest is being skipped
  bool skipping_ = false;  // the head already went out (flush()): drop the rest of the line
};

template <class OnLine>
void LineSplitter::feed(std::string_view bytes, std::uint64_t offset, OnLine&& onLine) {
  std::size_t pos = 0;
  while (pos < bytes.size()) {
    const char* nl = static_cast<const char*>(std::memchr(bytes.data() + pos, '\n', bytes.size() - pos));
    const std::size_t end = nl ? static_cast<std::size_t>(nl - bytes.data()) : bytes.size();
    std::string_view segment = bytes.substr(pos, end - pos);
    const std::uint64_t endOffset = offset + end + (nl ? 1 : 0);
    pos = end + (nl ? 1 : 0);
    if (skipping_) {
      if (nl) skipping_ = false;
      continue;
    }
    if (!cut_) {
      if (nl && partial_.empty() && segment.size() <= maxLineBytes_) {
        onLine(segment, endOffset, false);  // the common case: no copy
        continue;
      }
      if (partial_.size() + segment.size() <= maxLineBytes_) {
        partial_.append(segment);
      } else {
        // Over-long: keep the first max_line_bytes (without splitting a UTF-8 sequence), skip the rest.
        partial_.append(segment.substr(0, maxLineBytes_ - partial_.size() + 4));
        partial_.resize(base::utf8Cut(partial_, maxLineBytes_));
        cut_ = true;
      }
    }
    if (nl) {
      onLine(std::string_view(partial_), endOffset, cut_);
      partial_.clear();
      cut_ = false;
    }
  }
}

template <class OnLine>
void LineSplitter::flush(std::uint64_t offset, OnLine&& onLine) {
  if (!holding()) return;
  onLine(std::string_view(partial_), offset, cut_);
  partial_.clear();
  skipping_ = cut_;
  cut_ = false;
}

}  // namespace logcapture::agent
