#pragma once

// The in-tree HTTP receiver (tools/http_receiver.cc) as a child process for tests: it listens on a
// port of its own choosing on 127.0.0.1, appends every record it accepts to records(), and can be told
// to fail or stall through control().
//
// Thread-safety: one test thread uses an instance. Errors of the test harness itself (the receiver does
// not start, a control request is not taken) throw std::runtime_error, which fails the test case.

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/support/fixtures.h"
#include "tests/support/process.h"

namespace logcapture::testing {

class HttpReceiver {
 public:
  // Starts the receiver and returns once it answers GET /_stats.
  HttpReceiver();
  HttpReceiver(const HttpReceiver&) = delete;
  HttpReceiver& operator=(const HttpReceiver&) = delete;

  std::uint16_t port() const { return port_; }
  // http://127.0.0.1:PORT, without a trailing slash.
  std::string base() const { return "http://127.0.0.1:" + std::to_string(port_); }
  // GET /_stats: requests, records, bytes, failed_requests, connections.
  nlohmann::json stats() const;
  // GET /_last: the last data request's method, path, headers and content length.
  nlohmann::json last() const;
  // POST /_control: the answer of the next data requests (see tools/http_receiver.cc).
  void control(const nlohmann::json& answer) const;
  // Every record accepted so far, one per element, in the order they arrived.
  std::vector<std::string> records() const;
  const std::filesystem::path& recordsFile() const { return recordsFile_; }

 private:
  TempDir dir_{"http-receiver"};
  std::filesystem::path recordsFile_;
  ChildProcess process_;
  std::uint16_t port_ = 0;
};

// A plain request from a test to a URL: a GET, or a POST of `postBody`. The body of the answer
// whatever its status, or "" when nothing answered within 2 s.
std::string httpRequest(const std::string& url, const std::string* postBody = nullptr);

}  // namespace logcapture::testing
