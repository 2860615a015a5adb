#pragma once

// Writing files that must survive a crash or a power loss: the checkpoint, the disk buffer's ledger,
// a breaker's saved state. Any thread; no state.

#include <filesystem>
#include <string>
#include <string_view>

namespace logcapture::base {

// Reads the whole file at `path` into `out`. Returns 0, or the errno of the open or read that failed.
int readFile(const std::string& path, std::string& out);

// Writes all of `data` to `fd`, through short writes and EINTR. False on failure, with errno set.
bool writeAll(int fd, std::string_view data);

// Replaces `file` by `data` so that a crash at any point leaves either the old or the new file whole:
// `temp` written and fsynced, renamed over `file`, its directory fsynced. A missing directory is made
// (`temp` and `file` share it). Returns why it failed, empty on success (`temp` is then gone).
std::string replaceFile(const std::filesystem::path& file, const std::filesystem::path& temp, std::string_view data);

}  // namespace logcapture::base
