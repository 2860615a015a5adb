// The decoder as the tailer drives it: lines with their end offsets in, records out; time is driven
// explicitly through `now`.

#include "agent/inputs/decode/decoder.h"

#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "base/json_object.h"

namespace {

using namespace logcapture;
using namespace logcapture::agent;
using namespace logcapture::base;
using namespace logcapture::agent::decode;
using namespace std::chrono;
using namespace std::chrono_literals;

std::shared_ptr<Source> appSource() {
  auto source = std::make_shared<Source>();
  source->input = "app";
  source->path = "/var/log/app.log";
  return source;
}

// Feeds lines as the tailer does: each line's end offset is just past its newline.
struct Feeder {
  config::InputConfig cfg;
  DecodeStats stats;
  std::shared_ptr<Source> source = appSource();
  std::unique_ptr<Decoder> decoder;
  std::uint64_t offset = 0;
  steady_clock::time_point now{};
  system_clock::time_point readTime = sys_days{2030y / January / 1};
  Chunk chunk;
  std::vector<Record>& out = chunk.records;

  explicit Feeder(config::InputFormat format) { cfg.format = format; }
  Feeder& multiline(std::string pattern) {
    cfg.multiline.emplace();
    cfg.multiline->startPattern = std::move(pattern);
    return *this;
  }
  Decoder& d() {
    if (!decoder) decoder = std::make_unique<Decoder>(cfg, source, stats);
    return *decoder;
  }
  void feed(std::string_view text, bool truncated = false) {
    offset += text.size() + 1;
    d().line(text, offset, truncated, readTime, now, chunk);
  }
  void flush(bool force = false) { d().flush(now, force, chunk); }
  std::vector<std::string> messages() const {
    std::vector<std::string> m;
    for (const auto& r : out) m.emplace_back(r.message);
    return m;
  }
};

using Messages = std::vector<std::string>;

system_clock::time_point at(sys_days day, nanoseconds sinceMidnight) {
  return system_clock::time_point(duration_cast<system_clock::duration>(day.time_since_epoch() + sinceMidnight));
}

std::string docker(std::string_view log, std::string_view stream, std::string_view time = "2024-01-01T00:00:00Z") {
  return R"({"log":")" + std::string(log) + R"(","stream":")" + std::string(stream) + R"(","time":")" +
         std::string(time) + R"("})";
}

std::string cri(std::string_view stream, std::string_view tag, std::string_view message,
                std::string_view time = "2024-01-01T00:00:00Z") {
  return std::string(time) + " " + std::string(stream) + " " + std::string(tag) + " " + std::string(message);
}

TEST_CASE("raw lines become records with the read time, the source and the offset past their newline") {
  Feeder f(config::InputFormat::Raw);
  f.feed("first");
  f.feed("second line");
  REQUIRE(f.out.size() == 2);
  CHECK(f.messages() == Messages{"first", "second line"});
  CHECK(f.out[0].offset == 6);
  CHECK(f.out[1].offset == 18);
  CHECK(f.out[0].time == f.readTime);
  CHECK(f.out[0].source == f.source.get());
  CHECK(f.chunk.source == f.source);
  CHECK(f.out[0].stream == Stream::None);
  CHECK_FALSE(f.out[0].json);
  CHECK_FALSE(f.d().deadline());
}

TEST_CASE("raw lines lose one trailing carriage return") {
  Feeder f(config::InputFormat::Raw);
  f.feed("crlf\r");
  f.feed("two\r\r");
  f.feed("");
  CHECK(f.messages() == Messages{"crlf", "two\r", ""});
}

TEST_CASE("a line the tailer truncated stays flagged") {
  Feeder f(config::InputFormat::Raw);
  f.feed("cut", true);
  REQUIRE(f.out.size() == 1);
  CHECK(f.out[0].truncated);
  CHECK(f.stats.truncated == 0);  // the tailer counts its own cuts
}

