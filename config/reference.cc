#include "config/reference.h"

#include <algorithm>
#include <charconv>
#include <map>
#include <set>
#include <sstream>
#include <vector>

#include "config/config.h"
#include "config/units.h"

namespace logcapture::config {
namespace {

// One declared key as the reference shows it.
struct Row {
  std::string path;  // relative to its top-level part: "breaker.window.size"
  std::string type;
  std::string fallback;  // the default, or "required"
  std::string doc;
};

// A discriminator (an enum key such as a sink's `type`) set to one of its values for one walk.
using Forced = std::map<std::string, std::size_t>;

// What one walk through the describe() functions saw.
struct Walk {
  std::vector<Row> rows;
  std::map<std::string, std::size_t> enums;  // path of each enum key seen -> its value in this walk
  std::map<std::string, std::vector<std::string>> enumValues;
};

std::string number(double v) {
  char buf[32];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, ec == std::errc() ? end : buf);
}

std::string code(const std::string& text) { return "`" + text + "`"; }

// The visitor: walks a default-constructed struct, recording each key; a forced discriminator takes
// the value asked for, so the keys that depend on it are declared too.
class Collector {
 public:
  Collector(const Forced& forced, Walk& walk) : forced_(forced), walk_(walk) {}

  template <class T>
  void field(std::string_view key, T& value, std::string_view doc, Limits<T> limits = {}, Flags flags = {}) {
    const std::string path = join(key);
    if constexpr (ConfigEnum<T>) {
      std::vector<std::string> names;
      for (const auto& [e, name] : enumNames(T{})) names.emplace_back(name);
      walk_.enumValues[path] = names;
      if (const auto it = forced_.find(path); it != forced_.end()) value = enumNames(T{})[it->second].first;
      for (std::size_t i = 0; i < names.size(); ++i) {
        if (enumNames(T{})[i].first == value) walk_.enums[path] = i;
      }
    }
    Row row{path, typeOf(value, limits), flags.required ? "required" : fallbackOf(value), std::string(doc)};
    if (flags.secret) row.doc += " (secret: `check --print` shows it redacted)";
    walk_.rows.push_back(std::move(row));
  }
  template <class T>
  void field(std::string_view key, T& value, std::string_view doc, Flags flags) {
    field(key, value, doc, Limits<T>{}, flags);
  }
  template <class T>
  void section(std::string_view key, T& value) {
    const std::string saved = prefix_;
    prefix_ = join(key);
    describe(*this, value);
    prefix_ = saved;
  }
  template <class T>
  void section(std::string_view key, std::optional<T>& value) {
    walk_.rows.push_back({join(key), "mapping, optional", "absent", "absent: off; present: the keys below apply"});
    T inner = value.value_or(T{});
    section(key, inner);
  }
  // Each list (inputs, sinks) is a part of its own: referenceMarkdown() walks one entry's struct.
  template <class T>
  void list(std::string_view, std::vector<T>&, std::string_view, Flags = {}) {}
  template <class T>
  void flatten(T& part) {
    describe(*this, part);
  }
  bool ok(std::string_view) const { return true; }
  void noteForeignKeys(std::string, std::vector<std::string>) {}
  void skipUnknownKeys() {}

 private:
  std::string join(std::string_view key) const {
    return prefix_.empty() ? std::string(key) : prefix_ + "." + std::string(key);
  }

  template <class T>
  static std::string range(const Limits<T>& limits, auto show) {
    if (limits.min && limits.max) return ", " + show(*limits.min) + " to " + show(*limits.max);
    if (limits.min) return ", at least " + show(*limits.min);
    if (limits.max) return ", at most " + show(*limits.max);
    return "";
  }

