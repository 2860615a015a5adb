#pragma once

// Keeps secrets out of what people read: `check --print`, config errors, logs and the admin API.
// By rule rather than by a list of keys, so that a key added later, a librdkafka property or a header
// is covered when its name says what it holds. Pure functions: any thread may call them.

#include <string>
#include <string_view>

namespace logcapture::config {

// What a secret is shown as.
inline constexpr std::string_view kRedacted = "<redacted>";

// A key, property or parameter name that says its value is a secret: it has a word such as password,
// secret, token, credential, auth, signature or cookie in it (`sasl.password`, `ssl.key.password`,
// `client_secret`, `accessToken`), or names a key that is one (`api_key`, `ssl.key.pem`). Case and
// separators (. _ -) do not matter.
bool isSecretName(std::string_view name);

// An HTTP header that may carry a credential: every header except the few known to carry none
// (Content-Type, Accept, User-Agent, X-Scope-OrgID, ...). Services put API keys in headers of any
// name (X-Honeycomb-Team, DD-API-KEY), so nothing else is trusted.
bool isCredentialHeader(std::string_view name);

// `url` with the password of its userinfo (or the whole userinfo when it has no password: a token
// given as the user name) and the values of secret-looking query parameters replaced by kRedacted.
// Text that is not a URL with a scheme comes back as it is.
std::string redactUrl(std::string_view url);

}  // namespace logcapture::config
