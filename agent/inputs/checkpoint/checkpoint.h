#pragma once

// Checkpoints: for each file input and each file it tails, the offset before which every record is
// finished with, kept in agent.state_dir/checkpoints.json so that a restart neither loses nor repeats lines.
//
// NOTE on threads: every method is safe from any thread. The pipeline calls load() before the inputs
// start; each file input calls beginInput() when it starts, and its thread calls find(), update(),
// touch() and touchInput() for its own entries; sink threads
// call update() as acks finish records; every file input's loop calls expire(); the CheckpointSaver's
// thread calls save() when something changed (see CheckpointSaver), and the pipeline once more when it stops.
//   - mutex_ guards entries_, inputs_, generation_ and savedGeneration_; it is never held across I/O, so an
//     fsync in save() does not stall the sink threads' update() calls. save() writes the file's text
//     under it, copying each entry's unchanging part (Slot::fixed).
//   - saveMutex_ serialises the file operations (load(), save()). Lock order: saveMutex_, then mutex_.
//   - the counters are atomics, read without a lock by metrics.

#include <atomic>
#include <chrono>
#include <compare>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace logcapture::agent::checkpoint {

inline constexpr std::uint32_t kFingerprintBytes = 1024;

// A file's identity: device + inode, confirmed by a hash of its first bytes so inode reuse is caught.
struct FileId {
  std::uint64_t device = 0;
  std::uint64_t inode = 0;
  std::uint64_t fingerprint = 0;       // hash of the first fingerprintBytes bytes
  std::uint32_t fingerprintBytes = 0;  // less than kFingerprintBytes while the file is shorter (0 for an empty file)

  bool operator==(const FileId&) const = default;
};

// The fingerprint of `bytes` (FNV-1a, 64 bits; see checkpoint.cc for why).
std::uint64_t fingerprintOf(std::string_view bytes);

// Identity of an open file (fstat + pread of its first bytes). nullopt on an I/O error.
std::optional<FileId> identify(int fd);

// Same: the open file has the device+inode of `stored` and its first `stored.fingerprintBytes` bytes
// still hash to `stored.fingerprint` (a file that grew since keeps matching). Reused: its device+inode,
// other first bytes (an inode reused, or a file truncated and written again, or now shorter than the
// stored fingerprint). OtherFile: another device+inode. Error: fstat or pread failed (errno tells).
enum class Match { Same, Reused, OtherFile, Error };
Match compare(int fd, const FileId& stored);

// compare(fd, stored) == Match::Same.
bool sameFile(int fd, const FileId& stored);

// What one input has finished with in one file.
struct Entry {
  FileId id;
  std::string path;
  std::uint64_t offset = 0;  // everything before it is finished with
  std::chrono::system_clock::time_point lastSeen;
  std::string input;  // the input's name; with id.device and id.inode, what identifies the entry

  bool operator==(const Entry&) const = default;
};

// Parses and validates the text of a checkpoints file as load() does, up to its check for two entries of
// one input for one file; returns the reason it is not a valid file (then `out` is unspecified). Pure: any
// thread may call it (load() reads the file and calls it; a fuzz target feeds it arbitrary text).
std::optional<std::string> parseCheckpoints(const std::string& text, std::vector<Entry>& out);

enum class LoadStatus { Loaded, Missing, Corrupt };

// What find() knows of an open file, for one input.
struct Lookup {
  enum class Kind {
    New,       // the input has no entry for this device+inode
    Same,      // the entry's file, grown or not: `entry` says where the input stopped
    Replaced,  // the entry's device+inode now starts with other bytes (the file was truncated and written
               // again, or the inode was reused): the entry was dropped; `entry` is the dropped one
    Error,     // the file's first bytes could not be read: the entry is kept, ask again later
  };
  Kind kind = Kind::New;
  Entry entry;  // Same and Replaced only
};

// One store per agent, shared by the file inputs. An entry is keyed by input, device and inode: two
// inputs whose globs overlap each have their own entry for a file they both tail, so each resumes at
// its own offset, and nothing one input does to its entry (update, touch, remove, a reused inode
// found by find()) changes another input's entry. The store also remembers which inputs have started
// (beginInput()): start_at applies only to the files present at an input's very first start, and an
// input renamed in the config is such a first start; the old name's entries and mark expire.
class CheckpointStore {
 public:
  static constexpr const char* kFileName = "checkpoints.json";
  static constexpr const char* kTempName = "checkpoints.json.tmp";
  static constexpr int kVersion = 1;

