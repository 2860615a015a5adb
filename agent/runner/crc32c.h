#pragma once

// CRC32C (Castagnoli), the checksum of each disk buffer frame. zlib offers only the IEEE CRC32; CRC32C
// detects more of the errors a disk makes (burst and bit flips) and x86 computes it in hardware
// (SSE4.2), so it is what storage formats use (iSCSI, ext4 metadata, Kafka record batches).
//
// Any thread; no state.

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace logcapture::agent {

// The CRC32C of `data`, continuing from `crc` (0 to start).
std::uint32_t crc32c(std::string_view data, std::uint32_t crc = 0);

}  // namespace logcapture::agent
