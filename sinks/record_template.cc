#include "sinks/record_template.h"

#include <nlohmann/json.hpp>

namespace logcapture::sinks {

std::optional<std::string> RecordTemplate::problem(std::string_view text) {
  std::size_t pos = 0;
  while ((pos = text.find("{{", pos)) != std::string_view::npos) {
    const auto close = text.find("}}", pos + 2);
    if (close == std::string_view::npos) return "'{{' without a closing '}}'";
    if (close == pos + 2) return "an empty '{{}}' placeholder";
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
    std::string field(text.substr(open + 2, close - open - 2));
    // Tolerate "{{ field }}" as people write it in Jinja-like templates.
    while (!field.empty() && field.front() == ' ') field.erase(0, 1);
    while (!field.empty() && field.back() == ' ') field.pop_back();
    fields_.push_back(field);
    parts_.push_back({std::move(literal), std::move(field)});
    literal.clear();
    pos = close + 2;
  }
  parts_.push_back({std::move(literal), {}});
}

std::optional<std::string> RecordTemplate::render(const agent::Record& record, std::string& out) const {
  out.clear();
  std::optional<std::string> missing;
  for (const Part& part : parts_) {
    out += part.literal;
    if (part.field.empty()) continue;
    if (auto value = recordField(record, part.field)) {
      out += *value;
    } else if (!missing) {
      missing = part.field;
    }
  }
  return missing;
}

std::optional<std::string> recordField(const agent::Record& r, std::string_view name) {
  auto nonEmpty = [](const std::string& s) -> std::optional<std::string> {
    if (s.empty()) return std::nullopt;
    return s;
  };
  if (r.source) {
    const agent::Source& s = *r.source;
    if (name == "input") return nonEmpty(s.input);
    if (name == "path") return nonEmpty(s.path);
    if (name == "kubernetes.namespace") return nonEmpty(s.kubeNamespace);
    if (name == "kubernetes.pod") return nonEmpty(s.pod);
    if (name == "kubernetes.pod_uid") return nonEmpty(s.podUid);
    if (name == "kubernetes.container") return nonEmpty(s.container);
    if (name == "kubernetes.container_id") return nonEmpty(s.containerId);
  }
  if (name == "stream") {
    if (r.stream == agent::Stream::None) return std::nullopt;
    return std::string(r.stream == agent::Stream::Stdout ? "stdout" : "stderr");
  }
  if (r.source && r.source->fields) {
    if (auto it = r.source->fields->find(std::string(name)); it != r.source->fields->end()) return it->second;
  }
  if (r.json) {
    const auto object = nlohmann::json::parse(r.message, nullptr, false);
    if (object.is_object()) {
      auto it = object.find(name);
      if (it != object.end()) {
        if (it->is_string()) return it->get<std::string>();
        if (it->is_number() || it->is_boolean()) return it->dump();
      }
    }
  }
  return std::nullopt;
}

}  // namespace logcapture::sinks
