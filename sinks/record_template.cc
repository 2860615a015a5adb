#include "sinks/record_template.h"

#include <array>
#include <utility>

#include "base/json_object.h"

namespace logcapture::sinks {

namespace {

using Field = RecordTemplate::Field;

constexpr std::array<std::pair<std::string_view, Field>, 8> kOwnFields{{
    {"input", Field::Input},
    {"path", Field::Path},
    {"stream", Field::Stream},
    {"kubernetes.namespace", Field::KubeNamespace},
    {"kubernetes.pod", Field::KubePod},
    {"kubernetes.pod_uid", Field::KubePodUid},
    {"kubernetes.container", Field::KubeContainer},
    {"kubernetes.container_id", Field::KubeContainerId},
}};

Field fieldNamed(std::string_view name) {
  for (const auto& [n, f] : kOwnFields) {
    if (n == name) return f;
  }
  return Field::Other;
}

// The record's own value of `field`; empty when it has none.
std::string_view ownValue(const base::Record& r, Field field) {
  if (field == Field::Stream) {
    if (r.stream == base::Stream::None) return {};
    return r.stream == base::Stream::Stdout ? "stdout" : "stderr";
  }
  if (r.source == nullptr) return {};
  const base::Source& s = *r.source;
  switch (field) {
    case Field::Input:
      return s.input;
    case Field::Path:
      return s.path;
    case Field::KubeNamespace:
      return s.kubeNamespace;
    case Field::KubePod:
      return s.pod;
    case Field::KubePodUid:
      return s.podUid;
    case Field::KubeContainer:
      return s.container;
    case Field::KubeContainerId:
      return s.containerId;
    case Field::Stream:
    case Field::Other:
      break;
  }
  return {};
}

// A key of a json record's object: strings decoded, numbers and booleans as written.
bool appendJsonField(const base::Record& r, std::string_view name, std::string& out) {
  std::string keyScratch;
  for (const base::JsonMember& m : base::jsonMembers(r)) {
    if (base::jsonKey(r.message, m, keyScratch) != name) continue;
    const std::string_view value = m.value(r.message);
    switch (value.front()) {
      case '"': {
        std::size_t pos = m.valueAt + 1;
        base::decodeJsonString(r.message, pos, out);  // checked when decoded: ends Closed
        return true;
      }
      case '{':
      case '[':
      case 'n':
        return false;  // an object, an array or null names nothing
      default:
        out += value;  // a number, true or false
        return true;
    }
  }
  return false;
}

bool appendField(const base::Record& r, Field field, const std::string& name, std::string& out) {
  if (field != Field::Other) {
    const std::string_view own = ownValue(r, field);
    if (!own.empty()) {
      out += own;
      return true;
    }
  }
  if (r.source && r.source->fields && !r.source->fields->empty()) {
    const auto it = r.source->fields->find(name);
    if (it != r.source->fields->end() && !it->second.empty()) {
      out += it->second;
      return true;
    }
  }
  return r.json && appendJsonField(r, name, out);
}

}  // namespace

std::optional<std::string> RecordTemplate::problem(std::string_view text) {
  std::size_t pos = 0;
  while ((pos = text.find("{{", pos)) != std::string_view::npos) {
    const auto close = text.find("}}", pos + 2);
    if (close == std::string_view::npos) return "'{{' without a closing '}}'";
    if (text.substr(pos + 2, close - pos - 2).find_first_not_of(' ') == std::string_view::npos) {
      return "an empty '{{}}' placeholder";
    }
    pos = close + 2;
  }
  return std::nullopt;
}

RecordTemplate::RecordTemplate(std::string_view text) : text_(text) {
  std::size_t pos = 0;
  std::string literal;
  while (pos < text.size()) {
    const auto open = text.find("{{", pos);
    const auto close = open == std::string_view::npos ? open : text.find("}}", open + 2);
    if (open == std::string_view::npos || close == std::string_view::npos || close == open + 2) {
      literal.append(text.substr(pos));
      break;
    }
    literal.append(text.substr(pos, open - pos));
    std::string name(text.substr(open + 2, close - open - 2));
    // Tolerate "{{ field }}" as people write it in Jinja-like templates.
    while (!name.empty() && name.front() == ' ') name.erase(0, 1);
    while (!name.empty() && name.back() == ' ') name.pop_back();
    if (name.empty()) {
      // "{{  }}": nothing to look up, kept as written.
      literal.append(text.substr(open, close + 2 - open));
    } else {
      const Field field = fieldNamed(name);
      parts_.push_back({std::move(literal), std::move(name), field});
      literal.clear();
    }
    pos = close + 2;
  }
  parts_.push_back({std::move(literal), {}, Field::Other});
}

std::optional<std::string> RecordTemplate::render(const base::Record& record, std::string& out) const {
  out.clear();
  std::optional<std::string> missing;
  for (const Part& part : parts_) {
    out += part.literal;
    if (part.name.empty()) continue;
    if (!appendField(record, part.field, part.name, out) && !missing) missing = part.name;
  }
  return missing;
}

bool appendRecordField(const base::Record& record, std::string_view name, std::string& out) {
  return appendField(record, fieldNamed(name), std::string(name), out);
}

}  // namespace logcapture::sinks
