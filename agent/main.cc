// The logcapture command: run (default), check, breakers, top, version.

#include <fcntl.h>
#include <malloc.h>
#include <CLI/CLI.hpp>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "agent/admin/breakers_command.h"
#include "agent/admin/top_command.h"
#include "agent/daemon.h"
#include "base/log.h"
#include "config/loader.h"
#include "config/printer.h"
#include "config/reference.h"

namespace {

using namespace logcapture;

constexpr const char* kDefaultConfig = "/etc/logcapture/capture.yaml";

void printErrors(const config::ConfigError& e) {
  for (const auto& d : e.errors()) std::cerr << "error: " << d.format() << "\n";
  std::cerr << e.errors().size() << (e.errors().size() == 1 ? " error" : " errors") << " in the config\n";
}

void printWarnings(const std::vector<config::Diagnostic>& warnings) {
  for (const auto& d : warnings) std::cerr << "warning: " << d.format() << "\n";
}

int commandCheck(const std::string& path, bool print) {
  try {
    const auto loaded = config::loadFile(path);
    printWarnings(loaded.warnings);
    if (print) {
      std::cout << config::toYaml(loaded.config);
    } else {
      std::cout << path << ": ok (" << loaded.config.inputs.size() << " inputs, " << loaded.config.sinks.size()
                << " sinks"
                << (loaded.warnings.empty() ? "" : ", " + std::to_string(loaded.warnings.size()) + " warnings")
                << ")\n";
    }
    return agent::kExitOk;
  } catch (const config::ConfigError& e) {
    printErrors(e);
    return agent::kExitConfig;
  }
}

int commandRun(const std::string& path) {
  config::Loaded loaded;
  try {
    loaded = config::loadFile(path);
  } catch (const config::ConfigError& e) {
    printErrors(e);
    return agent::kExitConfig;
  }
  log::configure(agent::logSettings(loaded.config.agent.log));
  auto logger = log::component("config");
  for (const auto& w : loaded.warnings) logger->warn("{}", w.format());
  return agent::runDaemon(loaded.config, agent::waitForProcessSignal());
}

// `logcapture -c FILE` means `logcapture run -c FILE`.
std::vector<std::string> withDefaultCommand(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  static const std::vector<std::string> kCommands{"run", "check", "breakers", "top", "reference", "version", "help"};
  bool named = false;
  bool help = false;
  for (const auto& a : args) {
    if (a == "-h" || a == "--help") help = true;
    if (!a.empty() && a[0] != '-') {
      named = std::find(kCommands.begin(), kCommands.end(), a) != kCommands.end();
      break;
    }
  }
  if (!named && !(help && args.size() == 1)) args.insert(args.begin(), "run");
  return args;
}

}  // namespace

