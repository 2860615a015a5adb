#include "agent/admin/admin_client.h"

#include <httplib.h>

#include <nlohmann/json.hpp>
#include <regex>

namespace logcapture::agent::admin {

std::optional<AdminClient> AdminClient::forUrl(const std::string& url, std::string& error, AdminTimeouts timeouts) {
  // The API's paths are fixed below the server's root, so a URL with a path is a mistake.
  static const std::regex kUrl(R"(^(https?://[^/?#]+)/?$)");
  std::smatch m;
  if (!std::regex_match(url, m, kUrl)) {
    error = "--admin expects a URL such as http://127.0.0.1:9880, found '" + url + "'";
    return std::nullopt;
  }
  return AdminClient(m[1].str(), timeouts);
}

AdminAnswer AdminClient::get(const std::string& path) const { return request(false, path); }

AdminAnswer AdminClient::post(const std::string& path) const { return request(true, path); }

AdminAnswer AdminClient::request(bool post, const std::string& path) const {
  httplib::Client client(base_);
  client.set_connection_timeout(timeouts_.connect);
  client.set_read_timeout(timeouts_.read);
  httplib::Headers headers;
  if (!token_.empty()) headers.emplace("Authorization", "Bearer " + token_);
  // The server takes a POST only with a JSON content type or this header, which no web form can send.
  headers.emplace("X-Requested-By", "logcapture");
  const httplib::Result res = post ? client.Post(path, headers, "{}", "application/json") : client.Get(path, headers);
  AdminAnswer answer;
  if (!res) {
    answer.error = httplib::to_string(res.error());
    return answer;
  }
  answer.reached = true;
  answer.status = res->status;
  answer.body = res->body;
  return answer;
}

std::string apiError(const AdminAnswer& answer) {
  const auto j = nlohmann::json::parse(answer.body, nullptr, false);
  if (j.is_object() && j.contains("error") && j["error"].is_string()) return j["error"].get<std::string>();
  if (!answer.body.empty()) return answer.body;
  return "HTTP " + std::to_string(answer.status);
}

std::string breakerAction(const std::string& action) {
  if (action == "open") return "force-open";
  if (action == "close") return "force-close";
  return action;
}

}  // namespace logcapture::agent::admin
