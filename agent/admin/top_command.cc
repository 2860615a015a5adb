#include "agent/admin/top_command.h"

#include <curses.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <exception>
#include <optional>

#include "agent/admin/admin_client.h"
#include "agent/admin/top_view.h"
#include "config/units.h"

namespace logcapture::agent::admin {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// How long a key waits before the loop looks at signals and the clock again.
constexpr int kKeyWaitMs = 100;
// Short, so that an agent that does not answer leaves the keys responsive.
constexpr AdminTimeouts kTimeouts{.connect = 1000ms, .read = 2000ms};
constexpr int kCtrlC = 3;  // in case the terminal passes it through instead of signalling

sigset_t quitSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  return set;
}

// True once SIGINT, SIGTERM or SIGHUP is pending (they are blocked while top runs).
bool quitSignalled() {
  const sigset_t set = quitSignals();
  const timespec zero{};
  return sigtimedwait(&set, nullptr, &zero) > 0;
}

// The signal mask while top runs, and the one before it after.
class BlockedSignals {
 public:
  BlockedSignals() {
    const sigset_t set = quitSignals();
    ok_ = pthread_sigmask(SIG_BLOCK, &set, &previous_) == 0;
  }
  ~BlockedSignals() {
    if (ok_) pthread_sigmask(SIG_SETMASK, &previous_, nullptr);
  }
  BlockedSignals(const BlockedSignals&) = delete;
  BlockedSignals& operator=(const BlockedSignals&) = delete;
  bool ok() const { return ok_; }

 private:
  sigset_t previous_{};
  bool ok_ = false;
};

enum Pair : short { kGreen = 1, kYellow, kRed };

// The curses screen; its destructor restores the terminal, whichever way the scope is left.
class Terminal {
 public:
  Terminal() {
    screen_ = newterm(nullptr, stdout, stdin);
    if (screen_ == nullptr) return;
    cbreak();
    noecho();
    keypad(stdscr, TRUE);
    curs_set(0);
    set_escdelay(25);
    timeout(kKeyWaitMs);
    if (has_colors() && start_color() == OK) {
      use_default_colors();
      init_pair(kGreen, COLOR_GREEN, -1);
      init_pair(kYellow, COLOR_YELLOW, -1);
      init_pair(kRed, COLOR_RED, -1);
      colours_ = true;
    }
  }
  ~Terminal() {
    if (screen_ == nullptr) return;
    endwin();
    delscreen(screen_);
  }
  Terminal(const Terminal&) = delete;
  Terminal& operator=(const Terminal&) = delete;

  bool ok() const { return screen_ != nullptr; }

  attr_t attributes(Tone tone) const {
    const auto colour = [&](Pair p) { return colours_ ? COLOR_PAIR(p) : attr_t{0}; };
    switch (tone) {
      case Tone::Plain:
        return A_NORMAL;
      case Tone::Title:
      case Tone::Heading:
        return A_BOLD;
      case Tone::Closed:
        return colour(kGreen);
      case Tone::HalfOpen:
        return colour(kYellow) | A_BOLD;
      case Tone::Open:
        return colour(kRed) | A_BOLD;
      case Tone::ForcedClosed:
        return colour(kGreen) | A_REVERSE;
      case Tone::ForcedOpen:
        return colour(kRed) | A_REVERSE | A_BOLD;
      case Tone::Warning:
        return colour(kYellow);
      case Tone::Status:
        return A_REVERSE;
      case Tone::Error:
        return colour(kRed) | A_REVERSE | A_BOLD;
    }
    return A_NORMAL;
  }

  void draw(const std::vector<ScreenRow>& rows) const {
    erase();
    for (std::size_t y = 0; y < rows.size(); ++y) {
      move(static_cast<int>(y), 0);
      for (const auto& span : rows[y].spans) {
        const attr_t a = attributes(span.tone) | (rows[y].selected ? A_BOLD : A_NORMAL);
        attron(a);
        addstr(span.text.c_str());  // ERR past the last column of the last row is expected
        attroff(a);
      }
    }
    refresh();
  }