TEST_CASE("a JSON object line is the message and is flagged as JSON") {
  Feeder f(config::InputFormat::Json);
  f.feed(R"({"level":"info","msg":"x"})"
         "\r");
  REQUIRE(f.out.size() == 1);
  CHECK(f.out[0].message == R"({"level":"info","msg":"x"})");
  CHECK(f.out[0].json);
  CHECK(f.stats.invalidJson == 0);
}

TEST_CASE("a json line that is not a JSON object is kept raw and counted") {
  Feeder f(config::InputFormat::Json);
  f.feed("not json");
  f.feed(R"({"broken":)");
  f.feed("[1,2]");
  f.feed(R"({"cut":)", true);
  CHECK(f.messages() == Messages{"not json", R"({"broken":)", "[1,2]", R"({"cut":)"});
  for (const auto& r : f.out) CHECK_FALSE(r.json);
  CHECK(f.stats.invalidJson == 3);  // the truncated line is the tailer's to count
}

TEST_CASE("docker lines give the log, the stream and the container's time") {
  Feeder f(config::InputFormat::Docker);
  f.feed(docker(R"(hello \"world\"\n)", "stdout", "2024-01-01T00:00:00.123456789Z"));
  f.feed(docker(R"(oops\n)", "stderr", "2024-01-01T01:00:00+01:00"));
  REQUIRE(f.out.size() == 2);
  CHECK(f.out[0].message == R"(hello "world")");
  CHECK(f.out[0].stream == Stream::Stdout);
  CHECK(f.out[0].time == at(2024y / January / 1, 123456789ns));
  CHECK(f.out[1].message == "oops");
  CHECK(f.out[1].stream == Stream::Stderr);
  CHECK(f.out[1].time == at(2024y / January / 1, 0ns));
}

TEST_CASE("docker lines split at 16 KiB are joined per stream while stdout and stderr interleave") {
  Feeder f(config::InputFormat::Docker);
  f.feed(docker("out-1 ", "stdout", "2024-01-01T00:00:01Z"));
  f.feed(docker("err-1 ", "stderr", "2024-01-01T00:00:02Z"));
  f.feed(docker("out-2 ", "stdout"));
  f.feed(docker(R"(err-2\n)", "stderr"));
  const std::uint64_t errEnd = f.offset;
  f.feed(docker(R"(out-3\n)", "stdout"));
  REQUIRE(f.out.size() == 2);
  CHECK(f.messages() == Messages{"err-1 err-2", "out-1 out-2 out-3"});
  CHECK(f.out[0].stream == Stream::Stderr);
  CHECK(f.out[0].time == at(2024y / January / 1, 2s));  // the time of the first part
  CHECK(f.out[1].stream == Stream::Stdout);
  CHECK(f.out[1].time == at(2024y / January / 1, 1s));
  // stderr finished while stdout's first part was held: its checkpoint stops before that part.
  CHECK(f.out[0].offset == 0);
  CHECK(f.out[0].offset < errEnd);
  CHECK(f.out[1].offset == f.offset);
  CHECK_FALSE(f.d().deadline());
}

TEST_CASE("docker lines that are not valid JSON are kept raw and counted") {
  Feeder f(config::InputFormat::Docker);
  f.feed("plain text\r");
  f.feed(R"({"log":"x\n","stream":"stdout")");
  f.feed(R"({"message":"no log"})");
  CHECK(f.messages() == Messages{"plain text", R"({"log":"x\n","stream":"stdout")", R"({"message":"no log"})"});
  CHECK(f.out[0].stream == Stream::None);
  CHECK(f.out[0].time == f.readTime);
  CHECK(f.stats.invalidJson == 3);
}

TEST_CASE("a docker line cut by the tailer keeps the decoded part of its log") {
  Feeder f(config::InputFormat::Docker);
  f.feed(R"({"log":"a long\tline that was cu)", true);
  REQUIRE(f.out.size() == 1);
  CHECK(f.out[0].message == "a long\tline that was cu");
  CHECK(f.out[0].truncated);
  CHECK(f.out[0].time == f.readTime);
  CHECK(f.stats.invalidJson == 0);
}

