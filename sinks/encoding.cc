#include "sinks/encoding.h"

#include "base/json_object.h"
#include "base/json_text.h"
#include "base/utf8.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <map>
#include <span>

namespace logcapture::sinks {
namespace {

void appendKey(std::string& out, std::string_view key) {
  out += ',';
  base::appendJsonString(out, key);
  out += ':';
}

}  // namespace

namespace {

// The keys an object holds so far, so that a later source of the same key loses. The record's own
// keys are a handful of literals; the static fields are a map with unique keys, consulted directly
// rather than copied: nothing is allocated per record on the common path.
class WrittenKeys {
 public:
  explicit WrittenKeys(const std::map<std::string, std::string>* fields) : fields_(fields) {}
  void add(std::string_view key) { own_[count_++] = {key.data(), key.size()}; }
  bool ownHas(std::string_view key) const {
    for (std::size_t i = 0; i < count_; ++i) {
      if (std::string_view(own_[i].data, own_[i].size) == key) return true;
    }
    return false;
  }
  // Whether `key` was written by the record or by a (non-empty, so written) static field.
  bool has(std::string_view key) const {
    if (ownHas(key)) return true;
    if (fields_ == nullptr || fields_->empty()) return false;
    // The map's keys are std::string: a probe kept per thread, so a long key allocates nothing per record.
    thread_local std::string probe;
    probe.assign(key);
    const auto it = fields_->find(probe);
    return it != fields_->end() && !it->second.empty();
  }

