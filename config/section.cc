#include "config/section.h"

#include "config/redact.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <limits>

namespace logcapture::config {
namespace {

std::size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t subst = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, subst});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& ch : out) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return out;
}

// The closest candidate when it is close enough to be a typo.
std::optional<std::string> closest(std::string_view word, const std::vector<std::string>& candidates) {
  std::optional<std::string> best;
  std::size_t bestDistance = std::max<std::size_t>(2, word.size() / 3) + 1;
  for (const auto& c : candidates) {
    const std::size_t d = editDistance(lower(word), lower(c));
    if (d < bestDistance) {
      bestDistance = d;
      best = c;
    }
  }
  return best;
}

std::string quote(std::string_view s) {
  constexpr std::size_t kMax = 60;
  std::string out = "'";
  for (char ch : s.substr(0, kMax)) {
    if (static_cast<unsigned char>(ch) < 0x20) {
      out += ch == '\n' ? "\\n" : ch == '\t' ? "\\t" : "?";
    } else {
      out += ch;
    }
  }
  out += s.size() > kMax ? "...'" : "'";
  return out;
}

bool validEnvName(std::string_view name) {
  if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0]))) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char ch) { return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_'; });
}

}  // namespace

Location locationOf(const YAML::Node& n, Location fallback) {
  // yaml-cpp places an empty value at the token after it (often the next line); its key is where
  // the reader should look.
  if (n.IsNull() && fallback.line > 0) return fallback;
  const YAML::Mark m = n.Mark();
  if (m.is_null() || m.line < 0) return fallback;
  return Location{m.line + 1, m.column + 1};
}

std::string describeNode(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Scalar:
      return quote(n.Scalar());
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return "nothing";
  }
  return "nothing";
}

std::string Section::quoted(std::string_view text) const {
  return secretValue_ ? "a value not shown (the key holds a secret)" : quote(text);
}

bool Section::holdsSecret(std::string_view key, Flags flags) { return flags.secret || isSecretName(key); }

Section::Section(LoadContext& ctx, const YAML::Node& node, std::string path, Location where)
    : ctx_(ctx), path_(std::move(path)), where_(where) {
  if (!node.IsMap()) return;
  for (auto it = node.begin(); it != node.end(); ++it) {
    // Copies: it-> yields a temporary proxy, references into it would dangle.
    const YAML::Node keyNode = it->first;
    const YAML::Node valueNode = it->second;
    const Location keyAt = locationOf(keyNode, where_);
    if (!keyNode.IsScalar()) {
      ctx_.errors.push_back({ctx_.file, keyAt, path_, "a key must be a plain word, found " + describeNode(keyNode)});
      continue;
    }
    const std::string key = keyNode.Scalar();
    if (auto seen = keyLocations_.find(key); seen != keyLocations_.end()) {
      ctx_.errors.push_back(
          {ctx_.file, keyAt, pathOf(key),
           "duplicate key; it is already set at line " + std::to_string(seen->second.line) + ", remove one of them"});
      continue;
    }
    keyLocations_.emplace(key, keyAt);
    entries_.emplace_back(key, valueNode);
  }
}

const YAML::Node* Section::find(std::string_view key) const {
  for (const auto& [k, v] : entries_) {
    if (k == key) return &v;
  }
  return nullptr;
}

Location Section::locate(std::string_view key) const {
  if (auto it = keyLocations_.find(key); it != keyLocations_.end()) return it->second;
  return where_;
}

std::string Section::pathOf(std::string_view key) const {
  return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
}

void Section::report(const YAML::Node& n, const std::string& path, std::string message) {
  const auto known = ctx_.locations.find(path);
  const Location fallback = known != ctx_.locations.end() ? known->second : where_;
  ctx_.errors.push_back({ctx_.file, locationOf(n, fallback), path, std::move(message)});
}

void Section::fail(std::string_view key, std::string message) {
  failed_.emplace(key);
  error(key, std::move(message));
}

void Section::missing(std::string_view key, std::string_view doc) {
  failed_.emplace(key);
  ctx_.errors.push_back({ctx_.file, where_, path_.empty() ? std::string(key) : pathOf(key),
                         "required key '" + std::string(key) + "' is missing (" + std::string(doc) + ")"});
}