TEST_CASE("cri lines give the message, the stream and the container's time") {
  Feeder f(config::InputFormat::Cri);
  f.feed(cri("stdout", "F", "hello world", "2024-01-01T00:00:00.000000042Z"));
  f.feed(cri("stderr", "F", "", "2024-01-01T00:00:00-00:30"));
  REQUIRE(f.out.size() == 2);
  CHECK(f.out[0].message == "hello world");
  CHECK(f.out[0].stream == Stream::Stdout);
  CHECK(f.out[0].time == at(2024y / January / 1, 42ns));
  CHECK(f.out[1].message.empty());
  CHECK(f.out[1].stream == Stream::Stderr);
  CHECK(f.out[1].time == at(2024y / January / 1, 30min));
}

TEST_CASE("cri P fragments are joined per stream up to their F line") {
  Feeder f(config::InputFormat::Cri);
  f.feed(cri("stdout", "P", "out-1 ", "2024-01-01T00:00:01Z"));
  const std::uint64_t beforeErr = f.offset;
  f.feed(cri("stderr", "P", "err-1 ", "2024-01-01T00:00:02Z"));
  f.feed(cri("stdout", "F", "out-2"));
  const std::uint64_t outEnd = f.offset;
  f.feed(cri("stderr", "F", "err-2"));
  CHECK(f.messages() == Messages{"out-1 out-2", "err-1 err-2"});
  CHECK(f.out[0].time == at(2024y / January / 1, 1s));
  CHECK(f.out[1].time == at(2024y / January / 1, 2s));
  CHECK(f.out[0].offset == beforeErr);  // not past stderr's held fragment
  CHECK(f.out[0].offset < outEnd);
  CHECK(f.out[1].offset == f.offset);
}

TEST_CASE("malformed cri lines are kept raw and counted") {
  Feeder f(config::InputFormat::Cri);
  f.feed("just text");
  f.feed("2024-01-01T00:00:00Z stdin F x");
  f.feed("2024-13-01T00:00:00Z stdout F x");
  CHECK(f.messages() == Messages{"just text", "2024-01-01T00:00:00Z stdin F x", "2024-13-01T00:00:00Z stdout F x"});
  CHECK(f.out[0].stream == Stream::None);
  CHECK(f.out[0].time == f.readTime);
  CHECK(f.stats.invalidCri == 3);
}

TEST_CASE("a malformed line between fragments does not break the join of their stream") {
  Feeder f(config::InputFormat::Cri);
  f.feed(cri("stdout", "P", "a"));
  f.feed("garbage");
  f.feed(cri("stdout", "F", "b"));
  CHECK(f.messages() == Messages{"garbage", "ab"});
  CHECK(f.out[0].offset == 0);  // stdout's fragment was still held
  CHECK(f.out[1].offset == f.offset);
}

TEST_CASE("a joined line longer than max_line_bytes is cut UTF-8-safely, flagged and counted") {
  Feeder f(config::InputFormat::Cri);
  f.cfg.maxLineBytes = config::Bytes{10};
  f.feed(cri("stdout", "P", "12345678"));
  f.feed(cri("stdout", "P", "\xC3\xA9\xC3\xA9"));  // é starts at byte 9 and would end at byte 10... then 12
  f.feed(cri("stdout", "P", "dropped"));
  f.feed(cri("stdout", "F", "dropped too"));
  REQUIRE(f.out.size() == 1);
  CHECK(f.out[0].message == "12345678\xC3\xA9");
  CHECK(f.out[0].truncated);
  CHECK(f.out[0].offset == f.offset);  // the record covers the fragments dropped after the cut
  CHECK(f.stats.truncated == 1);
}

