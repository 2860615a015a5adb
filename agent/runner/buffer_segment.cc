#include "agent/runner/buffer_segment.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>

#include "agent/runner/crc32c.h"
#include "base/durable_file.h"

namespace logcapture::agent::disk {
namespace {

constexpr std::uint8_t kVersion = 1;
constexpr std::uint8_t kTruncated = 1;
constexpr std::uint8_t kJson = 2;

template <class T>
void put(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));  // little-endian hosts, which is what the agent ships for
  out.append(b, sizeof(T));
}

void putString(std::string& out, std::string_view s) {
  put<std::uint32_t>(out, static_cast<std::uint32_t>(s.size()));
  out.append(s);
}

std::int64_t unixNanos(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

std::chrono::system_clock::time_point fromUnixNanos(std::int64_t ns) {
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::nanoseconds(ns)));
}

// Bounds-checked reading of a payload; any read past the end fails the whole decode.
class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}
  template <class T>
  bool get(T& v) {
    if (data_.size() - at_ < sizeof(T)) return false;
    std::memcpy(&v, data_.data() + at_, sizeof(T));
    at_ += sizeof(T);
    return true;
  }
  bool bytes(std::size_t n, std::string_view& out) {
    if (data_.size() - at_ < n) return false;
    out = data_.substr(at_, n);
    at_ += n;
    return true;
  }
  bool string(std::string_view& out) {
    std::uint32_t n = 0;
    return get(n) && bytes(n, out);
  }
  bool string(std::string& out) {
    std::string_view v;
    if (!string(v)) return false;
    out.assign(v);
    return true;
  }
  bool done() const { return at_ == data_.size(); }

 private:
  std::string_view data_;
  std::size_t at_ = 0;
};

}  // namespace

void appendFrame(std::string& out, const std::vector<const base::Record*>& records,
                 std::chrono::system_clock::time_point formedAt) {
  const std::size_t start = out.size();
  out.append(kFrameHeaderBytes, '\0');
  put<std::uint8_t>(out, kVersion);
  put<std::int64_t>(out, unixNanos(formedAt));
  // Sources are shared by many records: each is written once per frame.
  std::map<const base::Source*, std::uint32_t> index;
  std::vector<const base::Source*> sources;
  for (const base::Record* r : records) {
    if (r->source != nullptr && index.emplace(r->source, static_cast<std::uint32_t>(sources.size())).second) {
      sources.push_back(r->source);
    }
  }
  put<std::uint32_t>(out, static_cast<std::uint32_t>(sources.size()));
  for (const base::Source* s : sources) {
    for (const std::string* field :
         {&s->input, &s->path, &s->kubeNamespace, &s->pod, &s->podUid, &s->container, &s->containerId}) {
      putString(out, *field);
    }
    put<std::uint32_t>(out, s->fields ? static_cast<std::uint32_t>(s->fields->size()) : 0);
    if (s->fields) {
      for (const auto& [k, v] : *s->fields) {
        putString(out, k);
        putString(out, v);
      }
    }
  }
  put<std::uint32_t>(out, static_cast<std::uint32_t>(records.size()));
  for (const base::Record* r : records) {
    put<std::uint32_t>(out, r->source != nullptr ? index[r->source] : UINT32_MAX);
    put<std::int64_t>(out, unixNanos(r->time));
    put<std::uint64_t>(out, r->offset);
    put<std::uint8_t>(out, static_cast<std::uint8_t>(r->stream));
    put<std::uint8_t>(out, std::uint8_t((r->truncated ? kTruncated : 0) | (r->json ? kJson : 0)));
    put<std::uint8_t>(out, static_cast<std::uint8_t>(r->jsonError));
    const auto members = jsonMembers(*r);
    put<std::uint32_t>(out, static_cast<std::uint32_t>(members.size()));
    out.append(reinterpret_cast<const char*>(members.data()), members.size_bytes());
    putString(out, r->message);
  }
  const std::string_view payload = std::string_view(out).substr(start + kFrameHeaderBytes);
  const std::uint32_t length = static_cast<std::uint32_t>(payload.size());
  const std::uint32_t crc = crc32c(payload);
  std::memcpy(out.data() + start, &length, 4);
  std::memcpy(out.data() + start + 4, &crc, 4);
}

bool frameIntact(std::string_view header, std::string_view payload) {
  if (header.size() != kFrameHeaderBytes) return false;
  std::uint32_t length = 0;
  std::uint32_t crc = 0;
  std::memcpy(&length, header.data(), 4);
  std::memcpy(&crc, header.data() + 4, 4);
  return length == payload.size() && crc == crc32c(payload);
}

