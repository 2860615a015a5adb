// Multiline joining on arbitrary file contents, after any of the formats. The input: the settings byte
// of decoder_driver.h, a second byte (bits 0-1 the format: raw, json, docker or cri; bit 2 small limits:
// max_lines 3 and max_bytes 1 KiB), then the start pattern up to the first newline, then the file.

#include "base/line_pattern.h"
#include "tests/fuzz/decoder_driver.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace logcapture;
  if (size < 2) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 2, size - 2);
  const auto newline = rest.find('\n');
  if (newline == std::string_view::npos) return 0;
  config::InputConfig cfg;
  cfg.name = "fuzz";
  cfg.format = static_cast<config::InputFormat>(data[1] & 3);
  cfg.multiline.emplace();
  cfg.multiline->startPattern = std::string(rest.substr(0, newline));
  if (data[1] & 4) {
    cfg.multiline->maxLines = 3;
    cfg.multiline->maxBytes = config::Bytes{1024};
  }
  // Only patterns the config check accepts reach a decoder.
  std::string error;
  if (!base::LinePattern::compile(cfg.multiline->startPattern, error)) return 0;
  fuzz::decodeFile(cfg, data[0], rest.substr(newline + 1));
  return 0;
}
