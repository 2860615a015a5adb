// The checkpoint store against real files in a temporary directory.

#include "agent/inputs/checkpoint/checkpoint.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <thread>

#include "tests/support/fixtures.h"

namespace {

using namespace logcapture::agent::checkpoint;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
using SystemClock = std::chrono::system_clock;

const SystemClock::time_point kT0{std::chrono::milliseconds(1'700'000'000'000)};
constexpr std::chrono::seconds kRetention = 24h;

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "logcapture-checkpoint-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

class Fd {
 public:
  explicit Fd(const fs::path& p) : fd_(::open(p.c_str(), O_RDONLY | O_CLOEXEC)) { REQUIRE(fd_ >= 0); }
  ~Fd() { ::close(fd_); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

void writeFile(const fs::path& p, const std::string& content) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << content;
  REQUIRE(out.good());
}

void appendFile(const fs::path& p, const std::string& content) {
  std::ofstream out(p, std::ios::binary | std::ios::app);
  out << content;
  REQUIRE(out.good());
}

std::string readFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Truncates and rewrites through the same inode, as a reused inode would look.
void rewriteInPlace(const fs::path& p, const std::string& content) {
  const int fd = ::open(p.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  REQUIRE(fd >= 0);
  REQUIRE(::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()));
  ::close(fd);
}

std::vector<fs::path> corruptFiles(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().filename().string().starts_with("checkpoints.json.corrupt-")) out.push_back(e.path());
  }
  return out;
}

FileId fileId(std::uint64_t inode, std::uint64_t offsetSeed = 0) {
  return FileId{.device = 64769, .inode = inode, .fingerprint = 0x1234 + offsetSeed, .fingerprintBytes = 1024};
}

std::string validEntryJson(const std::string& offset = "10", const std::string& version = "1") {
  return R"({"version":)" + version +
         R"(,"files":[{"input":"app","path":"/var/log/a.log","device":1,"inode":2,)"
         R"("fingerprint":"00000000000000ff","fingerprint_bytes":1024,"offset":)" +
         offset + R"(,"last_seen":1700000000000}]})";
}

}  // namespace

TEST_CASE("identify gives an empty file a zero-byte fingerprint") {
  TempDir dir;
  writeFile(dir / "empty.log", "");
  Fd fd(dir / "empty.log");
  const auto id = identify(fd.get());
  REQUIRE(id);
  CHECK(id->fingerprintBytes == 0);
  CHECK(id->fingerprint == fingerprintOf(""));
  struct stat st {};
  REQUIRE(::fstat(fd.get(), &st) == 0);
  CHECK(id->device == st.st_dev);
  CHECK(id->inode == st.st_ino);
}

TEST_CASE("identify hashes the whole of a file shorter than the fingerprint") {
  TempDir dir;
  writeFile(dir / "short.log", "one line\n");
  Fd fd(dir / "short.log");
  const auto id = identify(fd.get());
  REQUIRE(id);
  CHECK(id->fingerprintBytes == 9);
  CHECK(id->fingerprint == fingerprintOf("one line\n"));
}

TEST_CASE("identify hashes only the first 1024 bytes of a long file") {
  TempDir dir;
  const std::string prefix(kFingerprintBytes, 'p');
  writeFile(dir / "a.log", prefix + "tail of a\n");
  writeFile(dir / "b.log", prefix + "another tail, longer\n");
  Fd a(dir / "a.log");
  Fd b(dir / "b.log");
  const auto idA = identify(a.get());
  const auto idB = identify(b.get());
  REQUIRE(idA);
  REQUIRE(idB);
  CHECK(idA->fingerprintBytes == kFingerprintBytes);
  CHECK(idA->fingerprint == fingerprintOf(prefix));
  CHECK(idA->fingerprint == idB->fingerprint);
  CHECK(idA->inode != idB->inode);
}

