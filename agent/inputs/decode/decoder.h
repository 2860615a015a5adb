#pragma once

// Turns the lines of one file (or of stdin) into records: decodes the input's format (raw, json,
// docker json-file, cri), joins lines that docker or the kubelet split, then joins multiline records.
// A multiline start pattern is matched against the whole line, in time linear in its length (line_pattern.h).
//
// NOTE on threads: one thread (the input's) owns a Decoder and calls every member function; a Decoder
// is not thread-safe. DecodeStats is shared by the decoders of one input and read by metrics from any
// thread, so its counters are relaxed atomics.
//
// Offsets: a record's offset is where reading resumes once it and the records before it are finished
// with: the end of its last line, which is the end of the last line read so far. While lines of another
// stream are held (a split line waiting for its end, a multiline record waiting for its next start), a
// record that completes meanwhile gets the offset just before the first held line instead, so a
// checkpoint never skips a held line; the record that finally releases them gets the end of everything
// read. Offsets of one decoder's records never decrease.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/pipeline/queue.h"
#include "base/json_object.h"
#include "base/record.h"
#include "config/config.h"

namespace logcapture::agent::decode {

// Counters per input; read by metrics later, so relaxed atomics.
struct DecodeStats {
  std::atomic<std::uint64_t> invalidJson{0};       // format json/docker: lines that were not valid JSON, kept raw
                                                   // (docker: also JSON without a string "log"); lines the
                                                   // tailer cut are its to count, not these
  std::atomic<std::uint64_t> jsonUnparsed{0};      // format json: objects nested too deep or too large to
                                                   // decode (json_object.h), kept raw with a json_error
  std::atomic<std::uint64_t> invalidCri{0};        // format cri: lines not in CRI form, kept raw
  std::atomic<std::uint64_t> truncated{0};         // records cut at max_line_bytes or multiline max_bytes
  std::atomic<std::uint64_t> multilineFlushed{0};  // records flushed by timeout / max_lines / max_bytes
  std::atomic<std::uint64_t> partialFlushed{0};    // docker/cri split lines emitted before their end came
                                                   // (timeout, rotation, shutdown)
};

// Decodes the lines of one file (or stdin) into records. Holds the partial state for joining (docker
// 16 KiB splits and CRI P fragments per stream, multiline per stream). One thread uses it.
class Decoder {
 public:
  // IMPORTANT: `stats` must outlive the decoder.
  Decoder(const config::InputConfig& cfg, std::shared_ptr<const base::Source> source, DecodeStats& stats);
  ~Decoder();
  Decoder(const Decoder&) = delete;
  Decoder& operator=(const Decoder&) = delete;

  // One complete line without its newline (raw and json drop a trailing '\r' too: CRLF files);
  // `endOffset` = file offset just past its newline; `truncated` = the tailer cut the line at
  // max_line_bytes. Appends finished records to `out`; `readTime` stamps records whose format has no
  // time; `now` starts the timeouts of what is held. `text` need only live during the call: a record's
  // message views it where `out.storage` adopted the bytes `text` lies in, and is a copy in `out.storage`
  // otherwise; `out.source` becomes this decoder's source.
  void line(std::string_view text, std::uint64_t endOffset, bool truncated,
            std::chrono::system_clock::time_point readTime, std::chrono::steady_clock::time_point now, Chunk& out);
  // Emits held records whose timeout passed (force: all of them, at rotation / EOF of stdin / shutdown).
  void flush(std::chrono::steady_clock::time_point now, bool force, Chunk& out);
  // When the oldest held record times out; nullopt when nothing is held.
  std::optional<std::chrono::steady_clock::time_point> deadline() const;

