#pragma once

// The dead letter of one sink: records the destination refused for good (permanent errors) are
// appended to state_dir/dead-letter/<sink>.ndjson, one JSON object per line:
//   {"time":"<when refused, RFC 3339 UTC>","sink":"<name>","error":"<why>","record":<the record as encoded>}
// ("record" is the JSON object for encoding: json, the line as a JSON string for encoding: raw).
// The file is capped at dead_letter.max_bytes, what earlier runs wrote included; records past the cap are
// dropped and counted (dead_letter_full), never silently. A file moved away or removed is replaced by a
// new one at the next append. Lines are written whole and fdatasync'ed before append() returns,
// so a record counted as dead-lettered survives a crash. A write that fails (disk full, EACCES, EIO) is
// cut back to the last whole line; its records are dropped and counted apart (dead_letter_failed), and
// logged once per episode at error: the destination refused them for good, so keeping them would only
// hold back the records behind them until an operator frees the disk. The next append tries again.
//
// Thread-safety: append() from any runner worker; mutex_ serialises writes.

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "config/config.h"
#include "sinks/sink.h"

namespace logcapture::agent {

class DeadLetter {
 public:
  DeadLetter(std::string stateDir, const config::SinkConfig& sink);
  ~DeadLetter();
  DeadLetter(const DeadLetter&) = delete;
  DeadLetter& operator=(const DeadLetter&) = delete;

  // What became of the records given to append(): written + overCap + unwritable = records given.
  struct Appended {
    std::size_t written = 0;
    std::size_t overCap = 0;     // past dead_letter.max_bytes
    std::size_t unwritable = 0;  // the write failed
  };
  // Appends records `indexes` of `batch` with their error.
  Appended append(const sinks::Batch& batch, const std::vector<std::pair<std::uint32_t, std::string>>& failed);

  const std::string& path() const { return path_; }
  std::uint64_t written() const { return written_.load(std::memory_order_relaxed); }
  std::uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

 private:
  bool openLocked();

  const std::string sink_;
  const std::string path_;
  const std::uint64_t maxBytes_;
  const bool rawEncoding_;
  std::mutex mutex_;
  int fd_ = -1;
  std::uint64_t size_ = 0;
  bool warnedFull_ = false;
  bool broken_ = false;  // the last write failed: logged once, until one succeeds again
  std::atomic<std::uint64_t> written_{0};
  std::atomic<std::uint64_t> dropped_{0};
};

}  // namespace logcapture::agent