void Section::error(std::string_view key, std::string message) {
  const std::string path = pathOf(key);
  const auto known = ctx_.locations.find(path);
  const Location at = known != ctx_.locations.end() ? known->second : locate(key);
  ctx_.errors.push_back({ctx_.file, at, path, std::move(message)});
}

void Section::warning(std::string_view key, std::string message) {
  const std::string path = pathOf(key);
  const auto known = ctx_.locations.find(path);
  const Location at = known != ctx_.locations.end() ? known->second : locate(key);
  ctx_.warnings.push_back({ctx_.file, at, path, std::move(message)});
}

void Section::errorAt(const std::string& path, std::string message) {
  const auto known = ctx_.locations.find(path);
  ctx_.errors.push_back({ctx_.file, known != ctx_.locations.end() ? known->second : where_, path, std::move(message)});
}

std::string Section::resolvePath(std::string_view p) const {
  if (p.empty()) return {};
  std::filesystem::path path{std::string(p)};
  if (path.is_absolute() || ctx_.baseDir.empty()) return path.lexically_normal().string();
  return (ctx_.baseDir / path).lexically_normal().string();
}

void Section::noteForeignKeys(std::string owner, std::vector<std::string> keys) {
  foreign_.emplace_back(std::move(owner), std::move(keys));
}

void Section::finish() {
  if (skipUnknown_) return;
  for (const auto& [key, value] : entries_) {
    if (std::find(declared_.begin(), declared_.end(), key) != declared_.end()) continue;
    std::string message = "unknown key '" + key + "'";
    std::vector<std::string> owners;
    for (const auto& [owner, keys] : foreign_) {
      if (std::find(keys.begin(), keys.end(), key) != keys.end()) owners.push_back(owner);
    }
    if (!owners.empty()) {
      message += "; it is a key of ";
      for (std::size_t i = 0; i < owners.size(); ++i) message += (i ? " and " : "") + owners[i];
      message += ", not of this one";
    } else if (auto suggestion = closest(key, declared_)) {
      message += "; did you mean '" + *suggestion + "'?";
    } else {
      std::string valid;
      for (const auto& d : declared_) valid += (valid.empty() ? "" : ", ") + d;
      message += "; valid keys here: " + valid;
    }
    ctx_.errors.push_back({ctx_.file, locate(key), pathOf(key), message});
  }
}

std::optional<std::string> Section::scalar(const YAML::Node& n, const std::string& path, std::string_view expected) {
  if (!n.IsScalar()) {
    report(n, path, "expected " + std::string(expected) + ", found " + describeNode(n));
    return std::nullopt;
  }
  const std::string& raw = n.Scalar();
  if (raw.find('$') == std::string::npos) return raw;
  // ${VAR} and ${VAR:-default}; $$ is a literal $. Interpolated after parsing, so a value never
  // changes the YAML structure.
  std::string out;
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] != '$') {
      out += raw[i];
      continue;
    }
    if (i + 1 < raw.size() && raw[i + 1] == '$') {
      out += '$';
      ++i;
      continue;
    }
    if (i + 1 >= raw.size() || raw[i + 1] != '{') {
      out += '$';
      continue;
    }
    const std::size_t close = raw.find('}', i + 2);
    if (close == std::string::npos) {
      report(n, path,
             "unterminated ${ in " + quoted(raw) + "; write ${NAME} or ${NAME:-default}, or $$ for a literal $");
      return std::nullopt;
    }
    const std::string body = raw.substr(i + 2, close - i - 2);
    const std::size_t sep = body.find(":-");
    const std::string name = body.substr(0, sep);
    if (!validEnvName(name)) {
      report(n, path,
             "invalid environment variable name " + quote(name) +
                 " in ${...}; names are letters, digits and _, not starting with a digit");
      return std::nullopt;
    }
    std::optional<std::string> value = ctx_.env ? ctx_.env(name) : std::nullopt;
    if (!value) {
      if (sep == std::string::npos) {
        report(n, path,
               "environment variable " + name + " is not set; set it, or give a default with ${" + name + ":-default}");
        return std::nullopt;
      }
      value = body.substr(sep + 2);
    }
    out += *value;
    i = close;
  }
  return out;
}

