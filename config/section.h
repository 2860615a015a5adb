#pragma once

// Section: one YAML mapping being loaded into a config struct. describe() functions call field(),
// section(), list() and flatten() on it to read each declared key; check() functions call has(),
// error() and warning() for cross-field rules. finish() reports the keys nobody declared.
//
// A Section never throws: problems go to the LoadContext, so one load reports every error at once.

#include <yaml-cpp/yaml.h>

#include <concepts>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "config/diagnostics.h"
#include "config/types.h"
#include "config/units.h"

namespace logcapture::config {

using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;

// What one load shares across its sections.
struct LoadContext {
  std::string file;
  std::filesystem::path baseDir;  // relative paths in the config are relative to this
  EnvLookup env;
  std::vector<Diagnostic> errors;
  std::vector<Diagnostic> warnings;
  std::map<std::string, Location> locations;  // key path -> where its value stands
};

template <class T>
concept Bounded = std::is_arithmetic_v<T> || std::same_as<T, Duration> || std::same_as<T, Bytes>;

template <class T>
concept Checked = requires(Section& s, T& c) {
  check(s, c);
};

class Section {
 public:
  Section(LoadContext& ctx, const YAML::Node& node, std::string path, Location where);

  template <class T>
  void field(std::string_view key, T& out, std::string_view doc, Limits<T> limits = {}, Flags flags = {});
  template <class T>
  void field(std::string_view key, T& out, std::string_view doc, Flags flags) {
    field(key, out, doc, Limits<T>{}, flags);
  }
  template <class T>
  void section(std::string_view key, T& out);
  template <class T>
  void section(std::string_view key, std::optional<T>& out);
  template <class T>
  void list(std::string_view key, std::vector<T>& out, std::string_view doc, Flags flags = {});
  // Declares the keys of `part` in this same mapping (a sink type's keys sit beside the common ones).
  template <class T>
  void flatten(T& part) {
    describe(*this, part);
    if constexpr (Checked<T>) check(*this, part);
  }

  bool has(std::string_view key) const { return find(key) != nullptr; }
  // False when the key was given but invalid, or is required and missing.
  bool ok(std::string_view key) const { return !failed_.contains(std::string(key)); }
  void error(std::string_view key, std::string message);
  void warning(std::string_view key, std::string message);
  // An error at any key path already read in this load (e.g. "sinks[1].inputs[0]").
  void errorAt(const std::string& path, std::string message);
  std::string pathOf(std::string_view key) const;
  const std::string& path() const { return path_; }
  // A path from the config made absolute against the config file's directory.
  std::string resolvePath(std::string_view p) const;
  // Keys that belong to another variant of this mapping, so an unknown key can say where it belongs.
  void noteForeignKeys(std::string owner, std::vector<std::string> keys);
  // After a failed discriminator (an unknown sink `type`), other keys cannot be judged.
  void skipUnknownKeys() { skipUnknown_ = true; }
  void finish();

 private:
  const YAML::Node* find(std::string_view key) const;
  Location locate(std::string_view key) const;
  void fail(std::string_view key, std::string message);
  void missing(std::string_view key, std::string_view doc);

  bool read(const YAML::Node& n, const std::string& path, std::string& out);
  bool read(const YAML::Node& n, const std::string& path, bool& out);
  bool read(const YAML::Node& n, const std::string& path, std::uint32_t& out);
  bool read(const YAML::Node& n, const std::string& path, std::uint64_t& out);
  bool read(const YAML::Node& n, const std::string& path, double& out);
  bool read(const YAML::Node& n, const std::string& path, Duration& out);
  bool read(const YAML::Node& n, const std::string& path, Bytes& out);
  bool read(const YAML::Node& n, const std::string& path, WindowSize& out);
  bool read(const YAML::Node& n, const std::string& path, Workers& out);
  bool read(const YAML::Node& n, const std::string& path, std::vector<std::string>& out);
  bool read(const YAML::Node& n, const std::string& path, std::map<std::string, std::string>& out);
  bool read(const YAML::Node& n, const std::string& path, std::optional<std::vector<std::string>>& out);
  template <ConfigEnum E>
  bool read(const YAML::Node& n, const std::string& path, E& out);
  // The text of a scalar after ${VAR} interpolation; reports and returns nullopt otherwise.
  std::optional<std::string> scalar(const YAML::Node& n, const std::string& path, std::string_view expected);
  bool matchEnum(const std::string& text, const std::vector<std::string_view>& names, std::size_t& index,
                 const YAML::Node& n, const std::string& path);
  void report(const YAML::Node& n, const std::string& path, std::string message);

  template <Bounded T>
  static std::string show(T v);
  // A value as messages quote it; not at all while a secret is read (secretValue_).
  std::string quoted(std::string_view text) const;
  static bool holdsSecret(std::string_view key, Flags flags);