 private:
  SCREEN* screen_ = nullptr;
  bool colours_ = false;
};

class Top {
 public:
  Top(AdminClient client, std::chrono::milliseconds interval) : client_(std::move(client)), interval_(interval) {}

  // The loop: fetch every interval, draw, take keys; returns when asked to quit.
  void run(const Terminal& terminal) {
    Clock::time_point nextFetch = Clock::now();
    while (!quitSignalled()) {
      if (Clock::now() >= nextFetch) {
        fetch();
        nextFetch = Clock::now() + interval_;
        draw(terminal);
      }
      const int key = getch();
      if (key == ERR) continue;
      if (key == 'q' || key == 'Q' || key == kCtrlC) return;
      if (!handle(key, terminal)) return;
      if (refetch_) {
        refetch_ = false;
        nextFetch = Clock::now();
      }
      draw(terminal);
    }
  }

 private:
  // False when the key asked to quit (a signal while a token was asked for).
  bool handle(int key, const Terminal& terminal) {
    const std::size_t sinks = current_ ? current_->sinks.size() : 0;
    switch (key) {
      case KEY_UP:
      case 'k':
        if (selected_ > 0) --selected_;
        return true;
      case KEY_DOWN:
      case 'j':
        if (selected_ + 1 < sinks) ++selected_;
        return true;
      case 'o':
        return act("open", terminal);
      case 'c':
        return act("close", terminal);
      case 'r':
        return act("reset", terminal);
      case 'a':
        return act("auto", terminal);
      default:
        return true;  // KEY_RESIZE among them: the caller draws at the new size
    }
  }

  void fetch() {
    const AdminAnswer breakers = client_.get("/api/v1/breakers");
    if (!breakers.reached) {
      setStatus("cannot reach " + client_.base() + ": " + breakers.error + " (retrying every " +
                    config::formatDuration(interval_) + ")",
                true);
      return;
    }
    if (breakers.status != 200) {
      setStatus("error from " + client_.base() + ": " + apiError(breakers) + " (HTTP " +
                    std::to_string(breakers.status) + ")",
                true);
      return;
    }
    const Json body = Json::parse(breakers.body, nullptr, false);
    if (!body.is_object()) {
      setStatus("error from " + client_.base() + ": the answer is not JSON", true);
      return;
    }
    TopSample sample;
    sample.at = Clock::now();
    sample.wallAt = std::chrono::system_clock::now();
    sample.sinks = sinkFigures(body.value("breakers", Json::array()));
    const AdminAnswer metrics = client_.get("/metrics");
    if (metrics.ok()) {
      const auto samples = parsePrometheusText(metrics.body);
      sample.inputs = inputFigures(samples);
      sample.queue = queueFigures(samples);
    }
    previous_ = std::move(current_);
    current_ = std::move(sample);
    if (!current_->sinks.empty()) selected_ = std::min(selected_, current_->sinks.size() - 1);
    if (statusIsError_) setStatus("", false);  // the agent answers again
  }

  // POSTs the action on the selected sink's breaker, asking for the token once when the agent wants one.
  bool act(const std::string& action, const Terminal& terminal) {
    if (!current_ || selected_ >= current_->sinks.size()) {
      setStatus("no sink to " + action, true);
      return true;
    }
    const std::string sink = current_->sinks[selected_].name;
    const std::string path = "/api/v1/breakers/" + sink + "/" + breakerAction(action);
    AdminAnswer answer = client_.post(path);
    if (answer.reached && answer.status == 401) {
      bool quit = false;
      const std::optional<std::string> token = askToken(terminal, quit);
      if (quit) return false;
      if (!token) {
        setStatus(action + " " + sink + ": cancelled, the agent wants a token", false);
        return true;
      }
      client_.setToken(*token);
      answer = client_.post(path);
    }
    if (!answer.reached) {
      setStatus("cannot reach " + client_.base() + ": " + answer.error, true);
    } else if (answer.status != 200) {
      setStatus(action + " " + sink + ": " + apiError(answer) + " (HTTP " + std::to_string(answer.status) + ")", true);
    } else {
      const Json body = Json::parse(answer.body, nullptr, false);
      const std::string state = body.is_object() ? body.value("state", "?") : "?";
      const std::string was = body.is_object() ? body.value("previous_state", "?") : "?";
      setStatus(sink + ": " + state + " (was " + was + ")", false);
      refetch_ = true;
    }
    return true;
  }

