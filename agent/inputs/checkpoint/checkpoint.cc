#include "agent/inputs/checkpoint/checkpoint.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "base/durable_file.h"
#include "base/json_text.h"
#include "base/log.h"

namespace logcapture::agent::checkpoint {

namespace {

using Json = nlohmann::json;
using SystemClock = std::chrono::system_clock;

// pread until `want` bytes or end of file. nullopt on an error.
std::optional<std::size_t> readPrefix(int fd, char* buf, std::size_t want) {
  std::size_t got = 0;
  while (got < want) {
    const ssize_t n = ::pread(fd, buf + got, want - got, static_cast<off_t>(got));
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::nullopt;
    }
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  return got;
}

std::string hex64(std::uint64_t v) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s(16, '0');
  for (int i = 15; i >= 0; --i, v >>= 4) s[static_cast<std::size_t>(i)] = kDigits[v & 0xf];
  return s;
}

std::optional<std::uint64_t> parseHex64(const std::string& s) {
  if (s.size() != 16) return std::nullopt;
  std::uint64_t v = 0;
  for (const char c : s) {
    int d = 0;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      d = c - 'A' + 10;
    } else {
      return std::nullopt;
    }
    v = (v << 4) | static_cast<std::uint64_t>(d);
  }
  return v;
}

std::uint64_t toUnixMs(SystemClock::time_point t) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  return ms < 0 ? 0 : static_cast<std::uint64_t>(ms);
}

// The largest last_seen that converts back to a time_point without overflowing.
constexpr std::uint64_t kMaxUnixMs = static_cast<std::uint64_t>(
    std::chrono::duration_cast<std::chrono::milliseconds>(SystemClock::duration::max()).count());

// The inputs that have started, with when each last ran.
using Marks = std::map<std::string, SystemClock::time_point, std::less<>>;

// The file is written by hand rather than through a DOM: with thousands of files it is written at every
// coalesced save while lines flow, and a DOM per entry cost more than the rest of the save. Keys in
// the order a DOM writes them (sorted). A Linux path is bytes, not necessarily UTF-8; JSON needs UTF-8.
// The path is informational (identity is device+inode+fingerprint), so invalid sequences become U+FFFD
// rather than failing.
void appendString(std::string& out, std::string_view text) {
  base::appendJsonString(out, text, base::Utf8Count::Uncounted);
}

void appendNumber(std::string& out, std::uint64_t v) {
  char digits[20];
  const auto end = std::to_chars(digits, digits + sizeof digits, v).ptr;
  out.append(digits, end);
}

// An entry's line but for last_seen and offset, which change at every ack and touch: the part before
// them, "{...,\"input\":\"app\"", and the part after, ",\"path\":\"...\"}". Keys in sorted order.
std::pair<std::string, std::string> entryFixedParts(const Entry& e) {
  std::string head = "{\"device\":";
  appendNumber(head, e.id.device);
  head += ",\"fingerprint\":\"";
  head += hex64(e.id.fingerprint);
  head += "\",\"fingerprint_bytes\":";
  appendNumber(head, e.id.fingerprintBytes);
  head += ",\"inode\":";
  appendNumber(head, e.id.inode);
  head += ",\"input\":";
  appendString(head, e.input);
  std::string tail = ",\"path\":";
  appendString(tail, e.path);
  tail += '}';
  return {std::move(head), std::move(tail)};
}

// The unsigned integer at `key` of `obj`, if it is one and at most `max`.
std::optional<std::uint64_t> unsignedField(const Json& obj, const char* key, std::uint64_t max) {
  const auto it = obj.find(key);
  if (it == obj.end() || !it->is_number_unsigned()) return std::nullopt;
  const auto v = it->get<std::uint64_t>();
  if (v > max) return std::nullopt;
  return v;
}

const std::string* stringField(const Json& obj, const char* key) {
  const auto it = obj.find(key);
  if (it == obj.end() || !it->is_string()) return nullptr;
  const auto* s = it->get_ptr<const std::string*>();
  return s->empty() ? nullptr : s;
}

