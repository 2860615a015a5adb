#include "sinks/http/http_body.h"

#include <curl/curl.h>
#include <zlib.h>

#include <algorithm>
#include <charconv>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "sinks/encoding.h"

namespace logcapture::sinks::http {
namespace {

// Error texts quote at most this much of what the destination said.
constexpr std::size_t kQuoteBytes = 512;

void appendUnixNanos(std::string& out, std::chrono::system_clock::time_point t) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  char buf[24];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, ns);
  (void)ec;  // 24 digits hold any int64
  out.append(buf, end);
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

}  // namespace

BodyBuilder::BodyBuilder(const HttpConfig& cfg, config::Encoding encoding)
    : format_(cfg.format), encoding_(encoding), index_(cfg.index) {
  for (const auto& [name, value] : cfg.labels) labels_.emplace_back(name, RecordTemplate(value));
}

std::string_view BodyBuilder::contentType() const {
  switch (format_) {
    case Format::Ndjson:
    case Format::EsBulk:
      return "application/x-ndjson";
    case Format::JsonArray:
    case Format::Loki:
      return "application/json";
  }
  return "application/octet-stream";
}

void BodyBuilder::build(const Batch& batch, std::string& out) const {
  out.clear();
  switch (format_) {
    case Format::Ndjson:
      return ndjson(batch, out);
    case Format::JsonArray:
      return jsonArray(batch, out);
    case Format::EsBulk:
      return esBulk(batch, out);
    case Format::Loki:
      return loki(batch, out);
  }
}

void BodyBuilder::appendAsJson(std::string& out, std::string_view encoded) const {
  if (encoding_ == config::Encoding::Json) {
    out += encoded;
  } else {
    appendJsonString(out, encoded);
  }
}

void BodyBuilder::ndjson(const Batch& batch, std::string& out) const {
  out.reserve(batch.bytes() + batch.size());
  for (std::size_t i = 0; i < batch.size(); ++i) {
    out += batch.encodedRecord(i);
    out += '\n';
  }
}

void BodyBuilder::jsonArray(const Batch& batch, std::string& out) const {
  out.reserve(batch.bytes() + batch.size() + 2);
  out += '[';
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (i > 0) out += ',';
    appendAsJson(out, batch.encodedRecord(i));
  }
  out += ']';
}

void BodyBuilder::esBulk(const Batch& batch, std::string& out) const {
  out.reserve(batch.bytes() + batch.size() * (32 + index_.text().size()));
  std::string index;
  if (index_.constant()) index = index_.text();
  for (std::size_t i = 0; i < batch.size(); ++i) {
    // A record without the index's field goes to the index rendered with that part empty; a name
    // Elasticsearch refuses comes back as that item's failure.
    if (!index_.constant()) index_.render(batch.record(i), index);
    out += R"({"index":{"_index":)";
    appendJsonString(out, index);
    out += "}}\n";
    if (encoding_ == config::Encoding::Json) {
      out += batch.encodedRecord(i);
    } else {
      out += R"({"message":)";
      appendJsonString(out, batch.encodedRecord(i));
      out += '}';
    }
    out += '\n';
  }
}

void BodyBuilder::loki(const Batch& batch, std::string& out) const {
  // Group records by their rendered label set, keeping the order of first appearance.
  struct Stream {
    std::vector<std::string> values;  // one per label, in labels_ order
    std::vector<std::uint32_t> records;
  };
  std::vector<Stream> streams;
  std::unordered_map<std::string, std::size_t> byKey;
  std::vector<std::string> values(labels_.size());
  std::string key;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    key.clear();
    for (std::size_t l = 0; l < labels_.size(); ++l) {
      labels_[l].second.render(batch.record(i), values[l]);
      key += values[l];
      key += '\0';  // cannot occur in a rendered value that reaches JSON as a label
    }
    auto [it, inserted] = byKey.try_emplace(key, streams.size());
    if (inserted) streams.push_back({values, {}});
    streams[it->second].records.push_back(static_cast<std::uint32_t>(i));
  }

  out.reserve(batch.bytes() + batch.size() * 32 + streams.size() * 64);
  out += R"({"streams":[)";
  for (std::size_t s = 0; s < streams.size(); ++s) {
    if (s > 0) out += ',';
    out += R"({"stream":{)";
    for (std::size_t l = 0; l < labels_.size(); ++l) {
      if (l > 0) out += ',';
      appendJsonString(out, labels_[l].first);
      out += ':';
      appendJsonString(out, streams[s].values[l]);
    }
    out += R"(},"values":[)";
    bool first = true;
    for (const std::uint32_t i : streams[s].records) {
      if (!first) out += ',';
      first = false;
      out += "[\"";
      appendUnixNanos(out, batch.record(i).time);
      out += "\",";
      // Loki's line is a string whatever the encoding: a JSON record travels as its text.
      appendJsonString(out, batch.encodedRecord(i));
      out += ']';
    }
    out += "]}";
  }
  out += "]}";
}

