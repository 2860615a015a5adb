#include "config/printer.h"

#include <yaml-cpp/yaml.h>

#include <charconv>

#include "config/redact.h"
#include "config/units.h"

namespace logcapture::config {
namespace {

// The visitor that writes each declared key back out, through the same describe() functions.
class Printer {
 public:
  // `redact`: secrets are written as <redacted>, for output a human reads (config/redact.h has the rules).
  Printer(YAML::Emitter& out, bool redact) : out_(out), redact_(redact) {}

  template <class T>
  void field(std::string_view key, const T& value, std::string_view, Limits<T> = {}, Flags flags = {}) {
    if constexpr (std::is_same_v<T, std::optional<std::vector<std::string>>>) {
      if (!value) return;  // absent means "the default"; there is no literal for it
    }
    out_ << YAML::Key << std::string(key) << YAML::Value;
    if (redact_ && (flags.secret || isSecretName(key)) && !isEmpty(value)) {
      out_ << std::string(kRedacted);
    } else if constexpr (std::is_same_v<T, std::map<std::string, std::string>>) {
      emit(value, key == "headers" ? isCredentialHeader : isSecretName);
    } else {
      emit(value);
    }
  }
  template <class T>
  void field(std::string_view key, const T& value, std::string_view doc, Flags flags) {
    field(key, value, doc, Limits<T>{}, flags);
  }
  template <class T>
  void section(std::string_view key, T& value) {
    out_ << YAML::Key << std::string(key) << YAML::Value << YAML::BeginMap;
    describe(*this, value);
    out_ << YAML::EndMap;
  }
  template <class T>
  void section(std::string_view key, std::optional<T>& value) {
    if (value) section(key, *value);
  }
  template <class T>
  void list(std::string_view key, std::vector<T>& values, std::string_view, Flags = {}) {
    out_ << YAML::Key << std::string(key) << YAML::Value << YAML::BeginSeq;
    for (auto& v : values) {
      out_ << YAML::BeginMap;
      describe(*this, v);
      out_ << YAML::EndMap;
    }
    out_ << YAML::EndSeq;
  }
  template <class T>
  void flatten(T& part) {
    describe(*this, part);
  }
  bool ok(std::string_view) const { return true; }
  void noteForeignKeys(std::string, std::vector<std::string>) {}
  void skipUnknownKeys() {}

 private:
  template <class T>
  static bool isEmpty(const T& v) {
    if constexpr (std::is_same_v<T, std::string> || std::is_same_v<T, std::map<std::string, std::string>>) {
      return v.empty();
    } else {
      return false;
    }
  }

  // A value a human reads: credentials inside URLs hidden.
  std::string shown(const std::string& v) const { return redact_ ? redactUrl(v) : v; }

  // `$` is written as `$$` so that loading the output does not interpolate what was literal.
  static std::string escaped(const std::string& v) {
    std::string out;
    for (char ch : v) {
      out += ch;
      if (ch == '$') out += '$';
    }
    return out;
  }
  void emit(const std::string& v) { out_ << YAML::DoubleQuoted << escaped(shown(v)); }
  void emit(bool v) { out_ << (v ? "true" : "false"); }
  void emit(std::uint32_t v) { out_ << v; }
  void emit(std::uint64_t v) { out_ << v; }
  void emit(double v) {
    char buf[32];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);  // shortest form that reads back the same
    out_ << std::string(buf, ec == std::errc() ? end : buf);
  }
  void emit(Duration v) { out_ << formatDuration(v); }
  void emit(Bytes v) { out_ << formatBytes(v); }
  void emit(const Workers& v) {
    if (v.adaptive) {
      out_ << "auto";
    } else {
      out_ << v.count;
    }
  }
  void emit(const WindowSize& v) {
    if (const auto* calls = std::get_if<std::uint64_t>(&v.value)) {
      out_ << *calls;
    } else {
      out_ << formatDuration(std::get<Duration>(v.value));
    }
  }
  void emit(const std::vector<std::string>& v) {
    out_ << YAML::Flow << YAML::BeginSeq;
    for (const auto& s : v) out_ << YAML::DoubleQuoted << escaped(shown(s));
    out_ << YAML::EndSeq;
  }
  void emit(const std::optional<std::vector<std::string>>& v) { emit(*v); }
  // A mapping of names to values (librdkafka properties, headers, fields): `secret` says, by an entry's
  // name, whether its value is one.
  void emit(const std::map<std::string, std::string>& v, bool (*secret)(std::string_view) = nullptr) {
    out_ << YAML::Flow << YAML::BeginMap;
    for (const auto& [k, s] : v) {
      out_ << YAML::Key << k << YAML::Value;
      if (redact_ && secret != nullptr && secret(k) && !s.empty()) {
        out_ << std::string(kRedacted);
      } else {
        out_ << YAML::DoubleQuoted << escaped(shown(s));
      }
    }
    out_ << YAML::EndMap;
  }
  template <ConfigEnum E>
  void emit(E v) {
    out_ << std::string(enumName(v));
  }

  YAML::Emitter& out_;
  const bool redact_;
};

template <class T>
std::string print(const T& part, bool redact) {
  YAML::Emitter out;
  Printer printer(out, redact);
  T copy = part;  // describe() takes non-const references, shared with the loader
  out << YAML::BeginMap;
  describe(printer, copy);
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace

std::string toYaml(const Config& config) { return print(config, true); }

std::string canonical(const AgentConfig& part) { return print(part, false); }
std::string canonical(const InputConfig& part) { return print(part, false); }
std::string canonical(const QueueConfig& part) { return print(part, false); }
std::string canonical(const SinkConfig& part) { return print(part, false); }

}  // namespace logcapture::config