  template <class T>
  static std::string typeOf(const T&, const Limits<T>& limits) {
    if constexpr (std::is_same_v<T, std::string>) {
      return "string";
    } else if constexpr (std::is_same_v<T, bool>) {
      return "bool";
    } else if constexpr (std::is_integral_v<T>) {
      return "integer" + range(limits, [](T v) { return std::to_string(v); });
    } else if constexpr (std::is_floating_point_v<T>) {
      return "number" + range(limits, [](T v) { return number(v); });
    } else if constexpr (std::is_same_v<T, Duration>) {
      return "duration" + range(limits, [](Duration v) { return formatDuration(v); });
    } else if constexpr (std::is_same_v<T, Bytes>) {
      return "size" + range(limits, [](Bytes v) { return formatBytes(v); });
    } else if constexpr (std::is_same_v<T, WindowSize>) {
      return "integer (calls) or duration";
    } else if constexpr (std::is_same_v<T, Workers>) {
      return "`auto` or integer, 1 to 64";
    } else if constexpr (std::is_same_v<T, std::vector<std::string>> ||
                         std::is_same_v<T, std::optional<std::vector<std::string>>>) {
      return "list of strings";
    } else if constexpr (std::is_same_v<T, std::map<std::string, std::string>>) {
      return "mapping of strings";
    } else {
      static_assert(ConfigEnum<T>, "a config value type the reference does not know");
      std::string out;
      for (const auto& [e, name] : enumNames(T{})) out += (out.empty() ? "" : " \\| ") + code(name);
      return out;
    }
  }

  template <class T>
  static std::string fallbackOf(const T& v) {
    if constexpr (std::is_same_v<T, std::string>) {
      return v.empty() ? "empty" : code(v);
    } else if constexpr (std::is_same_v<T, bool>) {
      return code(v ? "true" : "false");
    } else if constexpr (std::is_integral_v<T>) {
      return code(std::to_string(v));
    } else if constexpr (std::is_floating_point_v<T>) {
      return code(number(v));
    } else if constexpr (std::is_same_v<T, Duration>) {
      return code(formatDuration(v));
    } else if constexpr (std::is_same_v<T, Bytes>) {
      return code(formatBytes(v));
    } else if constexpr (std::is_same_v<T, Workers>) {
      return code(v.adaptive ? "auto" : std::to_string(v.count));
    } else if constexpr (std::is_same_v<T, WindowSize>) {
      if (const auto* calls = std::get_if<std::uint64_t>(&v.value)) return code(std::to_string(*calls));
      return code(formatDuration(std::get<Duration>(v.value)));
    } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
      if (v.empty()) return "empty";
      std::string out;
      for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
      return code("[" + out + "]");
    } else if constexpr (std::is_same_v<T, std::optional<std::vector<std::string>>>) {
      return v ? fallbackOf(*v) : "absent";
    } else if constexpr (std::is_same_v<T, std::map<std::string, std::string>>) {
      return v.empty() ? "empty" : code("{...}");
    } else {
      return code(std::string(enumName(v)));
    }
  }

  const Forced& forced_;
  Walk& walk_;
  std::string prefix_;
};

template <class T>
Walk walkOnce(const Forced& forced) {
  Walk walk;
  Collector collector(forced, walk);
  T value{};
  describe(collector, value);
  return walk;
}

// Walks T with every value of every discriminator, including those declared only under another
// discriminator's value (an http sink's `format`), and says for each key under which values it exists.
template <class T>
std::vector<std::pair<std::string, std::vector<Row>>> conditionalRows() {
  std::map<Forced, Walk> memo;
  const auto walk = [&](const Forced& forced) -> const Walk& {
    auto it = memo.find(forced);
    if (it == memo.end()) it = memo.emplace(forced, walkOnce<T>(forced)).first;
    return it->second;
  };
  // One key may mean different things under different discriminators (a kafka sink's `key` and a
  // redis sink's), so a key is its path and its meaning.
  const auto declares = [](const Walk& w, const Row& key) {
    return std::any_of(w.rows.begin(), w.rows.end(),
                       [&](const Row& r) { return r.path == key.path && r.doc == key.doc; });
  };

  // Every key, in the order of the first walk that declares it (breadth first: fewest forced values).
  std::vector<std::pair<Forced, Row>> keys;  // the first walk declaring the key, and the key
  std::set<std::pair<std::string, std::string>> known;
  std::map<std::string, std::vector<std::string>> names;
  std::vector<Forced> pending{Forced{}};
  std::set<std::string> branched;
  while (!pending.empty()) {
    const Forced forced = pending.front();
    pending.erase(pending.begin());
    const Walk w = walk(forced);
    for (const auto& row : w.rows) {
      if (known.insert({row.path, row.doc}).second) keys.emplace_back(forced, row);
    }
    for (const auto& [path, values] : w.enumValues) {
      names[path] = values;
      if (!branched.insert(path).second) continue;  // each discriminator is tried once, where first seen
      for (std::size_t i = 0; i < values.size(); ++i) {
        Forced child = forced;
        child[path] = i;
        pending.push_back(child);
      }
    }
  }

  // A key depends on a discriminator when setting that discriminator to another value, everything
  // else as in the walk that declared the key, no longer declares it.
  std::vector<std::string> conditions;
  std::map<std::string, std::vector<Row>> byCondition;
  for (const auto& [forced, key] : keys) {
    const Walk& first = walk(forced);
    std::string condition;
    for (const auto& row : first.rows) {  // discriminators in the order they are declared
      const auto p = row.path;
      if (p == key.path || !first.enums.contains(p)) continue;
      std::string values;
      std::size_t with = 0;
      for (std::size_t i = 0; i < names[p].size(); ++i) {
        Forced other = forced;
        other[p] = i;
        if (!declares(walk(other), key)) continue;
        ++with;
        values += (values.empty() ? "" : " or ") + names[p][i];
      }
      if (with < names[p].size()) condition += (condition.empty() ? "" : ", ") + p + ": " + values;
    }
    if (!byCondition.contains(condition)) conditions.push_back(condition);
    byCondition[condition].push_back(key);
  }
  std::stable_sort(conditions.begin(), conditions.end(),
                   [](const std::string& a, const std::string& b) { return a.empty() && !b.empty(); });
  std::vector<std::pair<std::string, std::vector<Row>>> out;
  for (const auto& c : conditions) out.emplace_back(c, byCondition[c]);
  return out;
}

