#include "tests/support/http_receiver.h"

#include <curl/curl.h>

#include <fstream>
#include <iterator>
#include <stdexcept>

namespace logcapture::testing {

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::size_t collect(char* data, std::size_t size, std::size_t count, void* user) {
  static_cast<std::string*>(user)->append(data, size * count);
  return size * count;
}

const std::string kListening = "listening on ";

}  // namespace

std::string httpRequest(const std::string& url, const std::string* postBody) {
  CURL* easy = curl_easy_init();
  if (easy == nullptr) throw std::runtime_error("curl_easy_init failed");
  std::string response;
  curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 2000L);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &collect);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &response);
  if (postBody != nullptr) curl_easy_setopt(easy, CURLOPT_POSTFIELDS, postBody->c_str());
  const CURLcode rc = curl_easy_perform(easy);
  curl_easy_cleanup(easy);
  return rc == CURLE_OK ? response : std::string();
}

// Port 0: the receiver binds a free port itself and prints it, so no other process can take it between
// a look and the bind.
HttpReceiver::HttpReceiver()
    : recordsFile_(dir_ / "records"),
      process_({(fs::path(LOGCAPTURE_BINARY).parent_path() / "logcapture-http-receiver").string(), "--listen",
                "127.0.0.1:0", "--out", recordsFile_.string()}) {
  if (!process_.waitForStdout("\n", 10s)) throw std::runtime_error("http receiver did not start: " + process_.err());
  const std::string& out = process_.out();
  const auto at = out.find(kListening);
  const auto colon = out.rfind(':', out.find('\n'));
  if (at == std::string::npos || colon == std::string::npos) {
    throw std::runtime_error("http receiver printed no address: " + out);
  }
  port_ = static_cast<std::uint16_t>(std::stoi(out.substr(colon + 1)));
  if (!waitUntil([&] { return !httpRequest(base() + "/_stats").empty(); })) {
    throw std::runtime_error("http receiver does not answer on " + base());
  }
}

nlohmann::json HttpReceiver::stats() const { return nlohmann::json::parse(httpRequest(base() + "/_stats")); }

nlohmann::json HttpReceiver::last() const { return nlohmann::json::parse(httpRequest(base() + "/_last")); }

void HttpReceiver::control(const nlohmann::json& answer) const {
  const std::string body = answer.dump();
  const std::string reply = httpRequest(base() + "/_control", &body);
  if (reply != R"({"ok":true})") throw std::runtime_error("http receiver refused control " + body + ": " + reply);
}

std::vector<std::string> HttpReceiver::records() const {
  std::ifstream in(recordsFile_, std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // The receiver may be writing: a last line without its newline is not whole yet.
  std::vector<std::string> lines;
  for (std::size_t pos = 0, end; (end = text.find('\n', pos)) != std::string::npos; pos = end + 1) {
    lines.push_back(text.substr(pos, end - pos));
  }
  return lines;
}

}  // namespace logcapture::testing