 private:
  struct Multiline;
  // A record being put together from several lines: the fragments of a split line, or a multiline record.
  // Its bytes are held here, across chunks, and copied into the chunk it finally goes out in.
  struct Pending {
    base::Record record;                         // its message is unset while held
    std::string message;                         // what is held; capacity kept from one record to the next
    std::uint64_t resume = 0;                    // the offset just before its first line; a checkpoint must not pass it
    std::chrono::steady_clock::time_point last;  // when its last line came
    std::uint32_t lines = 0;
    bool active = false;
    bool skipping = false;  // split line cut at max_line_bytes: the rest of it is dropped until its end
  };
  struct StreamState {
    Pending partial;
    Pending multiline;
  };

  void decodeDocker(std::string_view text, std::uint64_t start, bool truncated,
                    std::chrono::system_clock::time_point readTime, std::chrono::steady_clock::time_point now,
                    Chunk& out);
  void decodeCri(std::string_view text, std::uint64_t start, bool truncated,
                 std::chrono::system_clock::time_point readTime, std::chrono::steady_clock::time_point now, Chunk& out);
  // A line that is not in the input's format: kept as it is.
  void keepRaw(std::string_view text, std::uint64_t start, bool truncated,
               std::chrono::system_clock::time_point readTime, std::chrono::steady_clock::time_point now, Chunk& out);
  // Joins a fragment of a split line with the earlier ones of its stream; `final` ends the line.
  void fragment(base::Stream stream, std::string_view content, bool final, std::chrono::system_clock::time_point time,
                std::uint64_t start, bool truncated, std::chrono::steady_clock::time_point now, Chunk& out);
  void appendCapped(Pending& p, std::string_view content, std::size_t limit);
  // A whole logical line, after format decoding: through multiline joining when configured, else out.
  void logical(base::Record&& record, std::uint64_t resume, std::chrono::steady_clock::time_point now, Chunk& out);
  void startMultiline(Pending& m, base::Record&& record, std::uint64_t resume,
                      std::chrono::steady_clock::time_point now, Chunk& out);
  void emitPartial(Pending& p, std::chrono::steady_clock::time_point now, Chunk& out);
  // `unsettled`: the start of a line read but neither held nor out yet.
  void emitMultiline(Pending& m, bool counted, Chunk& out, std::optional<std::uint64_t> unsettled = std::nullopt);
  void emit(base::Record&& record, Chunk& out, std::optional<std::uint64_t> unsettled = std::nullopt);
  // Format json: reads the record's object and places its message, with its member table when it is one.
  void keepJson(base::Record& record, Chunk& out);
  // Where reading may resume once everything out so far is finished with: before the first line not out yet.
  std::uint64_t settledOffset(std::optional<std::uint64_t> unsettled) const;
  void hold(Pending& p, base::Record&& record, std::uint64_t resume, std::chrono::steady_clock::time_point now);
  base::Record release(Pending& p);
  std::uint64_t lineStart(std::string_view text, std::uint64_t endOffset);
  void warnOnce(bool& warned, std::string_view event);

  const config::InputFormat format_;
  const std::size_t maxLineBytes_;
  std::chrono::steady_clock::duration partialTimeout_;
  std::unique_ptr<const Multiline> multiline_;  // null: no multiline joining
  const std::shared_ptr<const base::Source> source_;
  DecodeStats& stats_;
  std::array<StreamState, 3> streams_;  // indexed by Stream
  unsigned held_ = 0;                   // active Pendings
  std::uint64_t prevEnd_ = 0;           // endOffset of the last line read
  bool havePrev_ = false;
  std::string scratch_;  // decoded docker log, reused
  base::JsonObjectReader json_;
  bool warnedInvalid_ = false;
  bool warnedUnparsed_ = false;
  bool warnedTruncated_ = false;
  bool warnedPartial_ = false;
};

// Kubernetes metadata from the path: /var/log/pods/<ns>_<pod>_<uid>/<container>/<n>.log and
// /var/log/containers/<pod>_<ns>_<container>-<64-hex id>.log (symlink names), also below a prefix
// (a host's /var/log mounted elsewhere). Leaves fields empty otherwise.
void fillKubernetesMetadata(const std::string& path, base::Source& source);

}  // namespace logcapture::agent::decode
