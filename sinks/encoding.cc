#include "sinks/encoding.h"

#include "agent/decode/formats.h"

#include <nlohmann/json.hpp>

#include <ctime>
#include <set>

namespace logcapture::sinks {
namespace {

constexpr char kHex[] = "0123456789abcdef";

void appendKey(std::string& out, std::string_view key) {
  out += ',';
  appendJsonString(out, key);
  out += ':';
}

}  // namespace

void appendJsonTimestamp(std::string& out, std::chrono::system_clock::time_point t) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ns / 1000000000);
  long frac = static_cast<long>(ns % 1000000000);
  if (frac < 0) {
    frac += 1000000000;
    --secs;
  }
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[48];
  const int n = std::snprintf(buf, sizeof buf, "\"%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ\"", tm.tm_year + 1900,
                              tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
  out.append(buf, static_cast<std::size_t>(n));
}

// Hand-written: it runs for every byte shipped as JSON, where a DOM per record would cost more than
// the rest of the path.
void appendJsonString(std::string& out, std::string_view text) {
  out += '"';
  const auto* begin = reinterpret_cast<const unsigned char*>(text.data());
  const auto* p = begin;
  const auto* end = p + text.size();
  while (p < end) {
    const auto* run = p;
    while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\') ++p;
    out.append(reinterpret_cast<const char*>(run), static_cast<std::size_t>(p - run));
    if (p >= end) break;
    const unsigned char c = *p;
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
      ++p;
    } else if (c < 0x20) {
      switch (c) {
        case '\n':
          out += "\\n";
          break;
        case '\t':
          out += "\\t";
          break;
        case '\r':
          out += "\\r";
          break;
        default:
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 0xF];
      }
      ++p;
    } else {
      const std::size_t n = agent::decode::utf8SequenceLength(text, static_cast<std::size_t>(p - begin));
      if (n == 0) {
        out += "\xEF\xBF\xBD";  // U+FFFD for a byte that is not UTF-8
        ++p;
      } else {
        out.append(reinterpret_cast<const char*>(p), n);
        p += n;
      }
    }
  }
  out += '"';
}

void appendJsonRecord(std::string& out, const agent::Record& r) {
  const std::size_t start = out.size();
  std::set<std::string_view> written{"@timestamp", "message"};
  out += "{\"@timestamp\":";
  appendJsonTimestamp(out, r.time);
  out += ",\"message\":";
  if (r.json) {
    // The message of a json record is its object; its text field, if any, is among its keys.
    out += "null";
  } else {
    appendJsonString(out, r.message);
  }
  auto field = [&](std::string_view key, std::string_view value) {
    if (value.empty() || !written.insert(key).second) return;
    appendKey(out, key);
    appendJsonString(out, value);
  };
  if (r.source) {
    field("input", r.source->input);
    field("path", r.source->path);
  }
  if (r.stream != agent::Stream::None) field("stream", r.stream == agent::Stream::Stdout ? "stdout" : "stderr");
  if (r.source && !r.source->pod.empty()) {
    written.insert("kubernetes");
    out += ",\"kubernetes\":{\"namespace\":";
    appendJsonString(out, r.source->kubeNamespace);
    out += ",\"pod\":";
    appendJsonString(out, r.source->pod);
    out += ",\"pod_uid\":";
    appendJsonString(out, r.source->podUid);
    out += ",\"container\":";
    appendJsonString(out, r.source->container);
    out += ",\"container_id\":";
    appendJsonString(out, r.source->containerId);
    out += '}';
  }
  if (r.truncated) {
    written.insert("truncated");
    out += ",\"truncated\":true";
  }
  if (r.source && r.source->fields) {
    for (const auto& [k, v] : *r.source->fields) field(k, v);
  }
  if (r.json) {
    const auto object = nlohmann::json::parse(r.message, nullptr, false);
    if (object.is_object()) {
      for (const auto& [k, v] : object.items()) {
        if (k == "message") {
          // Put the object's own message where readers look for it.
          const auto at = out.find(",\"message\":null", start) + 11;
          std::string value;
          if (v.is_string()) {
            appendJsonString(value, v.get_ref<const std::string&>());
          } else {
            value = v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
          }
          out.replace(at, 4, value);
          continue;
        }
        if (!written.insert(k).second) continue;
        appendKey(out, k);
        out += v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      }
    }
  }
  out += '}';
}

void appendRecord(std::string& out, const agent::Record& record, config::Encoding encoding) {
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
