// The decoder of format: json on arbitrary file contents (see decoder_driver.h for the settings byte).

#include "tests/fuzz/decoder_driver.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  logcapture::config::InputConfig cfg;
  cfg.name = "fuzz";
  cfg.format = logcapture::config::InputFormat::Json;
  logcapture::fuzz::decodeFile(cfg, data[0], std::string_view(reinterpret_cast<const char*>(data) + 1, size - 1));
  return 0;
}
