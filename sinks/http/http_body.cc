#include "sinks/http/http_body.h"

#include <curl/curl.h>
#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <unordered_map>

#include "base/json_text.h"
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
    base::appendJsonString(out, encoded);
  }
}

const std::string* BodyBuilder::asIs(const Batch& batch) const {
  return format_ == Format::Ndjson ? &batch.encoded : nullptr;
}

void BodyBuilder::ndjson(const Batch& batch, std::string& out) const { out.assign(batch.encoded); }

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
    base::appendJsonString(out, index);
    out += "}}\n";
    if (encoding_ == config::Encoding::Json) {
      out += batch.encodedRecord(i);
    } else {
      out += R"({"message":)";
      base::appendJsonString(out, batch.encodedRecord(i));
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
      base::appendJsonString(out, labels_[l].first);
      out += ':';
      base::appendJsonString(out, streams[s].values[l]);
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
      base::appendJsonString(out, batch.encodedRecord(i));
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

Outcome classifyStatus(long status) {
  if (status >= 200 && status <= 299) return Outcome::Success;
  switch (status) {
    // The body, for what it holds: the same bytes are refused again.
    case 400:  // Bad Request
    case 413:  // Content Too Large: SendResult::tooLarge says to split
    case 422:  // Unprocessable Content
      return Outcome::Permanent;
    case 429:  // Too Many Requests
      return Outcome::Throttled;
    // Our credentials.
    case 401:  // Unauthorized
    case 403:  // Forbidden
    case 407:  // Proxy Authentication Required
    // The url: wrong, moved or gone; fixed in the config or at the destination.
    case 404:  // Not Found
    case 405:  // Method Not Allowed
    case 410:  // Gone
    case 414:  // URI Too Long
    case 421:  // Misdirected Request
    // What we send around the body: headers, Content-Type and Content-Encoding from format and compression.
    case 406:  // Not Acceptable
    case 411:  // Length Required
    case 412:  // Precondition Failed
    case 415:  // Unsupported Media Type
    case 416:  // Range Not Satisfiable
    case 417:  // Expectation Failed
    case 426:  // Upgrade Required
    case 428:  // Precondition Required
    case 431:  // Request Header Fields Too Large
    // The destination's state, which may change.
    case 402:  // Payment Required: its account
    case 408:  // Request Timeout
    case 409:  // Conflict
    case 423:  // Locked
    case 424:  // Failed Dependency
    case 425:  // Too Early
    case 451:  // Unavailable For Legal Reasons: the endpoint, not what the records hold
      return Outcome::Retriable;
    default:
      // 1xx, 3xx (redirects are not followed), 5xx and codes no RFC defines: the destination's.
      return Outcome::Retriable;
  }
}

Outcome classifyProbeStatus(long status) {
  if ((status >= 200 && status <= 299) || status == 405) return Outcome::Success;
  return Outcome::Retriable;
}

Outcome classifyTransfer(CURLcode rc) {
  switch (rc) {
    case CURLE_OK:
      return Outcome::Success;
    // Our url or TLS files, or an option this libcurl lacks. start() and `logcapture check` refuse a
    // url that does not parse; what is left is fixed by an operator, and the records wait for it.
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_NOT_BUILT_IN:
    case CURLE_UNKNOWN_OPTION:
    case CURLE_SETOPT_OPTION_SYNTAX:
    case CURLE_BAD_FUNCTION_ARGUMENT:
    case CURLE_FUNCTION_NOT_FOUND:
    case CURLE_RECURSIVE_API_CALL:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CLIENTCERT:
    case CURLE_LOGIN_DENIED:
    case CURLE_AUTH_ERROR:
      return Outcome::Retriable;
    // Name resolution, connection, the server's TLS, timeouts, a connection lost mid-request, a server
    // answering garbage, resources short for a moment.
    case CURLE_FAILED_INIT:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_HTTP2:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP_RETURNED_ERROR:
    case CURLE_WRITE_ERROR:
    case CURLE_UPLOAD_FAILED:
    case CURLE_READ_ERROR:
    case CURLE_OUT_OF_MEMORY:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_RANGE_ERROR:
    case CURLE_HTTP_POST_ERROR:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_ABORTED_BY_CALLBACK:
    case CURLE_INTERFACE_FAILED:
    case CURLE_TOO_MANY_REDIRECTS:
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_FILESIZE_EXCEEDED:
    case CURLE_USE_SSL_FAILED:
    case CURLE_SEND_FAIL_REWIND:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_AGAIN:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_CHUNK_FAILED:
    case CURLE_NO_CONNECTION_AVAILABLE:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_HTTP2_STREAM:
    case CURLE_HTTP3:
    case CURLE_QUIC_CONNECT_ERROR:
    case CURLE_PROXY:
    case CURLE_UNRECOVERABLE_POLL:
      return Outcome::Retriable;
    // Codes of other protocols (the handle only speaks http and https) and retired codes.
    case CURLE_REMOTE_ACCESS_DENIED:
    case CURLE_FTP_ACCEPT_FAILED:
    case CURLE_FTP_WEIRD_PASS_REPLY:
    case CURLE_FTP_ACCEPT_TIMEOUT:
    case CURLE_FTP_WEIRD_PASV_REPLY:
    case CURLE_FTP_WEIRD_227_FORMAT:
    case CURLE_FTP_CANT_GET_HOST:
    case CURLE_FTP_COULDNT_SET_TYPE:
    case CURLE_FTP_COULDNT_RETR_FILE:
    case CURLE_OBSOLETE20:
    case CURLE_QUOTE_ERROR:
    case CURLE_OBSOLETE24:
    case CURLE_OBSOLETE29:
    case CURLE_FTP_PORT_FAILED:
    case CURLE_FTP_COULDNT_USE_REST:
    case CURLE_OBSOLETE32:
    case CURLE_BAD_DOWNLOAD_RESUME:
    case CURLE_FILE_COULDNT_READ_FILE:
    case CURLE_LDAP_CANNOT_BIND:
    case CURLE_LDAP_SEARCH_FAILED:
    case CURLE_OBSOLETE40:
    case CURLE_OBSOLETE44:
    case CURLE_OBSOLETE46:
    case CURLE_OBSOLETE50:
    case CURLE_OBSOLETE51:
    case CURLE_OBSOLETE57:
    case CURLE_OBSOLETE62:
    case CURLE_OBSOLETE75:
    case CURLE_OBSOLETE76:
    case CURLE_TFTP_NOTFOUND:
    case CURLE_TFTP_PERM:
    case CURLE_REMOTE_DISK_FULL:
    case CURLE_TFTP_ILLEGAL:
    case CURLE_TFTP_UNKNOWNID:
    case CURLE_REMOTE_FILE_EXISTS:
    case CURLE_TFTP_NOSUCHUSER:
    case CURLE_REMOTE_FILE_NOT_FOUND:
    case CURLE_SSH:
    case CURLE_FTP_PRET_FAILED:
    case CURLE_RTSP_CSEQ_ERROR:
    case CURLE_RTSP_SESSION_ERROR:
    case CURLE_FTP_BAD_FILE_LIST:
    case CURL_LAST:
      return Outcome::Retriable;
  }
  return Outcome::Retriable;
}

Outcome classifyBulkItem(long status, std::string_view errorType, IndexSource index) {
  if (status >= 200 && status <= 299) return Outcome::Success;
  if (status == 429) return Outcome::Throttled;
  if (status == 408 || (status >= 500 && status <= 599)) return Outcome::Retriable;
  // Elasticsearch blocks writes to an index made read-only, to every index at the disk's flood stage.
  if (errorType == "cluster_block_exception") return Outcome::Retriable;
  switch (status) {
    case 403:  // the index is forbidden to our credentials
    case 404:  // the index does not exist and may not be created
      return index == IndexSource::Record ? Outcome::Permanent : Outcome::Retriable;
    case 401:
    case 407:
      return Outcome::Retriable;
    default:
      // The document: mapper_parsing_exception, illegal_argument_exception, a version conflict, ...
      if (status >= 400 && status <= 499) return Outcome::Permanent;
      return Outcome::Retriable;
  }
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

namespace {

// Bounds of what the bulk reader keeps: a key, a scalar, and an item's error texts.
constexpr std::size_t kTokenBytes = 512;
// Containers nest no deeper than this in a bulk answer; deeper is not an answer to read.
constexpr std::size_t kMaxDepth = 256;

bool isSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool isScalarByte(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '+' || c == '.';
}

}  // namespace

void BulkAnswerReader::reset(std::size_t records, IndexSource index) {
  records_ = records;
  index_ = index;
  head_.clear();
  problem_.clear();
  lex_ = Lex::Between;
  unicodeLeft_ = 0;
  token_.clear();
  tokenIsKey_ = false;
  frames_.clear();
  done_ = false;
  errors_ = false;
  sawItems_ = false;
  items_ = 0;
  action_.clear();
  itemMalformed_ = false;
  status_.reset();
  statusMalformed_ = false;
  errorType_.clear();
  errorReason_.clear();
  errorText_.clear();
  failures_.clear();
}

void BulkAnswerReader::fail(std::string why) {
  if (lex_ == Lex::Failed) return;
  lex_ = Lex::Failed;
  problem_ = std::move(why);
}

void BulkAnswerReader::feed(std::string_view bytes) {
  if (head_.size() < kQuoteBytes) head_.append(bytes.substr(0, kQuoteBytes - head_.size()));
  for (std::size_t i = 0; i < bytes.size() && lex_ != Lex::Failed; ++i) {
    const char c = bytes[i];
    switch (lex_) {
      case Lex::Failed:
        return;
      case Lex::String:
        if (c == '"') {
          lex_ = Lex::Between;
          scalar(true);
        } else if (c == '\\') {
          lex_ = Lex::Escape;
        } else if (static_cast<unsigned char>(c) < 0x20) {
          fail("has a control character in a string");
        } else if (token_.size() < kTokenBytes) {
          token_ += c;
        }
        break;
      case Lex::Escape:
        if (c == 'u') {
          lex_ = Lex::Unicode;
          unicodeLeft_ = 4;
          keepUnicode_ = token_.size() + 6 <= kTokenBytes;
          if (keepUnicode_) token_ += "\\u";
          break;
        }
        if (std::string_view("\"\\/bfnrt").find(c) == std::string_view::npos) {
          fail("has a bad escape in a string");
          break;
        }
        // Error texts are quoted, not decoded: an escape other than \" and \\ stays as it was written.
        if (token_.size() + 2 <= kTokenBytes) {
          if (c != '"' && c != '\\') token_ += '\\';
          token_ += c;
        }
        lex_ = Lex::String;
        break;
      case Lex::Unicode:
        if (!std::isxdigit(static_cast<unsigned char>(c))) {
          fail("has a bad \\u escape in a string");
          break;
        }
        if (keepUnicode_) token_ += c;
        if (--unicodeLeft_ == 0) lex_ = Lex::String;
        break;
      case Lex::Scalar:
        if (isScalarByte(c)) {
          if (token_.size() < kTokenBytes) token_ += c;
          break;
        }
        lex_ = Lex::Between;
        scalar(false);
        if (lex_ == Lex::Failed) break;
        [[fallthrough]];
      case Lex::Between:
        if (isSpace(c)) break;
        if (done_) {
          fail("has more after its end");
          break;
        }
        if (c == '"') {
          const bool key = !frames_.empty() && frames_.back().object &&
                           (frames_.back().expect == Expect::KeyOrEnd || frames_.back().expect == Expect::Key);
          if (!key && !frames_.empty() && frames_.back().expect != Expect::Value &&
              frames_.back().expect != Expect::ValueOrEnd) {
            fail("is not valid JSON");
            break;
          }
          tokenIsKey_ = key;
          token_.clear();
          lex_ = Lex::String;
        } else if (isScalarByte(c)) {
          token_.assign(1, c);
          lex_ = Lex::Scalar;
        } else {
          punctuation(c);
        }
        break;
    }
  }
}

void BulkAnswerReader::punctuation(char c) {
  if (c == '{' || c == '[') return openContainer(c == '{');
  if (c == '}' || c == ']') return closeContainer(c == '}');
  if (frames_.empty()) return fail("is not valid JSON");
  Frame& f = frames_.back();
  if (c == ':' && f.expect == Expect::Colon) {
    f.expect = Expect::Value;
  } else if (c == ',' && f.expect == Expect::CommaOrEnd) {
    f.expect = f.object ? Expect::Key : Expect::Value;
  } else {
    fail("is not valid JSON");
  }
}

void BulkAnswerReader::openContainer(bool object) {
  Role role = Role::Other;
  if (frames_.empty()) {
    if (done_) return fail("has more after its end");
    if (!object) return fail("is not a JSON object");
    role = Role::Root;
  } else {
    const Frame& parent = frames_.back();
    if (parent.expect != Expect::Value && parent.expect != Expect::ValueOrEnd) return fail("is not valid JSON");
    if (frames_.size() >= kMaxDepth) return fail("nests too deep");
    switch (parent.role) {
      case Role::Root:
        if (parent.key == "items" && !object) role = Role::Items;
        break;
      case Role::Items:
        if (object) role = Role::Item;
        break;
      case Role::Item:
        // An item is {"<action>": {...}}: the first key's object.
        if (object && action_.empty()) {
          role = Role::Action;
          action_ = parent.key;
        }
        break;
      case Role::Action:
        if (object && parent.key == "error") role = Role::Error;
        break;
      case Role::Error:
      case Role::Other:
        break;
    }
  }
  if (role == Role::Items) sawItems_ = true;
  if (role == Role::Item) {
    action_.clear();
    itemMalformed_ = false;
    status_.reset();
    statusMalformed_ = false;
    errorType_.clear();
    errorReason_.clear();
    errorText_.clear();
  }
  frames_.push_back(Frame{role, object, object ? Expect::KeyOrEnd : Expect::ValueOrEnd, {}});
}

void BulkAnswerReader::closeContainer(bool object) {
  if (frames_.empty() || frames_.back().object != object) return fail("is not valid JSON");
  const Frame& f = frames_.back();
  const bool canEnd = f.expect == Expect::CommaOrEnd || f.expect == Expect::KeyOrEnd || f.expect == Expect::ValueOrEnd;
  if (!canEnd) return fail("is not valid JSON");
  const Role role = f.role;
  frames_.pop_back();
  if (role == Role::Item) endItem();
  afterValue();
}

void BulkAnswerReader::scalar(bool isString) {
  if (frames_.empty()) {
    if (done_) return fail("has more after its end");
    return fail("is not a JSON object");
  }
  Frame& f = frames_.back();
  if (isString && tokenIsKey_) {
    // Keys are kept only where they are read; elsewhere they are checked and dropped.
    if (f.role != Role::Other) f.key = token_;
    f.expect = Expect::Colon;
    return;
  }
  if (f.expect != Expect::Value && f.expect != Expect::ValueOrEnd) return fail("is not valid JSON");
  if (!isString && token_ != "true" && token_ != "false" && token_ != "null") {
    // A number: a JSON number's first byte is a digit or '-'.
    if (!(token_[0] == '-' || (token_[0] >= '0' && token_[0] <= '9'))) return fail("is not valid JSON");
  }
  const std::string_view key = f.key;
  switch (f.role) {
    case Role::Root:
      if (key == "errors" && !isString) errors_ = token_ == "true";
      break;
    case Role::Action:
      if (key == "status") {
        long code = 0;
        const auto [end, ec] = std::from_chars(token_.data(), token_.data() + token_.size(), code);
        if (!isString && ec == std::errc() && end == token_.data() + token_.size()) {
          status_ = code;
        } else {
          statusMalformed_ = true;
        }
      } else if (key == "error" && isString) {
        errorText_ = token_;
      }
      break;
    case Role::Error:
      if (key == "type" && isString) errorType_ = token_;
      if (key == "reason" && isString) errorReason_ = token_;
      break;
    case Role::Item:
      // An action that is not an object: the item is malformed.
      if (action_.empty()) itemMalformed_ = true;
      break;
    case Role::Items:
    case Role::Other:
      break;
  }
  afterValue();
}

void BulkAnswerReader::afterValue() {
  if (frames_.empty()) {
    done_ = true;
    return;
  }
  frames_.back().expect = Expect::CommaOrEnd;
}

void BulkAnswerReader::endItem() {
  const std::size_t index = items_++;
  if (index >= records_) return;  // counted; the mismatch is reported at the end
  if (action_.empty() || itemMalformed_) return fail("has a malformed item");
  if (!status_ || statusMalformed_) return fail("has an item without status");
  const Outcome outcome = classifyBulkItem(*status_, errorType_, index_);
  if (outcome == Outcome::Success) return;
  std::string error = action_ + " status " + std::to_string(*status_);
  if (!errorType_.empty()) error += ": " + errorType_;
  if (!errorReason_.empty()) error += ": " + errorReason_;
  if (!errorText_.empty()) error += ": " + errorText_;
  if (error.size() > kQuoteBytes) error.resize(kQuoteBytes);
  failures_.push_back({static_cast<std::uint32_t>(index), outcome, std::move(error)});
}

SendResult BulkAnswerReader::finish() const {
  const auto unreadable = [&](const std::string& why) {
    return SendResult::failure(Outcome::Retriable, "bulk answer " + why + ": " + head_);
  };
  if (lex_ == Lex::Failed) return unreadable(problem_);
  if (!done_) return unreadable(head_.empty() ? "is empty" : "ends early");
  if (!errors_) return SendResult::success();
  if (!sawItems_) return unreadable("has errors but no items");
  if (items_ != records_) {
    return unreadable("has " + std::to_string(items_) + " items for " + std::to_string(records_) + " records");
  }
  SendResult result;
  result.failures = failures_;
  return result;
}

SendResult readBulkResponse(std::string_view body, std::size_t records, IndexSource index) {
  BulkAnswerReader reader;
  reader.reset(records, index);
  reader.feed(body);
  return reader.finish();
}

}  // namespace logcapture::sinks::http
