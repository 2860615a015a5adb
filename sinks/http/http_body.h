#pragma once

// What the HTTP sink puts on the wire and how it reads the answer, apart from the network so both are
// tested without one. BodyBuilder is immutable after construction and the functions are pure: any
// thread may call them.

#include <curl/curl.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

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
  // The body of `batch` when it is the batch's bytes as they stand (ndjson: each encoding and its
  // newline), which then need no copy; nullptr when build() must make it. Valid as long as `batch`.
  const std::string* asIs(const Batch& batch) const;
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

// The classification tables of the HTTP sink. The dead letter is for what the records caused; a fault of
// the destination, of the path to it, or of our own configuration and credentials is Retriable: it
// counts against the breaker, the batch waits in the buffer, and it arrives once the fault is fixed.

// A whole request's HTTP status as a call outcome:
// - 2xx Success;
// - 400, 422 Permanent: the body was refused for what it holds;
// - 413 Permanent with SendResult::tooLarge: the runner halves the batch, and only a single record still
//   refused goes to the dead letter;
// - 429 Throttled;
// - everything else Retriable: 1xx and 3xx (redirects are not followed: the url is stale), 401, 403, 407
//   (credentials), 404, 405, 410, 414, 421 (the url), 406, 411, 412, 415, 417, 426, 428, 431 (headers,
//   format, compression: our configuration), 402, 408, 409, 423, 424, 425, 451, 5xx (the destination's
//   state), and codes no RFC defines.
Outcome classifyStatus(long status);

// A half-open probe's HTTP status: 2xx, and 405 (the endpoint is there and wants a POST), Success; any
// other Retriable, so the breaker counts it and opens again (a 429 or a 401 included).
Outcome classifyProbeStatus(long status);

// A libcurl transfer error as a call outcome: CURLE_OK Success, every other code Retriable. None is the
// records' doing: they are the network, the server's TLS, or our own url and TLS files, which an operator
// fixes (and `logcapture check` and start() refuse what can never work).
Outcome classifyTransfer(CURLcode rc);

// Where an es_bulk document's index comes from: a constant in the config, or the record's fields.
enum class IndexSource : std::uint8_t { Config, Record };

// One item of a 2xx Elasticsearch bulk answer, by its status and error type:
// - 2xx Success; 429 Throttled; 408 and 5xx Retriable;
// - cluster_block_exception Retriable whatever its status (an index made read-only, the disk at flood stage);
// - 403 and 404 (the index is forbidden to us or does not exist): Permanent when the record named the
//   index, Retriable when the config did (a fault of our credentials or the cluster's setup);
// - 401 and 407 Retriable (credentials);
// - other 4xx Permanent: the document was refused (mapper_parsing_exception, 409 version conflict, ...);
// - anything else Retriable.
Outcome classifyBulkItem(long status, std::string_view errorType, IndexSource index);

// A Retry-After value, delay-seconds or an HTTP-date, as a delay from `now`; a date in the past is 0.
// nullopt when the value is neither.
std::optional<std::chrono::milliseconds> parseRetryAfter(std::string_view value,
                                                         std::chrono::system_clock::time_point now);

// Reads a 2xx Elasticsearch bulk answer to a batch as it arrives, keeping only what the items' classes
// need: an answer is often several times the size of its batch and its size is the destination's, so
// it is never held whole. Memory: the first kept bytes, one bounded error text per refused item.
// A reader is used by one thread at a time; reset() makes it ready for the next answer.
class BulkAnswerReader {
 public:
  // Ready for the answer to `records` documents.
  void reset(std::size_t records, IndexSource index);
  // The next bytes of the answer.
  void feed(std::string_view bytes);
  // The answer as a result. Without "errors": true, Success. With it, Success and one RecordFailure per
  // refused item (classifyBulkItem). An answer that is not JSON, or cannot be matched to the batch, is
  // Retriable for the whole batch: resending may duplicate, which at-least-once allows, where guessing
  // would lose.
  SendResult finish() const;

 private:
  enum class Lex : std::uint8_t { Between, String, Escape, Unicode, Scalar, Failed };
  // What a container is, by where it stands: only these few are read, the rest is checked and skipped.
  enum class Role : std::uint8_t { Root, Items, Item, Action, Error, Other };
  // Where an object or array stands in its grammar.
  enum class Expect : std::uint8_t { KeyOrEnd, Key, Colon, Value, ValueOrEnd, CommaOrEnd };
  struct Frame {
    Role role = Role::Other;
    bool object = false;
    Expect expect = Expect::Value;
    std::string key;  // the current key, kept for the roles read
  };

  void fail(std::string why);
  void punctuation(char c);
  void openContainer(bool object);
  void closeContainer(bool object);
  void scalar(bool isString);
  void afterValue();
  void endItem();

  std::size_t records_ = 0;
  IndexSource index_ = IndexSource::Config;
  std::string head_;  // the answer's first bytes, quoted when it cannot be read
  std::string problem_;
  Lex lex_ = Lex::Between;
  int unicodeLeft_ = 0;
  bool keepUnicode_ = false;   // the \u escape being read is kept in token_
  std::string token_;          // the string or scalar being read, up to a bound
  bool tokenIsKey_ = false;    // the string being read is an object's key
  std::vector<Frame> frames_;  // the containers open, outermost first
  bool done_ = false;          // the root value ended
  bool errors_ = false;        // "errors": true
  bool sawItems_ = false;
  std::size_t items_ = 0;
  // The item being read.
  std::string action_;
  bool itemMalformed_ = false;
  std::optional<long> status_;
  bool statusMalformed_ = false;
  std::string errorType_;
  std::string errorReason_;
  std::string errorText_;  // "error" given as a plain string
  std::vector<RecordFailure> failures_;
};

// The bulk answer `body` to `records` documents, read at once (see BulkAnswerReader).
SendResult readBulkResponse(std::string_view body, std::size_t records, IndexSource index = IndexSource::Config);

}  // namespace logcapture::sinks::http
