#include "agent/inputs/decode/decoder.h"

#include <algorithm>

#include "agent/inputs/decode/formats.h"
#include "base/json_object.h"
#include "base/line_pattern.h"
#include "base/log.h"
#include "base/utf8.h"

namespace logcapture::agent::decode {

namespace {

using std::chrono::steady_clock;
using std::chrono::system_clock;

// A split line whose end has not come after this long goes out as it is; inputs with multiline joining
// use their multiline timeout instead.
constexpr auto kPartialTimeout = std::chrono::seconds(5);

std::string_view dropCr(std::string_view text) {
  if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
  return text;
}

std::size_t indexOf(base::Stream stream) { return static_cast<std::size_t>(stream); }

void count(std::atomic<std::uint64_t>& counter) { counter.fetch_add(1, std::memory_order_relaxed); }

}  // namespace

struct Decoder::Multiline {
  base::LinePattern startPattern;  // linear in the line's length: the whole line is matched, however long
  std::uint32_t maxLines;
  std::size_t maxBytes;
  steady_clock::duration timeout;

  bool starts(std::string_view message) const { return startPattern.search(message); }
};

Decoder::Decoder(const config::InputConfig& cfg, std::shared_ptr<const base::Source> source, DecodeStats& stats)
    : format_(cfg.format),
      maxLineBytes_(cfg.maxLineBytes.value),
      partialTimeout_(kPartialTimeout),
      source_(std::move(source)),
      stats_(stats) {
  if (!cfg.multiline) return;
  const config::MultilineConfig& m = *cfg.multiline;
  std::string error;
  auto pattern = base::LinePattern::compile(m.startPattern, error);
  if (!pattern) {
    // The config check compiles the same pattern, so only a config that skipped it gets here.
    log::event(*log::component("decode"), spdlog::level::err, "multiline_pattern_invalid",
               {{"input", cfg.name}, {"pattern", m.startPattern}, {"error", error}});
    return;
  }
  multiline_ = std::make_unique<const Multiline>(Multiline{std::move(*pattern), std::max<std::uint32_t>(m.maxLines, 1),
                                                           std::max<std::size_t>(m.maxBytes.value, 1), m.timeout});
  partialTimeout_ = m.timeout;
}

Decoder::~Decoder() = default;

void Decoder::line(std::string_view text, std::uint64_t endOffset, bool truncated, system_clock::time_point readTime,
                   steady_clock::time_point now, Chunk& out) {
  const std::uint64_t from = lineStart(text, endOffset);
  switch (format_) {
    case config::InputFormat::Raw:
      keepRaw(text, from, truncated, readTime, now, out);
      return;
    case config::InputFormat::Json:
      if (multiline_) {
        // Joined records are read as a whole when they go out (pretty-printed objects).
        keepRaw(text, from, truncated, readTime, now, out);
        return;
      }
      {
        base::Record r;
        r.time = readTime;
        r.message = dropCr(text);
        r.source = source_.get();
        r.truncated = truncated;
        emit(std::move(r), out);
      }
      return;
    case config::InputFormat::Docker:
      decodeDocker(text, from, truncated, readTime, now, out);
      return;
    case config::InputFormat::Cri:
      decodeCri(text, from, truncated, readTime, now, out);
      return;
  }
}

std::uint64_t Decoder::lineStart(std::string_view text, std::uint64_t endOffset) {
  // The previous line's end; for the first line, or when offsets went back (the file was truncated and
  // is read again from 0), the line's own length with its newline tells.
  const std::uint64_t from =
      havePrev_ && prevEnd_ <= endOffset ? prevEnd_ : endOffset - std::min<std::uint64_t>(endOffset, text.size() + 1);
  prevEnd_ = endOffset;
  havePrev_ = true;
  return from;
}

void Decoder::keepRaw(std::string_view text, std::uint64_t start, bool truncated, system_clock::time_point readTime,
                      steady_clock::time_point now, Chunk& out) {
  text = dropCr(text);
  if (!multiline_) {
    // The hot path: built in place, the message a view of the read buffer when the chunk adopted it.
    if (!out.source) out.source = source_;
    base::Record& r = out.records.emplace_back();
    r.time = readTime;
    r.message = out.storage.keep(text);
    r.source = source_.get();
    r.offset = settledOffset(std::nullopt);
    r.truncated = truncated;
    return;
  }
  base::Record r;
  r.time = readTime;
  r.message = text;
  r.source = source_.get();
  r.truncated = truncated;
  logical(std::move(r), start, now, out);
}

void Decoder::decodeDocker(std::string_view text, std::uint64_t start, bool truncated,
                           system_clock::time_point readTime, steady_clock::time_point now, Chunk& out) {
  scratch_.clear();
  if (const auto d = parseDocker(text, scratch_)) {
    fragment(d->stream, scratch_, !d->partial, d->time.value_or(readTime), start, truncated, now, out);
    return;
  }
  scratch_.clear();
  if (truncated && salvageDocker(text, scratch_)) {
    // Cut by the tailer: the decoded part of the log is kept; its stream and time went with the cut.
    fragment(base::Stream::None, scratch_, true, readTime, start, true, now, out);
    return;
  }
  // A line the tailer cut is not valid JSON either; it is counted as truncated there, not here.
  if (!truncated) {
    count(stats_.invalidJson);
    warnOnce(warnedInvalid_, "decode_invalid_lines");
  }
  keepRaw(text, start, truncated, readTime, now, out);
}

void Decoder::decodeCri(std::string_view text, std::uint64_t start, bool truncated, system_clock::time_point readTime,
                        steady_clock::time_point now, Chunk& out) {
  if (const auto c = parseCri(text)) {
    fragment(c->stream, c->message, !c->partial, c->time, start, truncated, now, out);
    return;
  }
  count(stats_.invalidCri);
  warnOnce(warnedInvalid_, "decode_invalid_lines");
  keepRaw(text, start, truncated, readTime, now, out);
}

void Decoder::fragment(base::Stream stream, std::string_view content, bool final, system_clock::time_point time,
                       std::uint64_t start, bool truncated, steady_clock::time_point now, Chunk& out) {
  Pending& p = streams_[indexOf(stream)].partial;
  if (!p.active) {
    base::Record r;
    r.time = time;
    r.source = source_.get();
    r.stream = stream;
    r.truncated = truncated;
    if (final) {
      // The common case, a line that was not split.
      if (content.size() > maxLineBytes_) {
        content = content.substr(0, base::utf8Cut(content, maxLineBytes_));
        r.truncated = true;
        count(stats_.truncated);
        warnOnce(warnedTruncated_, "decode_records_truncated");
      }
      r.message = content;
      logical(std::move(r), start, now, out);
      return;
    }
    hold(p, std::move(r), start, now);
  }
  p.record.truncated = p.record.truncated || truncated;
  p.last = now;
  if (!p.skipping) appendCapped(p, content, maxLineBytes_);
  if (final) {
    const std::uint64_t resume = p.resume;
    logical(release(p), resume, now, out);
  }
}

void Decoder::appendCapped(Pending& p, std::string_view content, std::size_t limit) {
  std::string& message = p.message;
  if (message.size() + content.size() <= limit) {
    message.append(content);
    return;
  }
  // Fragments are split by bytes, maybe inside a character, so the cut is placed in the joined text;
  // one byte past the limit shows whether the limit falls inside a character.
  const std::size_t room = limit - std::min(limit, message.size());
  message.append(content.substr(0, room + 1));
  message.resize(base::utf8Cut(message, limit));
  p.record.truncated = true;
  p.skipping = true;
  count(stats_.truncated);
  warnOnce(warnedTruncated_, "decode_records_truncated");
}

void Decoder::logical(base::Record&& record, std::uint64_t resume, steady_clock::time_point now, Chunk& out) {
  if (!multiline_) {
    emit(std::move(record), out);
    return;
  }
  const Multiline& ml = *multiline_;
  Pending& m = streams_[indexOf(record.stream)].multiline;
  if (m.active) {
    // The line is not held yet while the record before it goes out, so it bounds that record's offset.
    if (ml.starts(record.message)) {
      emitMultiline(m, false, out, resume);
    } else if (m.message.size() + 1 + record.message.size() > ml.maxBytes) {
      // The held record goes out whole and the line starts the next one: nothing is cut.
      emitMultiline(m, true, out, resume);
    } else {
      m.message.push_back('\n');
      m.message.append(record.message);
      m.record.truncated = m.record.truncated || record.truncated;
      m.last = now;
      if (++m.lines >= ml.maxLines) emitMultiline(m, true, out);
      return;
    }
  }
  startMultiline(m, std::move(record), resume, now, out);
}

void Decoder::startMultiline(Pending& m, base::Record&& record, std::uint64_t resume, steady_clock::time_point now,
                             Chunk& out) {
  const Multiline& ml = *multiline_;
  bool full = ml.maxLines <= 1;
  if (record.message.size() > ml.maxBytes) {
    record.message = record.message.substr(0, base::utf8Cut(record.message, ml.maxBytes));
    record.truncated = true;
    count(stats_.truncated);
    warnOnce(warnedTruncated_, "decode_records_truncated");
    full = true;
  }
  hold(m, std::move(record), resume, now);
  if (full) emitMultiline(m, true, out);
}

void Decoder::emitPartial(Pending& p, steady_clock::time_point now, Chunk& out) {
  const std::uint64_t resume = p.resume;
  count(stats_.partialFlushed);
  warnOnce(warnedPartial_, "decode_partial_lines_flushed");
  logical(release(p), resume, now, out);
}

void Decoder::emitMultiline(Pending& m, bool counted, Chunk& out, std::optional<std::uint64_t> unsettled) {
  base::Record r = release(m);
  if (counted) count(stats_.multilineFlushed);
  emit(std::move(r), out, unsettled);
}

void Decoder::emit(base::Record&& record, Chunk& out, std::optional<std::uint64_t> unsettled) {
  record.offset = settledOffset(unsettled);
  if (format_ == config::InputFormat::Json) {
    keepJson(record, out);
  } else {
    record.message = out.storage.keep(record.message);
  }
  if (!out.source) out.source = source_;
  out.records.push_back(record);
}

void Decoder::keepJson(base::Record& record, Chunk& out) {
  switch (base::placeJsonRecord(json_, record, out.storage)) {
    case base::JsonVerdict::Object:
      return;
    case base::JsonVerdict::Invalid:
      // A line the tailer cut is not valid JSON either; it is counted as truncated there, not here.
      if (!record.truncated) {
        count(stats_.invalidJson);
        warnOnce(warnedInvalid_, "decode_invalid_lines");
      }
      return;
    case base::JsonVerdict::TooDeep:
    case base::JsonVerdict::TooLarge:
      count(stats_.jsonUnparsed);
      warnOnce(warnedUnparsed_, "decode_json_unparsed");
      return;
  }
}

std::uint64_t Decoder::settledOffset(std::optional<std::uint64_t> unsettled) const {
  std::uint64_t offset = unsettled ? std::min(prevEnd_, *unsettled) : prevEnd_;
  if (held_ > 0) {
    for (const auto& s : streams_) {
      if (s.partial.active) offset = std::min(offset, s.partial.resume);
      if (s.multiline.active) offset = std::min(offset, s.multiline.resume);
    }
  }
  return offset;
}

void Decoder::hold(Pending& p, base::Record&& record, std::uint64_t resume, steady_clock::time_point now) {
  p.message.assign(record.message);
  p.record = record;
  p.record.message = {};
  p.resume = resume;
  p.last = now;
  p.lines = 1;
  p.active = true;
  p.skipping = false;
  ++held_;
}

base::Record Decoder::release(Pending& p) {
  p.active = false;
  p.skipping = false;
  --held_;
  // IMPORTANT: views the held bytes, which the next hold() of `p` overwrites; the caller copies them first.
  p.record.message = p.message;
  return p.record;
}

void Decoder::flush(steady_clock::time_point now, bool force, Chunk& out) {
  // Oldest first, so records keep the order of their first lines. Unfinished split lines go on into
  // multiline joining like any other line, so they are done first.
  const auto next = [&](Pending StreamState::*which, steady_clock::duration timeout) -> Pending* {
    Pending* oldest = nullptr;
    for (auto& s : streams_) {
      Pending& p = s.*which;
      if (p.active && (force || p.last + timeout <= now) && (oldest == nullptr || p.resume < oldest->resume)) {
        oldest = &p;
      }
    }
    return oldest;
  };
  while (Pending* p = next(&StreamState::partial, partialTimeout_)) emitPartial(*p, now, out);
  if (!multiline_) return;
  while (Pending* m = next(&StreamState::multiline, multiline_->timeout)) emitMultiline(*m, !force, out);
}

std::optional<steady_clock::time_point> Decoder::deadline() const {
  std::optional<steady_clock::time_point> earliest;
  const auto consider = [&](steady_clock::time_point t) {
    if (!earliest || t < *earliest) earliest = t;
  };
  if (held_ == 0) return earliest;
  for (const auto& s : streams_) {
    if (s.partial.active) consider(s.partial.last + partialTimeout_);
    if (s.multiline.active) consider(s.multiline.last + multiline_->timeout);
  }
  return earliest;
}

void Decoder::warnOnce(bool& warned, std::string_view event) {
  if (warned) return;
  warned = true;
  log::event(*log::component("decode"), spdlog::level::warn, event,
             {{"input", source_->input}, {"path", source_->path}, {"format", config::enumName(format_)}});
}

}  // namespace logcapture::agent::decode
