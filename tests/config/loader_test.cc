// The config loader: every bad config gets one diagnostic per problem, each with the key path,
// line, column and a message that says what was expected, what was found or how to fix it; good
// configs load with their defaults filled in, and `check --print` output loads back unchanged.

#include "config/loader.h"

#include <doctest/doctest.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "config/printer.h"

namespace logcapture::config {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr const char* kName = "test.yaml";
const fs::path kBaseDir = "/etc/logcapture";

// Tests never read the real environment: each one says which variables exist.
EnvLookup envOf(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    const auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}
EnvLookup noEnv() { return envOf({}); }

std::string formatAll(const std::vector<Diagnostic>& errors) {
  std::string out;
  for (const auto& d : errors) out += d.format() + "\n";
  return out.empty() ? "(no diagnostics)" : out;
}

bool contains(std::string_view text, std::string_view part) { return text.find(part) != std::string_view::npos; }

// Loads `text`, expecting it to load; on failure the test stops with every diagnostic shown.
Loaded loaded(std::string_view text, const EnvLookup& env = noEnv(), const fs::path& baseDir = kBaseDir) {
  try {
    return loadString(text, kName, baseDir, env);
  } catch (const ConfigError& e) {
    FAIL("the config was rejected:\n" << formatAll(e.errors()));
  }
  return {};
}

// Loads `text`, expecting it to be rejected; returns the diagnostics.
std::vector<Diagnostic> rejected(std::string_view text, const EnvLookup& env = noEnv()) {
  try {
    loadString(text, kName, kBaseDir, env);
  } catch (const ConfigError& e) {
    for (const auto& d : e.errors()) CHECK(d.file == kName);
    return e.errors();
  }
  FAIL("the config loaded, but it should have been rejected");
  return {};
}

std::vector<Diagnostic> rejectedFile(const std::string& path) {
  try {
    loadFile(path, noEnv());
  } catch (const ConfigError& e) {
    return e.errors();
  }
  FAIL("the file loaded, but it should have been rejected: " << path);
  return {};
}

// The diagnostic for `path` is at line:column and its message holds `fragment`.
void checkError(const std::vector<Diagnostic>& errors, std::string_view path, int line, int column,
                std::string_view fragment) {
  INFO("diagnostics:\n" << formatAll(errors));
  const auto it = std::find_if(errors.begin(), errors.end(), [&](const Diagnostic& d) { return d.path == path; });
  REQUIRE_MESSAGE(it != errors.end(), "no diagnostic for the key path '" << path << "'");
  CHECK(it->at.line == line);
  CHECK(it->at.column == column);
  CHECK_MESSAGE(contains(it->message, fragment), "the message lacks \"" << fragment << "\"");
}

// `text` is rejected with exactly one diagnostic, for `path` at line:column, holding `fragment`.
void checkOnlyError(std::string_view text, std::string_view path, int line, int column, std::string_view fragment,
                    const EnvLookup& env = noEnv()) {
  const auto errors = rejected(text, env);
  INFO("diagnostics:\n" << formatAll(errors));
  CHECK(errors.size() == 1);
  checkError(errors, path, line, column, fragment);
}

// One-line sink entries below a fixed input, so that sink lines start at line 4.
std::string withSinks(std::string_view sinks) {
  return "inputs:\n  - {name: a, type: stdin}\nsinks:\n" + std::string(sinks);
}

template <class T>
const T& settingsOf(const SinkConfig& sink) {
  REQUIRE(std::holds_alternative<T>(sink.settings));
  return std::get<T>(sink.settings);
}

// A fresh directory under the system temp dir, removed with everything in it.
struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path = fs::temp_directory_path() /
           ("logcapture-loader-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string write(const std::string& name, std::string_view text) const {
    std::ofstream out(path / name, std::ios::binary);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    return (path / name).string();
  }
};

const std::string kMinimal =
    "inputs:\n"
    "  - {name: a, type: stdin}\n"
    "sinks:\n"
    "  - {name: s, type: console}\n";

}  // namespace