  // Touches nothing on disk: neither creates the directory nor reads the file (see load()).
  CheckpointStore(std::filesystem::path stateDir, std::chrono::seconds retention);
  CheckpointStore(const CheckpointStore&) = delete;
  CheckpointStore& operator=(const CheckpointStore&) = delete;

  // Replaces the entries with those of stateDir/checkpoints.json, and removes a temp file left by a
  // save that crashed before its rename (the file it was replacing is still whole).
  // A corrupt, truncated or unreadable file (or anything that is not a regular file) is logged once
  // with its path and the reason, moved aside to checkpoints.json.corrupt-<unix time> for a human to
  // look at, and the store starts empty: the agent must start, never crash-loop.
  // One invalid entry makes the whole file corrupt rather than being skipped: only this class writes
  // the file, atomically, so an invalid entry means it was damaged or written by something else, and
  // the rest of it is not to be trusted either. Unknown keys are ignored, so a later version can add
  // optional fields without changing `version`. Several entries may share a device+inode when their
  // inputs differ; two entries of one input for one device+inode make the file corrupt.
  LoadStatus load();

  // Marks `input` as started (as of `now`) and says whether it had started before: a mark of it, or an
  // entry of it (files written before marks existed), loaded or made since. False only at the input's
  // very first start, the one start_at applies to. The mark is saved with the entries, kept alive by
  // touchInput() and expired like them.
  bool beginInput(const std::string& input, std::chrono::system_clock::time_point now);
  // Keeps `input`'s mark from expiring; written when it lags by a quarter of the retention, as touch().
  void touchInput(const std::string& input, std::chrono::system_clock::time_point now);

  // What `input`'s entry says of an open file: Same when the device+inode match and sameFile(fd,
  // entry.id). Only that input's entry is looked at: when only other inputs have entries for the file,
  // the result is New (the file is new to this input) and their entries stay as they are. An entry of
  // `input` whose device+inode now start with other bytes (a file shorter than the stored fingerprint
  // included) is removed and returned as Replaced; other inputs' entries for the inode are kept, each
  // checked when its own input looks for it (or left to expire). Nothing is logged: the caller knows
  // what the file is to it.
  Lookup find(const std::string& input, int fd, std::uint64_t device, std::uint64_t inode);

  // Records that `input` has finished with everything before `offset` of this file, replacing its
  // entry for the same device+inode (other inputs' entries are untouched). `id` is kept as given:
  // its fingerprint may be longer than the stored one (the file grew) or differ from it (the inode
  // now belongs to another file). The offset may go down (a truncated file restarts at 0).
  void update(const std::string& input, const FileId& id, const std::string& path, std::uint64_t offset,
              std::chrono::system_clock::time_point now);

  // Marks `input`'s entry for a file as still present (the file is open but nothing new was finished
  // with), so that expire() never drops the entry of a file that is merely idle. Only lastSeen
  // changes, and it reaches the file when it lags by a quarter of the retention, not at every call.
  // Without such an entry, nothing happens.
  void touch(const std::string& input, std::uint64_t device, std::uint64_t inode,
             std::chrono::system_clock::time_point now);

  // Called after each change that must reach the file, `offsetMoved` true when an update() moved an
  // offset (under the store's lock: it must only signal, never call back into the store). Set once,
  // before any thread uses the store; CheckpointSaver sets it, so that it sleeps while nothing changes.
  void onChange(std::function<void(bool offsetMoved)> notify) { changeNoted_ = std::move(notify); }

  // Drops `input`'s entry for the file, if any; other inputs' entries for it stay.
  void remove(const std::string& input, std::uint64_t device, std::uint64_t inode);

  // Writes the file when something changed since the last successful save: a temp file in the same
  // directory, fsync, rename over checkpoints.json, fsync of the directory. Returns true when the
  // file is up to date (including when there was nothing to write), false on failure: the previous
  // file stays intact, the change stays pending for the next save, and the failure is logged when
  // saves start failing (and again once they recover), not on every attempt. Never creates the
  // state directory: the daemon prepares it, and a missing one is an error to report.
  bool save();

  // Drops entries whose lastSeen is older than `now - retention` (files gone for good, or inputs gone
  // from the config), whatever their input, and the marks of inputs not running for as long. Returns
  // how many entries.
  std::size_t expire(std::chrono::system_clock::time_point now);