// Parses and validates the whole file; on failure returns the reason and leaves `out` and `marks` unspecified.
std::optional<std::string> parse(const std::string& text, std::vector<Entry>& out, Marks& marks) {
  Json doc;
  try {
    doc = Json::parse(text);
  } catch (const Json::exception& e) {
    return std::string("invalid JSON: ") + e.what();
  }
  if (!doc.is_object()) return "not a JSON object";
  const auto version = unsignedField(doc, "version", std::numeric_limits<std::uint64_t>::max());
  if (!version) return "version: missing or not a non-negative integer";
  if (*version != static_cast<std::uint64_t>(CheckpointStore::kVersion)) {
    return "unsupported version " + std::to_string(*version);
  }
  const auto files = doc.find("files");
  if (files == doc.end() || !files->is_array()) return "files: missing or not an array";
  if (const auto inputs = doc.find("inputs"); inputs != doc.end()) {
    if (!inputs->is_array()) return "inputs: not an array";
    std::size_t index = 0;
    for (const auto& i : *inputs) {
      const std::string at = "inputs[" + std::to_string(index++) + "].";
      if (!i.is_object()) return at.substr(0, at.size() - 1) + ": not an object";
      const auto* name = stringField(i, "name");
      if (!name) return at + "name: missing, empty or not a string";
      const auto lastSeen = unsignedField(i, "last_seen", kMaxUnixMs);
      if (!lastSeen) return at + "last_seen: missing or not a valid unix time in milliseconds";
      const SystemClock::time_point seen(
          std::chrono::duration_cast<SystemClock::duration>(std::chrono::milliseconds(*lastSeen)));
      if (!marks.emplace(*name, seen).second) return at + "name: " + *name + " listed twice";
    }
  }

  constexpr auto kU64 = std::numeric_limits<std::uint64_t>::max();
  constexpr auto kMaxOffset = static_cast<std::uint64_t>(std::numeric_limits<off_t>::max());
  std::size_t index = 0;
  for (const auto& f : *files) {
    const std::string at = "files[" + std::to_string(index++) + "].";
    if (!f.is_object()) return at.substr(0, at.size() - 1) + ": not an object";
    Entry e;
    const auto* input = stringField(f, "input");
    if (!input) return at + "input: missing, empty or not a string";
    const auto* path = stringField(f, "path");
    if (!path) return at + "path: missing, empty or not a string";
    const auto device = unsignedField(f, "device", kU64);
    if (!device) return at + "device: missing or not a non-negative integer";
    const auto inode = unsignedField(f, "inode", kU64);
    if (!inode) return at + "inode: missing or not a non-negative integer";
    const auto fpIt = f.find("fingerprint");
    const auto fingerprint = fpIt != f.end() && fpIt->is_string() ? parseHex64(fpIt->get<std::string>()) : std::nullopt;
    if (!fingerprint) return at + "fingerprint: missing or not 16 hex digits";
    const auto fpBytes = unsignedField(f, "fingerprint_bytes", kFingerprintBytes);
    if (!fpBytes) return at + "fingerprint_bytes: missing or not an integer in [0, 1024]";
    if (*fpBytes == 0 && *fingerprint != fingerprintOf({})) {
      return at + "fingerprint: does not match an empty prefix";
    }
    const auto offset = unsignedField(f, "offset", kMaxOffset);
    if (!offset) return at + "offset: missing or not an integer in [0, 2^63)";
    const auto lastSeen = unsignedField(f, "last_seen", kMaxUnixMs);
    if (!lastSeen) return at + "last_seen: missing or not a valid unix time in milliseconds";

    e.input = *input;
    e.path = *path;
    e.id = FileId{*device, *inode, *fingerprint, static_cast<std::uint32_t>(*fpBytes)};
    e.offset = *offset;
    e.lastSeen = SystemClock::time_point(
        std::chrono::duration_cast<SystemClock::duration>(std::chrono::milliseconds(*lastSeen)));
    out.push_back(std::move(e));
  }
  return std::nullopt;
}

std::string errnoText(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

}  // namespace

std::optional<std::string> parseCheckpoints(const std::string& text, std::vector<Entry>& out) {
  Marks marks;
  return parse(text, out, marks);
}

// FNV-1a, 64 bits. The fingerprint is stored on disk, so the hash must be fixed forever and the same
// on every platform (std::hash is neither). It only has to tell apart two files that came to share an
// inode, which is not adversarial (whoever can write the log file can write any line anyway), so a
// cryptographic hash buys nothing; and 1 KiB hashed when a file is opened costs about a microsecond,
// so a faster (and much longer) xxHash-like function would buy nothing either.
std::uint64_t fingerprintOf(std::string_view bytes) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (const char c : bytes) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  return h;
}