int main(int argc, char** argv) {
  // Started with stdin, stdout or stderr closed (`<&-`, a careless supervisor), the first file the agent
  // opens would take that number: the stdin input would read a log file, the console sink write into one.
  for (int fd = 0; fd <= 2; ++fd) {
    if (::fcntl(fd, F_GETFD) == -1 && errno == EBADF) {
      const int opened = ::open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
      if (opened < 0) return 1;  // no /dev/null: nothing sensible to run on
    }
  }
  // A batch's encoding (up to batch.max_bytes, 1 MiB by default) and a file's read chunks are allocated
  // and freed many times a second. Past glibc's default thresholds each came from mmap or was given back
  // at free and then faulted in again page by page: 20,000 page faults for 2M lines shipped, 6% of the
  // agent's CPU. Taken from the heap and kept up to 16 MiB of free top, half the faults, and the peak
  // RSS unchanged.
  ::mallopt(M_MMAP_THRESHOLD, 4 << 20);
  ::mallopt(M_TRIM_THRESHOLD, 16 << 20);
  // Before any thread exists, so every thread inherits the mask and signals reach sigtimedwait.
  agent::blockSignals();
  // A console sink whose reader went away, or a peer closing a socket, must show up as a write error
  // the sink classifies, not kill the agent.
  std::signal(SIGPIPE, SIG_IGN);

  CLI::App app{
      "logcapture: tails files and stdin and ships every line to Kafka, Redis and HTTP,\n"
      "each sink behind its own circuit breaker."};
  app.name("logcapture");
  app.require_subcommand(1, 1);

  std::string configPath = kDefaultConfig;
  auto* run = app.add_subcommand("run", "Run the agent (the default command)");
  run->add_option("-c,--config", configPath, "Config file")->capture_default_str();

  bool print = false;
  auto* check = app.add_subcommand("check", "Validate the config file and exit (0: valid, 1: errors)");
  check->add_option("-c,--config", configPath, "Config file")->capture_default_str();
  check->add_flag("--print", print, "Print the effective config, with every default filled in");

  agent::admin::BreakersCommand breakersCommand;
  auto* breakers = app.add_subcommand("breakers", "Show or steer the sinks' circuit breakers through the admin API");
  breakers->add_option("action", breakersCommand.action, "list | open | close | reset | auto")
      ->check(CLI::IsMember({"list", "open", "close", "reset", "auto"}))
      ->capture_default_str();
  breakers->add_option("sink", breakersCommand.sink, "The sink (required by open, close, reset and auto)");
  breakers->add_option("--admin", breakersCommand.adminUrl, "The agent's admin server")
      ->envname("LOGCAPTURE_ADMIN_URL")
      ->capture_default_str();
  breakers->add_option("--token", breakersCommand.token, "Bearer token, when agent.admin.token is set")
      ->envname("LOGCAPTURE_ADMIN_TOKEN");
  breakers->footer(
      "open = force-open (send nothing, buffer by the sink's policy), close = force-close (send, never trip),\n"
      "reset = closed with cleared counts, auto = leave a forced mode.\n"
      "Exit codes: 0 ok, 1 the admin API answered an error (e.g. unknown sink), 2 bad command line,\n"
      "3 the admin server cannot be reached.");

  agent::admin::TopCommand topCommand;
  auto* top = app.add_subcommand("top", "A live view of a running agent: inputs, queue, sinks, breakers");
  top->add_option("--admin", topCommand.adminUrl, "The agent's admin server")
      ->envname("LOGCAPTURE_ADMIN_URL")
      ->capture_default_str();
  top->add_option("--token", topCommand.token, "Bearer token, when agent.admin.token is set (else asked for)")
      ->envname("LOGCAPTURE_ADMIN_TOKEN");
  top->add_option("--interval", topCommand.interval, "Time between two reads of the API (100ms to 1h)")
      ->capture_default_str();
  top->footer(
      "Keys: up/down or j/k select a sink; o force-open, c force-close, r reset, a auto its breaker; q quit.\n"
      "Exit codes: 0 quit (q, Ctrl-C, SIGTERM), 2 bad command line or not a terminal.");

  auto* reference =
      app.add_subcommand("reference", "Print the configuration reference (Markdown) from the config declarations");
  auto* version = app.add_subcommand("version", "Print the version");
  app.footer(
      "Exit codes: 0 ok, 1 invalid config, 2 bad command line, 3 could not start,\n"
      "4 shutdown timeout, 5 a thread failed, 130/143 second SIGINT/SIGTERM.");

  std::vector<std::string> args = withDefaultCommand(argc, argv);
  std::reverse(args.begin(), args.end());  // CLI11 takes a reversed vector
  try {
    app.parse(args);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return agent::kExitUsage;
  }

  if (version->parsed()) {
    std::cout << "logcapture " << LOGCAPTURE_VERSION << "\n";
    return agent::kExitOk;
  }
  if (reference->parsed()) {
    std::cout << config::referenceMarkdown();
    return agent::kExitOk;
  }
  if (check->parsed()) return commandCheck(configPath, print);
  if (breakers->parsed()) return agent::admin::runBreakersCommand(breakersCommand, std::cout, std::cerr);
  if (top->parsed()) return agent::admin::runTopCommand(topCommand, std::cerr);
  if (run->parsed()) return commandRun(configPath);
  return agent::kExitUsage;
}