TEST_CASE("a cut never splits a character whose bytes straddle two fragments") {
  Feeder f(config::InputFormat::Cri);
  f.cfg.maxLineBytes = config::Bytes{10};
  f.feed(cri("stdout", "P", "123456789\xE2"));  // € split by bytes across fragments
  f.feed(cri("stdout", "F", "\x82\xAC tail"));
  REQUIRE(f.out.size() == 1);
  CHECK(f.out[0].message == "123456789");
  CHECK(f.out[0].truncated);
}

TEST_CASE("a split line whose end never comes is flushed after the partial timeout and counted") {
  Feeder f(config::InputFormat::Docker);
  f.feed(docker("no end yet", "stdout"));
  REQUIRE(f.d().deadline());
  CHECK(*f.d().deadline() == f.now + 5s);
  f.now += 4s;
  f.flush();
  CHECK(f.out.empty());
  f.now += 1s;
  f.flush();
  CHECK(f.messages() == Messages{"no end yet"});
  CHECK(f.out[0].offset == f.offset);
  CHECK(f.stats.partialFlushed == 1);
  CHECK_FALSE(f.d().deadline());
}

TEST_CASE("the partial timeout counts from the last fragment") {
  Feeder f(config::InputFormat::Cri);
  f.feed(cri("stdout", "P", "a"));
  f.now += 3s;
  f.feed(cri("stdout", "P", "b"));
  f.now += 3s;
  f.flush();
  CHECK(f.out.empty());
  CHECK(*f.d().deadline() == f.now + 2s);
}

TEST_CASE("deadline is the earliest timeout of what is held") {
  Feeder f(config::InputFormat::Cri);
  f.multiline("^\\S");
  f.cfg.multiline->timeout = 2s;
  CHECK_FALSE(f.d().deadline());
  f.feed(cri("stdout", "F", "start"));
  f.now += 1s;
  f.feed(cri("stderr", "P", "part"));
  CHECK(*f.d().deadline() == steady_clock::time_point{} + 2s);
}

TEST_CASE("a stack trace is joined into one record up to the next start line") {
  Feeder f(config::InputFormat::Raw);
  f.multiline("^\\S");
  f.feed("Exception in thread main java.lang.IllegalStateException: boom");
  f.feed("\tat com.example.A.run(A.java:10)");
  f.feed("\tat com.example.B.main(B.java:5)");
  const std::uint64_t traceEnd = f.offset;
  f.feed("Caused by: java.io.IOException");  // matches ^\S: a record of its own
  f.feed("next record");
  REQUIRE(f.out.size() == 2);
  CHECK(f.out[0].message ==
        "Exception in thread main java.lang.IllegalStateException: boom\n"
        "\tat com.example.A.run(A.java:10)\n"
        "\tat com.example.B.main(B.java:5)");
  CHECK(f.out[0].offset == traceEnd);
  CHECK(f.out[1].message == "Caused by: java.io.IOException");
  CHECK(f.stats.multilineFlushed == 0);
  f.flush(true);
  CHECK(f.out.back().message == "next record");
  CHECK(f.out.back().offset == f.offset);
  CHECK(f.stats.multilineFlushed == 0);  // force is not a limit
}

TEST_CASE("a multiline record keeps the time of its first line") {
  Feeder f(config::InputFormat::Cri);
  f.multiline("^\\S");
  f.feed(cri("stdout", "F", "start", "2024-01-01T00:00:01Z"));
  f.feed(cri("stdout", "F", "  more", "2024-01-01T00:00:02Z"));
  f.flush(true);
  REQUIRE(f.out.size() == 1);
  CHECK(f.out[0].message == "start\n  more");
  CHECK(f.out[0].time == at(2024y / January / 1, 1s));
}

