#include "agent/runner/breaker_record.h"

#include <algorithm>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <random>

#include "base/durable_file.h"
#include "base/log.h"

namespace logcapture::agent {
namespace {

using WallClock = std::chrono::system_clock;
using std::chrono::milliseconds;

std::int64_t unixMillis(WallClock::time_point t) {
  return std::chrono::duration_cast<milliseconds>(t.time_since_epoch()).count();
}

}  // namespace

BreakerRecord::BreakerRecord(const std::string& stateDir, std::string sink)
    : sink_(std::move(sink)), path_(std::filesystem::path(stateDir) / "breakers" / (sink_ + ".json")) {}

bool BreakerRecord::restore(circuit::Breaker& breaker) const {
  std::ifstream in(path_);
  if (!in) return false;
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const nlohmann::json saved = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  // Read without exceptions: a file of any shape is only ignored.
  const auto field = [&](const char* key) -> const nlohmann::json* {
    if (!saved.is_object()) return nullptr;
    const auto it = saved.find(key);
    return it == saved.end() ? nullptr : &*it;
  };
  const auto* state = field("state");
  const auto* next = field("next_retry_unix_ms");
  const auto* backoff = field("backoff_level");
  if (state == nullptr || !state->is_string() || next == nullptr || !next->is_number_integer() ||
      (backoff != nullptr && !backoff->is_number_unsigned())) {
    noteFailure("unreadable, ignored (the breaker starts closed): " + path_.string());
    return false;
  }
  if (state->get_ref<const std::string&>() != "open") return false;
  const auto left = milliseconds(next->get<std::int64_t>() - unixMillis(WallClock::now()));
  const auto level =
      backoff == nullptr ? 0u : std::uint32_t(std::min<std::uint64_t>(backoff->get<std::uint64_t>(), 64));
  // A fleet restarted together would try together: each waits a random part of the open timeout more
  // (at most 5 s).
  const auto spread = std::min<circuit::Clock::duration>(breaker.options().openTimeout, std::chrono::seconds(5));
  std::mt19937_64 random(std::random_device{}());
  const auto delay = circuit::Clock::duration(
      std::int64_t(std::uniform_real_distribution<double>(0, 1)(random) * double(spread.count())));
  const auto openFor = std::max<circuit::Clock::duration>(left, circuit::Clock::duration::zero()) + delay;
  breaker.restoreOpen(level, openFor);
  log::event(*log::component("breaker"), spdlog::level::warn, "breaker_restored",
             {{"sink", sink_},
              {"mode", circuit::modeName(breaker.options().mode)},
              {"backoff_level", level},
              {"next_retry_in_ms", std::chrono::duration_cast<milliseconds>(openFor).count()},
              {"hint", "the breaker was open when the agent stopped; `logcapture breakers reset " + sink_ +
                           "` closes it now"}});
  return true;
}

circuit::Breaker::Listener BreakerRecord::listener() {
  return [this](const circuit::Transition& t) {
    using circuit::State;
    if (t.to == State::Open) {
      save(t);
    } else if (t.to == State::Closed || t.to == State::Disabled) {
      remove();  // half-open and forced-open keep what was saved: the destination was not shown healthy
    }
  };
}

void BreakerRecord::save(const circuit::Transition& t) {
  const nlohmann::json record{
      {"state", "open"},
      {"backoff_level", t.backoffLevel},
      {"open_for_ms", std::chrono::duration_cast<milliseconds>(t.openFor).count()},
      {"next_retry_unix_ms", unixMillis(WallClock::now() + std::chrono::duration_cast<WallClock::duration>(t.openFor))},
      {"cause", circuit::causeName(t.cause)}};
  const std::string error = base::replaceFile(path_, path_.string() + ".tmp", record.dump() + "\n");
  if (!error.empty()) noteFailure("cannot save " + path_.string() + ": " + error);
}

void BreakerRecord::remove() {
  std::error_code ec;
  std::filesystem::remove(path_, ec);
  if (ec) noteFailure("cannot remove " + path_.string() + ": " + ec.message());
}

void BreakerRecord::noteFailure(const std::string& what) const {
  if (failureLogged_.exchange(true)) return;
  log::event(*log::component("breaker"), spdlog::level::warn, "breaker_record_failed",
             {{"sink", sink_}, {"error", what}, {"hint", "a restarted agent starts this breaker closed"}});
}

}  // namespace logcapture::agent