std::unique_ptr<StoredBatch> decodePayload(std::string_view payload) {
  Reader in(payload);
  auto out = std::make_unique<StoredBatch>();
  std::uint8_t version = 0;
  std::int64_t formed = 0;
  std::uint32_t sourceCount = 0;
  if (!in.get(version) || version != kVersion || !in.get(formed) || !in.get(sourceCount)) return nullptr;
  out->formedAt = fromUnixNanos(formed);
  if (sourceCount > payload.size()) return nullptr;
  for (std::uint32_t i = 0; i < sourceCount; ++i) {
    auto s = std::make_shared<base::Source>();
    for (std::string* field :
         {&s->input, &s->path, &s->kubeNamespace, &s->pod, &s->podUid, &s->container, &s->containerId}) {
      if (!in.string(*field)) return nullptr;
    }
    std::uint32_t fieldCount = 0;
    if (!in.get(fieldCount) || fieldCount > payload.size()) return nullptr;
    if (fieldCount > 0) {
      auto fields = std::make_shared<std::map<std::string, std::string>>();
      for (std::uint32_t f = 0; f < fieldCount; ++f) {
        std::string k;
        std::string v;
        if (!in.string(k) || !in.string(v)) return nullptr;
        (*fields)[std::move(k)] = std::move(v);
      }
      s->fields = std::move(fields);
    }
    out->sources.push_back(std::move(s));
  }
  std::uint32_t recordCount = 0;
  if (!in.get(recordCount) || recordCount > payload.size()) return nullptr;
  Chunk& chunk = out->chunk;
  chunk.records.reserve(recordCount);
  chunk.storage.reserve(payload.size());
  for (std::uint32_t i = 0; i < recordCount; ++i) {
    std::uint32_t source = 0;
    std::int64_t time = 0;
    std::uint8_t stream = 0;
    std::uint8_t flags = 0;
    std::uint8_t jsonError = 0;
    std::uint32_t memberCount = 0;
    base::Record r;
    std::string_view table;
    std::string_view message;
    if (!in.get(source) || !in.get(time) || !in.get(r.offset) || !in.get(stream) || !in.get(flags) ||
        !in.get(jsonError) || !in.get(memberCount) || memberCount > payload.size() / sizeof(base::JsonMember) ||
        !in.bytes(std::size_t(memberCount) * sizeof(base::JsonMember), table) || !in.string(message)) {
      return nullptr;
    }
    if (stream > std::uint8_t(base::Stream::Stderr) || jsonError > std::uint8_t(base::JsonError::TooLarge) ||
        (source != UINT32_MAX && source >= out->sources.size()) || (flags & ~(kTruncated | kJson)) != 0) {
      return nullptr;
    }
    r.time = fromUnixNanos(time);
    r.source = source == UINT32_MAX ? nullptr : out->sources[source].get();
    r.stream = base::Stream(stream);
    r.truncated = (flags & kTruncated) != 0;
    r.jsonError = base::JsonError(jsonError);
    r.json = (flags & kJson) != 0;
    std::vector<base::JsonMember> members(memberCount);
    if (memberCount > 0) std::memcpy(members.data(), table.data(), table.size());
    for (const base::JsonMember& m : members) {
      // A member must lie inside its message, or a sink would read past it.
      if (std::uint64_t(m.keyAt) + m.keySize > message.size() ||
          std::uint64_t(m.valueAt) + m.valueSize > message.size()) {
        return nullptr;
      }
    }
    if (r.json) {
      r.message = chunk.storage.copyJson(members, message);
      r.jsonMembers = memberCount;
    } else {
      if (memberCount != 0) return nullptr;
      r.message = chunk.storage.copy(message);
    }
    chunk.bytes += message.size();
    chunk.records.push_back(r);
  }
  if (!in.done()) return nullptr;
  return out;
}

SegmentScan scanSegment(const std::string& path) {
  std::string data;
  if (const int error = base::readFile(path, data); error != 0) {
    SegmentScan scan;
    scan.error = std::strerror(error);
    return scan;
  }
  return scanFrames(data);
}

SegmentScan scanFrames(std::string_view data) {
  SegmentScan scan;
  scan.opened = true;
  scan.size = data.size();
  if (!data.starts_with(kSegmentMagic)) {
    scan.badMagic = true;
    return scan;
  }
  // The length of an intact frame at `at`, or 0.
  const auto intactAt = [&](std::size_t at) -> std::uint32_t {
    if (data.size() - at < kFrameHeaderBytes) return 0;
    std::uint32_t length = 0;
    std::memcpy(&length, data.data() + at, 4);
    if (length == 0 || length > kMaxPayloadBytes || data.size() - at - kFrameHeaderBytes < length) return 0;
    // Cheap before the CRC: after damage every offset is tried, and most fail here.
    if (std::uint8_t(data[at + kFrameHeaderBytes]) != kVersion) return 0;
    const std::string_view header(data.data() + at, kFrameHeaderBytes);
    const std::string_view payload(data.data() + at + kFrameHeaderBytes, length);
    return frameIntact(header, payload) ? length : 0;
  };
  std::size_t at = kSegmentMagic.size();
  while (at < data.size()) {
    if (const std::uint32_t length = intactAt(at); length != 0) {
      auto batch = decodePayload(std::string_view(data.data() + at + kFrameHeaderBytes, length));
      if (batch) {
        scan.frames.push_back({at, length, std::move(batch)});
      } else {
        scan.corrupt += 1;  // checks, yet does not parse: a format this build does not read
      }
      at += kFrameHeaderBytes + length;
      continue;
    }
    // Torn by a crash, or damaged: what follows may still be whole. The next offset where a frame
    // checks is where reading goes on (a CRC32C matching by chance is one in four billion).
    scan.corrupt += 1;
    do {
      ++at;
    } while (at < data.size() && intactAt(at) == 0);
  }
  return scan;
}

}  // namespace logcapture::agent::disk
