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
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace logcapture::base {

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

// One top-level member of a json record's object, as byte ranges of the record's message, so that sinks
// copy a member's bytes instead of parsing the message again. The key is the text between its quotes,
// escapes as written; the value is the whole value as written (a string with its quotes).
struct JsonMember {
  std::uint32_t keyAt = 0;
  std::uint32_t keySize : 31 = 0;
  std::uint32_t keyEscaped : 1 = 0;  // the key holds a backslash escape: compare it decoded
  std::uint32_t valueAt = 0;
  std::uint32_t valueSize : 31 = 0;
  std::uint32_t valueSpaced : 1 = 0;  // whitespace between the tokens of an object or array value

  std::string_view key(std::string_view message) const { return message.substr(keyAt, keySize); }
  std::string_view value(std::string_view message) const { return message.substr(valueAt, valueSize); }
};
static_assert(sizeof(JsonMember) == 16);

// Why a format: json line whose object could not be decoded went out as text. Encoded as
// "json_error":"too_deep" or "json_error":"too_large" beside the line as the message.
enum class JsonError : std::uint8_t {
  None,
  TooDeep,   // objects and arrays nested deeper than the decoder's bound
  TooLarge,  // more members or bytes than the decoder indexes
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
  // The message is a JSON object (format: json) whose members belong to the record; its member table
  // lies just before the message's bytes (RecordBytes::copyJson), read with jsonMembers().
  // IMPORTANT: true only for a message placed by RecordBytes::copyJson (base::placeJsonRecord does it);
  // whoever gives a record another message clears it.
  bool json = false;
  JsonError jsonError = JsonError::None;  // format json: the line went out as text, and why
  std::uint32_t jsonMembers = 0;          // json: how many members the table holds
};
// The queue and the sinks hold millions of records: the member table lives in the chunk's bytes so that
// records that are not JSON pay nothing for it.
static_assert(sizeof(Record) == 48);

// The top-level members of a json record's object, in the order written, a key written twice only at
// its last place; empty for any other record.
inline std::span<const JsonMember> jsonMembers(const Record& record) {
  if (!record.json || record.jsonMembers == 0) return {};
  return {reinterpret_cast<const JsonMember*>(record.message.data()) - record.jsonMembers, record.jsonMembers};
}

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
  // A copy of `text` just after a copy of `members`, where jsonMembers() finds them: the message of a
  // json record whose `jsonMembers` is members.size().
  std::string_view copyJson(std::span<const JsonMember> members, std::string_view text);

 private:
  // `size` bytes aligned to `align` (at most alignof(std::max_align_t)), in the last block or a new one.
  char* allocate(std::size_t size, std::size_t align);

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

inline char* RecordBytes::allocate(std::size_t size, std::size_t align) {
  std::size_t pad = (align - reinterpret_cast<std::uintptr_t>(free_) % align) % align;
  if (left_ < pad + size) {
    // A new block starts aligned for any type.
    const std::size_t blockSize = std::max(size, nextBlock_);
    blocks_.push_back(std::make_unique_for_overwrite<char[]>(blockSize));
    free_ = blocks_.back().get();
    left_ = blockSize;
    pad = 0;
    nextBlock_ = std::min<std::size_t>(std::max<std::size_t>(nextBlock_ * 2, 1024), 64 * 1024);
  }
  char* at = free_ + pad;
  free_ = at + size;
  left_ -= pad + size;
  return at;
}

inline std::string_view RecordBytes::copy(std::string_view text) {
  if (text.empty()) return {};
  char* at = allocate(text.size(), 1);
  std::memcpy(at, text.data(), text.size());
  return {at, text.size()};
}

inline std::string_view RecordBytes::copyJson(std::span<const JsonMember> members, std::string_view text) {
  const std::size_t tableBytes = members.size_bytes();
  char* at = allocate(tableBytes + text.size(), alignof(JsonMember));
  if (tableBytes > 0) std::memcpy(at, members.data(), tableBytes);
  if (!text.empty()) std::memcpy(at + tableBytes, text.data(), text.size());
  return {at + tableBytes, text.size()};
}

}  // namespace logcapture::base