bool Section::matchEnum(const std::string& text, const std::vector<std::string_view>& names, std::size_t& index,
                        const YAML::Node& n, const std::string& path) {
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (lower(names[i]) == lower(text)) {
      index = i;
      return true;
    }
  }
  std::vector<std::string> candidates(names.begin(), names.end());
  std::string message = "expected one of ";
  for (std::size_t i = 0; i < names.size(); ++i) message += (i ? ", " : "") + std::string(names[i]);
  message += "; found " + quoted(text);
  if (auto suggestion = closest(text, candidates)) message += "; did you mean '" + *suggestion + "'?";
  report(n, path, message);
  return false;
}

bool Section::read(const YAML::Node& n, const std::string& path, std::string& out) {
  auto text = scalar(n, path, "a string");
  if (!text) return false;
  out = std::move(*text);
  return true;
}

bool Section::read(const YAML::Node& n, const std::string& path, bool& out) {
  auto text = scalar(n, path, "true or false");
  if (!text) return false;
  const std::string v = lower(*text);
  if (v == "true" || v == "yes" || v == "on") {
    out = true;
  } else if (v == "false" || v == "no" || v == "off") {
    out = false;
  } else {
    report(n, path, "expected true or false, found " + quoted(*text));
    return false;
  }
  return true;
}

namespace {

template <class U>
bool parseUnsigned(const std::string& text, U& out) {
  const char* first = text.data();
  const char* last = text.data() + text.size();
  auto [end, ec] = std::from_chars(first, last, out);
  return ec == std::errc() && end == last;
}

}  // namespace

bool Section::read(const YAML::Node& n, const std::string& path, std::uint64_t& out) {
  auto text = scalar(n, path, "a whole number");
  if (!text) return false;
  if (parseUnsigned(*text, out)) return true;
  const bool digits = !text->empty() && std::all_of(text->begin(), text->end(), [](char ch) {
    return std::isdigit(static_cast<unsigned char>(ch));
  });
  if (digits) {  // too large to hold: the range check names the limits and shows the text as written
    out = std::numeric_limits<std::uint64_t>::max();
    saturated_ = *text;
    return true;
  }
  const bool negative = !text->empty() && (*text)[0] == '-';
  report(n, path,
         negative ? "must not be negative, found " + quoted(*text) : "expected a whole number, found " + quoted(*text));
  return false;
}

bool Section::read(const YAML::Node& n, const std::string& path, std::uint32_t& out) {
  std::uint64_t wide = 0;
  if (!read(n, path, wide)) return false;
  if (wide > std::numeric_limits<std::uint32_t>::max()) {
    if (saturated_.empty()) saturated_ = std::to_string(wide);
    wide = std::numeric_limits<std::uint32_t>::max();
  }
  out = static_cast<std::uint32_t>(wide);
  return true;
}

bool Section::read(const YAML::Node& n, const std::string& path, double& out) {
  auto text = scalar(n, path, "a number");
  if (!text) return false;
  const char* first = text->data();
  const char* last = first + text->size();
  if (first != last && *first == '+') ++first;
  auto [end, ec] = std::from_chars(first, last, out);
  if (ec != std::errc() || end != last || first == last || !std::isfinite(out)) {
    report(n, path, "expected a number, found " + quoted(*text));
    return false;
  }
  return true;
}

bool Section::read(const YAML::Node& n, const std::string& path, Duration& out) {
  auto text = scalar(n, path, "a duration");
  if (!text) return false;
  auto d = parseDuration(*text);
  if (!d) {
    const bool bare = !text->empty() && std::all_of(text->begin(), text->end(), [](char ch) {
      return std::isdigit(static_cast<unsigned char>(ch));
    });
    report(n, path,
           std::string("expected a duration such as 250ms, 30s, 5m or 1h") + (bare ? " (a number needs a unit)" : "") +
               ", found " + quoted(*text));
    return false;
  }
  out = *d;
  return true;
}