std::optional<FileId> identify(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return std::nullopt;
  std::array<char, kFingerprintBytes> buf{};
  const auto got = readPrefix(fd, buf.data(), buf.size());
  if (!got) return std::nullopt;
  return FileId{static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino),
                fingerprintOf(std::string_view(buf.data(), *got)), static_cast<std::uint32_t>(*got)};
}

Match compare(int fd, const FileId& stored) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return Match::Error;
  if (static_cast<std::uint64_t>(st.st_dev) != stored.device || static_cast<std::uint64_t>(st.st_ino) != stored.inode) {
    return Match::OtherFile;
  }
  std::array<char, kFingerprintBytes> buf{};
  const auto want = std::min<std::size_t>(stored.fingerprintBytes, buf.size());
  const auto got = readPrefix(fd, buf.data(), want);
  if (!got) return Match::Error;
  if (*got < stored.fingerprintBytes) return Match::Reused;  // shorter than what we hashed: not the same bytes
  return fingerprintOf(std::string_view(buf.data(), *got)) == stored.fingerprint ? Match::Same : Match::Reused;
}

bool sameFile(int fd, const FileId& stored) { return compare(fd, stored) == Match::Same; }

CheckpointStore::CheckpointStore(std::filesystem::path stateDir, std::chrono::seconds retention)
    : dir_(std::move(stateDir)), file_(dir_ / kFileName), temp_(dir_ / kTempName), retention_(retention) {}

LoadStatus CheckpointStore::load() {
  std::lock_guard saveLock(saveMutex_);
  auto logger = log::component("checkpoint");

  std::error_code ec;
  if (std::filesystem::remove(temp_, ec)) {
    log::event(*logger, spdlog::level::info, "checkpoint_temp_removed",
               {{"path", temp_.string()}, {"reason", "left by a save that did not finish"}});
  } else if (ec) {
    log::event(*logger, spdlog::level::warn, "checkpoint_temp_remove_failed",
               {{"path", temp_.string()}, {"error", ec.message()}});
  }

  auto setEntries = [&](const std::vector<Entry>& loaded, const Marks& marks) {
    std::lock_guard lock(mutex_);
    entries_.clear();
    for (const auto& e : loaded) entries_[Key{e.id.device, e.id.inode, e.input}] = Slot{e, e.lastSeen, {}};
    inputs_.clear();
    for (const auto& [name, lastSeen] : marks) inputs_[name] = Mark{lastSeen, lastSeen};
    savedGeneration_ = generation_;  // memory and disk agree now (a corrupt file was moved aside)
  };
  auto corrupt = [&](const std::string& reason, bool isDirectory) {
    setEntries({}, {});
    moveAside(reason, isDirectory);
    return LoadStatus::Corrupt;
  };

  const int fd = ::open(file_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      setEntries({}, {});
      log::event(*logger, spdlog::level::info, "checkpoints_missing",
                 {{"path", file_.string()}, {"reason", "first start, or the state directory was emptied"}});
      return LoadStatus::Missing;
    }
    return corrupt(errnoText("unreadable"), false);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const auto reason = errnoText("unreadable");
    ::close(fd);
    return corrupt(reason, false);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return corrupt("not a regular file", S_ISDIR(st.st_mode));
  }
  std::string text;
  std::array<char, std::size_t{64} * 1024> buf{};
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const auto reason = errnoText("unreadable");
      ::close(fd);
      return corrupt(reason, false);
    }
    if (n == 0) break;
    text.append(buf.data(), static_cast<std::size_t>(n));
  }
  ::close(fd);
  if (text.empty()) return corrupt("empty file", false);

  std::vector<Entry> loaded;
  Marks marks;
  if (auto error = parse(text, loaded, marks)) return corrupt(*error, false);
  std::map<Key, int> seen;
  for (const auto& e : loaded) {
    if (++seen[Key{e.id.device, e.id.inode, e.input}] > 1) {
      return corrupt("two entries of input " + e.input + " for device " + std::to_string(e.id.device) + " inode " +
                         std::to_string(e.id.inode),
                     false);
    }
  }
  setEntries(loaded, marks);
  log::event(*logger, spdlog::level::info, "checkpoints_loaded",
             {{"path", file_.string()}, {"files", loaded.size()}, {"inputs", marks.size()}});
  return LoadStatus::Loaded;
}