TEST_CASE("multiline joining keeps stdout and stderr apart") {
  Feeder f(config::InputFormat::Cri);
  f.multiline("^\\S");
  f.feed(cri("stdout", "F", "out start"));
  f.feed(cri("stderr", "F", "err start"));
  f.feed(cri("stdout", "F", "  out more"));
  f.feed(cri("stderr", "F", "  err more"));
  f.feed(cri("stdout", "F", "out next"));
  REQUIRE(f.out.size() == 1);
  CHECK(f.out[0].message == "out start\n  out more");
  CHECK(f.out[0].stream == Stream::Stdout);
  CHECK(f.out[0].offset < f.offset);  // stderr's record is still held
  f.flush(true);
  CHECK(f.messages() == Messages{"out start\n  out more", "err start\n  err more", "out next"});
  for (std::size_t i = 1; i < f.out.size(); ++i) CHECK(f.out[i - 1].offset <= f.out[i].offset);
  CHECK(f.out.back().offset == f.offset);
}

TEST_CASE("split cri lines are joined before multiline joining sees them") {
  Feeder f(config::InputFormat::Cri);
  f.multiline("^\\S");
  f.feed(cri("stdout", "P", "sta"));
  f.feed(cri("stdout", "F", "rt"));
  f.feed(cri("stdout", "P", " con"));
  f.feed(cri("stdout", "F", "tinued"));
  f.flush(true);
  CHECK(f.messages() == Messages{"start\n continued"});
}

TEST_CASE("a held multiline record is flushed after the timeout since its last line") {
  Feeder f(config::InputFormat::Raw);
  f.multiline("^\\S");
  f.cfg.multiline->timeout = 1s;
  f.feed("start");
  f.now += 800ms;
  f.feed("  more");
  CHECK(*f.d().deadline() == f.now + 1s);
  f.now += 800ms;
  f.flush();
  CHECK(f.out.empty());
  f.now += 200ms;
  f.flush();
  CHECK(f.messages() == Messages{"start\n  more"});
  CHECK(f.out[0].offset == f.offset);
  CHECK(f.stats.multilineFlushed == 1);
  CHECK_FALSE(f.d().deadline());
}

TEST_CASE("max_lines flushes a record when it reaches that many lines") {
  Feeder f(config::InputFormat::Raw);
  f.multiline("^\\S");
  f.cfg.multiline->maxLines = 3;
  f.feed("start");
  f.feed(" 1");
  CHECK(f.out.empty());
  f.feed(" 2");
  CHECK(f.messages() == Messages{"start\n 1\n 2"});
  CHECK(f.out[0].offset == f.offset);
  f.feed(" 3");  // a continuation with nothing held starts a record: nothing is dropped
  f.flush(true);
  CHECK(f.messages() == Messages{"start\n 1\n 2", " 3"});
  CHECK(f.stats.multilineFlushed == 1);
}

TEST_CASE("max_bytes flushes the held record before a line that would overflow it") {
  Feeder f(config::InputFormat::Raw);
  f.multiline("^\\S");
  f.cfg.multiline->maxBytes = config::Bytes{1024};
  const std::string half(600, 'x');
  f.feed("S" + half);
  const std::uint64_t firstEnd = f.offset;
  f.feed(" " + half);
  REQUIRE(f.out.size() == 1);
  CHECK(f.out[0].message == "S" + half);
  CHECK(f.out[0].offset == firstEnd);
  CHECK_FALSE(f.out[0].truncated);
  f.flush(true);
  CHECK(f.out.back().message == " " + half);
  CHECK(f.stats.multilineFlushed == 1);
  CHECK(f.stats.truncated == 0);
}

TEST_CASE("a line longer than multiline max_bytes is cut UTF-8-safely and goes out at once") {
  Feeder f(config::InputFormat::Raw);
  f.multiline("^\\S");
  f.cfg.multiline->maxBytes = config::Bytes{1024};
  const std::string line = std::string(1023, 'a') + "\xC3\xA9" + "tail";
  f.feed(line);
  REQUIRE(f.out.size() == 1);
  CHECK(f.out[0].message == std::string(1023, 'a'));
  CHECK(f.out[0].truncated);
  CHECK(f.out[0].offset == f.offset);
  CHECK(f.stats.truncated == 1);
  CHECK(f.stats.multilineFlushed == 1);
  CHECK_FALSE(f.d().deadline());
}

