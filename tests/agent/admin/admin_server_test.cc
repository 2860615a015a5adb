// The admin server in-process, over real HTTP on a free port: the reload hook's answers, which the
// agent binary cannot show until it reloads, the heartbeat behind /health, what guards the POSTs, and
// /health under connections that hold on without sending a request.

#include "agent/admin/admin_server.h"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <sstream>

#include "agent/admin/breakers_command.h"
#include "agent/pipeline/pipeline.h"
#include "agent/runner/sink_runner.h"
#include "circuit/breaker.h"
#include "config/loader.h"
#include "tests/support/fixtures.h"

namespace {

using logcapture::agent::Pipeline;
using logcapture::agent::ReloadOutcome;
using logcapture::agent::admin::AdminServer;
using logcapture::testing::freePort;
using logcapture::testing::TempDir;
using namespace std::chrono_literals;

// A built pipeline (not started: the server only reads it) and a config for the admin server.
struct Setup {
  TempDir dir{"logcapture-admin-server"};
  std::uint16_t port = freePort();
  logcapture::config::Config config;
  std::unique_ptr<Pipeline> pipeline;

  explicit Setup(const std::string& token = "", const std::string& host = "127.0.0.1") {
    const std::string listen =
        (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
    const std::string text = "agent:\n  state_dir: " + (dir / "state").string() + "\n  admin: {listen: \"" + listen +
                             "\", token: \"" + token + "\"}\n" + "inputs: [{name: app, type: file, paths: [" +
                             (dir / "*.log").string() + "]}]\n" +
                             "sinks: [{name: out, type: console, path: " + (dir / "out").string() + "}]\n";
    config = logcapture::config::loadString(text, "test.yaml", dir.path).config;
    pipeline = Pipeline::build(config);
    REQUIRE(pipeline);
  }

  httplib::Result post(const std::string& path, const std::string& token = "") const {
    httplib::Client client("127.0.0.1", port);
    httplib::Headers headers;
    if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
    return client.Post(path, headers, "", "application/json");
  }

  // A POST with exactly these headers and content type ("" sends none).
  int postWith(const std::string& path, const httplib::Headers& headers, const std::string& contentType,
               const std::string& body = "") const {
    httplib::Client client("127.0.0.1", port);
    const auto res = contentType.empty() ? client.Post(path, headers) : client.Post(path, headers, body, contentType);
    return res ? res->status : 0;
  }

  std::string breakerState() const {
    return std::string(logcapture::circuit::stateName(pipeline->runners().front()->breaker().state()));
  }
};

// A raw TCP connection to 127.0.0.1:port, for clients no HTTP library would be: idle, or slow.
int connectTo(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  return fd;
}

constexpr const char* kForceOpen = "/api/v1/breakers/out/force-open";

}  // namespace

TEST_CASE("reload answers 200 with the changes when the hook applied the new config") {
  Setup setup;
  std::atomic<int> calls{0};
  AdminServer server(setup.config.agent.admin, *setup.pipeline, [&] {
    ++calls;
    return ReloadOutcome{true, "", {"sink out rebuilt", "input app added"}};
  });
  REQUIRE(server.bind());
  server.start();
  const auto res = setup.post("/api/v1/reload");
  REQUIRE(res);
  CHECK(res->status == 200);
  const auto body = nlohmann::json::parse(res->body);
  CHECK(body["applied"] == true);
  CHECK(body["changes"] == nlohmann::json::array({"sink out rebuilt", "input app added"}));
  CHECK(calls == 1);
  server.stop();
}

TEST_CASE("reload answers 400 with the config's errors when the hook refused the new config") {
  Setup setup("tok");
  AdminServer server(setup.config.agent.admin, *setup.pipeline, [] {
    return ReloadOutcome{false, "capture.yaml:3:5: sinks[0].type: unknown type 'kafak'", {}};
  });
  REQUIRE(server.bind());
  server.start();
  CHECK(setup.post("/api/v1/reload")->status == 401);
  const auto res = setup.post("/api/v1/reload", "tok");
  REQUIRE(res);
  CHECK(res->status == 400);
  const auto body = nlohmann::json::parse(res->body);
  CHECK(body["applied"] == false);
  CHECK(body["error"] == "capture.yaml:3:5: sinks[0].type: unknown type 'kafak'");
}

TEST_CASE("the admin server turned off binds nothing and serves nothing") {
  Setup setup;
  logcapture::config::AdminConfig off;
  off.listen = "";
  AdminServer server(off, *setup.pipeline, {});
  CHECK(server.bind());
  server.start();
  CHECK_FALSE(server.enabled());
  httplib::Client client("127.0.0.1", setup.port);
  client.set_connection_timeout(1s);
  CHECK_FALSE(client.Get("/health"));
  server.stop();
}

TEST_CASE("health answers 503 once the main loop stops beating, and 200 again when it beats") {
  Setup setup;
  AdminServer server(setup.config.agent.admin, *setup.pipeline, {}, 300ms);
  REQUIRE(server.bind());
  server.start();
  httplib::Client client("127.0.0.1", setup.port);
  const auto status = [&] {
    auto res = client.Get("/health");
    return res ? res->status : 0;
  };
  CHECK(status() == 200);
  CHECK(logcapture::testing::waitUntil([&] { return status() == 503; }));
  const auto stalled = nlohmann::json::parse(client.Get("/health")->body);
  CHECK(stalled["status"] == "stalled");
  CHECK(stalled["reason"].get<std::string>().find("main loop") != std::string::npos);
  server.heartbeat();
  CHECK(status() == 200);
}

TEST_CASE("a POST carrying an Origin header is refused with 403 and changes no breaker") {
  Setup setup;
  AdminServer server(setup.config.agent.admin, *setup.pipeline, {});
  REQUIRE(server.bind());
  server.start();
  for (const std::string origin : {"http://evil.example", "null", "http://127.0.0.1:9880"}) {
    CAPTURE(origin);
    CHECK(setup.postWith(kForceOpen, {{"Origin", origin}}, "application/json") == 403);
  }
  CHECK(setup.breakerState() == "closed");
}

TEST_CASE("a POST a browser marks as cross-site or same-site is refused with 403") {
  Setup setup;
  AdminServer server(setup.config.agent.admin, *setup.pipeline, {});
  REQUIRE(server.bind());
  server.start();
  CHECK(setup.postWith(kForceOpen, {{"Sec-Fetch-Site", "cross-site"}}, "application/json") == 403);
  CHECK(setup.postWith(kForceOpen, {{"Sec-Fetch-Site", "same-site"}}, "application/json") == 403);
  CHECK(setup.breakerState() == "closed");
}

TEST_CASE("a POST an HTML form could send is refused with 415 and changes no breaker") {
  Setup setup;
  AdminServer server(setup.config.agent.admin, *setup.pipeline, {});
  REQUIRE(server.bind());
  server.start();
  for (const std::string type : {"", "text/plain", "application/x-www-form-urlencoded"}) {
    CAPTURE(type);
    CHECK(setup.postWith(kForceOpen, {}, type, type.empty() ? "" : "a=b") == 415);
  }
  CHECK(setup.postWith(kForceOpen, {}, "multipart/form-data; boundary=x",
                       "--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nb\r\n--x--\r\n") == 415);
  CHECK(setup.breakerState() == "closed");
}

TEST_CASE("a POST with a JSON content type or an X-Requested-By header is accepted on loopback") {
  Setup setup;
  AdminServer server(setup.config.agent.admin, *setup.pipeline, {});
  REQUIRE(server.bind());
  server.start();
  CHECK(setup.postWith(kForceOpen, {}, "application/json; charset=utf-8") == 200);
  CHECK(setup.breakerState() == "forced_open");
  CHECK(setup.postWith("/api/v1/breakers/out/reset", {{"X-Requested-By", "ops"}}, "") == 200);
  CHECK(setup.breakerState() == "closed");
}

TEST_CASE("the token does not let a request from a web page through") {
  Setup setup("tok");
  AdminServer server(setup.config.agent.admin, *setup.pipeline, {});
  REQUIRE(server.bind());
  server.start();
  CHECK(setup.postWith(kForceOpen, {{"Authorization", "Bearer tok"}, {"Origin", "http://evil.example"}},
                       "application/json") == 403);
  CHECK(setup.postWith(kForceOpen, {{"Authorization", "Bearer tok"}}, "text/plain") == 415);
  CHECK(setup.breakerState() == "closed");
  CHECK(setup.postWith(kForceOpen, {{"Authorization", "Bearer tok"}}, "application/json") == 200);
}

TEST_CASE("a listener is on loopback by the address it bound, however the address was written") {
  // An IPv4 loopback address in IPv6 form is loopback; a name would be judged by what it resolved to.
  Setup setup("", "::ffff:127.0.0.1");
  AdminServer server(setup.config.agent.admin, *setup.pipeline, {});
  REQUIRE(server.bind());
  server.start();
  CHECK(setup.postWith(kForceOpen, {}, "application/json") == 200);
}

TEST_CASE("a listener on every address refuses POSTs without a token") {
  Setup setup("", "0.0.0.0");
  AdminServer server(setup.config.agent.admin, *setup.pipeline, {});
  REQUIRE(server.bind());
  server.start();
  CHECK(setup.postWith(kForceOpen, {}, "application/json") == 403);
  CHECK(setup.breakerState() == "closed");
}

TEST_CASE("a loopback listener refuses a request whose Host names another machine") {
  Setup setup;
  AdminServer server(setup.config.agent.admin, *setup.pipeline, {});
  REQUIRE(server.bind());
  server.start();
  httplib::Client client("127.0.0.1", setup.port);
  const auto status = [&](const std::string& host) {
    const auto res = client.Get("/api/v1/breakers", {{"Host", host}});
    return res ? res->status : 0;
  };
  CHECK(status("rebound.example:" + std::to_string(setup.port)) == 421);
  CHECK(status("127.0.0.1:" + std::to_string(setup.port)) == 200);
  CHECK(status("localhost:" + std::to_string(setup.port)) == 200);
  CHECK(status("[::1]:" + std::to_string(setup.port)) == 200);
}

TEST_CASE("logcapture breakers sends what the admin server asks of a POST") {
  Setup setup;
  AdminServer server(setup.config.agent.admin, *setup.pipeline, {});
  REQUIRE(server.bind());
  server.start();
  logcapture::agent::admin::BreakersCommand cmd;
  cmd.action = "open";
  cmd.sink = "out";
  cmd.adminUrl = "http://127.0.0.1:" + std::to_string(setup.port);
  std::ostringstream out, err;
  CHECK(logcapture::agent::admin::runBreakersCommand(cmd, out, err) == logcapture::agent::admin::kBreakersOk);
  CHECK(err.str() == "");
  CHECK(setup.breakerState() == "forced_open");
}

TEST_CASE("health answers promptly while many idle and slow connections are held open") {
  Setup setup;
  AdminServer server(setup.config.agent.admin, *setup.pipeline, {}, 1h);
  REQUIRE(server.bind());
  server.start();
  // Three times as many as there are serving threads, of each kind: idle (connected, nothing sent),
  // slow (half a request line), and a POST whose body never comes.
  std::vector<int> held;
  for (int i = 0; i < 3 * AdminServer::kThreads * 10; ++i) held.push_back(connectTo(setup.port));
  for (int i = 0; i < 3 * AdminServer::kThreads * 10; ++i) {
    const int fd = connectTo(setup.port);
    const std::string part = i % 2 == 0 ? "GET /metr" : "POST /api/v1/reload HTTP/1.1\r\nContent-Length: 10\r\n\r\n";
    REQUIRE(::send(fd, part.data(), part.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(part.size()));
    held.push_back(fd);
  }
  httplib::Client client("127.0.0.1", setup.port);
  client.set_connection_timeout(3s);
  client.set_read_timeout(3s);
  std::chrono::steady_clock::duration slowest{};
  for (int i = 0; i < 10; ++i) {
    for (const std::string path : {"/health", "/ready", "/api/v1/breakers"}) {
      CAPTURE(path);
      const auto start = std::chrono::steady_clock::now();
      const auto res = client.Get(path);
      slowest = std::max(slowest, std::chrono::steady_clock::now() - start);
      REQUIRE(res);
      if (path != "/ready") CHECK(res->status == 200);
    }
  }
  // Starved, an answer would wait for a held connection's 5 s read timeout. The bound is looser than a
  // kubelet's 1 s probe timeout because a loaded machine under the sanitizers takes about that alone.
  CHECK(slowest < 2500ms);
  for (const int fd : held) ::close(fd);
}