  // Reads a token on the status line, without echo: empty when cancelled (Esc, or Enter on nothing);
  // `quit` set when a quit signal came meanwhile.
  std::optional<std::string> askToken(const Terminal& terminal, bool& quit) {
    std::string token;
    for (;;) {
      setStatus("the agent wants a token (agent.admin.token), Enter to send, Esc to cancel: token: ", false);
      draw(terminal);
      const int key = getch();
      if (quitSignalled()) {
        quit = true;
        return std::nullopt;
      }
      if (key == ERR || key == KEY_RESIZE) continue;
      if (key == 27) return std::nullopt;
      if (key == '\n' || key == '\r' || key == KEY_ENTER) {
        if (token.empty()) return std::nullopt;
        return token;
      }
      if (key == KEY_BACKSPACE || key == 127 || key == 8) {
        if (!token.empty()) token.pop_back();
      } else if (key >= 32 && key < 127) {
        token += static_cast<char>(key);
      }
    }
  }

  void setStatus(std::string text, bool error) {
    status_ = std::move(text);
    statusIsError_ = error;
  }

  void draw(const Terminal& terminal) const {
    int height = 0;
    int width = 0;
    getmaxyx(stdscr, height, width);
    TopScreen screen;
    screen.adminUrl = client_.base();
    screen.interval = interval_;
    screen.previous = previous_ ? &*previous_ : nullptr;
    screen.current = current_ ? &*current_ : nullptr;
    screen.selected = selected_;
    screen.status = status_;
    screen.statusIsError = statusIsError_;
    screen.width = width;
    screen.height = height;
    terminal.draw(renderTop(screen));
  }

  AdminClient client_;
  const std::chrono::milliseconds interval_;
  std::optional<TopSample> previous_;
  std::optional<TopSample> current_;
  std::size_t selected_ = 0;
  std::string status_;
  bool statusIsError_ = false;
  bool refetch_ = false;
};

}  // namespace

int runTopCommand(const TopCommand& cmd, std::ostream& err) {
  const std::optional<config::Duration> interval = config::parseDuration(cmd.interval);
  if (!interval || *interval < 100ms || *interval > 1h) {
    err << "--interval expects a duration from 100ms to 1h, such as 1s or 500ms, found '" << cmd.interval << "'\n";
    return kAdminUsage;
  }
  std::string urlError;
  std::optional<AdminClient> client = AdminClient::forUrl(cmd.adminUrl, urlError, kTimeouts);
  if (!client) {
    err << urlError << "\n";
    return kAdminUsage;
  }
  client->setToken(cmd.token);
  if (::isatty(STDIN_FILENO) != 1 || ::isatty(STDOUT_FILENO) != 1) {
    err << "logcapture top needs a terminal; `logcapture breakers` prints the same figures as text\n";
    return kAdminUsage;
  }
  const BlockedSignals blocked;
  if (!blocked.ok()) {
    err << "logcapture top: cannot block SIGINT and SIGTERM\n";
    return kAdminApiError;
  }
  std::string failure;
  try {
    const Terminal terminal;
    if (!terminal.ok()) {
      err << "logcapture top: cannot set up the terminal (TERM=" << (std::getenv("TERM") ? std::getenv("TERM") : "")
          << ")\n";
      return kAdminUsage;
    }
    Top top(std::move(*client), std::chrono::duration_cast<std::chrono::milliseconds>(*interval));
    top.run(terminal);
  } catch (const std::exception& e) {
    failure = e.what();  // the terminal is restored by now: the message goes to a normal screen
  }
  if (!failure.empty()) {
    err << "logcapture top failed: " << failure << "\n";
    return kAdminApiError;
  }
  return kAdminOk;
}

}  // namespace logcapture::agent::admin