TEST_CASE("a joined record with a truncated line keeps the flag") {
  Feeder f(config::InputFormat::Raw);
  f.multiline("^\\S");
  f.feed("start");
  f.feed("  cut", true);
  f.flush(true);
  REQUIRE(f.out.size() == 1);
  CHECK(f.out[0].truncated);
}

TEST_CASE("force emits every held record, split lines included, oldest first") {
  Feeder f(config::InputFormat::Docker);
  f.multiline("^\\S");
  f.feed(docker(R"(err start\n)", "stderr"));
  f.feed(docker("out part", "stdout"));
  f.feed(docker(R"(  err more\n)", "stderr"));
  CHECK(f.out.empty());
  f.flush(true);
  CHECK(f.messages() == Messages{"err start\n  err more", "out part"});
  CHECK(f.out[0].offset <= f.out[1].offset);
  CHECK(f.out[1].offset == f.offset);
  CHECK(f.stats.partialFlushed == 1);
  CHECK(f.stats.multilineFlushed == 0);
  CHECK_FALSE(f.d().deadline());
}

TEST_CASE("a split line flushed by timeout goes on into multiline joining") {
  Feeder f(config::InputFormat::Docker);
  f.multiline("^\\S");
  f.cfg.multiline->timeout = 1s;
  f.feed(docker(R"(start\n)", "stdout"));
  f.feed(docker("  unfinished", "stdout"));
  f.now += 1s;
  f.flush();
  // The split line joined the record, which now waits a timeout of its own.
  CHECK(f.out.empty());
  f.now += 1s;
  f.flush();
  CHECK(f.messages() == Messages{"start\n  unfinished"});
}

