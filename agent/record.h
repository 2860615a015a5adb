#pragma once

// A log record as it travels from an input through the queue to the sinks.
//
// IMPORTANT: a Record views what its chunk owns: its message lies in the chunk's RecordBytes and its
// source is the chunk's. A Record is valid as long as its chunk (in the queue), then its Delivery (in the
// sinks), lives; nothing may keep one longer.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace logcapture::agent {

enum class Stream : std::uint8_t { None, Stdout, Stderr };

// Where records come from: one per tailed file (or per stdin), shared by its records.
// Immutable once records point at it, so any thread may read it.
struct Source {
  std::string input;  // the input's name
  std::string path;   // the file; empty for stdin
  // Kubernetes metadata taken from the path; empty when the file is not a pod or container log.
  std::string kubeNamespace;
  std::string pod;
  std::string podUid;
  std::string container;
  std::string containerId;
  std::shared_ptr<const std::map<std::string, std::string>> fields;  // the input's static fields
};

struct Record {
  std::chrono::system_clock::time_point time;  // from the container format when present, else read time
  std::string_view message;                    // bytes owned by the record's chunk
  const Source* source = nullptr;              // kept alive by the record's chunk
  // Byte offset in the file just past the last line of this record: where reading resumes once the
  // record is finished with (checkpoint). Records of one source come in increasing offset order.
  std::uint64_t offset = 0;
  Stream stream = Stream::None;
  bool truncated = false;  // a line was cut at max_line_bytes
  bool json = false;       // message is a JSON object (format: json) whose fields belong to the record
};

// The bytes the messages of one chunk's records view: a read buffer the chunk adopted, whose lines are
// kept without a copy, and blocks holding copies of the rest (joined, decoded or held lines). Blocks
// never move or grow, so a view stays valid while the RecordBytes lives, wherever it is moved to. One
// allocation per block instead of one per record also means the consumer thread frees a handful of
// blocks per chunk, not one string per record allocated on another thread.
//
// One thread at a time; moved between threads with its chunk.
class RecordBytes {
 public:
  RecordBytes() = default;
  RecordBytes(RecordBytes&& other) noexcept { *this = std::move(other); }
  RecordBytes& operator=(RecordBytes&& other) noexcept;
  RecordBytes(const RecordBytes&) = delete;
  RecordBytes& operator=(const RecordBytes&) = delete;

  // Takes over a buffer whose first `size` bytes are lines being decoded into this chunk's records.
  void adopt(std::unique_ptr<char[]> buffer, std::size_t size);
  // Gives the adopted buffer back when no record views it (every line was copied or dropped), so the
  // reader can use it again; null otherwise.
  std::unique_ptr<char[]> reclaim();
  // Sizes the first copy block for about `bytes` of copies, so a small chunk takes a small block.
  void reserve(std::size_t bytes) { nextBlock_ = std::max<std::size_t>(bytes, 1); }
  // `text` as records may hold it: itself when it lies in the adopted buffer, else a copy.
  std::string_view keep(std::string_view text);
  // A copy of `text`, always.
  std::string_view copy(std::string_view text);

 private:
  std::unique_ptr<char[]> adopted_;
  std::size_t adoptedSize_ = 0;
  bool adoptedViewed_ = false;
  std::vector<std::unique_ptr<char[]>> blocks_;
  char* free_ = nullptr;  // the unused tail of the last block
  std::size_t left_ = 0;
  std::size_t nextBlock_ = 1024;
};

inline RecordBytes& RecordBytes::operator=(RecordBytes&& other) noexcept {
  adopted_ = std::move(other.adopted_);
  adoptedSize_ = std::exchange(other.adoptedSize_, 0);
  adoptedViewed_ = std::exchange(other.adoptedViewed_, false);
  blocks_ = std::move(other.blocks_);
  other.blocks_.clear();
  free_ = std::exchange(other.free_, nullptr);
  left_ = std::exchange(other.left_, 0);
  nextBlock_ = std::exchange(other.nextBlock_, 1024);
  return *this;
}

inline void RecordBytes::adopt(std::unique_ptr<char[]> buffer, std::size_t size) {
  if (adopted_ && adoptedViewed_) blocks_.push_back(std::move(adopted_));  // still viewed: kept with the copies
  adopted_ = std::move(buffer);
  adoptedSize_ = size;
  adoptedViewed_ = false;
}

inline std::unique_ptr<char[]> RecordBytes::reclaim() {
  if (!adopted_ || adoptedViewed_) return nullptr;
  adoptedSize_ = 0;
  return std::move(adopted_);
}

inline std::string_view RecordBytes::keep(std::string_view text) {
  // std::less gives a total order over unrelated pointers, where the built-in < does not.
  const std::less<const char*> before;
  if (adopted_ && !before(text.data(), adopted_.get()) &&
      !before(adopted_.get() + adoptedSize_, text.data() + text.size())) {
    adoptedViewed_ = true;
    return text;
  }
  return copy(text);
}

inline std::string_view RecordBytes::copy(std::string_view text) {
  if (text.empty()) return {};
  if (left_ < text.size()) {
    const std::size_t size = std::max(text.size(), nextBlock_);
    blocks_.push_back(std::make_unique_for_overwrite<char[]>(size));
    free_ = blocks_.back().get();
    left_ = size;
    nextBlock_ = std::min<std::size_t>(std::max<std::size_t>(nextBlock_ * 2, 1024), 64 * 1024);
  }
  std::memcpy(free_, text.data(), text.size());
  const std::string_view kept(free_, text.size());
  free_ += text.size();
  left_ -= text.size();
  return kept;
}

}  // namespace logcapture::agent
