#include "config/redact.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <vector>

namespace logcapture::config {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& ch : out) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return out;
}

// The name's words, lower case: "sasl.oauthbearer.client.secret" -> sasl, oauthbearer, client, secret.
std::vector<std::string> words(std::string_view name) {
  std::vector<std::string> out;
  std::string word;
  for (const char ch : name) {
    if (std::isalnum(static_cast<unsigned char>(ch))) {
      word += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    } else if (!word.empty()) {
      out.push_back(std::move(word));
      word.clear();
    }
  }
  if (!word.empty()) out.push_back(std::move(word));
  return out;
}

// Parts of a word that mark a secret wherever they stand in it ("accesstoken", "x-auth", "passwd").
constexpr std::array kSecretParts{"password", "passwd", "passphrase", "secret", "token",     "credential",
                                  "auth",     "cookie", "signature",  "apikey", "privatekey"};
// Whole words that mark a secret only alone (as parts they occur in harmless words: "compass", "design").
constexpr std::array kSecretWords{"pass", "pwd", "sig", "jwt", "pem", "sas"};
// "key" is a secret after these words ("api_key", "access-key"); alone it is a Kafka message key or a
// Redis list.
constexpr std::array kKeyOwners{"api",    "access", "private", "secret", "account", "master",     "license",
                                "client", "shared", "signing", "ingest", "insert",  "encryption", "subscription"};

bool oneOf(const std::string& word, const auto& list) {
  return std::any_of(list.begin(), list.end(), [&](const char* w) { return word == w; });
}

// Query parameters whose bare name is a secret: ?key= (Google APIs), ?code= (OAuth).
bool isSecretParameter(std::string_view name) {
  const std::string n = lower(name);
  return isSecretName(name) || n == "key" || n == "code";
}

}  // namespace

bool isSecretName(std::string_view name) {
  const auto w = words(name);
  for (std::size_t i = 0; i < w.size(); ++i) {
    for (const char* part : kSecretParts) {
      if (w[i].find(part) != std::string::npos) return true;
    }
    if (oneOf(w[i], kSecretWords)) return true;
    if (w[i] == "key" && i > 0 && oneOf(w[i - 1], kKeyOwners)) return true;
  }
  return false;
}

bool isCredentialHeader(std::string_view name) {
  static constexpr std::array kPlain{"accept",        "accept-charset",   "accept-encoding",  "accept-language",
                                     "cache-control", "content-encoding", "content-language", "content-type",
                                     "user-agent",    "x-scope-orgid",    "x-request-id",     "x-correlation-id",
                                     "pragma"};
  return !oneOf(lower(name), kPlain);
}

std::string redactUrl(std::string_view url) {
  const std::size_t schemeEnd = url.find("://");
  if (schemeEnd == std::string_view::npos || schemeEnd == 0) return std::string(url);
  const std::size_t authorityAt = schemeEnd + 3;
  const std::size_t authorityEnd = std::min(url.find_first_of("/?#", authorityAt), url.size());
  std::string out(url.substr(0, authorityAt));
  const std::string_view authority = url.substr(authorityAt, authorityEnd - authorityAt);
  if (const std::size_t at = authority.rfind('@'); at != std::string_view::npos) {
    const std::string_view userinfo = authority.substr(0, at);
    const std::size_t colon = userinfo.find(':');
    out += colon == std::string_view::npos ? std::string(kRedacted)
                                           : std::string(userinfo.substr(0, colon + 1)) + std::string(kRedacted);
    out += authority.substr(at);
  } else {
    out += authority;
  }
  std::string_view rest = url.substr(authorityEnd);
  const std::size_t query = rest.find('?');
  if (query == std::string_view::npos) return out + std::string(rest);
  out += rest.substr(0, query + 1);
  rest.remove_prefix(query + 1);
  const std::size_t fragment = std::min(rest.find('#'), rest.size());
  std::string_view params = rest.substr(0, fragment);
  bool first = true;
  while (true) {
    const std::size_t amp = std::min(params.find('&'), params.size());
    const std::string_view param = params.substr(0, amp);
    if (!first) out += '&';
    first = false;
    const std::size_t eq = param.find('=');
    if (eq != std::string_view::npos && isSecretParameter(param.substr(0, eq))) {
      out += param.substr(0, eq + 1);
      out += kRedacted;
    } else {
      out += param;
    }
    if (amp == params.size()) break;
    params.remove_prefix(amp + 1);
  }
  return out + std::string(rest.substr(fragment));
}

}  // namespace logcapture::config