TEST_CASE("a json line nested 120,000 levels deep goes out as text flagged too deep, between its neighbours") {
  Feeder f(config::InputFormat::Json);
  const std::string deep = "{\"a\":" + std::string(120'000, '[') + std::string(120'000, ']') + "}";
  f.feed(R"({"n":1})");
  f.feed(deep);
  f.feed(R"({"n":2})");
  REQUIRE(f.out.size() == 3);
  CHECK(f.out[0].json);
  CHECK_FALSE(f.out[1].json);
  CHECK(f.out[1].jsonError == JsonError::TooDeep);
  CHECK(f.out[1].message == deep);
  CHECK(f.out[1].offset == 8 + deep.size() + 1);
  CHECK(f.out[2].json);
  CHECK(f.out[2].jsonError == JsonError::None);
  CHECK(f.stats.jsonUnparsed == 1);
  CHECK(f.stats.invalidJson == 0);
}

TEST_CASE("a json line with more members than the decoder indexes goes out as text flagged too large") {
  Feeder f(config::InputFormat::Json);
  std::string wide = "{";
  for (std::size_t i = 0; i <= kMaxJsonMembers; ++i) wide += std::string(i ? "," : "") + "\"k\":0";
  wide += "}";
  f.feed(wide);
  REQUIRE(f.out.size() == 1);
  CHECK_FALSE(f.out[0].json);
  CHECK(f.out[0].jsonError == JsonError::TooLarge);
  CHECK(f.out[0].message == wide);
  CHECK(f.stats.jsonUnparsed == 1);
}

TEST_CASE("a json record carries the member table of its object, repeated keys once") {
  Feeder f(config::InputFormat::Json);
  f.feed(R"({"level":"info","msg":"x","level":"warn"})");
  REQUIRE(f.out.size() == 1);
  const auto members = jsonMembers(f.out[0]);
  REQUIRE(members.size() == 2);
  CHECK(members[0].key(f.out[0].message) == "msg");
  CHECK(members[1].key(f.out[0].message) == "level");
  CHECK(members[1].value(f.out[0].message) == R"("warn")");
}

TEST_CASE("records that are not json carry no member table") {
  Feeder f(config::InputFormat::Raw);
  f.feed(R"({"level":"info"})");
  REQUIRE(f.out.size() == 1);
  CHECK_FALSE(f.out[0].json);
  CHECK(jsonMembers(f.out[0]).empty());
}

TEST_CASE("json multiline records are checked as a whole") {
  Feeder f(config::InputFormat::Json);
  f.multiline("^\\{");
  f.feed("{");
  f.feed(R"(  "a": 1)");
  f.feed("}");
  f.feed("{ broken");
  f.flush(true);
  REQUIRE(f.out.size() == 2);
  CHECK(f.out[0].message == "{\n  \"a\": 1\n}");
  CHECK(f.out[0].json);
  REQUIRE(jsonMembers(f.out[0]).size() == 1);
  CHECK(jsonMembers(f.out[0])[0].value(f.out[0].message) == "1");
  CHECK_FALSE(f.out[1].json);
  CHECK(f.stats.invalidJson == 1);
}

TEST_CASE("a start pattern matching past 4 KiB of a 100 KiB line starts a record") {
  Feeder f(config::InputFormat::Raw);
  f.multiline("^start|\\[request [0-9]+\\]$");
  f.feed("start");
  f.feed("  continued");
  std::string longLine(100 * 1024, 'x');
  longLine += "[request 42]";
  f.feed(longLine);
  f.feed("  continued");
  f.flush(true);
  REQUIRE(f.out.size() == 2);
  CHECK(f.out[0].message == "start\n  continued");
  CHECK(f.out[1].message == longLine + "\n  continued");
}

TEST_CASE("a pathological start pattern on a 1 MiB line neither crashes nor stalls the decoder") {
  Feeder f(config::InputFormat::Raw);
  // A backtracking matcher recurses per byte on `(a|aa)*` and runs for ever looking for the `b`.
  f.multiline("^start.*end$|(a|aa)*b");
  f.cfg.maxLineBytes = config::Bytes{2 << 20};
  f.cfg.multiline->maxBytes = config::Bytes{4 << 20};
  f.feed("start");
  const std::string longLine = "start" + std::string(1 << 20, 'a') + "end";
  f.feed(longLine);
  f.feed(std::string(1 << 20, 'a'));
  f.flush(true);
  REQUIRE(f.out.size() == 2);
  CHECK(f.out[0].message == "start");
  CHECK(f.out[1].message == longLine + "\n" + std::string(1 << 20, 'a'));
}

TEST_CASE("offsets restart with the lines of a truncated file") {
  Feeder f(config::InputFormat::Cri);
  for (int i = 0; i < 5; ++i) f.feed(cri("stdout", "F", "before truncation"));
  f.flush(true);
  f.out.clear();
  f.offset = 0;  // copytruncate: read again from the top
  f.feed(cri("stderr", "P", "held"));
  f.feed(cri("stdout", "F", "after"));
  REQUIRE(f.out.size() == 1);
  CHECK(f.out[0].offset == 0);  // before the held fragment, not the old file's offsets
}

TEST_CASE("offsets of emitted records never decrease") {
  Feeder f(config::InputFormat::Cri);
  f.multiline("^\\S");
  f.cfg.multiline->timeout = 1s;
  const char* streams[] = {"stdout", "stderr"};
  for (int i = 0; i < 200; ++i) {
    const char* stream = streams[(i * 7 / 3) % 2];
    const bool partial = i % 5 == 1;
    const bool start = i % 3 == 0;
    f.feed(cri(stream, partial ? "P" : "F", start ? "S" : " c"));
    if (i % 11 == 0) f.now += 600ms;
    if (i % 13 == 0) f.flush();
    if (i % 17 == 0) f.feed("garbage");
  }
  f.flush(true);
  REQUIRE_FALSE(f.out.empty());
  for (std::size_t i = 1; i < f.out.size(); ++i) {
    CAPTURE(i);
    CHECK(f.out[i - 1].offset <= f.out[i].offset);
  }
  CHECK(f.out.back().offset == f.offset);
}

}  // namespace
