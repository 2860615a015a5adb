#include "config/config.h"

#include <algorithm>
#include <map>

#include "base/line_pattern.h"
#include "config/endpoint.h"
#include "config/section.h"

namespace logcapture::config {
namespace {

// Names become file names (checkpoints, dead letters) and metric labels.
void checkName(Section& s, const std::string& name) {
  if (name.empty() || !s.ok("name")) return;
  const bool valid =
      name.size() <= 64 &&
      std::all_of(name.begin(), name.end(),
                  [](char ch) {
                    return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-' || ch == '.';
                  }) &&
      name[0] != '.';
  if (!valid) {
    s.error("name",
            "'" + name + "' is not a valid name: use up to 64 letters, digits, '_', '-' or '.', not starting with '.'");
  }
}

// Collects the key names a describe() declares, for messages about keys of other sink types.
struct KeyCollector {
  std::vector<std::string> keys;
  template <class T, class... Rest>
  void field(std::string_view key, T&, Rest&&...) {
    keys.emplace_back(key);
  }
  template <class T>
  void section(std::string_view key, T&) {
    keys.emplace_back(key);
  }
  template <class T>
  void flatten(T& part) {
    describe(*this, part);
  }
  bool ok(std::string_view) const { return true; }
  void noteForeignKeys(std::string, std::vector<std::string>) {}
  void skipUnknownKeys() {}
};

}  // namespace

const std::string& sinkTypeList() {
  static const std::string list = [] {
    const auto names = enumNames(SinkType{});
    std::string out;
    for (std::size_t i = 0; i < names.size(); ++i) {
      out += i == 0 ? "" : i + 1 == names.size() ? " or " : ", ";
      out += names[i].second;
    }
    return out;
  }();
  return list;
}

namespace {
template <std::size_t... I>
SinkSettings settingsAt(std::size_t index, std::index_sequence<I...>) {
  SinkSettings out;
  [[maybe_unused]] const bool found = ((index == I ? (out.emplace<I>(), true) : false) || ...);
  return out;
}
}  // namespace

SinkSettings settingsFor(SinkType type) {
  return settingsAt(static_cast<std::size_t>(type), std::make_index_sequence<std::variant_size_v<SinkSettings>>{});
}

void noteOtherTypesKeys(Section& s, SinkType type) {
  for (const auto& [other, name] : enumNames(SinkType{})) {
    if (other == type) continue;
    KeyCollector keys;
    SinkSettings settings = settingsFor(other);
    std::visit([&](auto& part) { describe(keys, part); }, settings);
    s.noteForeignKeys(std::string(name) + " sinks", std::move(keys.keys));
  }
}

void check(Section& s, MultilineConfig& c) {
  if (c.startPattern.empty()) return;
  // The decoder compiles it the same way, so what passes here runs there.
  std::string error;
  if (!base::LinePattern::compile(c.startPattern, error)) {
    s.error("start_pattern", "invalid regular expression: " + error);
  }
}

void check(Section& s, InputConfig& c) {
  checkName(s, c.name);
  if (c.type == InputType::File) {
    for (std::size_t i = 0; i < c.paths.size(); ++i) {
      if (c.paths[i].empty()) {
        s.errorAt(s.pathOf("paths") + "[" + std::to_string(i) + "]", "an empty path matches nothing; remove it");
      }
      c.paths[i] = s.resolvePath(c.paths[i]);
    }
  }
}

void check(Section& s, RetryConfig& c) {
  if (c.maxBackoff < c.initialBackoff && s.ok("max_backoff") && s.ok("initial_backoff")) {
    s.error(s.has("max_backoff") ? "max_backoff" : "initial_backoff",
            "max_backoff (" + formatDuration(c.maxBackoff) + ") is shorter than initial_backoff (" +
                formatDuration(c.initialBackoff) + "); raise max_backoff or lower initial_backoff");
  }
}

void check(Section& s, WindowConfig& c) {
  if (!s.ok("size") || !s.ok("type")) return;
  if (c.type == WindowType::Count) {
    const auto* calls = std::get_if<std::uint64_t>(&c.size.value);
    if (calls == nullptr) {
      s.error("size",
              "a window of type: count needs a number of calls as size, found a duration; "
              "use type: time for a window of time");
    } else if (*calls < 1 || *calls > 100000) {
      s.error("size", "must be between 1 and 100000 calls, found " + std::to_string(*calls));
    } else if (c.minCalls > *calls && s.ok("min_calls")) {
      s.error("min_calls", "min_calls (" + std::to_string(c.minCalls) + ") is larger than the window size (" +
                               std::to_string(*calls) + "), so the rates could never be judged");
    }
  } else {
    const auto* span = std::get_if<Duration>(&c.size.value);
    if (span == nullptr) {
      s.error("size", "a window of type: time needs a duration as size, such as 60s; found a number");
    } else if (*span < std::chrono::seconds(1) || *span > std::chrono::hours(1)) {
      s.error("size", "must be between 1s and 1h, found " + formatDuration(*span));
    }
  }
}

void check(Section& s, BreakerConfig& c) {
  if (c.failureThreshold == 0 && !c.window && s.ok("failure_threshold")) {
    s.error("failure_threshold",
            "failure_threshold: 0 turns off the consecutive-failure rule, and no window is set, so the breaker could "
            "never open; set failure_threshold to 1 or more, or add a window");
  }
  if (c.successThreshold > c.halfOpenMaxCalls && s.ok("success_threshold") && s.ok("half_open_max_calls")) {
    s.error(s.has("success_threshold") ? "success_threshold" : "half_open_max_calls",
            "success_threshold (" + std::to_string(c.successThreshold) + ") is larger than half_open_max_calls (" +
                std::to_string(c.halfOpenMaxCalls) +
                "): a half-open breaker admits at most half_open_max_calls trial calls, so it could never close; "
                "raise half_open_max_calls to at least " +
                std::to_string(c.successThreshold) + " or lower success_threshold");
  }
  if (c.mode == BreakerMode::MetricsOnly && s.has("ramp") && s.ok("ramp") && c.ramp > Duration::zero()) {
    s.error("ramp",
            "a metrics-only breaker holds nothing back, so its sink never drains a backlog after a close; remove "
            "ramp, or set mode: enforce");
  }
  if (c.maxOpenTimeout < c.openTimeout && s.ok("max_open_timeout") && s.ok("open_timeout")) {
    s.error(s.has("max_open_timeout") ? "max_open_timeout" : "open_timeout",
            "max_open_timeout (" + formatDuration(c.maxOpenTimeout) + ") is shorter than open_timeout (" +
                formatDuration(c.openTimeout) + "); raise max_open_timeout or lower open_timeout");
  }
}

void check(Section& s, BufferConfig& c) {
  // Accepting them would let the operator believe they change something. Their defaults pass, so that a
  // printed config (check --print) loads back.
  if (c.type == BufferType::Memory && c.sync != BufferSync::Interval) {
    s.error("sync", "applies to buffer.type: disk only; remove it, or set type: disk");
  }
  if (c.syncInterval != BufferConfig{}.syncInterval && (c.type == BufferType::Memory || c.sync == BufferSync::Always)) {
    s.error("sync_interval", "applies to buffer.type: disk with sync: interval only; remove it");
  }
}

void check(Section& s, SinkConfig& c) {
  checkName(s, c.name);
  // With auto, the lanes are max_workers; the limit of how many send at once adapts within them.
  if (c.workers.adaptive) c.workers.count = c.maxWorkers;
  if (c.inputs) {
    // An empty list is for a sink that is only a fallback: check(Section&, Config&) knows which are.
    for (std::size_t i = 0; i < c.inputs->size(); ++i) {
      for (std::size_t j = 0; j < i; ++j) {
        if ((*c.inputs)[i] == (*c.inputs)[j]) {
          s.errorAt(s.pathOf("inputs") + "[" + std::to_string(i) + "]",
                    "input '" + (*c.inputs)[i] + "' is listed twice; remove one");
        }
      }
    }
  }
  if (c.batch.maxBytes > c.buffer.maxBytes) {
    s.errorAt(s.pathOf("batch") + ".max_bytes",
              "batch.max_bytes (" + formatBytes(c.batch.maxBytes) + ") is larger than buffer.max_bytes (" +
                  formatBytes(c.buffer.maxBytes) + "), so a full batch could never be buffered");
  }
}

void check(Section& s, AgentConfig& c) {
  if (c.stateDir.empty() && s.ok("state_dir")) {
    s.error("state_dir", "must not be empty: checkpoints, buffers and dead letters are kept there");
  }
  c.stateDir = s.resolvePath(c.stateDir);
  if (!c.admin.listen.empty() && !parseEndpoint(c.admin.listen)) {
    s.errorAt(
        s.pathOf("admin") + ".listen",
        "expected host:port such as 127.0.0.1:9880 or [::1]:9880 (or \"\" to turn the admin server off), found '" +
            c.admin.listen + "'");
  }
}

namespace {

// `fallback` names another sink, and following the names never comes back to where it started. A sink
// with `inputs: []` receives nothing but what another sink falls back to it, so one must.
void checkFallbacks(Section& s, const std::vector<SinkConfig>& sinks, const std::map<std::string, std::size_t>& index) {
  const auto at = [](std::size_t i, std::string_view key) {
    return "sinks[" + std::to_string(i) + "]." + std::string(key);
  };
  std::vector<bool> isFallback(sinks.size(), false);
  std::vector<bool> valid(sinks.size(), false);  // names a sink other than itself
  for (std::size_t i = 0; i < sinks.size(); ++i) {
    const std::string& to = sinks[i].fallback;
    if (to.empty()) continue;
    const auto it = index.find(to);
    if (it == index.end()) {
      std::string known;
      for (const auto& [n, idx] : index) known += (known.empty() ? "" : ", ") + n;
      s.errorAt(at(i, "fallback"), "no sink is named '" + to + "'; the sinks are: " + known);
    } else if (it->second == i) {
      s.errorAt(at(i, "fallback"),
                "sink '" + to + "' names itself as its fallback; name another sink, or remove the key");
    } else if (sinks[it->second].buffer.type == BufferType::Disk) {
      // A fallback holds what it takes in memory: the failing sink keeps its own batches on its disk
      // (it writes one there before handing it over), and a second disk buffer would hold frames of
      // the first that it cannot tell from its own.
      s.errorAt(at(i, "fallback"), "sink '" + to + "' has buffer.type: disk, and a fallback buffers in memory; give '" +
                                       to +
                                       "' a memory buffer (this sink's own disk buffer keeps what waits), or name "
                                       "another sink");
      isFallback[it->second] = true;
    } else {
      isFallback[it->second] = true;
      valid[i] = true;
    }
  }
  // A loop is reported once, at its first sink in config order.
  std::vector<bool> reported(sinks.size(), false);
  for (std::size_t i = 0; i < sinks.size(); ++i) {
    if (!valid[i] || reported[i]) continue;
    std::vector<std::size_t> chain{i};
    std::size_t next = index.at(sinks[i].fallback);
    while (valid[next] && std::find(chain.begin(), chain.end(), next) == chain.end()) {
      chain.push_back(next);
      next = index.at(sinks[next].fallback);
    }
    if (next != i) continue;  // ends, or loops further on (reported from a sink of that loop)
    std::string path;
    for (std::size_t k : chain) {
      path += sinks[k].name + " -> ";
      reported[k] = true;
    }
    path += sinks[i].name;
    s.errorAt(at(i, "fallback"), "the fallback chain loops: " + path + "; sink '" + sinks[chain.back()].name +
                                     "' falls back to '" + sinks[i].name +
                                     "' again, so a batch could go round for ever; end the chain at a sink without "
                                     "fallback");
  }
  for (std::size_t i = 0; i < sinks.size(); ++i) {
    if (sinks[i].inputs && sinks[i].inputs->empty() && !isFallback[i]) {
      s.errorAt(at(i, "inputs"),
                "an empty list routes nothing to this sink, and no sink names it as its fallback; list input names, "
                "remove the key for all inputs, or name this sink in another sink's fallback");
    }
  }
}

}  // namespace

void check(Section& s, Config& c) {
  std::map<std::string, std::size_t> inputIndex;
  std::size_t stdinInputs = 0;
  for (std::size_t i = 0; i < c.inputs.size(); ++i) {
    const auto& in = c.inputs[i];
    if (in.name.empty()) continue;
    const std::string path = "inputs[" + std::to_string(i) + "].name";
    if (auto [it, fresh] = inputIndex.emplace(in.name, i); !fresh) {
      s.errorAt(path, "duplicate input name '" + in.name + "', already used by inputs[" + std::to_string(it->second) +
                          "]; names must be unique");
    }
    if (in.type == InputType::Stdin && ++stdinInputs == 2) {
      s.errorAt("inputs[" + std::to_string(i) + "].type", "only one input may read stdin");
    }
  }
  std::map<std::string, std::size_t> sinkIndex;
  std::map<std::string, bool> inputUsed;
  for (std::size_t i = 0; i < c.sinks.size(); ++i) {
    const auto& sink = c.sinks[i];
    const std::string base = "sinks[" + std::to_string(i) + "]";
    if (!sink.name.empty()) {
      if (auto [it, fresh] = sinkIndex.emplace(sink.name, i); !fresh) {
        s.errorAt(base + ".name", "duplicate sink name '" + sink.name + "', already used by sinks[" +
                                      std::to_string(it->second) + "]; names must be unique");
      }
    }
    if (!sink.inputs) {
      for (const auto& in : c.inputs) inputUsed[in.name] = true;
      continue;
    }
    for (std::size_t j = 0; j < sink.inputs->size(); ++j) {
      const std::string& name = (*sink.inputs)[j];
      if (inputIndex.contains(name)) {
        inputUsed[name] = true;
        continue;
      }
      std::string known;
      for (const auto& [n, idx] : inputIndex) known += (known.empty() ? "" : ", ") + n;
      s.errorAt(base + ".inputs[" + std::to_string(j) + "]",
                "no input is named '" + name + "'" + (known.empty() ? "" : "; the inputs are: " + known));
    }
  }
  checkFallbacks(s, c.sinks, sinkIndex);
  for (std::size_t i = 0; i < c.inputs.size(); ++i) {
    if (!c.inputs[i].name.empty() && !inputUsed[c.inputs[i].name] && !c.sinks.empty()) {
      s.warning("inputs",
                "input '" + c.inputs[i].name + "' is routed to no sink; its records would be read and discarded");
    }
  }
}

}  // namespace logcapture::config
