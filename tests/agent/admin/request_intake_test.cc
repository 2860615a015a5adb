// The admin server's intake without the server: when a request counts as whole, which requests are
// probes, and what happens to connections that never send one.

#include "agent/admin/request_intake.h"

#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <mutex>

#include "tests/support/fixtures.h"

using logcapture::agent::admin::IntakeLimits;
using logcapture::agent::admin::isProbe;
using logcapture::agent::admin::RequestIntake;
using logcapture::agent::admin::RequestProgress;
using logcapture::agent::admin::requestProgress;
using logcapture::agent::admin::WholeRequest;
using namespace std::chrono_literals;

namespace {

// A connected pair of sockets: the client's end and the server's (handed to the intake).
struct Pair {
  int client = -1;
  int server = -1;
  Pair() {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
    client = fds[0];
    server = fds[1];
  }
  ~Pair() { ::close(client); }
  void send(const std::string& text) const {
    REQUIRE(::send(client, text.data(), text.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(text.size()));
  }
  // What the server answered before closing, once it has closed (or after 5 s).
  std::string answer() const {
    std::string out;
    char buf[4096];
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{client, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      const ssize_t n = ::recv(client, buf, sizeof buf, 0);
      if (n <= 0) break;
      out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
  }
  bool closedByServer() const {
    pollfd p{client, POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0) return false;
    char c;
    return ::recv(client, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
  }
};

// Records what reaches the serving threads, and answers each request with "ok".
struct Served {
  std::mutex mutex;
  std::vector<std::string> requests;
  RequestIntake::Serve serve() {
    return [this](WholeRequest r) {
      {
        std::lock_guard lock(mutex);
        requests.push_back(r.bytes);
      }
      [[maybe_unused]] const ssize_t n = ::send(r.fd, "ok", 2, MSG_NOSIGNAL);
      ::close(r.fd);
    };
  }
  std::size_t count() {
    std::lock_guard lock(mutex);
    return requests.size();
  }
};

}  // namespace

TEST_CASE("a request is whole once its headers have ended and its body has arrived") {
  const IntakeLimits limits;
  CHECK(requestProgress("GET /health HTTP/1.1\r\nHost: x\r\n", limits) == RequestProgress::Incomplete);
  CHECK(requestProgress("GET /health HTTP/1.1\r\nHost: x\r\n\r\n", limits) == RequestProgress::Complete);
  CHECK(requestProgress("GET /health HTTP/1.1\nHost: x\n\n", limits) == RequestProgress::Complete);
  CHECK(requestProgress("POST /a HTTP/1.1\r\ncontent-length: 4\r\n\r\nab", limits) == RequestProgress::Incomplete);
  CHECK(requestProgress("POST /a HTTP/1.1\r\nContent-Length:  4 \r\n\r\nabcd", limits) == RequestProgress::Complete);
  CHECK(requestProgress("POST /a HTTP/1.1\r\nContent-Length: 70000\r\n\r\n", limits) == RequestProgress::BodyTooLarge);
  CHECK(requestProgress("POST /a HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", limits) ==
        RequestProgress::BodyTooLarge);
  CHECK(requestProgress("POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", limits) == RequestProgress::Chunked);
  CHECK(requestProgress("GET /" + std::string(limits.maxHeaderBytes, 'a'), limits) == RequestProgress::HeadersTooLarge);
}

TEST_CASE("only GET and HEAD of /health and /ready are probes") {
  CHECK(isProbe("GET /health HTTP/1.1\r\n"));
  CHECK(isProbe("HEAD /ready HTTP/1.1\r\n"));
  CHECK(isProbe("GET /health?verbose=1 HTTP/1.1\r\n"));
  CHECK_FALSE(isProbe("GET /healthz HTTP/1.1\r\n"));
  CHECK_FALSE(isProbe("POST /health HTTP/1.1\r\n"));
  CHECK_FALSE(isProbe("GET /metrics HTTP/1.1\r\n"));
  CHECK_FALSE(isProbe("GET /health"));
}

TEST_CASE("a request sent in pieces is served once, whole") {
  Served served;
  RequestIntake intake(IntakeLimits{}, served.serve());
  intake.start();
  Pair pair;
  intake.add(pair.server);
  pair.send("POST /api/v1/reload HTTP/1.1\r\nContent-Le");
  pair.send("ngth: 2\r\n\r\n");
  pair.send("{}");
  CHECK(pair.answer() == "ok");
  REQUIRE(served.count() == 1);
  CHECK(served.requests[0] == "POST /api/v1/reload HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}");
}

TEST_CASE("a connection that does not send its whole request in time is answered 408 and closed") {
  Served served;
  RequestIntake intake(IntakeLimits{.requestTimeout = 200ms}, served.serve());
  intake.start();
  Pair pair;
  intake.add(pair.server);
  pair.send("GET /metr");
  const std::string answer = pair.answer();
  CHECK(answer.starts_with("HTTP/1.1 408 "));
  CHECK(served.count() == 0);
}

TEST_CASE("past the limit of waiting connections the oldest is closed to make room") {
  Served served;
  RequestIntake intake(IntakeLimits{.maxWaiting = 3}, served.serve());
  intake.start();
  std::vector<std::unique_ptr<Pair>> pairs;
  for (int i = 0; i < 4; ++i) {
    pairs.push_back(std::make_unique<Pair>());
    intake.add(pairs.back()->server);
  }
  CHECK(logcapture::testing::waitUntil([&] { return pairs[0]->closedByServer(); }));
  // The newest still gets its answer.
  pairs[3]->send("GET /health HTTP/1.1\r\n\r\n");
  CHECK(pairs[3]->answer() == "ok");
  CHECK_FALSE(pairs[1]->closedByServer());
}

TEST_CASE("stopping the intake closes the connections still waiting") {
  Served served;
  auto intake = std::make_unique<RequestIntake>(IntakeLimits{}, served.serve());
  intake->start();
  Pair pair;
  intake->add(pair.server);
  pair.send("GET /he");
  intake->stop();
  CHECK(pair.answer() == "");
  CHECK(served.count() == 0);
}
