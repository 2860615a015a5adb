#include "agent/line_splitter.h"

namespace logcapture::agent {

std::size_t utf8Cut(std::string_view text, std::size_t limit) {
  if (text.size() <= limit) return text.size();
  std::size_t cut = limit;
  // Step back over continuation bytes (10xxxxxx) to the start of the sequence the limit splits.
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return cut;
}

}  // namespace logcapture::agent