TEST_SUITE("config") {
  TEST_CASE("an unclosed bracket is reported where the parser gives up") {
    checkOnlyError(
        "inputs: [\n"
        "  {name: a, type: stdin}\n"
        "sinks: []\n",
        "", 3, 1, "end of sequence flow not found");
  }

  TEST_CASE("a badly indented key is reported at its line and column") {
    checkOnlyError(
        "inputs:\n"
        "  - name: a\n"
        "   type: stdin\n"
        "sinks:\n"
        "  - {name: s, type: console}\n",
        "", 3, 4, "invalid YAML");
  }

  TEST_CASE("a stray comma at the top level is reported as invalid YAML instead of loading forever") {
    // The reproducer the config fuzz target found (tests/fuzz/corpus/config/stray_comma).
    checkOnlyError(",n", "", 1, 1, "invalid YAML: unexpected ','");
    checkOnlyError("# settings\n\n  ,\n", "", 3, 3, "invalid YAML: unexpected ','");
  }

  TEST_CASE("a tab used as indentation is reported as an illegal tab") {
    checkOnlyError(
        "inputs:\n"
        "  - name: a\n"
        "\ttype: stdin\n"
        "sinks:\n"
        "  - {name: s, type: console}\n",
        "", 3, 1, "illegal tab");
  }

  TEST_CASE("a nested plain mapping value is reported as invalid YAML") {
    checkOnlyError(
        "agent:\n"
        "  state_dir: a: b\n" +
            kMinimal,
        "", 2, 15, "invalid YAML");
  }

  TEST_CASE("a mapping where the inputs list belongs is rejected") {
    checkOnlyError(
        "inputs:\n"
        "  name: a\n"
        "sinks:\n"
        "  - {name: s, type: console}\n",
        "inputs", 2, 3, "expected a list of mappings (where records come from), found a mapping");
  }

  TEST_CASE("a list where the agent mapping belongs is rejected") {
    checkOnlyError("agent: [a, b]\n" + kMinimal, "agent", 1, 8, "expected a mapping of keys, found a list");
  }

  TEST_CASE("a list entry that is not a mapping is rejected") {
    checkOnlyError(
        "inputs:\n"
        "  - {name: a, type: stdin}\n"
        "sinks:\n"
        "  - console\n",
        "sinks[0]", 4, 5, "expected a mapping of keys, found 'console'");
  }

  TEST_CASE("a mapping where a number belongs is rejected") {
    checkOnlyError(withSinks("  - {name: s, type: console, workers: {a: 1}}\n"), "sinks[0].workers", 4, 39,
                   "expected a whole number, found a mapping");
  }

  TEST_CASE("a list where a string belongs is rejected") {
    checkOnlyError(
        "inputs:\n"
        "  - {name: [a], type: stdin}\n"
        "sinks:\n"
        "  - {name: s, type: console}\n",
        "inputs[0].name", 2, 12, "expected a string, found a list");
  }

  TEST_CASE("a word where a boolean belongs is rejected") {
    checkOnlyError(withSinks("  - {name: s, type: console, breaker: {probe: maybe}}\n"), "sinks[0].breaker.probe", 4,
                   47, "expected true or false, found 'maybe'");
  }

  TEST_CASE("an unknown enum value suggests the closest one") {
    checkOnlyError(withSinks("  - {name: s, type: cnsole}\n"), "sinks[0].type", 4, 21,
                   "expected one of kafka, redis, http, console; found 'cnsole'; did you mean 'console'?");
  }

  TEST_CASE("an empty value is reported at its own key, not at the next line") {
    const auto errors = rejected(
        "inputs:\n"
        "  - {name: a, type: stdin}\n"
        "sinks:\n"
        "  - name: s\n"
        "    type: console\n"
        "    workers:\n"
        "    timeout:\n");
    CHECK(errors.size() == 2);
    checkError(errors, "sinks[0].workers", 6, 5, "expected a whole number, found nothing");
    checkError(errors, "sinks[0].timeout", 7, 5, "expected a duration, found nothing");
  }

  TEST_CASE("an empty value on the last line is reported at its key, not past the end of the file") {
    checkOnlyError(
        "inputs:\n"
        "  - {name: a, type: stdin}\n"
        "sinks:\n"
        "\n"
        "# nothing here yet\n",
        "sinks", 3, 1, "expected a list of mappings (where records go), found nothing");
  }

  TEST_CASE("a required key missing from an empty section is reported at the section's key") {
    checkOnlyError(
        "inputs:\n"
        "  - name: a\n"
        "    type: stdin\n"
        "    multiline:\n"
        "sinks:\n"
        "  - {name: s, type: console}\n",
        "inputs[0].multiline.start_pattern", 4, 5, "required key 'start_pattern' is missing");
  }

  TEST_CASE("a missing required key is reported at its mapping") {
    checkOnlyError(withSinks("  - {name: s}\n"), "sinks[0].type", 4, 5,
                   "required key 'type' is missing (kafka, redis, http or console)");
  }

  TEST_CASE("a missing top-level section is reported at the top of the file") {
    checkOnlyError("inputs:\n  - {name: a, type: stdin}\n", "sinks", 1, 1, "required key 'sinks' is missing");
  }

  TEST_CASE("an empty inputs list is rejected") {
    checkOnlyError("inputs: []\nsinks:\n  - {name: s, type: console}\n", "inputs", 1, 9,
                   "must list at least one entry (where records come from)");
  }

  TEST_CASE("a name with a space is not a valid name") {
    checkOnlyError(
        "inputs:\n"
        "  - {name: 'a b', type: stdin}\n"
        "sinks:\n"
        "  - {name: s, type: console}\n",
        "inputs[0].name", 2, 12, "'a b' is not a valid name");
  }

  TEST_CASE("zero workers is below the allowed range") {
    checkOnlyError(withSinks("  - {name: s, type: console, workers: 0}\n"), "sinks[0].workers", 4, 39,
                   "must be between 1 and 64, found 0");
  }

  TEST_CASE("a huge number of workers names the allowed range") {
    checkOnlyError(withSinks("  - {name: s, type: console, workers: 99999999999999999999999}\n"), "sinks[0].workers", 4,
                   39, "between 1 and 64");
  }

  TEST_CASE("a number just past 32 bits names the allowed range") {
    checkOnlyError(withSinks("  - {name: s, type: console, workers: 4294967296}\n"), "sinks[0].workers", 4, 39,
                   "between 1 and 64");
  }

  TEST_CASE("workers: auto takes max_workers lanes and an adaptive limit") {
    const auto config = loadString(withSinks("  - {name: s, type: console, workers: auto, max_workers: 12}\n"),
                                   "test.yaml", ".")
                            .config;
    CHECK(config.sinks[0].workers.adaptive);
    CHECK(config.sinks[0].workers.count == 12);
  }

  TEST_CASE("max_workers without workers: auto is rejected with its position") {
    checkOnlyError(withSinks("  - {name: s, type: console, workers: 4, max_workers: 8}\n"), "sinks[0].max_workers", 4,
                   42, "a key of sinks with workers: auto");
  }

  TEST_CASE("max_workers past 64 is rejected with its position") {
    checkOnlyError(withSinks("  - {name: s, type: console, workers: auto, max_workers: 65}\n"),
                   "sinks[0].max_workers", 4, 58, "must be between 1 and 64, found 65");
  }

  TEST_CASE("workers other than a number or auto is rejected") {
    checkOnlyError(withSinks("  - {name: s, type: console, workers: many}\n"), "sinks[0].workers", 4, 39,
                   "expected a whole number, found 'many'");
  }

  TEST_CASE("a negative number of workers is rejected") {
    checkOnlyError(withSinks("  - {name: s, type: console, workers: -3}\n"), "sinks[0].workers", 4, 39,
                   "must not be negative, found '-3'");
  }

  TEST_CASE("a fractional number of workers is rejected") {
    checkOnlyError(withSinks("  - {name: s, type: console, workers: 1.5}\n"), "sinks[0].workers", 4, 39,
                   "expected a whole number, found '1.5'");
  }

  TEST_CASE("a breaker jitter above one is out of range") {
    checkOnlyError(withSinks("  - {name: s, type: console, breaker: {jitter: 2}}\n"), "sinks[0].breaker.jitter", 4, 48,
                   "must be between 0 and 1, found 2");
  }

  TEST_CASE("breaker.mode takes enforce or metrics_only and enforces by default") {
    const auto result =
        loaded(withSinks("  - {name: s, type: console}\n"
                         "  - {name: t, type: console, breaker: {mode: metrics_only}}\n"
                         "  - {name: u, type: console, breaker: {mode: enforce}}\n"));
    CHECK(result.config.sinks[0].breaker.mode == BreakerMode::Enforce);
    CHECK(result.config.sinks[1].breaker.mode == BreakerMode::MetricsOnly);
    CHECK(result.config.sinks[2].breaker.mode == BreakerMode::Enforce);
  }

  TEST_CASE("another breaker.mode is rejected at its position") {
    checkOnlyError(withSinks("  - {name: s, type: console, breaker: {mode: shadow}}\n"), "sinks[0].breaker.mode", 4, 46,
                   "expected one of enforce, metrics_only; found 'shadow'");
  }

  TEST_CASE("a failure rate of zero is below the allowed range") {
    checkOnlyError(withSinks("  - {name: s, type: console, breaker: {window: {failure_rate: 0}}}\n"),
                   "sinks[0].breaker.window.failure_rate", 4, 63, "must be between 0.01 and 100, found 0");
  }

  TEST_CASE("a duration without a unit says a number needs a unit") {
    checkOnlyError("agent:\n  shutdown_timeout: 30\n" + kMinimal, "agent.shutdown_timeout", 2, 21,
                   "expected a duration such as 250ms, 30s, 5m or 1h (a number needs a unit), found '30'");
  }

  TEST_CASE("a duration with an unknown unit is rejected") {
    checkOnlyError("agent:\n  shutdown_timeout: 30y\n" + kMinimal, "agent.shutdown_timeout", 2, 21,
                   "expected a duration such as 250ms, 30s, 5m or 1h, found '30y'");
  }

  TEST_CASE("a duration above its maximum names the range") {
    checkOnlyError("agent:\n  shutdown_timeout: 2h\n" + kMinimal, "agent.shutdown_timeout", 2, 21,
                   "must be between 0s and 1h, found 2h");
  }

  TEST_CASE("a size with an unknown unit is rejected") {
    checkOnlyError(withSinks("  - {name: s, type: console, batch: {max_bytes: 1XB}}\n"), "sinks[0].batch.max_bytes", 4,
                   49, "expected a size such as 512, 64KiB, 1MiB or 2GiB, found '1XB'");
  }

  TEST_CASE("a size below its minimum names the range in units") {
    checkOnlyError("queue: {max_bytes: 1KiB}\n" + kMinimal, "queue.max_bytes", 1, 20,
                   "must be between 64KiB and 64GiB, found 1KiB");
  }

  TEST_CASE("an unknown key close to a known one suggests it") {
    checkOnlyError(withSinks("  - name: s\n    type: console\n    wokers: 3\n"), "sinks[0].wokers", 6, 5,
                   "unknown key 'wokers'; did you mean 'workers'?");
  }

  TEST_CASE("an unknown key far from every known one lists the valid keys") {
    checkOnlyError(kMinimal + "zzzzzz: 2\n", "zzzzzz", 5, 1,
                   "unknown key 'zzzzzz'; valid keys here: agent, inputs, queue, sinks");
  }

  TEST_CASE("a key of another sink type says which type it belongs to") {
    checkOnlyError(withSinks("  - name: s\n    type: console\n    topic: logs\n"), "sinks[0].topic", 6, 5,
                   "it is a key of kafka sinks, not of this one");
  }

  TEST_CASE("a file-only key on a stdin input says it belongs to file inputs") {
    checkOnlyError(
        "inputs:\n"
        "  - name: a\n"
        "    type: stdin\n"
        "    paths: [/var/log/*.log]\n"
        "sinks:\n"
        "  - {name: s, type: console}\n",
        "inputs[0].paths", 4, 5, "it is a key of file inputs, not of this one");
  }

  TEST_CASE("a key given twice in one mapping is a duplicate") {
    checkOnlyError(withSinks("  - name: s\n    type: console\n    name: t\n"), "sinks[0].name", 6, 5,
                   "duplicate key; it is already set at line 4, remove one of them");
  }

  TEST_CASE("a top-level section given twice is a duplicate") {
    checkOnlyError(kMinimal + "sinks:\n  - {name: t, type: console}\n", "sinks", 5, 1,
                   "duplicate key; it is already set at line 3");
  }

  TEST_CASE("two inputs with one name are rejected") {
    checkOnlyError(
        "inputs:\n"
        "  - {name: a, type: stdin}\n"
        "  - {name: a, type: file, paths: [/x.log]}\n"
        "sinks:\n"
        "  - {name: s, type: console}\n",
        "inputs[1].name", 3, 12, "duplicate input name 'a', already used by inputs[0]");
  }

  TEST_CASE("two sinks with one name are rejected") {
    checkOnlyError(withSinks("  - {name: s, type: console}\n  - {name: s, type: console}\n"), "sinks[1].name", 5, 12,
                   "duplicate sink name 's', already used by sinks[0]");
  }

  TEST_CASE("a sink routed to an unknown input names the inputs there are") {
    checkOnlyError(withSinks("  - {name: s, type: console, inputs: [a, b]}\n"), "sinks[0].inputs[1]", 4, 42,
                   "no input is named 'b'; the inputs are: a");
  }

  TEST_CASE("a fallback naming no sink is rejected with the sinks there are") {
    checkOnlyError(withSinks("  - {name: s, type: console, fallback: t}\n"), "sinks[0].fallback", 4, 40,
                   "no sink is named 't'; the sinks are: s");
  }

  TEST_CASE("a sink naming itself as its fallback is rejected") {
    checkOnlyError(withSinks("  - {name: s, type: console, fallback: s}\n"), "sinks[0].fallback", 4, 40,
                   "sink 's' names itself as its fallback");
  }

  TEST_CASE("a fallback chain that comes back to its start is rejected naming both ends") {
    checkOnlyError(withSinks("  - {name: s, type: console, fallback: t}\n"
                             "  - {name: t, type: console, fallback: s}\n"),
                   "sinks[0].fallback", 4, 40, "the fallback chain loops: s -> t -> s; sink 't' falls back to 's'");
  }

  TEST_CASE("a longer fallback loop is rejected once, at its first sink") {
    checkOnlyError(withSinks("  - {name: u, type: console}\n"
                             "  - {name: s, type: console, fallback: t}\n"
                             "  - {name: t, type: console, fallback: v}\n"
                             "  - {name: v, type: console, fallback: t}\n"),
                   "sinks[2].fallback", 6, 40, "the fallback chain loops: t -> v -> t; sink 'v' falls back to 't'");
  }

  TEST_CASE("a fallback with a disk buffer is rejected") {
    checkOnlyError(withSinks("  - {name: s, type: console, fallback: t}\n"
                             "  - {name: t, type: console, inputs: [], buffer: {type: disk}}\n"),
                   "sinks[0].fallback", 4, 40, "sink 't' has buffer.type: disk, and a fallback buffers in memory");
  }

  TEST_CASE("a sink with an empty inputs list that is no sink's fallback is rejected") {
    checkOnlyError(withSinks("  - {name: s, type: console, inputs: []}\n"), "sinks[0].inputs", 4, 38,
                   "an empty list routes nothing to this sink, and no sink names it as its fallback");
  }

  TEST_CASE("a fallback chain whose sinks take no inputs of their own loads") {
    const auto cfg = loaded(withSinks("  - {name: s, type: console, fallback: t}\n"
                                      "  - {name: t, type: console, inputs: [], fallback: u}\n"
                                      "  - {name: u, type: console, inputs: []}\n"))
                         .config;
    REQUIRE(cfg.sinks.size() == 3);
    CHECK(cfg.sinks[0].fallback == "t");
    CHECK_FALSE(cfg.sinks[0].inputs.has_value());
    REQUIRE(cfg.sinks[1].inputs.has_value());
    CHECK(cfg.sinks[1].inputs->empty());
    CHECK(cfg.sinks[1].fallback == "u");
    CHECK(cfg.sinks[2].fallback.empty());
  }

  TEST_CASE("a second stdin input is rejected") {
    checkOnlyError(
        "inputs:\n"
        "  - {name: a, type: stdin}\n"
        "  - {name: b, type: stdin}\n"
        "sinks:\n"
        "  - {name: s, type: console}\n",
        "inputs[1].type", 3, 21, "only one input may read stdin");
  }

  TEST_CASE("redis list mode without a key is rejected") {
    checkOnlyError(withSinks("  - {name: s, type: redis, mode: list}\n"), "sinks[0].mode", 4, 34,
                   "mode: list needs 'key', the name of the list");
  }

  TEST_CASE("redis pubsub mode without a channel is rejected") {
    checkOnlyError(withSinks("  - {name: s, type: redis, mode: pubsub}\n"), "sinks[0].mode", 4, 34,
                   "mode: pubsub needs 'channel'");
  }

  TEST_CASE("an http url that is not http or https is rejected") {
    checkOnlyError(withSinks("  - {name: s, type: http, url: ftp://example.com/logs}\n"), "sinks[0].url", 4, 32,
                   "expected a URL starting with http:// or https:// and a host, found 'ftp://example.com/logs'");
  }

  TEST_CASE("a loki sink without labels is rejected") {
    checkOnlyError(withSinks("  - {name: s, type: http, url: 'http://loki:3100', format: loki}\n"), "sinks[0].format",
                   4, 60, "format: loki needs at least one stream label in 'labels'");
  }

  TEST_CASE("failure_threshold 0 without a window is rejected, since the breaker could never open") {
    checkOnlyError(withSinks("  - name: s\n"
                             "    type: console\n"
                             "    breaker:\n"
                             "      failure_threshold: 0\n"),
                   "sinks[0].breaker.failure_threshold", 7, 26, "could never open");
  }

  TEST_CASE("failure_threshold 0 with a window leaves the window as the only trip rule") {
    const auto result =
        loaded(withSinks("  - name: s\n"
                         "    type: console\n"
                         "    breaker:\n"
                         "      failure_threshold: 0\n"
                         "      window: {type: count, size: 50}\n"));
    CHECK(result.config.sinks[0].breaker.failureThreshold == 0);
    CHECK(result.config.sinks[0].breaker.window.has_value());
  }

  TEST_CASE("success_threshold above half_open_max_calls is rejected") {
    checkOnlyError(withSinks("  - name: s\n"
                             "    type: console\n"
                             "    breaker:\n"
                             "      success_threshold: 5\n"
                             "      half_open_max_calls: 3\n"),
                   "sinks[0].breaker.success_threshold", 7, 26,
                   "success_threshold (5) is larger than half_open_max_calls (3)");
  }

  TEST_CASE("a ramp on a metrics-only breaker is rejected, since such a breaker holds no backlog back") {
    checkOnlyError(withSinks("  - name: s\n"
                             "    type: console\n"
                             "    breaker:\n"
                             "      mode: metrics_only\n"
                             "      ramp: 30s\n"),
                   "sinks[0].breaker.ramp", 8, 13, "a metrics-only breaker holds nothing back");
  }

  TEST_CASE("a ramp longer than an hour is rejected with its position") {
    checkOnlyError(withSinks("  - name: s\n"
                             "    type: console\n"
                             "    breaker: {ramp: 2h}\n"),
                   "sinks[0].breaker.ramp", 6, 21, "must be between 0s and 1h, found 2h");
  }

  TEST_CASE("max_open_timeout below open_timeout is rejected") {
    checkOnlyError(withSinks("  - name: s\n"
                             "    type: console\n"
                             "    breaker:\n"
                             "      open_timeout: 1m\n"
                             "      max_open_timeout: 30s\n"),
                   "sinks[0].breaker.max_open_timeout", 8, 25,
                   "max_open_timeout (30s) is shorter than open_timeout (1m); raise max_open_timeout or lower "
                   "open_timeout");
  }

  TEST_CASE("max_backoff below initial_backoff is rejected") {
    checkOnlyError(withSinks("  - name: s\n"
                             "    type: console\n"
                             "    retry:\n"
                             "      initial_backoff: 2s\n"
                             "      max_backoff: 1s\n"),
                   "sinks[0].retry.max_backoff", 8, 20,
                   "max_backoff (1s) is shorter than initial_backoff (2s); raise max_backoff or lower initial_backoff");
  }

  TEST_CASE("a count window with a duration as size is rejected") {
    checkOnlyError(withSinks("  - name: s\n"
                             "    type: console\n"
                             "    breaker:\n"
                             "      window: {type: count, size: 30s}\n"),
                   "sinks[0].breaker.window.size", 7, 35, "a window of type: count needs a number of calls as size");
  }

  TEST_CASE("a time window with a number as size is rejected") {
    checkOnlyError(withSinks("  - name: s\n"
                             "    type: console\n"
                             "    breaker:\n"
                             "      window:\n"
                             "        type: time\n"
                             "        size: 100\n"),
                   "sinks[0].breaker.window.size", 9, 15,
                   "a window of type: time needs a duration as size, such as 60s; found a number");
  }

  TEST_CASE("a disk buffer's sync keys are rejected on a memory buffer") {
    checkOnlyError(withSinks("  - {name: s, type: console, buffer: {sync: always}}\n"), "sinks[0].buffer.sync", 4, 45,
                   "applies to buffer.type: disk only");
  }

  TEST_CASE("an invalid multiline regular expression is rejected") {
    checkOnlyError(
        "inputs:\n"
        "  - name: a\n"
        "    type: stdin\n"
        "    multiline:\n"
        "      start_pattern: '([a-z'\n"
        "sinks:\n"
        "  - {name: s, type: console}\n",
        "inputs[0].multiline.start_pattern", 5, 22, "invalid regular expression");
  }

  TEST_CASE("librdkafka rejecting a property is reported at that property") {
    const auto errors =
        rejected(withSinks("  - name: k\n"
                           "    type: kafka\n"
                           "    brokers: [127.0.0.1:9092]\n"
                           "    topic: logs\n"
                           "    properties:\n"
                           "      compression.type: zstandard\n"
                           "      no.such.option: 1\n"));
    CHECK(errors.size() == 2);
    checkError(errors, "sinks[0].properties.compression.type", 9, 25, "librdkafka rejects it: Invalid value");
    checkError(errors, "sinks[0].properties.no.such.option", 10, 23,
               "librdkafka rejects it: No such configuration property");
  }

  TEST_CASE("a kafka broker without a port is rejected") {
    checkOnlyError(withSinks("  - {name: k, type: kafka, brokers: [kafka1], topic: logs}\n"), "sinks[0].brokers[0]", 4,
                   38, "expected host:port such as 127.0.0.1:9092, found 'kafka1'");
  }

  TEST_CASE("an unset variable without a default is named in the error") {
    checkOnlyError("agent:\n  state_dir: ${STATE_DIR}\n" + kMinimal, "agent.state_dir", 2, 14,
                   "environment variable STATE_DIR is not set; set it, or give a default with ${STATE_DIR:-default}");
  }

  TEST_CASE("an unterminated variable reference is rejected") {
    checkOnlyError("agent:\n  state_dir: /data/${STATE_DIR\n" + kMinimal, "agent.state_dir", 2, 14,
                   "unterminated ${ in '/data/${STATE_DIR'");
  }

  TEST_CASE("a variable name that is not a name is rejected") {
    checkOnlyError("agent:\n  state_dir: ${1DIR}\n" + kMinimal, "agent.state_dir", 2, 14,
                   "invalid environment variable name '1DIR'");
  }

  TEST_CASE("an empty file is rejected") { checkOnlyError("", "", 1, 1, "the file is empty"); }

  TEST_CASE("a file of comments only is rejected") {
    checkOnlyError("# logcapture\n# nothing here yet\n", "", 1, 1, "it needs at least 'inputs:' and 'sinks:'");
  }

  TEST_CASE("a top level that is a list is rejected") {
    checkOnlyError("- inputs\n- sinks\n", "", 1, 1, "the top level must be a mapping");
  }

  TEST_CASE("a top level that is a scalar is rejected") {
    checkOnlyError("hello\n", "", 1, 1,
                   "the top level must be a mapping with agent, inputs, queue and sinks; found 'hello'");
  }

  TEST_CASE("two YAML documents in one file are rejected") {
    checkOnlyError(kMinimal + "---\n" + kMinimal, "", 6, 1, "the file holds 2 YAML documents");
  }

  TEST_CASE("a NUL byte is reported where it stands") {
    checkOnlyError(withSinks(std::string("  - {name: s\0, type: console}\n", 30)), "", 4, 13,
                   "the file holds a NUL byte");
  }

  TEST_CASE("an invalid UTF-8 byte is reported where it stands") {
    checkOnlyError(withSinks("  - {name: s\xff, type: console}\n"), "", 4, 13, "invalid UTF-8 (byte 0xff)");
  }

  TEST_CASE("a truncated UTF-8 sequence is reported where it starts") {
    checkOnlyError(withSinks("  - {name: s\xc3, type: console}\n"), "", 4, 13, "invalid UTF-8 (byte 0xc3)");
  }

  TEST_CASE("an overlong UTF-8 encoding is invalid UTF-8") {
    // 0xC0 0xAF is an overlong '/', the classic way to smuggle a path separator past a check.
    checkOnlyError("agent:\n  state_dir: /var\xc0\xafx\n" + kMinimal, "", 2, 18, "invalid UTF-8 (byte 0xc0)");
  }

  TEST_CASE("a binary file is rejected as not UTF-8 text") {
    std::string png = "\x89PNG\r\n\x1a\n";
    for (int i = 0; i < 4096; ++i) png += static_cast<char>((i * 2654435761u) >> 24);
    TempDir dir;
    const auto errors = rejectedFile(dir.write("logo.png", png));
    REQUIRE(errors.size() == 1);
    checkError(errors, "", 1, 1, "invalid UTF-8 (byte 0x89): a config file must be UTF-8 text");
  }

  TEST_CASE("an executable is rejected at its first NUL byte") {
    const std::string elf(
        "\x7f"
        "ELF\x02\x01\x01\0\0\0\0\0",
        12);
    checkOnlyError(elf, "", 1, 8, "the file holds a NUL byte, so it is not a YAML text file");
  }

  TEST_CASE("a 10 MB file is refused with its size limit") {
    TempDir dir;
    std::string big;
    big.reserve(10u << 20);
    while (big.size() < (10u << 20)) big += "# a comment line that pads the file out\n";
    const auto errors = rejectedFile(dir.write("big.yaml", big));
    REQUIRE(errors.size() == 1);
    checkError(errors, "", 0, 0, "the file is larger than 4MiB");
  }

  TEST_CASE("a 10 MB string is refused with its size limit") {
    const std::string big((10u << 20), '#');
    checkOnlyError(big, "", 0, 0, "the file is larger than 4MiB");
  }

  TEST_CASE("a directory instead of a file is rejected") {
    TempDir dir;
    const auto errors = rejectedFile(dir.path.string());
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].file == dir.path.string());
    checkError(errors, "", 0, 0, "is a directory; pass the path of the YAML file with -c FILE");
  }

  TEST_CASE("a file that does not exist is rejected") {
    TempDir dir;
    const std::string missing = (dir.path / "missing.yaml").string();
    const auto errors = rejectedFile(missing);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].file == missing);
    checkError(errors, "", 0, 0, "No such file or directory; pass the right path with -c FILE");
  }

  TEST_CASE("an unreadable file is rejected") {
    TempDir dir;
    const std::string file = dir.write("secret.yaml", kMinimal);
    fs::permissions(file, fs::perms::none);
    // Root reads through permission bits, so as root the load runs as nobody for a moment.
    const bool root = ::geteuid() == 0;
    if (root && ::seteuid(65534) != 0) {
      MESSAGE("running as root and cannot switch to an unprivileged user; the unreadable-file check is skipped");
      return;
    }
    std::vector<Diagnostic> errors;
    {
      struct RestoreRoot {
        bool root;
        ~RestoreRoot() {
          if (root && ::seteuid(0) != 0) std::abort();  // later tests must not run as nobody
        }
      } restore{root};
      errors = rejectedFile(file);
    }
    REQUIRE(errors.size() == 1);
    checkError(errors, "", 0, 0, "cannot open the config file: Permission denied");
  }

  TEST_CASE("deeply nested YAML gives an error about the nesting, not a crash") {
    const std::string text = "inputs: " + std::string(100000, '[') + "\n";
    const auto errors = rejected(text);
    INFO("diagnostics:\n" << formatAll(errors));
    REQUIRE(errors.size() == 1);
    const auto& d = errors[0];
    CHECK(d.path.empty());
    // The nesting is on line 1; the column is wherever the depth limit is reached within the brackets.
    CHECK(d.at.line == 1);
    CHECK(d.at.column >= 9);
    CHECK(d.at.column <= 100008);
    CHECK_MESSAGE((contains(d.message, "nest") || contains(d.message, "deep")),
                  "the message should say the nesting is too deep");
    CHECK_FALSE(contains(d.message, "bad file"));
  }

  TEST_CASE("a self-referencing alias does not loop") {
    const auto errors = rejected("agent: &a {log: *a}\n" + kMinimal);
    INFO("diagnostics:\n" << formatAll(errors));
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].path == "agent.log.log");
    CHECK(contains(errors[0].message, "unknown key 'log'"));
  }

  TEST_CASE("every error in a file is reported at once, in line order") {
    // The sections are in reverse of the order they are read in, so line order is not read order.
    const auto errors = rejected(
        "sinks:\n"
        "  - name: s\n"
        "    type: console\n"
        "    workers: 0\n"
        "    retry: {max_attempts: many}\n"
        "queue: {when_full: wait}\n"
        "inputs:\n"
        "  - {name: a, type: stdin, colour: red}\n"
        "agent:\n"
        "  shutdown_timeout: 10\n");
    INFO("diagnostics:\n" << formatAll(errors));
    REQUIRE(errors.size() == 5);
    CHECK(errors[0].path == "sinks[0].workers");
    CHECK(errors[0].at.line == 4);
    CHECK(errors[1].path == "sinks[0].retry.max_attempts");
    CHECK(errors[1].at.line == 5);
    CHECK(errors[2].path == "queue.when_full");
    CHECK(errors[2].at.line == 6);
    CHECK(contains(errors[2].message, "expected one of block, drop_newest, drop_oldest; found 'wait'"));
    CHECK(errors[3].path == "inputs[0].colour");
    CHECK(errors[3].at.line == 8);
    CHECK(errors[4].path == "agent.shutdown_timeout");
    CHECK(errors[4].at.line == 10);
  }

  TEST_CASE("a ConfigError's text lists each error as file:line:column: path: message") {
    try {
      loadString(withSinks("  - {name: s, type: console, workers: 0}\n"), kName, kBaseDir, noEnv());
      FAIL("the config loaded");
    } catch (const ConfigError& e) {
      CHECK(std::string(e.what()) == "test.yaml:4:39: sinks[0].workers: must be between 1 and 64, found 0");
    }
  }

  TEST_CASE("defaults fill in every key a config leaves out") {
    const auto config =
        loaded(
            "inputs:\n"
            "  - {name: app, type: file, paths: [/var/log/app.log]}\n"
            "  - {name: pipe, type: stdin, multiline: {start_pattern: '^\\S'}}\n"
            "sinks:\n"
            "  - {name: k, type: kafka, brokers: ['127.0.0.1:9092'], topic: logs, breaker: {window: {}}}\n"
            "  - {name: r, type: redis, key: logs}\n"
            "  - {name: h, type: http, url: 'http://127.0.0.1:9200/'}\n"
            "  - {name: c, type: console}\n")
            .config;
    CHECK(config.file == kName);

    CHECK(config.agent.stateDir == "/var/lib/logcapture");
    CHECK(config.agent.log.level == LogLevel::Info);
    CHECK(config.agent.log.format == LogFormat::Text);
    CHECK(config.agent.admin.listen == "127.0.0.1:9880");
    CHECK(config.agent.admin.token.empty());
    CHECK(config.agent.shutdownTimeout == 10s);

    REQUIRE(config.inputs.size() == 2);
    const auto& app = config.inputs[0];
    CHECK(app.type == InputType::File);
    CHECK(app.startAt == StartAt::End);
    CHECK(app.format == InputFormat::Raw);
    CHECK(app.exclude.empty());
    CHECK_FALSE(app.multiline.has_value());
    CHECK(app.maxLineBytes == 256_KiB);
    CHECK(app.maxOpenFiles == 1024);
    CHECK(app.fields.empty());
    const auto& pipe = config.inputs[1];
    CHECK(pipe.type == InputType::Stdin);
    CHECK(pipe.paths.empty());
    REQUIRE(pipe.multiline.has_value());
    CHECK(pipe.multiline->startPattern == "^\\S");
    CHECK(pipe.multiline->maxLines == 500);
    CHECK(pipe.multiline->maxBytes == 1_MiB);
    CHECK(pipe.multiline->timeout == 1s);

    CHECK(config.queue.maxRecords == 10000);
    CHECK(config.queue.maxBytes == 4_MiB);
    CHECK(config.queue.whenFull == WhenFull::Block);

    REQUIRE(config.sinks.size() == 4);
    const auto& k = config.sinks[0];
    CHECK(k.type == sinkTypeOf<sinks::kafka::KafkaConfig>());
    CHECK_FALSE(k.inputs.has_value());
    CHECK(k.encoding == Encoding::Json);
    CHECK(k.batch.maxRecords == 1000);
    CHECK(k.batch.maxBytes == 1_MiB);
    CHECK(k.batch.linger == 100ms);
    CHECK(k.workers == 2);
    CHECK(k.timeout == 30s);
    CHECK(k.retry.maxAttempts == 3);
    CHECK(k.retry.initialBackoff == 100ms);
    CHECK(k.retry.maxBackoff == 5s);
    CHECK(k.breaker.failureThreshold == 5);
    CHECK(k.breaker.successThreshold == 2);
    CHECK(k.breaker.openTimeout == 30s);
    CHECK(k.breaker.maxOpenTimeout == 5min);
    CHECK(k.breaker.backoffMultiplier == 2);
    CHECK(k.breaker.jitter == doctest::Approx(0.1));
    CHECK(k.breaker.halfOpenMaxCalls == 2);
    CHECK_FALSE(k.breaker.tripOnThrottle);
    CHECK_FALSE(k.breaker.probe);
    REQUIRE(k.breaker.window.has_value());
    CHECK(k.breaker.window->type == WindowType::Count);
    CHECK(std::get<std::uint64_t>(k.breaker.window->size.value) == 100);
    CHECK(k.breaker.window->minCalls == 10);
    CHECK(k.breaker.window->failureRate == 50);
    CHECK(k.breaker.window->slowCallRate == 100);
    CHECK(k.breaker.window->slowCallDuration == 5s);
    CHECK(k.buffer.type == BufferType::Memory);
    CHECK(k.buffer.maxBytes == 16_MiB);
    CHECK(k.buffer.onOpen == OnOpen::Buffer);
    CHECK(k.buffer.whenFull == WhenFull::DropOldest);
    CHECK(k.deadLetter.maxBytes == 64_MiB);
    const auto& kafka = settingsOf<sinks::kafka::KafkaConfig>(k);
    CHECK(kafka.brokers == std::vector<std::string>{"127.0.0.1:9092"});
    CHECK(kafka.key.empty());
    CHECK(kafka.properties.empty());

    CHECK_FALSE(config.sinks[1].breaker.window.has_value());
    const auto& redis = settingsOf<sinks::redis::RedisConfig>(config.sinks[1]);
    CHECK(redis.address == "127.0.0.1:6379");
    CHECK(redis.db == 0);
    CHECK(redis.username.empty());
    CHECK(redis.password.empty());
    CHECK(redis.mode == sinks::redis::Mode::List);
    CHECK(redis.channel.empty());
    CHECK(redis.maxlen == 0);
    CHECK(redis.connectTimeout == 5s);

    const auto& http = settingsOf<sinks::http::HttpConfig>(config.sinks[2]);
    CHECK(http.method == sinks::http::Method::Post);
    CHECK(http.format == sinks::http::Format::Ndjson);
    CHECK(http.compression == sinks::http::Compression::None);
    CHECK(http.headers.empty());
    CHECK(http.auth.strategy == sinks::http::AuthStrategy::None);
    CHECK(http.tls.verify);
    CHECK(http.tls.caFile.empty());
    CHECK(http.healthUrl.empty());
    CHECK(http.index == "logcapture");
    CHECK(http.labels.empty());

    CHECK(settingsOf<sinks::console::ConsoleConfig>(config.sinks[3]).path.empty());
  }

  TEST_CASE("a variable's default is used when the variable is unset") {
    const auto config =
        loaded("agent:\n  log: {level: '${LEVEL:-debug}'}\n  admin: {token: '${TOKEN:-}'}\n" + kMinimal).config;
    CHECK(config.agent.log.level == LogLevel::Debug);
    CHECK(config.agent.admin.token.empty());
  }

  TEST_CASE("a set variable overrides its default") {
    const auto config =
        loaded("agent:\n  log: {level: '${LEVEL:-debug}'}\n" + kMinimal, envOf({{"LEVEL", "warn"}})).config;
    CHECK(config.agent.log.level == LogLevel::Warn);
  }

  TEST_CASE("variables are replaced inside a longer value and in number fields") {
    const auto config = loaded(
                            "agent:\n"
                            "  state_dir: /data/${HOST}/state\n"
                            "inputs:\n"
                            "  - {name: a, type: stdin}\n"
                            "sinks:\n"
                            "  - {name: s, type: console, workers: '${WORKERS:-4}', timeout: '${TIMEOUT}'}\n",
                            envOf({{"HOST", "web1"}, {"TIMEOUT", "2s"}}))
                            .config;
    CHECK(config.agent.stateDir == "/data/web1/state");
    CHECK(config.sinks[0].workers == 4);
    CHECK(config.sinks[0].timeout == 2s);
  }

  TEST_CASE("a variable's value is taken as it is, not as YAML or as another reference") {
    const auto config = loaded(
                            "inputs:\n"
                            "  - {name: a, type: file, paths: ['/logs/${GLOB}'], fields: {x: '${X}'}}\n"
                            "sinks:\n"
                            "  - {name: s, type: console}\n",
                            envOf({{"GLOB", "a, b]"}, {"X", "${Y}"}, {"Y", "wrong"}}))
                            .config;
    CHECK(config.inputs[0].paths == std::vector<std::string>{"/logs/a, b]"});
    CHECK(config.inputs[0].fields.at("x") == "${Y}");
  }

  TEST_CASE("a doubled dollar is a literal dollar") {
    const auto config = loaded(
                            "inputs:\n"
                            "  - {name: a, type: stdin, fields: {price: '$$5', ref: '$${HOME}', lone: 'a$b'}}\n"
                            "sinks:\n"
                            "  - {name: s, type: console}\n")
                            .config;
    CHECK(config.inputs[0].fields.at("price") == "$5");
    CHECK(config.inputs[0].fields.at("ref") == "${HOME}");
    CHECK(config.inputs[0].fields.at("lone") == "a$b");
  }

  TEST_CASE("relative paths resolve against the config's directory") {
    const auto config = loaded(
                            "agent:\n"
                            "  state_dir: state\n"
                            "inputs:\n"
                            "  - name: a\n"
                            "    type: file\n"
                            "    paths: [logs/*.log, /abs/app.log, ../shared/*.log]\n"
                            "    exclude: ['*.gz']\n"
                            "sinks:\n"
                            "  - {name: c, type: console, path: out/records.ndjson}\n"
                            "  - {name: r, type: redis, address: 'unix:run/redis.sock', key: logs}\n"
                            "  - name: h\n"
                            "    type: http\n"
                            "    url: 'https://example.com/'\n"
                            "    tls: {ca_file: certs/ca.pem, cert_file: /pki/c.pem, key_file: certs/c.key}\n",
                            noEnv(), "/etc/logcapture")
                            .config;
    CHECK(config.agent.stateDir == "/etc/logcapture/state");
    CHECK(config.inputs[0].paths ==
          std::vector<std::string>{"/etc/logcapture/logs/*.log", "/abs/app.log", "/etc/shared/*.log"});
    CHECK(config.inputs[0].exclude == std::vector<std::string>{"*.gz"});
    CHECK(settingsOf<sinks::console::ConsoleConfig>(config.sinks[0]).path == "/etc/logcapture/out/records.ndjson");
    CHECK(settingsOf<sinks::redis::RedisConfig>(config.sinks[1]).address == "unix:/etc/logcapture/run/redis.sock");
    const auto& tls = settingsOf<sinks::http::HttpConfig>(config.sinks[2]).tls;
    CHECK(tls.caFile == "/etc/logcapture/certs/ca.pem");
    CHECK(tls.certFile == "/pki/c.pem");
    CHECK(tls.keyFile == "/etc/logcapture/certs/c.key");
  }

  TEST_CASE("loadFile resolves relative paths against the file's directory") {
    TempDir dir;
    fs::create_directories(dir.path / "conf");
    const std::string file = dir.write("conf/capture.yaml",
                                       "agent: {state_dir: state}\n"
                                       "inputs:\n"
                                       "  - {name: a, type: file, paths: [logs/*.log]}\n"
                                       "sinks:\n"
                                       "  - {name: s, type: console}\n");
    const auto config = loadFile(file, noEnv()).config;
    CHECK(config.file == file);
    CHECK(config.agent.stateDir == (dir.path / "conf/state").string());
    CHECK(config.inputs[0].paths == std::vector<std::string>{(dir.path / "conf/logs/*.log").string()});
  }

  TEST_CASE("an input routed to no sink loads with a warning") {
    const auto result = loaded(
        "inputs:\n"
        "  - {name: a, type: stdin}\n"
        "  - {name: b, type: file, paths: [/x.log]}\n"
        "sinks:\n"
        "  - {name: s, type: console, inputs: [a]}\n");
    REQUIRE(result.warnings.size() == 1);
    CHECK(result.warnings[0].path == "inputs");
    CHECK(contains(result.warnings[0].message, "input 'b' is routed to no sink"));
  }

  TEST_CASE("toYaml output loads back to the same config") {
    const auto first = loaded(
                           "agent:\n"
                           "  state_dir: /srv/lc\n"
                           "  log: {level: debug, format: json}\n"
                           "  admin: {listen: '[::1]:9000'}\n"
                           "  shutdown_timeout: 1m30s\n"
                           "inputs:\n"
                           "  - name: app\n"
                           "    type: file\n"
                           "    paths: [/var/log/app/*.log, rel/*.log]\n"
                           "    exclude: ['*.gz', 'odd \"name\".log']\n"
                           "    start_at: beginning\n"
                           "    format: cri\n"
                           "    multiline: {start_pattern: '^\\S+ \\d', max_lines: 20, max_bytes: 1536KiB, "
                           "timeout: 250ms}\n"
                           "    max_line_bytes: 1000\n"
                           "    max_open_files: 7\n"
                           "    fields: {env: prod, 'weird key': 'a: b', empty: ''}\n"
                           "  - {name: pipe, type: stdin, format: json}\n"
                           "queue: {max_records: 5, max_bytes: 1GiB, when_full: drop_newest}\n"
                           "sinks:\n"
                           "  - name: events\n"
                           "    type: kafka\n"
                           "    inputs: [app]\n"
                           "    brokers: ['10.0.0.1:9092', '[::1]:9093']\n"
                           "    topic: logs-{{input}}\n"
                           "    key: '{{host}}'\n"
                           "    properties: {compression.type: lz4, linger.ms: '5'}\n"
                           "    encoding: raw\n"
                           "    batch: {max_records: 10, max_bytes: 2MB, linger: 0s}\n"
                           "    workers: 64\n"
                           "    timeout: 1500ms\n"
                           "    retry: {max_attempts: 9, initial_backoff: 1ms, max_backoff: 1d}\n"
                           "    breaker:\n"
                           "      failure_threshold: 7\n"
                           "      success_threshold: 3\n"
                           "      open_timeout: 45s\n"
                           "      max_open_timeout: 2h\n"
                           "      backoff_multiplier: 1.5\n"
                           "      jitter: 0.05\n"
                           "      half_open_max_calls: 4\n"
                           "      trip_on_throttle: true\n"
                           "      probe: yes\n"
                           "      window: {type: time, size: 90s, min_calls: 3, failure_rate: 12.5, "
                           "slow_call_rate: 0.01, slow_call_duration: 2s}\n"
                           "    buffer: {type: memory, max_bytes: 1TiB, on_open: drop, when_full: block}\n"
                           "    dead_letter: {max_bytes: 0}\n"
                           "  - {name: out, type: console, inputs: [pipe, app], path: out.ndjson}\n",
                           noEnv())
                           .config;
    const std::string printed = toYaml(first);
    INFO("printed:\n" << printed);
    const auto second = loaded(printed, noEnv(), "/elsewhere").config;
    CHECK(toYaml(second) == printed);

    // The printed text could agree with itself and still lose a value; spot-check against the source.
    CHECK(second.agent.log.format == LogFormat::Json);
    CHECK(second.agent.admin.listen == "[::1]:9000");
    CHECK(second.agent.shutdownTimeout == 90s);
    CHECK(second.inputs[0].paths == std::vector<std::string>{"/var/log/app/*.log", "/etc/logcapture/rel/*.log"});
    CHECK(second.inputs[0].exclude == first.inputs[0].exclude);
    CHECK(second.inputs[0].multiline->startPattern == "^\\S+ \\d");
    CHECK(second.inputs[0].multiline->maxBytes == Bytes{1536 * 1024});
    CHECK(second.inputs[0].maxLineBytes == Bytes{1000});
    CHECK(second.inputs[0].fields == first.inputs[0].fields);
    CHECK(second.queue.whenFull == WhenFull::DropNewest);
    const auto& k = second.sinks[0];
    CHECK(k.inputs == std::optional(std::vector<std::string>{"app"}));
    CHECK(settingsOf<sinks::kafka::KafkaConfig>(k).properties ==
          settingsOf<sinks::kafka::KafkaConfig>(first.sinks[0]).properties);
    CHECK(k.batch.maxBytes == Bytes{2000000});
    CHECK(k.batch.linger == 0ms);
    CHECK(k.timeout == 1500ms);
    CHECK(k.retry.maxBackoff == 24h);
    CHECK(k.breaker.backoffMultiplier == 1.5);
    CHECK(k.breaker.jitter == 0.05);
    CHECK(k.breaker.probe);
    REQUIRE(k.breaker.window.has_value());
    CHECK(std::get<Duration>(k.breaker.window->size.value) == 90s);
    CHECK(k.breaker.window->failureRate == 12.5);
    CHECK(k.breaker.window->slowCallRate == 0.01);
    CHECK(k.buffer.maxBytes == Bytes{1ull << 40});
    CHECK(k.deadLetter.maxBytes == Bytes{0});
    CHECK(settingsOf<sinks::console::ConsoleConfig>(second.sinks[1]).path == "/etc/logcapture/out.ndjson");
  }

  TEST_CASE("toYaml output of redis sinks loads back to the same config") {
    const auto first = loaded(withSinks("  - {name: l, type: redis, key: logs}\n"
                                        "  - {name: st, type: redis, address: 'redis:6380', db: 3, mode: stream, "
                                        "key: audit, maxlen: 1000}\n"
                                        "  - {name: p, type: redis, mode: pubsub, channel: news, "
                                        "connect_timeout: 250ms}\n"))
                           .config;
    const std::string printed = toYaml(first);
    INFO("printed:\n" << printed);
    const auto second = loaded(printed).config;
    CHECK(toYaml(second) == printed);
  }

  TEST_CASE("toYaml output of http sinks loads back to the same config") {
    const auto first = loaded(withSinks("  - {name: n, type: http, url: 'http://h/'}\n"
                                        "  - {name: e, type: http, url: 'https://es/_bulk', format: es_bulk, "
                                        "index: 'logs-{{input}}', method: PUT, compression: gzip, "
                                        "headers: {X-A: b}}\n"
                                        "  - {name: l, type: http, url: 'http://loki/', format: loki, "
                                        "labels: {job: lc}, tls: {verify: false}, health_url: 'http://loki/ready'}\n"))
                           .config;
    const std::string printed = toYaml(first);
    INFO("printed:\n" << printed);
    const auto second = loaded(printed).config;
    CHECK(toYaml(second) == printed);
  }

  TEST_CASE("toYaml output keeps a literal dollar literal") {
    const auto first = loaded(
                           "inputs:\n"
                           "  - {name: a, type: stdin, fields: {price: '$$5', ref: '$${HOME}'}}\n"
                           "sinks:\n"
                           "  - {name: s, type: console}\n")
                           .config;
    const std::string printed = toYaml(first);
    INFO("printed:\n" << printed);
    try {
      const auto second = loadString(printed, kName, kBaseDir, noEnv()).config;
      CHECK(second.inputs[0].fields == first.inputs[0].fields);
    } catch (const ConfigError& e) {
      FAIL_CHECK("the printed config was rejected:\n" << formatAll(e.errors()));
    }
  }

  TEST_CASE("toYaml redacts secrets and leaves empty ones empty") {
    const auto config =
        loaded(
            "agent: {admin: {token: admin-secret-1}}\n"
            "inputs:\n"
            "  - {name: a, type: stdin}\n"
            "sinks:\n"
            "  - {name: r, type: redis, key: k, username: u, password: redis-secret-2}\n"
            "  - {name: b, type: http, url: 'http://h/', auth: {strategy: basic, user: u, "
            "password: http-secret-3}}\n"
            "  - {name: t, type: http, url: 'http://h/', auth: {strategy: bearer, token: bearer-secret-4}}\n"
            "  - {name: n, type: redis, key: k}\n")
            .config;
    const std::string printed = toYaml(config);
    INFO("printed:\n" << printed);
    for (const char* secret : {"admin-secret-1", "redis-secret-2", "http-secret-3", "bearer-secret-4"}) {
      CHECK_MESSAGE(!contains(printed, secret), secret << " is printed");
    }
    const YAML::Node root = YAML::Load(printed);
    CHECK(root["agent"]["admin"]["token"].as<std::string>() == "<redacted>");
    CHECK(root["sinks"][0]["password"].as<std::string>() == "<redacted>");
    CHECK(root["sinks"][0]["username"].as<std::string>() == "u");
    CHECK(root["sinks"][1]["auth"]["password"].as<std::string>() == "<redacted>");
    CHECK(root["sinks"][1]["auth"]["user"].as<std::string>() == "u");
    CHECK(root["sinks"][2]["auth"]["token"].as<std::string>() == "<redacted>");
    CHECK(root["sinks"][3]["password"].as<std::string>().empty());
  }

  TEST_CASE("the shipped capture.yaml loads without errors") {
    const std::string path = std::string(LOGCAPTURE_SOURCE_DIR) + "/capture.yaml";
    REQUIRE_MESSAGE(fs::exists(path), path << " does not exist");
    try {
      const auto result = loadFile(path, noEnv());
      CHECK_FALSE(result.config.inputs.empty());
      CHECK_FALSE(result.config.sinks.empty());
      for (const auto& w : result.warnings) MESSAGE("warning: " << w.format());
    } catch (const ConfigError& e) {
      FAIL("capture.yaml was rejected:\n" << formatAll(e.errors()));
    }
  }
}

}  // namespace logcapture::config
