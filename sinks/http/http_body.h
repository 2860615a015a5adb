#pragma once

// What the HTTP sink puts on the wire and how it reads the answer, apart from the network so both are
// tested without one. BodyBuilder is immutable after construction and the functions are pure: any
// thread may call them.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "circuit/breaker.h"
#include "config/config.h"
#include "sinks/http/http_config.h"
#include "sinks/record_template.h"
#include "sinks/sink.h"

namespace logcapture::sinks::http {

// The request body of a batch in one of the four formats, from the records' encodings:
// - ndjson: each record and '\n';
// - json_array: [r1,r2,...];
// - es_bulk: per record {"index":{"_index":"<index>"}} '\n' record '\n' (a raw line becomes {"message":"<line>"},
//   since Elasticsearch stores objects only);
// - loki: {"streams":[{"stream":{<labels>},"values":[["<unix ns>","<record>"],...]},...]}, one stream per
//   rendered label set in order of first appearance, values in batch order.
// With encoding raw, records are not JSON: json_array and loki carry them as JSON strings.
class BodyBuilder {
 public:
  BodyBuilder(const HttpConfig& cfg, config::Encoding encoding);

  // Replaces `out` with the body of `batch`; `out` keeps its capacity between batches.
  void build(const Batch& batch, std::string& out) const;
  // The Content-Type of every body this builder makes.
  std::string_view contentType() const;

 private:
  void ndjson(const Batch& batch, std::string& out) const;
  void jsonArray(const Batch& batch, std::string& out) const;
  void esBulk(const Batch& batch, std::string& out) const;
  void loki(const Batch& batch, std::string& out) const;
  void appendAsJson(std::string& out, std::string_view encoded) const;

  Format format_;
  config::Encoding encoding_;
  RecordTemplate index_;
  std::vector<std::pair<std::string, RecordTemplate>> labels_;  // sorted by name (from the config's map)
};

// Replaces `out` with the gzip (RFC 1952) stream of `in`. Returns zlib's complaint on failure.
std::optional<std::string> gzip(std::string_view in, std::string& out);

// An HTTP status as a call outcome: 2xx Success; 408 and 5xx Retriable; 429 Throttled; any other
// (1xx, 3xx, 4xx, 413 included: SendResult::tooLarge carries what the runner needs) Permanent.
circuit::Outcome classifyStatus(long status);

// A Retry-After value, delay-seconds or an HTTP-date, as a delay from `now`; a date in the past is 0.
// nullopt when the value is neither.
std::optional<std::chrono::milliseconds> parseRetryAfter(std::string_view value,
                                                         std::chrono::system_clock::time_point now);

// Reads a 2xx Elasticsearch bulk answer to `records` documents. Without "errors": true, Success. With it,
// Success and one RecordFailure per refused item (429 Throttled, 408/5xx Retriable, others Permanent
// with the item's error type and reason). An answer that cannot be matched to the batch is Retriable
// for the whole batch: resending may duplicate, which at-least-once allows, where guessing would lose.
SendResult readBulkResponse(std::string_view body, std::size_t records);

}  // namespace logcapture::sinks::http