std::optional<std::string> gzip(std::string_view in, std::string& out) {
  z_stream z{};
  int rc = deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
  if (rc != Z_OK) return std::string("deflateInit2 failed: ") + (z.msg ? z.msg : std::to_string(rc));
  out.resize(deflateBound(&z, static_cast<uLong>(in.size())));
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  // deflateBound() is enough room for one Z_FINISH call.
  rc = deflate(&z, Z_FINISH);
  std::optional<std::string> error;
  if (rc != Z_STREAM_END) error = std::string("deflate failed: ") + (z.msg ? z.msg : std::to_string(rc));
  out.resize(error ? 0 : z.total_out);
  deflateEnd(&z);
  return error;
}

circuit::Outcome classifyStatus(long status) {
  if (status >= 200 && status < 300) return circuit::Outcome::Success;
  if (status == 429) return circuit::Outcome::Throttled;
  if (status == 408 || (status >= 500 && status < 600)) return circuit::Outcome::Retriable;
  return circuit::Outcome::Permanent;
}

std::optional<std::chrono::milliseconds> parseRetryAfter(std::string_view value,
                                                         std::chrono::system_clock::time_point now) {
  value = trim(value);
  if (value.empty()) return std::nullopt;
  std::uint64_t seconds = 0;
  const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
  if (ec == std::errc() && end == value.data() + value.size()) {
    // A day caps absurd values; the breaker's max_open_timeout caps again.
    return std::chrono::milliseconds(std::min<std::uint64_t>(seconds, 86400) * 1000);
  }
  if (ec == std::errc::result_out_of_range) return std::chrono::milliseconds(86400 * 1000);
  const std::string date(value);
  const time_t when = curl_getdate(date.c_str(), nullptr);
  if (when == -1) return std::nullopt;
  // Compared in seconds first: curl reads dates far past 2262, where a nanosecond time_point overflows.
  const auto nowSeconds = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  if (when > nowSeconds + 86400) return std::chrono::milliseconds(86400 * 1000);
  if (when < nowSeconds - 86400) return std::chrono::milliseconds(0);
  const auto delay = std::chrono::system_clock::from_time_t(when) - now;
  if (delay <= std::chrono::system_clock::duration::zero()) return std::chrono::milliseconds(0);
  return std::min(std::chrono::duration_cast<std::chrono::milliseconds>(delay),
                  std::chrono::milliseconds(86400 * 1000));
}

SendResult readBulkResponse(std::string_view body, std::size_t records) {
  const auto unreadable = [&](std::string why) {
    return SendResult::failure(circuit::Outcome::Retriable,
                               "bulk answer " + why + ": " + std::string(body.substr(0, kQuoteBytes)));
  };
  const auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return unreadable("is not a JSON object");
  const auto errors = j.find("errors");
  if (errors == j.end() || !errors->is_boolean() || !errors->get<bool>()) return SendResult::success();
  const auto items = j.find("items");
  if (items == j.end() || !items->is_array()) return unreadable("has errors but no items");
  if (items->size() != records) {
    return unreadable("has " + std::to_string(items->size()) + " items for " + std::to_string(records) + " records");
  }
  SendResult result;
  for (std::size_t i = 0; i < records; ++i) {
    const auto& item = (*items)[i];
    if (!item.is_object() || item.empty() || !item.begin()->is_object()) return unreadable("has a malformed item");
    const auto& action = *item.begin();
    const auto status = action.find("status");
    if (status == action.end() || !status->is_number_integer()) return unreadable("has an item without status");
    const long code = status->get<long>();
    const circuit::Outcome outcome = classifyStatus(code);
    if (outcome == circuit::Outcome::Success) continue;
    std::string error = item.begin().key() + " status " + std::to_string(code);
    if (const auto e = action.find("error"); e != action.end()) {
      if (e->is_object()) {
        if (const auto t = e->find("type"); t != e->end() && t->is_string()) error += ": " + t->get<std::string>();
        if (const auto r = e->find("reason"); r != e->end() && r->is_string()) error += ": " + r->get<std::string>();
      } else if (e->is_string()) {
        error += ": " + e->get<std::string>();
      }
    }
    if (error.size() > kQuoteBytes) error.resize(kQuoteBytes);
    result.failures.push_back({static_cast<std::uint32_t>(i), outcome, std::move(error)});
  }
  return result;
}

}  // namespace logcapture::sinks::http