void CheckpointStore::moveAside(const std::string& reason, bool isDirectory) {
  auto logger = log::component("checkpoint");
  const auto unixTime = std::chrono::duration_cast<std::chrono::seconds>(SystemClock::now().time_since_epoch()).count();
  const std::string base = file_.string() + ".corrupt-" + std::to_string(unixTime);
  // Never overwrite an earlier corrupt file: it may be the one worth looking at.
  std::string aside = base;
  std::error_code ec;
  for (int n = 1; std::filesystem::symlink_status(aside, ec).type() != std::filesystem::file_type::not_found; ++n) {
    if (n > 1000) {
      aside.clear();
      break;
    }
    aside = base + "." + std::to_string(n);
  }
  if (!aside.empty() && ::rename(file_.c_str(), aside.c_str()) == 0) {
    log::event(*logger, spdlog::level::warn, "checkpoint_corrupt",
               {{"path", file_.string()},
                {"reason", reason},
                {"moved_to", aside},
                {"effect", "starting without checkpoints: files are read as never seen (start_at)"}});
    return;
  }
  const std::string moveError = aside.empty() ? "no free name" : std::strerror(errno);
  log::event(*logger, spdlog::level::err, "checkpoint_corrupt",
             {{"path", file_.string()},
              {"reason", reason},
              {"move_aside_error", moveError},
              {"effect", isDirectory ? "starting without checkpoints; they cannot be saved until the path is freed"
                                     : "starting without checkpoints; the next save replaces the file"}});
}

Lookup CheckpointStore::find(const std::string& input, int fd, std::uint64_t device, std::uint64_t inode) {
  const Key key{device, inode, input};
  Lookup found;
  {
    std::lock_guard lock(mutex_);
    const auto it = entries_.find(key);
    if (it == entries_.end()) return found;
    found.entry = it->second.entry;
  }
  // Reading the file's first bytes happens outside the lock: sink threads update offsets meanwhile.
  switch (compare(fd, found.entry.id)) {
    case Match::Same:
      found.kind = Lookup::Kind::Same;
      return found;
    case Match::OtherFile:
      return Lookup{};
    case Match::Error:
      found.kind = Lookup::Kind::Error;
      return found;
    case Match::Reused:
      break;
  }
  // Only this input's entry goes: another input's entry for the inode holds its own fingerprint and is
  // judged when that input opens the file.
  {
    std::lock_guard lock(mutex_);
    const auto it = entries_.find(key);
    // Unless an update() for the new file replaced it meanwhile.
    if (it != entries_.end() && it->second.entry.id == found.entry.id) {
      entries_.erase(it);
      noteChange(false);
    }
  }
  found.kind = Lookup::Kind::Replaced;
  return found;
}

bool CheckpointStore::beginInput(const std::string& input, SystemClock::time_point now) {
  std::lock_guard lock(mutex_);
  const auto [it, inserted] = inputs_.try_emplace(input, Mark{now, now});
  if (inserted) {
    noteChange(false);
    // A file written before marks existed knows the inputs that started by their entries.
    return std::any_of(entries_.begin(), entries_.end(), [&](const auto& kv) { return kv.first.input == input; });
  }
  if (now > it->second.lastSeen) it->second.lastSeen = now;
  if (lastSeenDirty(it->second.markedSeen, now)) {
    it->second.markedSeen = it->second.lastSeen;
    noteChange(false);
  }
  return true;
}

void CheckpointStore::touchInput(const std::string& input, SystemClock::time_point now) {
  std::lock_guard lock(mutex_);
  const auto it = inputs_.find(input);
  if (it == inputs_.end() || now <= it->second.lastSeen) return;
  it->second.lastSeen = now;
  if (lastSeenDirty(it->second.markedSeen, now)) {
    it->second.markedSeen = now;
    noteChange(false);
  }
}

bool CheckpointStore::lastSeenDirty(SystemClock::time_point markedSeen, SystemClock::time_point now) const {
  return now - markedSeen >= retention_ / 4;
}