void table(std::ostringstream& out, const std::string& prefix, const std::vector<Row>& rows) {
  out << "| key | type | default | meaning |\n|---|---|---|---|\n";
  for (const auto& r : rows) {
    std::string doc;
    for (const char ch : r.doc) doc += ch == '|' ? std::string("\\|") : std::string(1, ch);
    out << "| " << code(prefix + r.path) << " | " << r.type << " | " << r.fallback << " | " << doc << " |\n";
  }
}

template <class T>
void keysOf(std::vector<DeclaredKey>& out, const std::string& prefix) {
  for (const auto& [condition, rows] : conditionalRows<T>()) {
    for (const auto& r : rows) out.push_back({prefix + r.path, condition, r.fallback == "required"});
  }
}

template <class T>
void part(std::ostringstream& out, const std::string& title, const std::string& prefix, const std::string& intro) {
  out << "\n## " << title << "\n\n" << intro << "\n\n";
  for (const auto& [condition, rows] : conditionalRows<T>()) {
    if (!condition.empty()) out << "\nOnly with " << code(condition) << ":\n\n";
    table(out, prefix, rows);
  }
}

}  // namespace

std::string referenceMarkdown() {
  std::ostringstream out;
  out << "# Configuration reference\n\n"
         "Every key of `capture.yaml`, generated by `logcapture reference` from the declarations the loader\n"
         "reads (do not edit by hand: the test suite compares this file with the command's output). The\n"
         "commented example is `capture.yaml` at the top of the repository; `logcapture check -c FILE --print`\n"
         "shows a file's effective values.\n\n"
         "Values may use `${VAR}` and `${VAR:-default}`; `$$` is a literal `$`. Durations: `250ms`, `30s`, `5m`,\n"
         "`1h`, `1m30s`. Sizes: `512`, `64KiB`, `1MiB`, `2GiB` (binary), `10MB` (decimal). Relative paths are\n"
         "relative to the config file's directory. Unknown keys are errors.\n";
  part<AgentConfig>(out, "agent", "agent.", "The agent itself.");
  part<InputConfig>(out, "inputs", "inputs[].", "A list; each entry is one input.");
  part<QueueConfig>(out, "queue", "queue.", "The bounded queue between the inputs and the sinks.");
  part<SinkConfig>(out, "sinks", "sinks[].",
                   "A list; each entry is one sink. The keys of the sink's `type` sit in the same mapping.");
  return out.str();
}

std::vector<DeclaredKey> declaredKeys() {
  std::vector<DeclaredKey> out;
  keysOf<AgentConfig>(out, "agent.");
  keysOf<InputConfig>(out, "inputs[].");
  keysOf<QueueConfig>(out, "queue.");
  keysOf<SinkConfig>(out, "sinks[].");
  return out;
}

}  // namespace logcapture::config
