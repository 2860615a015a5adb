// The disk buffer's segment format alone (agent/buffer_segment.h): CRC32C, frames written and read
// back, and what a reader does with damage: a torn last frame, a corrupt frame, garbage, no file.

#include "agent/runner/buffer_segment.h"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "agent/runner/crc32c.h"
#include "tests/support/fixtures.h"
#include "tests/support/records.h"

namespace {

using namespace logcapture;
using namespace logcapture::agent;
namespace fs = std::filesystem;

// `count` records of one kubernetes source, "message <i>", every other one from stderr.
std::vector<base::Record> sampleRecords(int count) {
  auto source = std::make_shared<base::Source>();
  source->input = "pods";
  source->path = "/var/log/containers/web.log";
  source->kubeNamespace = "shop";
  source->pod = "web-1";
  source->podUid = "uid-1";
  source->container = "web";
  source->containerId = "c0ffee";
  source->fields = std::make_shared<const std::map<std::string, std::string>>(
      std::map<std::string, std::string>{{"env", "prod"}, {"team", "core"}});
  const base::Source* kept = testing::keptSource(source);
  std::vector<base::Record> out;
  for (int i = 0; i < count; ++i) {
    base::Record r;
    r.message = testing::keptText("message " + std::to_string(i));
    r.source = kept;
    r.offset = std::uint64_t(100 + i);
    r.time = std::chrono::system_clock::time_point(std::chrono::seconds(1700000000 + i));
    r.stream = i % 2 == 0 ? base::Stream::Stdout : base::Stream::Stderr;
    r.truncated = i == 1;
    out.push_back(r);
  }
  return out;
}

std::string segmentOf(const std::vector<std::vector<base::Record>>& batches) {
  std::string data(disk::kSegmentMagic);
  for (const auto& records : batches) {
    std::vector<const base::Record*> ptrs;
    for (const auto& r : records) ptrs.push_back(&r);
    disk::appendFrame(data, ptrs, std::chrono::system_clock::time_point(std::chrono::seconds(1700000000)));
  }
  return data;
}

void writeFile(const fs::path& p, const std::string& data) {
  std::ofstream out(p, std::ios::binary);
  out << data;
}

}  // namespace

TEST_CASE("crc32c gives the Castagnoli check values") {
  CHECK(crc32c("") == 0);
  CHECK(crc32c("123456789") == 0xE3069283u);
  // Continued in pieces, and over more than a word at a time, it gives the same.
  const std::string long_(1000, 'x');
  CHECK(crc32c(long_.substr(500), crc32c(long_.substr(0, 500))) == crc32c(long_));
}

TEST_CASE("a segment of frames reads back every record with its source and metadata") {
  testing::TempDir dir("logcapture-segment");
  const auto records = sampleRecords(5);
  base::Record json;
  testing::keepJson(json, R"({"level":"info","n":1})");
  json.source = records[0].source;
  std::vector<base::Record> second{json};
  writeFile(dir / "1.seg", segmentOf({records, second}));

  const disk::SegmentScan scan = disk::scanSegment((dir / "1.seg").string());
  REQUIRE(scan.opened);
  CHECK_FALSE(scan.badMagic);
  CHECK(scan.corrupt == 0);
  REQUIRE(scan.frames.size() == 2);
  const auto& back = scan.frames[0].batch->chunk.records;
  REQUIRE(back.size() == 5);
  for (std::size_t i = 0; i < back.size(); ++i) {
    CHECK(back[i].message == records[i].message);
    CHECK(back[i].offset == records[i].offset);
    CHECK(back[i].time == records[i].time);
    CHECK(back[i].stream == records[i].stream);
    CHECK(back[i].truncated == records[i].truncated);
    REQUIRE(back[i].source != nullptr);
    CHECK(back[i].source->pod == "web-1");
    CHECK(back[i].source->containerId == "c0ffee");
    CHECK(back[i].source->fields->at("team") == "core");
  }
  CHECK(scan.frames[0].batch->formedAt == std::chrono::system_clock::time_point(std::chrono::seconds(1700000000)));
  const base::Record& j = scan.frames[1].batch->chunk.records.at(0);
  CHECK(j.json);
  REQUIRE(jsonMembers(j).size() == 2);
  CHECK(jsonMembers(j)[0].key(j.message) == "level");
  CHECK(jsonMembers(j)[1].value(j.message) == "1");
}

TEST_CASE("a torn last frame is skipped and counted, the frames before it read") {
  testing::TempDir dir("logcapture-segment");
  std::string data = segmentOf({sampleRecords(3), sampleRecords(3)});
  data.resize(data.size() - 5);  // the crash cut the last write short
  writeFile(dir / "1.seg", data);
  const disk::SegmentScan scan = disk::scanSegment((dir / "1.seg").string());
  CHECK(scan.frames.size() == 1);
  CHECK(scan.corrupt == 1);
}

TEST_CASE("a corrupt frame is skipped and counted, the frames after it read") {
  testing::TempDir dir("logcapture-segment");
  std::string data = segmentOf({sampleRecords(3), sampleRecords(4), sampleRecords(5)});
  const std::size_t firstPayload = disk::kSegmentMagic.size() + disk::kFrameHeaderBytes;
  data[firstPayload + 20] = char(data[firstPayload + 20] ^ 0x40);  // one bit flipped in the first frame
  writeFile(dir / "1.seg", data);
  const disk::SegmentScan scan = disk::scanSegment((dir / "1.seg").string());
  REQUIRE(scan.frames.size() == 2);
  CHECK(scan.corrupt == 1);
  CHECK(scan.frames[0].batch->chunk.records.size() == 4);
  CHECK(scan.frames[1].batch->chunk.records.size() == 5);
}

TEST_CASE("a length that runs past the end of the file ends the segment as one corrupt frame") {
  testing::TempDir dir("logcapture-segment");
  std::string data = segmentOf({sampleRecords(2)});
  data += std::string("\xff\xff\xff\x7f garbage after the frames", 30);
  writeFile(dir / "1.seg", data);
  const disk::SegmentScan scan = disk::scanSegment((dir / "1.seg").string());
  CHECK(scan.frames.size() == 1);
  CHECK(scan.corrupt == 1);
}

TEST_CASE("a file of garbage is not taken for a segment") {
  testing::TempDir dir("logcapture-segment");
  writeFile(dir / "1.seg", std::string(4096, '\x5a'));
  const disk::SegmentScan scan = disk::scanSegment((dir / "1.seg").string());
  CHECK(scan.opened);
  CHECK(scan.badMagic);
  CHECK(scan.frames.empty());
}

TEST_CASE("a missing segment file is reported, not thrown") {
  testing::TempDir dir("logcapture-segment");
  const disk::SegmentScan scan = disk::scanSegment((dir / "missing" / "1.seg").string());
  CHECK_FALSE(scan.opened);
  CHECK_FALSE(scan.error.empty());
}

TEST_CASE("a payload whose json members point outside its message is refused though its CRC matches") {
  auto records = sampleRecords(1);
  base::Record json;
  testing::keepJson(json, R"({"a":1})");
  std::vector<const base::Record*> ptrs{&json};
  std::string frame;
  disk::appendFrame(frame, ptrs, {});
  std::string payload = frame.substr(disk::kFrameHeaderBytes);
  CHECK(disk::decodePayload(payload) != nullptr);
  // The member table follows the record's fixed fields; its first key offset is made to point far away.
  const std::size_t table = payload.size() - (4 + json.message.size()) - 16;
  payload[table] = char(0x7f);
  CHECK(disk::decodePayload(payload) == nullptr);
}