void CheckpointStore::markChanged(Slot& s) {
  noteChange(false);
  s.markedSeen = s.entry.lastSeen;
}

void CheckpointStore::noteChange(bool offsetMoved) {
  ++generation_;
  if (changeNoted_) changeNoted_(offsetMoved);
}

void CheckpointStore::update(const std::string& input, const FileId& id, const std::string& path, std::uint64_t offset,
                             SystemClock::time_point now) {
  std::lock_guard lock(mutex_);
  const auto [it, inserted] = entries_.try_emplace(Key{id.device, id.inode, input});
  Slot& s = it->second;
  Entry& e = s.entry;
  const bool moved = e.id != id || e.path != path;  // the input is part of the key
  if (moved) s.fixed.reset();
  const bool changed = inserted || moved || e.offset != offset;
  e.id = id;
  e.path = path;
  e.offset = offset;
  e.input = input;
  const bool seenLater = inserted || now > e.lastSeen;  // a clock stepping back does not age the entry
  if (seenLater) e.lastSeen = now;
  if (changed) {
    s.markedSeen = e.lastSeen;
    noteChange(true);
  } else if (seenLater && lastSeenDirty(s.markedSeen, now)) {
    markChanged(s);
  }
}

void CheckpointStore::touch(const std::string& input, std::uint64_t device, std::uint64_t inode,
                            SystemClock::time_point now) {
  std::lock_guard lock(mutex_);
  const auto it = entries_.find(Key{device, inode, input});
  if (it == entries_.end() || now <= it->second.entry.lastSeen) return;
  it->second.entry.lastSeen = now;
  if (lastSeenDirty(it->second.markedSeen, now)) markChanged(it->second);
}

void CheckpointStore::remove(const std::string& input, std::uint64_t device, std::uint64_t inode) {
  std::lock_guard lock(mutex_);
  if (entries_.erase(Key{device, inode, input}) > 0) noteChange(false);
}

std::string CheckpointStore::serializeLocked() {
  // One entry per line, so a human (or diff) can read the file. "inputs" is optional for readers: a
  // file without it (written before it existed) loads with every input that has entries as started.
  std::string out = "{\"version\":" + std::to_string(kVersion) + ",\"inputs\":[";
  out.reserve(out.size() + 64 * inputs_.size() + 192 * entries_.size());
  bool first = true;
  for (const auto& [name, mark] : inputs_) {
    out += first ? "\n" : ",\n";
    first = false;
    out += "{\"last_seen\":";
    appendNumber(out, toUnixMs(mark.lastSeen));
    out += ",\"name\":";
    appendString(out, name);
    out += '}';
  }
  out += "\n],\"files\":[";
  first = true;
  for (auto& [key, slot] : entries_) {
    if (!slot.fixed) slot.fixed = entryFixedParts(slot.entry);
    out += first ? "\n" : ",\n";
    first = false;
    out += slot.fixed->first;
    out += ",\"last_seen\":";
    appendNumber(out, toUnixMs(slot.entry.lastSeen));
    out += ",\"offset\":";
    appendNumber(out, slot.entry.offset);
    out += slot.fixed->second;
  }
  out += "\n]}\n";
  return out;
}

bool CheckpointStore::save() {
  std::lock_guard saveLock(saveMutex_);
  std::uint64_t generation = 0;
  std::string text;
  {
    std::lock_guard lock(mutex_);
    if (generation_ == savedGeneration_) return true;
    generation = generation_;
    text = serializeLocked();
  }
  const auto error = base::replaceFile(file_, temp_, text);
  auto logger = log::component("checkpoint");
  if (!error.empty()) {
    saveFailures_.fetch_add(1, std::memory_order_relaxed);
    if (!failing_) {
      failing_ = true;
      log::event(*logger, spdlog::level::err, "checkpoint_save_failed",
                 {{"path", file_.string()},
                  {"error", error},
                  {"effect", "offsets are kept in memory and saved again; a restart now would repeat lines"}});
    }
    return false;
  }
  {
    std::lock_guard lock(mutex_);
    savedGeneration_ = generation;
  }
  saves_.fetch_add(1, std::memory_order_relaxed);
  if (failing_) {
    failing_ = false;
    log::event(*logger, spdlog::level::info, "checkpoint_save_recovered",
               {{"path", file_.string()}, {"failures", saveFailures()}});
  }
  return true;
}

