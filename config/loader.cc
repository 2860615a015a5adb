#include "config/loader.h"

#include "base/utf8.h"

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/parser.h>
#include <yaml-cpp/yaml.h>

#include <sys/stat.h>
#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace logcapture::config {
namespace {

[[noreturn]] void fileError(const std::string& file, std::string message, Location at = {}) {
  throw ConfigError({Diagnostic{file, at, "", std::move(message)}});
}

// yaml-cpp accepts bytes that are no text at all; say so plainly, where it happens.
void requireText(std::string_view text, const std::string& file) {
  int line = 1;
  int column = 1;
  for (std::size_t i = 0; i < text.size();) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if (byte == 0) {
      fileError(file, "the file holds a NUL byte, so it is not a YAML text file; is this the right file?",
                {line, column});
    }
    const std::size_t length = base::utf8SequenceLength(text, i);
    if (length == 0) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02x", byte);
      fileError(file, std::string("invalid UTF-8 (byte ") + hex + "): a config file must be UTF-8 text",
                {line, column});
    }
    if (byte == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
    i += length;
  }
}

// yaml-cpp reports errors found at the end of input past the last line; point at the last character
// instead, where the reader can see what is unfinished.
Location withinText(std::string_view text, const YAML::Mark& mark) {
  if (mark.line < 0) return {};
  std::string_view body = text;
  while (!body.empty() && (body.back() == '\n' || body.back() == '\r')) body.remove_suffix(1);
  const int lines = static_cast<int>(std::count(body.begin(), body.end(), '\n')) + 1;
  if (mark.line + 1 <= lines && static_cast<std::size_t>(mark.pos) < body.size()) {
    return {mark.line + 1, mark.column + 1};
  }
  const auto lastStart = body.rfind('\n');
  const auto lastLength = body.size() - (lastStart == std::string_view::npos ? 0 : lastStart + 1);
  return {lines, static_cast<int>(std::max<std::size_t>(lastLength, 1))};
}

// yaml-cpp 0.7 reads a ',' outside any flow collection as an empty document without moving past it, so
// LoadAll() collects empty documents until memory runs out. Walk the documents first: where one starts
// where the one before started, the parser is stuck.
std::optional<YAML::Mark> stuckAt(const std::string& text) {
  struct DocumentStarts : YAML::EventHandler {
    std::vector<YAML::Mark> starts;
    void OnDocumentStart(const YAML::Mark& mark) override { starts.push_back(mark); }
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
    void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
    void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
    void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
    void OnMapEnd() override {}
  } documents;
  std::istringstream in(text);
  YAML::Parser parser(in);
  while (parser.HandleNextDocument(documents)) {
    const auto n = documents.starts.size();
    if (n >= 2 && documents.starts[n - 1].pos == documents.starts[n - 2].pos) return documents.starts[n - 1];
  }
  return std::nullopt;
}

}  // namespace

EnvLookup processEnvironment() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
}

Loaded loadFile(const std::string& path, const EnvLookup& env) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    fileError(path, std::string("cannot read the config file: ") + std::strerror(errno) +
                        (errno == ENOENT ? "; pass the right path with -c FILE" : ""));
  }
  if (S_ISDIR(st.st_mode)) fileError(path, "is a directory; pass the path of the YAML file with -c FILE");
  if (!S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode) && !S_ISCHR(st.st_mode)) {
    fileError(path, "is not a regular file; pass the path of the YAML file with -c FILE");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) fileError(path, std::string("cannot open the config file: ") + std::strerror(errno));
  std::string text;
  char buffer[65536];
  while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
    text.append(buffer, static_cast<std::size_t>(in.gcount()));
    if (text.size() > kMaxConfigBytes) {
      fileError(path, "the file is larger than " + formatBytes(Bytes{kMaxConfigBytes}) +
                          "; a config file is far smaller, is this the right file?");
    }
  }
  if (in.bad()) fileError(path, std::string("error reading the config file: ") + std::strerror(errno));
  const auto baseDir = std::filesystem::absolute(std::filesystem::path(path)).parent_path();
  return loadString(text, path, baseDir, env);
}

Loaded loadString(std::string_view text, const std::string& name, const std::filesystem::path& baseDir,
                  const EnvLookup& env) {
  if (text.size() > kMaxConfigBytes) {
    fileError(name, "the file is larger than " + formatBytes(Bytes{kMaxConfigBytes}) +
                        "; a config file is far smaller, is this the right file?");
  }
  requireText(text, name);
  std::vector<YAML::Node> documents;
  std::optional<YAML::Mark> stuck;
  try {
    const std::string copy(text);
    stuck = stuckAt(copy);
    if (!stuck) documents = YAML::LoadAll(copy);
  } catch (const YAML::DeepRecursion& e) {
    fileError(
        name,
        "invalid YAML: nested deeper than " + std::to_string(e.depth()) + " levels; a config file needs a handful",
        withinText(text, e.mark));
  } catch (const YAML::Exception& e) {
    fileError(name, "invalid YAML: " + e.msg, withinText(text, e.mark));
  } catch (const std::exception& e) {
    fileError(name, std::string("invalid YAML: ") + e.what());
  }
  if (stuck) {
    const auto pos = static_cast<std::size_t>(stuck->pos);
    fileError(
        name,
        pos < text.size() ? "invalid YAML: unexpected '" + std::string(text.substr(pos, 1)) + "'" : "invalid YAML",
        withinText(text, *stuck));
  }
  if (documents.empty() || documents.front().IsNull()) {
    fileError(name,
              "the file is empty (or holds only comments); it needs at least 'inputs:' and 'sinks:' (see capture.yaml)",
              {1, 1});
  }
  if (documents.size() > 1) {
    fileError(name,
              "the file holds " + std::to_string(documents.size()) +
                  " YAML documents (separated by ---); put the whole configuration in one",
              locationOf(documents[1], {1, 1}));
  }
  const YAML::Node& root = documents.front();
  if (!root.IsMap()) {
    fileError(name, "the top level must be a mapping with agent, inputs, queue and sinks; found " + describeNode(root),
              locationOf(root, {1, 1}));
  }

  LoadContext ctx;
  ctx.file = name;
  ctx.baseDir = baseDir;
  ctx.env = env;
  Loaded loaded;
  loaded.config.file = name;
  Section section(ctx, root, "", locationOf(root, {1, 1}));
  describe(section, loaded.config);
  check(section, loaded.config);
  section.finish();
  if (!ctx.errors.empty()) {
    std::stable_sort(ctx.errors.begin(), ctx.errors.end(), [](const Diagnostic& a, const Diagnostic& b) {
      return std::pair(a.at.line, a.at.column) < std::pair(b.at.line, b.at.column);
    });
    throw ConfigError(std::move(ctx.errors));
  }
  loaded.warnings = std::move(ctx.warnings);
  return loaded;
}

}  // namespace logcapture::config