bool Section::read(const YAML::Node& n, const std::string& path, Bytes& out) {
  auto text = scalar(n, path, "a size");
  if (!text) return false;
  auto b = parseBytes(*text);
  if (!b) {
    report(n, path, "expected a size such as 512, 64KiB, 1MiB or 2GiB, found " + quoted(*text));
    return false;
  }
  out = *b;
  return true;
}

bool Section::read(const YAML::Node& n, const std::string& path, Workers& out) {
  if (n.IsScalar() && n.Scalar() == "auto") {
    out.adaptive = true;
    return true;
  }
  std::uint32_t count = 0;
  if (!read(n, path, count)) return false;
  if (count < 1 || count > 64 || !saturated_.empty()) {
    report(n, path,
           "must be between 1 and 64, found " + (saturated_.empty() ? std::to_string(count) : saturated_));
    return false;
  }
  out.count = count;
  return true;
}

bool Section::read(const YAML::Node& n, const std::string& path, WindowSize& out) {
  auto text = scalar(n, path, "a number of calls or a duration");
  if (!text) return false;
  std::uint64_t calls = 0;
  if (parseUnsigned(*text, calls)) {
    out.value = calls;
    return true;
  }
  if (auto d = parseDuration(*text)) {
    out.value = *d;
    return true;
  }
  report(n, path,
         "expected a number of calls (type: count) or a duration such as 60s (type: time), found " + quoted(*text));
  return false;
}

bool Section::read(const YAML::Node& n, const std::string& path, std::vector<std::string>& out) {
  if (n.IsScalar()) {  // a single value stands for a list of one
    auto text = scalar(n, path, "a list of strings");
    if (!text) return false;
    out.push_back(std::move(*text));
    return true;
  }
  if (!n.IsSequence()) {
    report(n, path, "expected a list of strings, found " + describeNode(n));
    return false;
  }
  bool good = true;
  std::size_t i = 0;
  for (const auto& item : n) {
    const std::string itemPath = path + "[" + std::to_string(i++) + "]";
    ctx_.locations[itemPath] = locationOf(item, ctx_.locations[path]);
    auto text = scalar(item, itemPath, "a string");
    if (!text) {
      good = false;
      continue;
    }
    out.push_back(std::move(*text));
  }
  return good;
}

bool Section::read(const YAML::Node& n, const std::string& path, std::optional<std::vector<std::string>>& out) {
  std::vector<std::string> values;
  if (!read(n, path, values)) return false;
  out = std::move(values);
  return true;
}

bool Section::read(const YAML::Node& n, const std::string& path, std::map<std::string, std::string>& out) {
  if (n.IsNull()) return true;
  if (!n.IsMap()) {
    report(n, path, "expected a mapping of names to values, found " + describeNode(n));
    return false;
  }
  bool good = true;
  for (auto it = n.begin(); it != n.end(); ++it) {
    const YAML::Node keyNode = it->first;
    const YAML::Node valueNode = it->second;
    if (!keyNode.IsScalar()) {
      report(keyNode, path, "a key must be a plain word, found " + describeNode(keyNode));
      good = false;
      continue;
    }
    const std::string key = keyNode.Scalar();
    const std::string itemPath = path + "." + key;
    ctx_.locations[itemPath] = locationOf(valueNode, locationOf(keyNode));
    if (out.contains(key)) {
      report(keyNode, itemPath, "duplicate key; remove one of them");
      good = false;
      continue;
    }
    // The entries of a mapping are named by the user (librdkafka properties, headers): the name says
    // whether the value is a secret.
    const bool headers = path.ends_with(".headers");
    const bool outer = secretValue_;
    secretValue_ = outer || (headers ? isCredentialHeader(key) : isSecretName(key));
    auto text = scalar(valueNode, itemPath, "a string, number or boolean");
    secretValue_ = outer;
    if (!text) {
      good = false;
      continue;
    }
    out.emplace(key, std::move(*text));
  }
  return good;
}

}  // namespace logcapture::config