  LoadContext& ctx_;
  std::string path_;
  Location where_;
  std::vector<std::pair<std::string, YAML::Node>> entries_;
  std::map<std::string, Location, std::less<>> keyLocations_;
  std::vector<std::string> declared_;
  std::set<std::string, std::less<>> failed_;
  std::vector<std::pair<std::string, std::vector<std::string>>> foreign_;
  bool skipUnknown_ = false;
  std::string saturated_;     // the text of the last whole number read that was too large to hold
  bool secretValue_ = false;  // the value being read is a secret: messages do not quote it
};

// Where a node stands, 1-based; `fallback` when yaml-cpp has no mark for it (an empty value).
Location locationOf(const YAML::Node& n, Location fallback = {});
// How a node looks, for "found ..." in messages: 'text', a list, a mapping, nothing.
std::string describeNode(const YAML::Node& n);

template <Bounded T>
std::string Section::show(T v) {
  if constexpr (std::same_as<T, Duration>) {
    return formatDuration(v);
  } else if constexpr (std::same_as<T, Bytes>) {
    return formatBytes(v);
  } else if constexpr (std::is_floating_point_v<T>) {
    std::string s = std::to_string(v);
    s.erase(s.find_last_not_of('0') + 1);
    if (!s.empty() && s.back() == '.') s.pop_back();
    return s;
  } else {
    return std::to_string(v);
  }
}

template <class T>
void Section::field(std::string_view key, T& out, std::string_view doc, Limits<T> limits, Flags flags) {
  declared_.emplace_back(key);
  const YAML::Node* value = find(key);
  if (value == nullptr) {
    if (flags.required) missing(key, doc);
    return;
  }
  const std::string path = pathOf(key);
  ctx_.locations[path] = locationOf(*value, locate(key));
  T parsed{};
  saturated_.clear();
  secretValue_ = holdsSecret(key, flags);
  const bool good = read(*value, path, parsed);
  secretValue_ = false;
  if (!good) {
    failed_.emplace(key);
    return;
  }
  if constexpr (Bounded<T>) {
    const bool tooLarge = !saturated_.empty();
    const std::string found = tooLarge ? saturated_ : show(parsed);
    if (tooLarge && !limits.max) {
      fail(key, "number too large, found " + found);
      return;
    }
    if ((limits.min && parsed < *limits.min) || (limits.max && (tooLarge || parsed > *limits.max))) {
      std::string range;
      if (limits.min && limits.max) {
        range = "between " + show(*limits.min) + " and " + show(*limits.max);
      } else if (limits.min) {
        range = "at least " + show(*limits.min);
      } else {
        range = "at most " + show(*limits.max);
      }
      fail(key, "must be " + range + ", found " + found);
      return;
    }
  }
  if constexpr (std::same_as<T, std::string> || std::same_as<T, std::vector<std::string>>) {
    if (flags.required && parsed.empty()) {
      fail(key, "must not be empty (" + std::string(doc) + ")");
      return;
    }
  }
  out = std::move(parsed);
}

template <class T>
void Section::section(std::string_view key, T& out) {
  declared_.emplace_back(key);
  const YAML::Node* value = find(key);
  if (value == nullptr) return;
  const std::string path = pathOf(key);
  const Location at = locationOf(*value, locate(key));
  ctx_.locations[path] = at;
  if (!value->IsMap() && !value->IsNull()) {
    report(*value, path, "expected a mapping of keys, found " + describeNode(*value));
    failed_.emplace(key);
    return;
  }
  Section child(ctx_, *value, path, at);
  describe(child, out);
  if constexpr (Checked<T>) check(child, out);
  child.finish();
}

template <class T>
void Section::section(std::string_view key, std::optional<T>& out) {
  if (find(key) == nullptr) {
    declared_.emplace_back(key);
    return;
  }
  T value{};
  section(key, value);
  out = std::move(value);
}

template <class T>
void Section::list(std::string_view key, std::vector<T>& out, std::string_view doc, Flags flags) {
  declared_.emplace_back(key);
  const YAML::Node* value = find(key);
  if (value == nullptr) {
    if (flags.required) missing(key, doc);
    return;
  }
  const std::string path = pathOf(key);
  ctx_.locations[path] = locationOf(*value, locate(key));
  if (!value->IsSequence()) {
    report(*value, path, "expected a list of mappings (" + std::string(doc) + "), found " + describeNode(*value));
    failed_.emplace(key);
    return;
  }
  if (flags.required && value->size() == 0) {
    fail(key, "must list at least one entry (" + std::string(doc) + ")");
    return;
  }
  std::size_t i = 0;
  for (const auto& item : *value) {
    const std::string itemPath = path + "[" + std::to_string(i++) + "]";
    const Location at = locationOf(item, ctx_.locations[path]);
    ctx_.locations[itemPath] = at;
    if (!item.IsMap()) {
      report(item, itemPath, "expected a mapping of keys, found " + describeNode(item));
      continue;
    }
    T entry{};
    Section child(ctx_, item, itemPath, at);
    describe(child, entry);
    if constexpr (Checked<T>) check(child, entry);
    child.finish();
    out.push_back(std::move(entry));
  }
}

template <ConfigEnum E>
bool Section::read(const YAML::Node& n, const std::string& path, E& out) {
  std::vector<std::string_view> names;
  for (const auto& [e, name] : enumNames(E{})) names.emplace_back(name);
  std::string expected = "one of ";
  for (std::size_t i = 0; i < names.size(); ++i) expected += (i ? ", " : "") + std::string(names[i]);
  const auto text = scalar(n, path, expected);
  if (!text) return false;
  std::size_t index = 0;
  if (!matchEnum(*text, names, index, n, path)) return false;
  out = enumNames(E{})[index].first;
  return true;
}

}  // namespace logcapture::config