std::size_t CheckpointStore::expire(SystemClock::time_point now) {
  std::size_t dropped = 0;
  {
    std::lock_guard lock(mutex_);
    dropped = std::erase_if(entries_, [&](const auto& kv) { return now - kv.second.entry.lastSeen > retention_; });
    const auto marks = std::erase_if(inputs_, [&](const auto& kv) { return now - kv.second.lastSeen > retention_; });
    if (dropped > 0 || marks > 0) noteChange(false);
  }
  if (dropped > 0) {
    expired_.fetch_add(dropped, std::memory_order_relaxed);
    log::event(*log::component("checkpoint"), spdlog::level::info, "checkpoints_expired",
               {{"files", dropped}, {"retention_s", static_cast<std::int64_t>(retention_.count())}});
  }
  return dropped;
}

std::vector<std::string> CheckpointStore::startedInputs() const {
  std::lock_guard lock(mutex_);
  std::vector<std::string> out;
  out.reserve(inputs_.size());
  for (const auto& [name, mark] : inputs_) out.push_back(name);
  return out;
}

std::vector<Entry> CheckpointStore::entries() const {
  std::lock_guard lock(mutex_);
  std::vector<Entry> out;
  out.reserve(entries_.size());
  for (const auto& [key, slot] : entries_) out.push_back(slot.entry);
  return out;
}

CheckpointSaver::CheckpointSaver(CheckpointStore& store, std::chrono::milliseconds interval)
    : store_(store), interval_(interval) {
  store_.onChange([this](bool offsetMoved) {
    {
      std::lock_guard lock(mutex_);
      // The saver knows already: no wake-up per ack or per mark.
      if (offsetMoved) {
        if (moved_) return;
        moved_ = true;
      } else {
        if (dueAt_) return;
        dueAt_ = std::chrono::steady_clock::now() + interval_;
      }
    }
    wake_.notify_one();
  });
}

CheckpointSaver::~CheckpointSaver() {
  stop();
  store_.onChange({});  // the store may outlive this saver
}

void CheckpointSaver::start() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = false;
    // Whatever changed before the saver listened is written within the first interval.
    dueAt_ = std::chrono::steady_clock::now() + interval_;
  }
  thread_ = std::thread([this] { log::guardThread("checkpoint", [this] { run(); }); });
}

void CheckpointSaver::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void CheckpointSaver::run() {
  using Clock = std::chrono::steady_clock;
  std::unique_lock lock(mutex_);
  while (true) {
    // Sleeps until an offset moves, another change comes due, or the stop: an idle agent has no saves
    // to look at, so this thread does not wake at all.
    const auto due = [this] { return stopping_ || moved_ || (dueAt_ && Clock::now() >= *dueAt_); };
    while (!due()) {
      if (dueAt_) {
        wake_.wait_until(lock, *dueAt_);
      } else {
        wake_.wait(lock);
      }
    }
    if (stopping_) return;
    moved_ = false;
    dueAt_.reset();
    lock.unlock();
    const auto started = Clock::now();
    bool saved = false;
    // A failure is logged by the store and retried at the next interval; so is one that throws (no
    // memory to serialise), which must not end the thread that keeps every checkpoint moving.
    try {
      saved = store_.save();
    } catch (const std::exception& e) {
      log::noteThreadFailure("checkpoint", e.what(), /*fatal=*/false);
    }
    const auto took = Clock::now() - started;
    lock.lock();
    if (!saved) {
      const auto retryAt = Clock::now() + interval_;
      if (!dueAt_ || retryAt < *dueAt_) dueAt_ = retryAt;
    }
    // Coalescing: what is acknowledged during the next `took`, 50 ms at least, goes out in one save.
    // Twenty saves a second cost nothing measurable (HTTP bench, 2M lines: 1.78 against 1.80 CPU-s);
    // a hundred, where fsync is cheap, cost some 15%.
    const Clock::duration gap = std::chrono::milliseconds(50);
    wake_.wait_for(lock, std::clamp<Clock::duration>(took, gap, std::max<Clock::duration>(gap, interval_)),
                   [this] { return stopping_; });
  }
}

}  // namespace logcapture::agent::checkpoint
