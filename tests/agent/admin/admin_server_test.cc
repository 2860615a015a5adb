// The admin server in-process, over real HTTP on a free port: the reload hook's answers, which the
// agent binary cannot show until it reloads, and the heartbeat behind /health.

#include "agent/admin/admin_server.h"

#include <doctest/doctest.h>
#include <httplib.h>

#include <atomic>
#include <nlohmann/json.hpp>

#include "agent/pipeline.h"
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

  explicit Setup(const std::string& token = "") {
    const std::string text = "agent:\n  state_dir: " + (dir / "state").string() +
                             "\n  admin: {listen: \"127.0.0.1:" + std::to_string(port) + "\", token: \"" + token +
                             "\"}\n" + "inputs: [{name: app, type: file, paths: [" + (dir / "*.log").string() +
                             "]}]\n" + "sinks: [{name: out, type: console, path: " + (dir / "out").string() + "}]\n";
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
};

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
