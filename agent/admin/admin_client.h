#pragma once

// The client side of the admin API (admin_server.h), shared by `logcapture breakers` and `logcapture top`:
// the URL's validation, the bearer token, the header a POST needs, and the reading of errors.
//
// Thread-safety: an AdminClient is a value; each call opens its own connection (the server closes every
// connection after one answer), so calls on different clients run on any thread. Calls block for at most
// the connection timeout plus the read timeout.

#include <chrono>
#include <optional>
#include <string>

namespace logcapture::agent::admin {

// Exit codes of the admin commands (`logcapture breakers`, `logcapture top`), for scripts (README.md).
enum AdminExit : int {
  kAdminOk = 0,
  kAdminApiError = 1,     // the server answered with an error (unknown sink, refused, ...)
  kAdminUsage = 2,        // bad command line
  kAdminUnreachable = 3,  // the admin server did not answer
};

// One answer; `reached` false when no answer came (refused, timed out), with the reason in `error`.
struct AdminAnswer {
  bool reached = false;
  std::string error;
  int status = 0;
  std::string body;

  bool ok() const { return reached && status == 200; }
};

struct AdminTimeouts {
  std::chrono::milliseconds connect{3000};
  std::chrono::milliseconds read{10000};
};

class AdminClient {
 public:
  // The client of `url` (scheme://host[:port], an optional trailing slash); empty, with the reason in
  // `error`, when the URL is not of that form.
  static std::optional<AdminClient> forUrl(const std::string& url, std::string& error, AdminTimeouts timeouts = {});

  // Sent as a bearer token from the next call on; empty sends none.
  void setToken(std::string token) { token_ = std::move(token); }
  const std::string& token() const { return token_; }
  // scheme://host[:port], as the user gave it, without the trailing slash.
  const std::string& base() const { return base_; }

  AdminAnswer get(const std::string& path) const;
  // A POST of an empty JSON object.
  AdminAnswer post(const std::string& path) const;

 private:
  AdminClient(std::string base, AdminTimeouts timeouts) : base_(std::move(base)), timeouts_(timeouts) {}
  AdminAnswer request(bool post, const std::string& path) const;

  std::string base_;
  AdminTimeouts timeouts_;
  std::string token_;
};

// The error message of an answer with a status other than 200: its JSON "error", else the body, else
// the status.
std::string apiError(const AdminAnswer& answer);

// The API's name of a breaker action of the command line: open -> force-open, close -> force-close;
// reset and auto are the same.
std::string breakerAction(const std::string& action);

}  // namespace logcapture::agent::admin