TEST_CASE("identify returns nullopt when the descriptor cannot be read") {
  TempDir dir;
  const int fd = ::open(dir.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  CHECK_FALSE(identify(fd));  // pread on a directory fails with EISDIR
  ::close(fd);
  CHECK_FALSE(identify(-1));
}

TEST_CASE("fingerprints are FNV-1a, so files written by earlier builds keep matching") {
  CHECK(fingerprintOf("") == 0xcbf29ce484222325ULL);
  CHECK(fingerprintOf("a") == 0xaf63dc4c8601ec8cULL);
  CHECK(fingerprintOf("foobar") == 0x85944171f73967e8ULL);
}

TEST_CASE("a file that grew since it was identified is still the same file") {
  TempDir dir;
  writeFile(dir / "app.log", "short\n");
  Fd fd(dir / "app.log");
  const auto small = identify(fd.get());
  REQUIRE(small);
  appendFile(dir / "app.log", std::string(2000, 'x'));
  CHECK(sameFile(fd.get(), *small));
  const auto grown = identify(fd.get());
  REQUIRE(grown);
  CHECK(grown->fingerprintBytes == kFingerprintBytes);
  appendFile(dir / "app.log", "more\n");
  CHECK(sameFile(fd.get(), *grown));
}

TEST_CASE("an empty file stays the same file once lines arrive") {
  TempDir dir;
  writeFile(dir / "app.log", "");
  Fd fd(dir / "app.log");
  const auto id = identify(fd.get());
  REQUIRE(id);
  appendFile(dir / "app.log", "first\n");
  CHECK(sameFile(fd.get(), *id));
}

TEST_CASE("a file rewritten in place with other content is another file on the same inode") {
  TempDir dir;
  writeFile(dir / "app.log", std::string(1500, 'a'));
  Fd fd(dir / "app.log");
  const auto before = identify(fd.get());
  REQUIRE(before);
  rewriteInPlace(dir / "app.log", std::string(1500, 'b'));
  const auto after = identify(fd.get());
  REQUIRE(after);
  CHECK(after->inode == before->inode);
  CHECK_FALSE(sameFile(fd.get(), *before));
}

TEST_CASE("a file now shorter than its stored fingerprint is not the same file") {
  TempDir dir;
  writeFile(dir / "app.log", "0123456789\n");
  Fd fd(dir / "app.log");
  const auto before = identify(fd.get());
  REQUIRE(before);
  rewriteInPlace(dir / "app.log", "0123");  // same first bytes, but not all of them
  CHECK_FALSE(sameFile(fd.get(), *before));
}

TEST_CASE("a copy with the same content is not the same file") {
  TempDir dir;
  writeFile(dir / "a.log", "same content\n");
  writeFile(dir / "b.log", "same content\n");
  Fd a(dir / "a.log");
  Fd b(dir / "b.log");
  const auto idA = identify(a.get());
  REQUIRE(idA);
  CHECK_FALSE(sameFile(b.get(), *idA));
}

TEST_CASE("find returns the entry of the same file, grown since") {
  TempDir dir;
  writeFile(dir / "app.log", "line\n");
  Fd fd(dir / "app.log");
  const auto id = identify(fd.get());
  REQUIRE(id);
  CheckpointStore store(dir.path(), kRetention);
  store.update("app", *id, (dir / "app.log").string(), 5, kT0);
  appendFile(dir / "app.log", "next line\n");
  const auto found = store.find("app", fd.get(), id->device, id->inode);
  REQUIRE(found.kind == Lookup::Kind::Same);
  CHECK(found.entry.offset == 5);
  CHECK(found.entry.input == "app");
  CHECK(found.entry.id == *id);
}

TEST_CASE("find drops the entry of an inode reused by another file") {
  TempDir dir;
  writeFile(dir / "app.log", "old content\n");
  Fd fd(dir / "app.log");
  const auto id = identify(fd.get());
  REQUIRE(id);
  CheckpointStore store(dir.path(), kRetention);
  store.update("app", *id, (dir / "app.log").string(), 12, kT0);
  REQUIRE(store.save());
  rewriteInPlace(dir / "app.log", "new content, another file\n");
  const auto found = store.find("app", fd.get(), id->device, id->inode);
  CHECK(found.kind == Lookup::Kind::Replaced);
  CHECK(found.entry.offset == 12);  // what the caller needs to tell a truncation from a reuse
  CHECK(store.entries().empty());
  REQUIRE(store.save());  // the removal is a change worth saving
  CHECK(store.saves() == 2);
}

TEST_CASE("find does not touch the entry when the descriptor is another inode") {
  TempDir dir;
  writeFile(dir / "a.log", "a\n");
  writeFile(dir / "b.log", "b\n");
  Fd a(dir / "a.log");
  Fd b(dir / "b.log");
  const auto idA = identify(a.get());
  REQUIRE(idA);
  CheckpointStore store(dir.path(), kRetention);
  store.update("app", *idA, (dir / "a.log").string(), 2, kT0);
  CHECK(store.find("app", b.get(), idA->device, idA->inode).kind == Lookup::Kind::New);
  CHECK(store.entries().size() == 1);
  CHECK(store.find("app", a.get(), idA->device, idA->inode + 1).kind == Lookup::Kind::New);
}

TEST_CASE("find says replaced, with the dropped entry, for a file now shorter than its checkpoint") {
  TempDir dir;
  writeFile(dir / "app.log", std::string(2000, 'a') + "\n");
  Fd fd(dir / "app.log");
  const auto id = identify(fd.get());
  REQUIRE(id);
  CheckpointStore store(dir.path(), kRetention);
  store.update("app", *id, (dir / "app.log").string(), 2001, kT0);
  rewriteInPlace(dir / "app.log", "b\n");  // truncated, then a line of other bytes: shorter than the fingerprint
  const auto found = store.find("app", fd.get(), id->device, id->inode);
  CHECK(found.kind == Lookup::Kind::Replaced);
  CHECK(found.entry.offset == 2001);
  CHECK(store.entries().empty());
}

TEST_CASE("find says error and keeps the entry when the file's first bytes cannot be read") {
  TempDir dir;
  writeFile(dir / "app.log", "line\n");
  Fd fd(dir / "app.log");
  const auto id = identify(fd.get());
  REQUIRE(id);
  CheckpointStore store(dir.path(), kRetention);
  store.update("app", *id, (dir / "app.log").string(), 5, kT0);
  const int writeOnly = ::open((dir / "app.log").c_str(), O_WRONLY | O_CLOEXEC);  // pread fails with EBADF
  REQUIRE(writeOnly >= 0);
  const auto found = store.find("app", writeOnly, id->device, id->inode);
  ::close(writeOnly);
  CHECK(found.kind == Lookup::Kind::Error);
  CHECK(store.entries().size() == 1);
}

TEST_CASE("an input has started before once it began, and only its first begin says otherwise") {
  TempDir dir;
  CheckpointStore store(dir.path(), kRetention);
  REQUIRE(store.load() == LoadStatus::Missing);
  CHECK_FALSE(store.beginInput("app", kT0));
  CHECK(store.beginInput("app", kT0 + 1s));
  CHECK_FALSE(store.beginInput("other", kT0));  // each input has its own first start
  CHECK(store.startedInputs() == std::vector<std::string>{"app", "other"});
}

TEST_CASE("the mark of a started input is saved even with no file entry, and loads again") {
  TempDir dir;
  {
    CheckpointStore store(dir.path(), kRetention);
    REQUIRE(store.load() == LoadStatus::Missing);
    CHECK_FALSE(store.beginInput("app", kT0));
    REQUIRE(store.save());
    CHECK(store.saves() == 1);  // a first start with no file yet is worth writing
  }
  CheckpointStore reloaded(dir.path(), kRetention);
  REQUIRE(reloaded.load() == LoadStatus::Loaded);
  CHECK(reloaded.startedInputs() == std::vector<std::string>{"app"});
  CHECK(reloaded.beginInput("app", kT0 + 1min));
}

TEST_CASE("a file written before input marks existed counts an input with entries as started") {
  TempDir dir;
  writeFile(dir / "checkpoints.json", validEntryJson());  // input "app", no "inputs" key
  CheckpointStore store(dir.path(), kRetention);
  REQUIRE(store.load() == LoadStatus::Loaded);
  CHECK(store.beginInput("app", kT0));
  CHECK_FALSE(store.beginInput("other", kT0));
}

TEST_CASE("the mark of an input not running for longer than the retention expires, a touched one stays") {
  TempDir dir;
  CheckpointStore store(dir.path(), 1h);
  CHECK_FALSE(store.beginInput("gone", kT0));
  CHECK_FALSE(store.beginInput("running", kT0));
  store.touchInput("running", kT0 + 50min);
  store.touchInput("unknown", kT0 + 50min);  // without a mark: nothing
  store.expire(kT0 + 61min);
  CHECK(store.startedInputs() == std::vector<std::string>{"running"});
  CHECK_FALSE(store.beginInput("gone", kT0 + 62min));  // forgotten: a first start again
}

TEST_CASE("update keeps the newer fingerprint of a file that grew") {
  TempDir dir;
  CheckpointStore store(dir.path(), kRetention);
  FileId shortId{.device = 1, .inode = 2, .fingerprint = 11, .fingerprintBytes = 10};
  FileId longId{.device = 1, .inode = 2, .fingerprint = 22, .fingerprintBytes = kFingerprintBytes};
  store.update("app", shortId, "/var/log/app.log", 10, kT0);
  store.update("app", longId, "/var/log/app.log", 2000, kT0 + 1s);
  const auto all = store.entries();
  REQUIRE(all.size() == 1);
  CHECK(all[0].id == longId);
  CHECK(all[0].offset == 2000);
  CHECK(all[0].lastSeen == kT0 + 1s);
}

TEST_CASE("update takes a lower offset: a truncated file restarts at zero") {
  TempDir dir;
  CheckpointStore store(dir.path(), kRetention);
  store.update("app", fileId(2), "/var/log/app.log", 500, kT0);
  store.update("app", fileId(2), "/var/log/app.log", 0, kT0 + 1s);
  REQUIRE(store.entries().size() == 1);
  CHECK(store.entries()[0].offset == 0);
}

TEST_CASE("two inputs tailing one file each keep their own entry and offset") {
  TempDir dir;
  writeFile(dir / "app.log", "one\ntwo\n");
  Fd fd(dir / "app.log");
  const auto id = identify(fd.get());
  REQUIRE(id);
  const auto path = (dir / "app.log").string();
  CheckpointStore store(dir.path(), kRetention);
  store.update("all", *id, path, 4, kT0);
  store.update("app", *id, path, 8, kT0);
  store.update("all", *id, path, 6, kT0);  // one input moving on leaves the other's offset alone
  const auto all = store.entries();
  REQUIRE(all.size() == 2);
  CHECK(all[0].input == "all");
  CHECK(all[0].offset == 6);
  CHECK(all[1].input == "app");
  CHECK(all[1].offset == 8);
  const auto ofAll = store.find("all", fd.get(), id->device, id->inode);
  REQUIRE(ofAll.kind == Lookup::Kind::Same);
  CHECK(ofAll.entry.input == "all");
  CHECK(ofAll.entry.offset == 6);
  const auto ofApp = store.find("app", fd.get(), id->device, id->inode);
  REQUIRE(ofApp.kind == Lookup::Kind::Same);
  CHECK(ofApp.entry.input == "app");
  CHECK(ofApp.entry.offset == 8);
}

TEST_CASE("find gives an input nothing of another input's entry and leaves that entry as it was") {
  TempDir dir;
  writeFile(dir / "app.log", "one\ntwo\n");
  Fd fd(dir / "app.log");
  const auto id = identify(fd.get());
  REQUIRE(id);
  CheckpointStore store(dir.path(), kRetention);
  store.update("all", *id, (dir / "app.log").string(), 4, kT0);
  REQUIRE(store.save());
  CHECK(store.find("app", fd.get(), id->device, id->inode).kind == Lookup::Kind::New);  // new to "app"
  const auto all = store.entries();
  REQUIRE(all.size() == 1);
  CHECK(all[0].input == "all");
  CHECK(all[0].offset == 4);
  CHECK(all[0].id == *id);
  CHECK(store.save());
  CHECK(store.saves() == 1);  // nothing changed
}

TEST_CASE("an inode reused by another file drops only the entry of the input that looked for it") {
  TempDir dir;
  writeFile(dir / "app.log", "old content\n");
  Fd fd(dir / "app.log");
  const auto oldId = identify(fd.get());
  REQUIRE(oldId);
  const auto path = (dir / "app.log").string();
  CheckpointStore store(dir.path(), kRetention);
  store.update("all", *oldId, path, 12, kT0);
  store.update("app", *oldId, path, 12, kT0);
  rewriteInPlace(dir / "app.log", "new content, another file\n");
  const auto newId = identify(fd.get());
  REQUIRE(newId);

  CHECK(store.find("all", fd.get(), oldId->device, oldId->inode).kind == Lookup::Kind::Replaced);
  auto all = store.entries();
  REQUIRE(all.size() == 1);
  CHECK(all[0].input == "app");
  CHECK(all[0].id == *oldId);

  // "all" starts the new file; "app" still holds the old fingerprint, and its own look finds the reuse.
  store.update("all", *newId, path, 0, kT0 + 1s);
  CHECK(store.find("app", fd.get(), oldId->device, oldId->inode).kind == Lookup::Kind::Replaced);
  all = store.entries();
  REQUIRE(all.size() == 1);
  CHECK(all[0].input == "all");
  CHECK(all[0].id == *newId);
  CHECK(store.find("all", fd.get(), newId->device, newId->inode).kind == Lookup::Kind::Same);
}

TEST_CASE("touch keeps one input's entry from expiring, not another input's entry for the same file") {
  TempDir dir;
  CheckpointStore store(dir.path(), 1h);
  store.update("all", fileId(2), "/var/log/app.log", 10, kT0);
  store.update("app", fileId(2), "/var/log/app.log", 20, kT0);
  store.touch("app", fileId(2).device, fileId(2).inode, kT0 + 50min);
  CHECK(store.expire(kT0 + 70min) == 1);
  const auto all = store.entries();
  REQUIRE(all.size() == 1);
  CHECK(all[0].input == "app");
  CHECK(all[0].offset == 20);
}

TEST_CASE("remove drops one input's entry and keeps another input's entry for the same file") {
  TempDir dir;
  CheckpointStore store(dir.path(), kRetention);
  store.update("all", fileId(2), "/var/log/app.log", 10, kT0);
  store.update("app", fileId(2), "/var/log/app.log", 20, kT0);
  REQUIRE(store.save());
  store.remove("app", fileId(2).device, fileId(2).inode);
  const auto all = store.entries();
  REQUIRE(all.size() == 1);
  CHECK(all[0].input == "all");
  CHECK(all[0].offset == 10);
  REQUIRE(store.save());
  CHECK(store.saves() == 2);
}

TEST_CASE("entries of two inputs for one file survive a save and a load") {
  TempDir dir;
  {
    CheckpointStore store(dir.path(), kRetention);
    store.update("app", fileId(2), "/var/log/app.log", 40, kT0 + 1s);
    store.update("all", fileId(2), "/var/log/app.log", 100, kT0);
    REQUIRE(store.save());
  }
  const auto doc = nlohmann::json::parse(readFile(dir / "checkpoints.json"));
  CHECK(doc["version"] == 1);
  REQUIRE(doc["files"].size() == 2);
  CHECK(doc["files"][0]["input"] == "all");
  CHECK(doc["files"][1]["input"] == "app");
  CHECK(doc["files"][0]["inode"] == doc["files"][1]["inode"]);

  CheckpointStore reloaded(dir.path(), kRetention);
  REQUIRE(reloaded.load() == LoadStatus::Loaded);
  const auto all = reloaded.entries();
  REQUIRE(all.size() == 2);
  CHECK(all[0].input == "all");
  CHECK(all[0].offset == 100);
  CHECK(all[0].lastSeen == kT0);
  CHECK(all[1].input == "app");
  CHECK(all[1].offset == 40);
  CHECK(all[1].lastSeen == kT0 + 1s);
}

TEST_CASE("entries survive a save and a load") {
  TempDir dir;
  {
    CheckpointStore store(dir.path(), kRetention);
    CHECK(store.load() == LoadStatus::Missing);
    store.update("app", fileId(2), "/var/log/app.log", 100, kT0);
    store.update("pods", FileId{.device = ~0ULL, .inode = ~0ULL, .fingerprint = ~0ULL, .fingerprintBytes = 3},
                 "/var/log/pods/ns_pod_uid/c/0.log", (1ULL << 62), kT0 + 1500ms);
    store.update("empty", FileId{.device = 5, .inode = 6, .fingerprint = fingerprintOf(""), .fingerprintBytes = 0},
                 "/var/log/empty.log", 0, kT0);
    REQUIRE(store.save());
    CHECK(store.saves() == 1);
    CHECK_FALSE(fs::exists(dir / CheckpointStore::kTempName));
  }
  const auto doc = nlohmann::json::parse(readFile(dir / "checkpoints.json"));
  CHECK(doc["version"] == 1);
  CHECK(doc["files"].size() == 3);
  // Ordered by device and inode.
  CHECK(doc["files"][1]["fingerprint"] == "0000000000001234");
  CHECK(doc["files"][1]["last_seen"] == 1'700'000'000'000ULL);

  CheckpointStore reloaded(dir.path(), kRetention);
  REQUIRE(reloaded.load() == LoadStatus::Loaded);
  const auto all = reloaded.entries();
  REQUIRE(all.size() == 3);
  CHECK(all[0].input == "empty");
  CHECK(all[0].id.fingerprintBytes == 0);
  CHECK(all[1].input == "app");
  CHECK(all[1].id == fileId(2));
  CHECK(all[1].path == "/var/log/app.log");
  CHECK(all[1].offset == 100);
  CHECK(all[1].lastSeen == kT0);
  CHECK(all[2].input == "pods");
  CHECK(all[2].id.device == ~0ULL);
  CHECK(all[2].id.fingerprint == ~0ULL);
  CHECK(all[2].offset == (1ULL << 62));
  CHECK(all[2].lastSeen == kT0 + 1500ms);
  CHECK(reloaded.save());
  CHECK(reloaded.saves() == 0);  // what was just loaded needs no write
}

TEST_CASE("save writes the file only when something changed") {
  TempDir dir;
  CheckpointStore store(dir.path(), kRetention);
  REQUIRE(store.load() == LoadStatus::Missing);
  CHECK(store.save());
  CHECK(store.saves() == 0);
  CHECK_FALSE(fs::exists(dir / "checkpoints.json"));

  store.update("app", fileId(2), "/var/log/app.log", 100, kT0);
  CHECK(store.save());
  CHECK(store.save());
  CHECK(store.saves() == 1);

  store.update("app", fileId(2), "/var/log/app.log", 100, kT0);  // the same again
  CHECK(store.save());
  CHECK(store.saves() == 1);

  store.update("app", fileId(2), "/var/log/app.log", 150, kT0);
  CHECK(store.save());
  CHECK(store.saves() == 2);

  store.remove("app", 1, 1);  // not there: nothing changes
  CHECK(store.save());
  CHECK(store.saves() == 2);

  store.remove("app", fileId(2).device, fileId(2).inode);
  CHECK(store.save());
  CHECK(store.saves() == 3);
  CHECK(nlohmann::json::parse(readFile(dir / "checkpoints.json"))["files"].empty());
}

TEST_CASE("a later lastSeen alone is written once it lags by a quarter of the retention") {
  TempDir dir;
  CheckpointStore store(dir.path(), 4h);
  store.update("app", fileId(2), "/var/log/app.log", 100, kT0);
  REQUIRE(store.save());
  store.update("app", fileId(2), "/var/log/app.log", 100, kT0 + 30min);
  store.touch("app", fileId(2).device, fileId(2).inode, kT0 + 59min);
  CHECK(store.save());
  CHECK(store.saves() == 1);
  CHECK(store.entries()[0].lastSeen == kT0 + 59min);
  store.touch("app", fileId(2).device, fileId(2).inode, kT0 + 1h);
  CHECK(store.save());
  CHECK(store.saves() == 2);
  CheckpointStore reloaded(dir.path(), 4h);
  REQUIRE(reloaded.load() == LoadStatus::Loaded);
  CHECK(reloaded.entries()[0].lastSeen == kT0 + 1h);
}

TEST_CASE(
    "each save writes every entry as it is now: one changed since by an update, a touch or a rename, and the rest") {
  TempDir dir;
  CheckpointStore store(dir.path(), 4h);
  store.update("app", fileId(2), "/var/log/a.log", 100, kT0);
  store.update("app", fileId(3), "/var/log/b.log", 100, kT0);
  REQUIRE(store.save());
  store.touch("app", fileId(2).device, fileId(2).inode, kT0 + 2h);  // a quarter of the retention and more
  REQUIRE(store.save());
  store.update("app", fileId(3), "/var/log/b.log", 250, kT0 + 2h);
  REQUIRE(store.save());
  store.update("app", fileId(2), "/var/log/a.log.1", 100, kT0 + 2h);  // found renamed
  REQUIRE(store.save());
  CHECK(store.saves() == 4);
  CheckpointStore reloaded(dir.path(), 4h);
  REQUIRE(reloaded.load() == LoadStatus::Loaded);
  const auto entries = reloaded.entries();
  REQUIRE(entries.size() == 2);
  CHECK(entries[0].lastSeen == kT0 + 2h);
  CHECK(entries[0].offset == 100);
  CHECK(entries[0].path == "/var/log/a.log.1");
  CHECK(entries[1].offset == 250);
}

TEST_CASE("expire drops the entries not seen within the retention") {
  TempDir dir;
  CheckpointStore store(dir.path(), 1h);
  store.update("app", fileId(1), "/var/log/old.log", 1, kT0);
  store.update("app", fileId(2), "/var/log/edge.log", 2, kT0 + 30min);
  store.update("app", fileId(3), "/var/log/new.log", 3, kT0 + 80min);
  REQUIRE(store.save());
  CHECK(store.expire(kT0 + 90min) == 1);
  auto all = store.entries();
  REQUIRE(all.size() == 2);
  CHECK(all[0].path == "/var/log/edge.log");
  CHECK(store.expire(kT0 + 90min) == 0);
  CHECK(store.expire(kT0 + 90min + 1ms) == 1);  // exactly the retention is kept, a moment later is not
  CHECK(store.expired() == 2);
  REQUIRE(store.save());
  CheckpointStore reloaded(dir.path(), 1h);
  REQUIRE(reloaded.load() == LoadStatus::Loaded);
  all = reloaded.entries();
  REQUIRE(all.size() == 1);
  CHECK(all[0].path == "/var/log/new.log");
}

TEST_CASE("touch keeps an idle open file from expiring") {
  TempDir dir;
  CheckpointStore store(dir.path(), 1h);
  store.update("app", fileId(1), "/var/log/idle.log", 10, kT0);
  store.touch("app", fileId(1).device, fileId(1).inode, kT0 + 50min);
  store.touch("app", 99, 99, kT0 + 50min);  // unknown: ignored
  CHECK(store.expire(kT0 + 100min) == 0);
  CHECK(store.entries().size() == 1);
  CHECK(store.entries()[0].offset == 10);
}

TEST_CASE("a temp file left by a crashed save is removed and the previous checkpoints load") {
  TempDir dir;
  {
    CheckpointStore store(dir.path(), kRetention);
    store.update("app", fileId(2), "/var/log/app.log", 100, kT0);
    REQUIRE(store.save());
  }
  // A save that died after writing half of its temp file, before the rename.
  writeFile(dir / CheckpointStore::kTempName, R"({"version":1,"files":[{"input":"app","pa)");
  CheckpointStore store(dir.path(), kRetention);
  REQUIRE(store.load() == LoadStatus::Loaded);
  CHECK_FALSE(fs::exists(dir / CheckpointStore::kTempName));
  REQUIRE(store.entries().size() == 1);
  CHECK(store.entries()[0].offset == 100);
  CHECK(corruptFiles(dir.path()).empty());
}

TEST_CASE("a failed save keeps the previous file and the change for the next save") {
  TempDir dir;
  CheckpointStore store(dir.path(), kRetention);
  store.update("app", fileId(2), "/var/log/app.log", 100, kT0);
  REQUIRE(store.save());
  const auto before = readFile(dir / "checkpoints.json");

  // The temp file's path taken by a directory: the temp file cannot be created.
  fs::create_directory(dir / CheckpointStore::kTempName);
  writeFile(dir / CheckpointStore::kTempName / "keep", "x");
  store.update("app", fileId(2), "/var/log/app.log", 200, kT0);
  CHECK_FALSE(store.save());
  CHECK_FALSE(store.save());
  CHECK(store.saveFailures() == 2);
  CHECK(readFile(dir / "checkpoints.json") == before);

  fs::remove_all(dir / CheckpointStore::kTempName);
  CHECK(store.save());
  CHECK(store.saves() == 2);
  CheckpointStore reloaded(dir.path(), kRetention);
  REQUIRE(reloaded.load() == LoadStatus::Loaded);
  CHECK(reloaded.entries()[0].offset == 200);
}

TEST_CASE("a save makes the state directory when it is gone, also when it was removed under the store") {
  TempDir dir;
  CheckpointStore store(dir / "state", kRetention);
  CHECK(store.load() == LoadStatus::Missing);
  store.update("app", fileId(2), "/var/log/app.log", 100, kT0);
  CHECK(store.save());
  CHECK(fs::exists(dir / "state" / "checkpoints.json"));
  fs::remove_all(dir / "state");
  store.update("app", fileId(2), "/var/log/app.log", 200, kT0);
  CHECK(store.save());
  CHECK(store.saveFailures() == 0);
  CheckpointStore reloaded(dir / "state", kRetention);
  REQUIRE(reloaded.load() == LoadStatus::Loaded);
  CHECK(reloaded.entries()[0].offset == 200);
}

TEST_CASE("a save fails without throwing when the state directory cannot be made") {
  TempDir dir;
  writeFile(dir / "file", "x");
  CheckpointStore store(dir / "file" / "state", kRetention);
  store.update("app", fileId(2), "/var/log/app.log", 100, kT0);
  CHECK_FALSE(store.save());
  CHECK(store.saveFailures() == 1);
}

TEST_CASE("a save fails when a directory holds the checkpoint file's name, and the directory stays") {
  TempDir dir;
  CheckpointStore store(dir.path(), kRetention);
  fs::create_directory(dir / "checkpoints.json");
  writeFile(dir / "checkpoints.json" / "keep", "x");
  store.update("app", fileId(2), "/var/log/app.log", 100, kT0);
  CHECK_FALSE(store.save());
  CHECK(readFile(dir / "checkpoints.json" / "keep") == "x");
  CHECK_FALSE(fs::exists(dir / CheckpointStore::kTempName));
}

TEST_CASE("a corrupt checkpoint file is moved aside and the store starts empty") {
  std::string content;
  SUBCASE("garbage") {
    content =
        "\x7f"
        "ELF\x02\x01 not json at all";
  }
  SUBCASE("truncated JSON") { content = validEntryJson().substr(0, 60); }
  SUBCASE("empty file") { content = ""; }
  SUBCASE("not an object") { content = "[1,2,3]"; }
  SUBCASE("wrong version") { content = validEntryJson("10", "2"); }
  SUBCASE("version as a string") { content = validEntryJson("10", "\"1\""); }
  SUBCASE("negative offset") { content = validEntryJson("-1"); }
  SUBCASE("fractional offset") { content = validEntryJson("1.5"); }
  SUBCASE("offset past the largest file offset") { content = validEntryJson("18446744073709551615"); }
  SUBCASE("offset as a string") { content = validEntryJson("\"10\""); }
  SUBCASE("files not an array") { content = R"({"version":1,"files":{}})"; }
  SUBCASE("entry not an object") { content = R"({"version":1,"files":[42]})"; }
  SUBCASE("missing field") {
    auto doc = nlohmann::json::parse(validEntryJson());
    doc["files"][0].erase("inode");
    content = doc.dump();
  }
  SUBCASE("fingerprint not hex") {
    auto doc = nlohmann::json::parse(validEntryJson());
    doc["files"][0]["fingerprint"] = "00000000000000fg";
    content = doc.dump();
  }
  SUBCASE("fingerprint as a number") {
    auto doc = nlohmann::json::parse(validEntryJson());
    doc["files"][0]["fingerprint"] = 255;
    content = doc.dump();
  }
  SUBCASE("fingerprint longer than the fingerprint length") {
    auto doc = nlohmann::json::parse(validEntryJson());
    doc["files"][0]["fingerprint_bytes"] = kFingerprintBytes + 1;
    content = doc.dump();
  }
  SUBCASE("empty input name") {
    auto doc = nlohmann::json::parse(validEntryJson());
    doc["files"][0]["input"] = "";
    content = doc.dump();
  }
  SUBCASE("last_seen beyond what a time point holds") {
    auto doc = nlohmann::json::parse(validEntryJson());
    doc["files"][0]["last_seen"] = ~0ULL;
    content = doc.dump();
  }
  SUBCASE("two entries of one input for one file") {
    auto doc = nlohmann::json::parse(validEntryJson());
    doc["files"].push_back(doc["files"][0]);
    content = doc.dump();
  }
  SUBCASE("deeply nested arrays") { content = std::string(100000, '[') + std::string(100000, ']'); }
  SUBCASE("inputs not an array") {
    auto doc = nlohmann::json::parse(validEntryJson());
    doc["inputs"] = "app";
    content = doc.dump();
  }
  SUBCASE("an input without a name") {
    auto doc = nlohmann::json::parse(validEntryJson());
    doc["inputs"] = nlohmann::json::array({{{"last_seen", 1'700'000'000'000ULL}}});
    content = doc.dump();
  }
  SUBCASE("an input listed twice") {
    auto doc = nlohmann::json::parse(validEntryJson());
    const nlohmann::json mark = {{"name", "app"}, {"last_seen", 1'700'000'000'000ULL}};
    doc["inputs"] = nlohmann::json::array({mark, mark});
    content = doc.dump();
  }

  TempDir dir;
  writeFile(dir / "checkpoints.json", content);
  CheckpointStore store(dir.path(), kRetention);
  LoadStatus status = LoadStatus::Loaded;
  CHECK_NOTHROW(status = store.load());
  CHECK(status == LoadStatus::Corrupt);
  CHECK(store.entries().empty());
  CHECK_FALSE(fs::exists(dir / "checkpoints.json"));
  const auto aside = corruptFiles(dir.path());
  REQUIRE(aside.size() == 1);
  CHECK(readFile(aside[0]) == content);

  // The agent goes on: the next change is saved to a fresh, valid file.
  store.update("app", fileId(2), "/var/log/app.log", 7, kT0);
  REQUIRE(store.save());
  CheckpointStore reloaded(dir.path(), kRetention);
  CHECK(reloaded.load() == LoadStatus::Loaded);
}

TEST_CASE("a valid file loads even with keys it does not know") {
  TempDir dir;
  auto doc = nlohmann::json::parse(validEntryJson());
  doc["written_by"] = "a later version";
  doc["files"][0]["rotated_from"] = "/var/log/a.log.1";
  writeFile(dir / "checkpoints.json", doc.dump());
  CheckpointStore store(dir.path(), kRetention);
  REQUIRE(store.load() == LoadStatus::Loaded);
  REQUIRE(store.entries().size() == 1);
  CHECK(store.entries()[0].id.fingerprint == 0xff);
}

TEST_CASE("a version 1 file with one entry per file loads and resumes the input named in it") {
  TempDir dir;
  writeFile(dir / "app.log", "one\ntwo\n");
  Fd fd(dir / "app.log");
  const auto id = identify(fd.get());
  REQUIRE(id);
  std::array<char, 17> fingerprint{};
  std::snprintf(fingerprint.data(), fingerprint.size(), "%016llx", static_cast<unsigned long long>(id->fingerprint));
  // Spelled out as such a file looks on disk, so that a change of the format shows here.
  const std::string onlyEntry = R"({"input":"app","path":")" + (dir / "app.log").string() + R"(","device":)" +
                                std::to_string(id->device) + R"(,"inode":)" + std::to_string(id->inode) +
                                R"(,"fingerprint":")" + fingerprint.data() + R"(","fingerprint_bytes":)" +
                                std::to_string(id->fingerprintBytes) + R"(,"offset":4,"last_seen":1700000000000})";
  writeFile(dir / "checkpoints.json", "{\"version\":1,\"files\":[\n" + onlyEntry + "\n]}\n");
  CheckpointStore store(dir.path(), kRetention);
  REQUIRE(store.load() == LoadStatus::Loaded);
  const auto found = store.find("app", fd.get(), id->device, id->inode);
  REQUIRE(found.kind == Lookup::Kind::Same);
  CHECK(found.entry.offset == 4);
  CHECK(found.entry.lastSeen == kT0);
  CHECK(store.find("other", fd.get(), id->device, id->inode).kind == Lookup::Kind::New);
  CHECK(store.entries().size() == 1);
}

TEST_CASE("a directory in place of the checkpoint file is moved aside and saves work again") {
  TempDir dir;
  fs::create_directory(dir / "checkpoints.json");
  writeFile(dir / "checkpoints.json" / "keep", "x");
  CheckpointStore store(dir.path(), kRetention);
  CHECK(store.load() == LoadStatus::Corrupt);
  CHECK(store.entries().empty());
  const auto aside = corruptFiles(dir.path());
  REQUIRE(aside.size() == 1);
  CHECK(fs::is_directory(aside[0]));
  store.update("app", fileId(2), "/var/log/app.log", 7, kT0);
  CHECK(store.save());
  CHECK(fs::is_regular_file(dir / "checkpoints.json"));
}

TEST_CASE("corrupt files moved aside in the same second do not overwrite each other") {
  TempDir dir;
  for (int i = 0; i < 3; ++i) {
    writeFile(dir / "checkpoints.json", "garbage " + std::to_string(i));
    CheckpointStore store(dir.path(), kRetention);
    CHECK(store.load() == LoadStatus::Corrupt);
  }
  // Three loads may straddle a second boundary, so count files, not names.
  CHECK(corruptFiles(dir.path()).size() == 3);
}

TEST_CASE("a path that is not UTF-8 is saved and the file still loads") {
  TempDir dir;
  CheckpointStore store(dir.path(), kRetention);
  store.update("app", fileId(2), "/var/log/caf\xe9.log", 1, kT0);
  REQUIRE(store.save());
  CheckpointStore reloaded(dir.path(), kRetention);
  REQUIRE(reloaded.load() == LoadStatus::Loaded);
  REQUIRE(reloaded.entries().size() == 1);
  CHECK(reloaded.entries()[0].path == "/var/log/caf\xef\xbf\xbd.log");  // U+FFFD; identity is the inode
}

TEST_CASE("a saved file is line for line what a JSON library writes for the same entries") {
  TempDir dir;
  CheckpointStore store(dir.path(), kRetention);
  store.beginInput("in \"q\" \\", kT0);
  const FileId big{
      .device = UINT64_MAX, .inode = UINT64_MAX - 1, .fingerprint = 0xfedcba9876543210, .fingerprintBytes = 7};
  store.update("in \"q\" \\", big, "/var/log/t\tab\nnew\x01.log", std::uint64_t{1} << 50, kT0 + 1s);
  store.update("app", fileId(2), "/var/log/caf\xc3\xa9.log", 0, kT0);
  REQUIRE(store.save());
  std::ifstream in(dir / "checkpoints.json");
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  REQUIRE(lines.size() == 6);  // the head, one input, the files' head, two files, the end
  CHECK(lines[0] == R"({"version":)" + std::to_string(CheckpointStore::kVersion) + R"(,"inputs":[)");
  for (const std::size_t i : {1, 3, 4}) {
    std::string body = lines[i];
    if (body.ends_with(",")) body.pop_back();
    const auto parsed = nlohmann::json::parse(body);
    CHECK(body == parsed.dump());  // same keys, same order, same escapes
  }
  CHECK(lines[2] == R"(],"files":[)");
  CHECK(lines[5] == "]}");
  CheckpointStore reloaded(dir.path(), kRetention);
  REQUIRE(reloaded.load() == LoadStatus::Loaded);
  REQUIRE(reloaded.entries().size() == 2);
}

TEST_CASE("updates from one thread and saves from another leave a file with the last offsets") {
  TempDir dir;
  CheckpointStore store(dir.path(), kRetention);
  constexpr int kFiles = 8;
  constexpr int kUpdates = 4000;
  std::atomic<bool> done{false};
  std::atomic<int> savesDuringUpdates{0};
  std::thread updater([&] {
    for (int i = 1; i <= kUpdates; ++i) {
      const auto inode = static_cast<std::uint64_t>(i % kFiles);
      store.update("app", fileId(inode), "/var/log/" + std::to_string(inode) + ".log", static_cast<std::uint64_t>(i),
                   kT0 + std::chrono::milliseconds(i));
      if (i % 100 == 0) store.touch("app", fileId(inode).device, inode, kT0 + std::chrono::milliseconds(i));
      // Half way, wait for saves to overlap the updates, so the test cannot pass without any.
      if (i == kUpdates / 2) CHECK(logcapture::testing::waitUntil([&] { return savesDuringUpdates >= 2; }, 10s));
    }
    done = true;
  });
  std::thread saver([&] {
    while (!done) {
      CHECK(store.save());
      CHECK(store.entries().size() <= kFiles);
      ++savesDuringUpdates;
    }
  });
  updater.join();
  saver.join();
  CHECK(savesDuringUpdates >= 2);
  REQUIRE(store.save());
  CHECK(store.saveFailures() == 0);

  CheckpointStore reloaded(dir.path(), kRetention);
  REQUIRE(reloaded.load() == LoadStatus::Loaded);
  const auto all = reloaded.entries();
  REQUIRE(all.size() == kFiles);
  for (const auto& e : all) {
    // The last update of inode n was update number kUpdates - ((kUpdates - n) % kFiles).
    CHECK(e.offset == static_cast<std::uint64_t>(kUpdates - ((kUpdates - static_cast<int>(e.id.inode)) % kFiles)));
  }
  CHECK(all == store.entries());
}

TEST_CASE("two inputs updating the same files from their own threads each keep their last offsets") {
  TempDir dir;
  CheckpointStore store(dir.path(), kRetention);
  constexpr int kFiles = 4;
  constexpr int kUpdates = 2000;
  constexpr std::uint64_t kAppBase = 1'000'000;
  std::atomic<int> running{2};
  std::atomic<int> halfWay{0};
  std::atomic<int> savesDuringUpdates{0};
  auto updates = [&](const std::string& input, std::uint64_t base) {
    for (int i = 1; i <= kUpdates; ++i) {
      const auto inode = static_cast<std::uint64_t>(i % kFiles);
      store.update(input, fileId(inode), "/var/log/" + std::to_string(inode) + ".log",
                   base + static_cast<std::uint64_t>(i), kT0 + std::chrono::milliseconds(i));
      if (i % 100 == 0) store.touch(input, fileId(inode).device, inode, kT0 + std::chrono::milliseconds(i));
      // Half way, both updaters and some saves overlap, so the test cannot pass with them one after another.
      if (i == kUpdates / 2) {
        ++halfWay;
        CHECK(logcapture::testing::waitUntil([&] { return halfWay == 2 && savesDuringUpdates >= 2; }, 10s));
      }
    }
    --running;
  };
  std::thread all(updates, "all", 0);
  std::thread app(updates, "app", kAppBase);
  std::thread saver([&] {
    while (running > 0) {
      CHECK(store.save());
      CHECK(store.entries().size() <= 2 * kFiles);
      ++savesDuringUpdates;
    }
  });
  all.join();
  app.join();
  saver.join();
  CHECK(savesDuringUpdates >= 2);
  REQUIRE(store.save());

  CheckpointStore reloaded(dir.path(), kRetention);
  REQUIRE(reloaded.load() == LoadStatus::Loaded);
  const auto entries = reloaded.entries();
  REQUIRE(entries.size() == 2 * kFiles);
  for (const auto& e : entries) {
    const std::uint64_t base = e.input == "app" ? kAppBase : 0;
    CHECK(e.offset ==
          base + static_cast<std::uint64_t>(kUpdates - ((kUpdates - static_cast<int>(e.id.inode)) % kFiles)));
  }
  CHECK(entries == store.entries());
}

TEST_CASE("a saver writes changes on its own thread every interval and stops without saving") {
  TempDir dir;
  CheckpointStore store(dir.path(), kRetention);
  FileId id{.device = 1, .inode = 2, .fingerprint = 11, .fingerprintBytes = 10};
  CheckpointSaver saver(store, 10ms);
  saver.start();
  store.update("app", id, "/var/log/app.log", 10, kT0);
  REQUIRE(logcapture::testing::waitUntil([&] { return store.saves() == 1; }));
  store.update("app", id, "/var/log/app.log", 20, kT0);
  REQUIRE(logcapture::testing::waitUntil([&] { return store.saves() == 2; }));
  std::this_thread::sleep_for(50ms);
  CHECK(store.saves() == 2);  // nothing changed: nothing written
  saver.stop();
  store.update("app", id, "/var/log/app.log", 30, kT0);
  std::this_thread::sleep_for(50ms);
  CHECK(store.saves() == 2);

  CheckpointStore reloaded(dir.path(), kRetention);
  REQUIRE(reloaded.load() == LoadStatus::Loaded);
  REQUIRE(reloaded.entries().size() == 1);
  CHECK(reloaded.entries()[0].offset == 20);
}

TEST_CASE("the saver writes a moved offset at once, not at its next interval") {
  // A crash then repeats only what was in flight, not up to an interval of acknowledged lines.
  TempDir dir;
  CheckpointStore store(dir.path(), kRetention);
  FileId id{.device = 1, .inode = 2, .fingerprint = 11, .fingerprintBytes = 10};
  CheckpointSaver saver(store, std::chrono::hours(1));
  saver.start();
  for (std::uint64_t offset = 10; offset <= 30; offset += 10) {
    store.update("app", id, "/var/log/app.log", offset, kT0);
    // The file is read as text: loading it into a store would remove the temp file of a save under way.
    REQUIRE(logcapture::testing::waitUntil(
        [&] {
          std::ifstream in(dir.path() / "checkpoints.json");
          const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
          return text.find("\"offset\":" + std::to_string(offset) + ",") != std::string::npos;
        },
        std::chrono::seconds(10)));
  }
  saver.stop();
}

TEST_CASE("the saver writes a change other than an offset within its interval, with no offset moving") {
  // It sleeps while nothing changes: a mark must wake it as an offset does, only not at once.
  TempDir dir;
  CheckpointStore store(dir.path(), kRetention);
  FileId id{.device = 1, .inode = 2, .fingerprint = 11, .fingerprintBytes = 10};
  store.update("app", id, "/var/log/app.log", 10, kT0);
  CheckpointSaver saver(store, 20ms);
  saver.start();
  REQUIRE(logcapture::testing::waitUntil([&] { return store.saves() == 1; }));  // what came before it listened
  store.touch("app", 1, 2, kT0 + kRetention / 2);  // present long enough for its mark to be worth a write
  REQUIRE(logcapture::testing::waitUntil([&] { return store.saves() == 2; }));
  saver.stop();
}