 private:
  // Left uninitialised, unlike an array of string_view: zeroing it took more than the rest of a record's keys.
  struct Key {
    const char* data;
    std::size_t size;
  };
  Key own_[10];  // NOLINT(cppcoreguidelines-pro-type-member-init): the first count_ are set
  std::size_t count_ = 0;
  const std::map<std::string, std::string>* fields_;
};

// A source's members as JSON, the same for every record of a file: each thread keeps the last source's
// text and compares its strings (a few dozen bytes) instead of escaping them for every record. Compared
// by value, never by address: a freed source's address may be reused by another.
struct SourceText {
  base::Source source;  // the strings the text was made from
  bool made = false;
  std::string head;        // ,"input":...,"path":... (each only when not empty)
  std::string kubernetes;  // ,"kubernetes":{...}, meaningful when source.pod is not empty
  // Strings of each part with invalid UTF-8: every use counts them, as encoding them again would.
  std::uint64_t headInvalid = 0;
  std::uint64_t kubernetesInvalid = 0;
};

bool sameStrings(const base::Source& a, const base::Source& b) {
  return a.input == b.input && a.path == b.path && a.pod == b.pod && a.kubeNamespace == b.kubeNamespace &&
         a.podUid == b.podUid && a.container == b.container && a.containerId == b.containerId;
}

const SourceText& sourceText(const base::Source& s) {
  thread_local SourceText t;
  if (t.made && sameStrings(t.source, s)) return t;
  t.source = s;
  t.source.fields.reset();  // not part of the text; kept, it would hold the input's map alive
  t.head.clear();
  if (!s.input.empty()) {
    t.head += R"(,"input":)";
    base::appendJsonString(t.head, s.input, base::Utf8Count::Uncounted);
  }
  if (!s.path.empty()) {
    t.head += R"(,"path":)";
    base::appendJsonString(t.head, s.path, base::Utf8Count::Uncounted);
  }
  t.kubernetes = ",\"kubernetes\":{\"namespace\":";
  base::appendJsonString(t.kubernetes, s.kubeNamespace, base::Utf8Count::Uncounted);
  t.kubernetes += ",\"pod\":";
  base::appendJsonString(t.kubernetes, s.pod, base::Utf8Count::Uncounted);
  t.kubernetes += ",\"pod_uid\":";
  base::appendJsonString(t.kubernetes, s.podUid, base::Utf8Count::Uncounted);
  t.kubernetes += ",\"container\":";
  base::appendJsonString(t.kubernetes, s.container, base::Utf8Count::Uncounted);
  t.kubernetes += ",\"container_id\":";
  base::appendJsonString(t.kubernetes, s.containerId, base::Utf8Count::Uncounted);
  t.kubernetes += '}';
  const auto invalid = [](std::string_view text) -> std::uint64_t { return base::isUtf8(text) ? 0 : 1; };
  t.headInvalid = invalid(s.input) + invalid(s.path);
  t.kubernetesInvalid =
      invalid(s.kubeNamespace) + invalid(s.pod) + invalid(s.podUid) + invalid(s.container) + invalid(s.containerId);
  t.made = true;
  return t;
}

}  // namespace

void appendJsonRecord(std::string& out, const base::Record& r) {
  const std::map<std::string, std::string>* fields = r.source && r.source->fields ? r.source->fields.get() : nullptr;
  const std::span<const base::JsonMember> members = base::jsonMembers(r);
  // Keys of a json record's object are compared decoded; only an escaped key needs the scratch.
  std::string keyScratch;
  const base::JsonMember* message = nullptr;  // the object's own message, shown where readers look for it
  for (const base::JsonMember& m : members) {
    if (base::jsonKey(r.message, m, keyScratch) == "message") message = &m;  // keys are unique
  }
  WrittenKeys written(fields);
  written.add("@timestamp");
  written.add("message");
  out += "{\"@timestamp\":";
  base::appendJsonTimestamp(out, r.time);
  out += ",\"message\":";
  if (!r.json) {
    base::appendJsonString(out, r.message);
  } else if (message != nullptr) {
    base::appendCompactJson(out, r.message, *message);
  } else {
    out += "null";
  }
  // The record's own keys are distinct literals: no need to look them up before writing.
  // `prefix` is the key already quoted, between its comma and colon.
  auto field = [&](std::string_view key, std::string_view prefix, std::string_view value) {
    if (value.empty()) return;
    written.add(key);
    out.append(prefix);
    base::appendJsonString(out, value);
  };
  const SourceText* source = r.source != nullptr ? &sourceText(*r.source) : nullptr;
  if (source != nullptr) {
    if (!r.source->input.empty()) written.add("input");
    if (!r.source->path.empty()) written.add("path");
    out += source->head;
    base::countInvalidUtf8(source->headInvalid);
  }
  if (r.stream != base::Stream::None) {
    field("stream", R"(,"stream":)", r.stream == base::Stream::Stdout ? "stdout" : "stderr");
  }
  if (source != nullptr && !r.source->pod.empty()) {
    written.add("kubernetes");
    out += source->kubernetes;
    base::countInvalidUtf8(source->kubernetesInvalid);
  }
  if (r.truncated) {
    written.add("truncated");
    out += ",\"truncated\":true";
  }
  switch (r.jsonError) {
    case base::JsonError::None:
      break;
    case base::JsonError::TooDeep:
      field("json_error", R"(,"json_error":)", "too_deep");
      break;
    case base::JsonError::TooLarge:
      field("json_error", R"(,"json_error":)", "too_large");
      break;
  }
  if (fields != nullptr) {
    // Keys of the map are unique, so each needs checking against the record's own keys alone.
    for (const auto& [k, v] : *fields) {
      if (v.empty() || written.ownHas(k)) continue;
      appendKey(out, k);
      base::appendJsonString(out, v);
    }
  }
  // The object's members as they were written: a key and a value are copied, never parsed again.
  for (const base::JsonMember& m : members) {
    if (&m == message) continue;
    // The object's keys are unique (the decoder kept the last of a repeated key): only earlier sources clash.
    if (written.has(base::jsonKey(r.message, m, keyScratch))) continue;
    out += ",\"";
    out += m.key(r.message);
    out += "\":";
    base::appendCompactJson(out, r.message, m);
  }
  out += '}';
}

void appendRecord(std::string& out, const base::Record& record, config::Encoding encoding) {
  switch (encoding) {
    case config::Encoding::Json:
      appendJsonRecord(out, record);
      return;
    case config::Encoding::Raw:
      out += record.message;
      return;
  }
}

}  // namespace logcapture::sinks