  std::vector<Entry> entries() const;  // a copy, ordered by device, inode, then input, for tests and metrics
  std::vector<std::string> startedInputs() const;  // the inputs marked as started, by name

  const std::filesystem::path& path() const { return file_; }
  std::uint64_t saves() const { return saves_.load(std::memory_order_relaxed); }  // files written
  std::uint64_t saveFailures() const { return saveFailures_.load(std::memory_order_relaxed); }
  std::uint64_t expired() const { return expired_.load(std::memory_order_relaxed); }  // entries dropped

 private:
  // Device and inode first, so the entries of one file sit together (and the file lists them so).
  struct Key {
    std::uint64_t device = 0;
    std::uint64_t inode = 0;
    std::string input;

    auto operator<=>(const Key&) const = default;
  };
  struct Slot {
    Entry entry;
    // entry.lastSeen as of the last change that bumped generation_: what the next save writes at the least.
    std::chrono::system_clock::time_point markedSeen;
    // The entry's line in the file but for last_seen and offset (before them, after them), kept between
    // saves: a save writes those two numbers and copies the rest. Reset when the id or the path change.
    std::optional<std::pair<std::string, std::string>> fixed;
  };
  // An input that has started: when it last ran, and that as of the last change written.
  struct Mark {
    std::chrono::system_clock::time_point lastSeen;
    std::chrono::system_clock::time_point markedSeen;
  };

  // Requires mutex_. A change of lastSeen alone is worth a write when the marked value lags by a
  // quarter of the retention: often enough that a restart never expires a live file, rarely enough
  // that an idle agent does not rewrite the file every second.
  bool lastSeenDirty(std::chrono::system_clock::time_point markedSeen, std::chrono::system_clock::time_point now) const;
  void markChanged(Slot& s);          // requires mutex_
  void noteChange(bool offsetMoved);  // requires mutex_: bumps generation_ and tells changeNoted_
  std::string serializeLocked();      // requires mutex_: the file's text
  void moveAside(const std::string& reason, bool isDirectory);

  const std::filesystem::path dir_;
  const std::filesystem::path file_;
  const std::filesystem::path temp_;
  const std::chrono::seconds retention_;

  std::mutex saveMutex_;
  mutable std::mutex mutex_;
  std::map<Key, Slot> entries_;
  std::map<std::string, Mark, std::less<>> inputs_;  // inputs that have started
  std::uint64_t generation_ = 0;                     // bumped by every change that must reach the file
  std::uint64_t savedGeneration_ = 0;                // the generation the file on disk holds
  std::function<void(bool offsetMoved)> changeNoted_;
  bool failing_ = false;  // the last save failed (guarded by saveMutex_)

  std::atomic<std::uint64_t> saves_{0};
  std::atomic<std::uint64_t> saveFailures_{0};
  std::atomic<std::uint64_t> expired_{0};
};

// Saves a store on its own thread as soon as an offset moves, and within `interval` of the rest (marks,
// expiry); while nothing changes it sleeps. Saves are coalesced: after a save that took T, the acks of the next T (50
// ms at least) go out together in the following one, so saving takes at most half this thread's time however fast acks
// come, and a crash sets the checkpoints back by what was in flight plus about two saves' time (100 ms when fsync is
// quick), not by an interval. A save fsyncs twice, which can take seconds while the kernel writes back other data; on
// this thread that delays only the next save, never an input's reading or a sink's acks. NOTE on threads: start() and
// stop() are called by one owner; the store is shared as documented above.
class CheckpointSaver {
 public:
  CheckpointSaver(CheckpointStore& store, std::chrono::milliseconds interval);
  ~CheckpointSaver();  // stop()
  CheckpointSaver(const CheckpointSaver&) = delete;
  CheckpointSaver& operator=(const CheckpointSaver&) = delete;

  void start();
  // Wakes the thread and joins it, waiting for a save in progress. Does not save: the owner saves
  // last, after what it stops has finished its records.
  void stop();

 private:
  void run();

  CheckpointStore& store_;
  const std::chrono::milliseconds interval_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;  // guarded by mutex_
  bool moved_ = false;     // guarded by mutex_: an offset moved since the last save began
  // guarded by mutex_: when the next save is due for a change other than an offset (or a failed save)
  std::optional<std::chrono::steady_clock::time_point> dueAt_;
  std::thread thread_;
};

}  // namespace logcapture::agent::checkpoint
