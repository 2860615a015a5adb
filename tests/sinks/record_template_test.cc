// Record templates alone: how each placeholder form renders, what counts as missing, and where a
// field's value comes from (the record's own keys, static fields, the keys of a json record's object).

#include "sinks/record_template.h"

#include <doctest/doctest.h>

#include <map>
#include <memory>
#include <string>

#include "tests/support/records.h"

namespace {

using namespace logcapture;
using base::Record;
using base::Source;
using sinks::RecordTemplate;

struct Rendered {
  std::string text;
  std::optional<std::string> missing;
  bool operator==(const Rendered&) const = default;
};

Rendered render(std::string_view templ, const Record& r) {
  Rendered out;
  out.missing = RecordTemplate(templ).render(r, out.text);
  return out;
}

std::shared_ptr<Source> appSource(std::map<std::string, std::string> fields = {}) {
  auto s = std::make_shared<Source>();
  s->input = "app";
  s->path = "/var/log/app.log";
  s->fields = std::make_shared<const std::map<std::string, std::string>>(std::move(fields));
  return s;
}

Record record(std::shared_ptr<Source> source = appSource()) {
  Record r;
  r.message = testing::keptText("a line");
  r.source = testing::keptSource(std::move(source));
  return r;
}

Record jsonRecord(std::string_view object, std::shared_ptr<Source> source = appSource()) {
  Record r = record(std::move(source));
  REQUIRE(testing::keepJson(r, object) == base::JsonVerdict::Object);
  return r;
}

TEST_CASE("a template without placeholders renders as it is and is constant") {
  const RecordTemplate t("logs-app");
  CHECK(t.constant());
  std::string out = "left over";
  CHECK_FALSE(t.render(record(), out));
  CHECK(out == "logs-app");
  CHECK(RecordTemplate("").constant());
  CHECK(render("", record()) == Rendered{"", std::nullopt});
}

TEST_CASE("placeholders render between literals, at either end, side by side and with spaces inside") {
  const Record r = record();
  CHECK_FALSE(RecordTemplate("logs-{{input}}").constant());
  CHECK(render("logs-{{input}}", r).text == "logs-app");
  CHECK(render("{{input}}-logs", r).text == "app-logs");
  CHECK(render("{{input}}{{input}}", r).text == "appapp");
  CHECK(render("a{{ input }}b{{  path}}c", r).text == "aappb/var/log/app.logc");
  CHECK(render("{{input}}", r).missing == std::nullopt);
}

TEST_CASE("malformed placeholders are problems for the config check and render literally") {
  CHECK(RecordTemplate::problem("logs-{{input") == "'{{' without a closing '}}'");
  CHECK(RecordTemplate::problem("logs-{{}}") == "an empty '{{}}' placeholder");
  CHECK(RecordTemplate::problem("logs-{{   }}") == "an empty '{{}}' placeholder");
  CHECK_FALSE(RecordTemplate::problem("logs-{{input}}-}}-{"));
  CHECK_FALSE(RecordTemplate::problem("plain"));
  const Record r = record();
  CHECK(render("logs-{{input", r) == Rendered{"logs-{{input", std::nullopt});
  CHECK(render("a{{}}b", r) == Rendered{"a{{}}b", std::nullopt});
  CHECK(render("a{{  }}b", r) == Rendered{"a{{  }}b", std::nullopt});
  CHECK(render("}}{{input}}", r).text == "}}app");
}

TEST_CASE("a missing field renders empty and the first missing one is named") {
  const Record r = record();
  CHECK(render("logs-{{nope}}-{{input}}-{{other}}", r) == Rendered{"logs--app-", "nope"});
  Record bare;
  bare.message = testing::keptText("no source");
  CHECK(render("{{input}}/{{path}}/{{stream}}", bare) == Rendered{"//", "input"});
}

TEST_CASE("the record's own keys render: input, path and stream") {
  Record r = record();
  CHECK(render("{{stream}}", r).missing == "stream");
  r.stream = base::Stream::Stdout;
  CHECK(render("{{input}}|{{path}}|{{stream}}", r).text == "app|/var/log/app.log|stdout");
  r.stream = base::Stream::Stderr;
  CHECK(render("{{stream}}", r).text == "stderr");
}

TEST_CASE("kubernetes metadata renders under kubernetes.*, and is missing for other files") {
  auto s = appSource();
  s->kubeNamespace = "shop";
  s->pod = "web-1";
  s->podUid = "uid-1";
  s->container = "nginx";
  s->containerId = "c0ffee";
  const Record r = record(s);
  CHECK(render("{{kubernetes.namespace}}/{{kubernetes.pod}}/{{kubernetes.pod_uid}}/{{kubernetes.container}}/"
               "{{kubernetes.container_id}}",
               r) == Rendered{"shop/web-1/uid-1/nginx/c0ffee", std::nullopt});
  CHECK(render("{{kubernetes.pod}}", record()).missing == "kubernetes.pod");
  CHECK(render("{{kubernetes}}", r).missing == "kubernetes");  // the object itself is no text
}

TEST_CASE("static fields render, and an empty one counts as missing") {
  const Record r = record(appSource({{"env", "prod"}, {"team", ""}}));
  CHECK(render("logs-{{env}}", r) == Rendered{"logs-prod", std::nullopt});
  CHECK(render("logs-{{team}}", r) == Rendered{"logs-", "team"});
}

TEST_CASE("keys of a json record's object render: strings decoded, numbers and booleans as written") {
  const Record r = jsonRecord(
      R"({"service":"checkout","esc":"a\"b\\c\u00e9\ud83d\ude00\/","code":-1.5e3,"big":18446744073709551616,)"
      R"("ok":true,"no":false,"nothing":null,"obj":{"a":1},"arr":[1],"empty":""})");
  CHECK(render("{{service}}", r).text == "checkout");
  CHECK(render("{{esc}}", r).text == "a\"b\\c\xC3\xA9\xF0\x9F\x98\x80/");
  CHECK(render("{{code}}/{{big}}", r).text == "-1.5e3/18446744073709551616");
  CHECK(render("{{ok}}/{{no}}", r).text == "true/false");
  CHECK(render("{{empty}}", r) == Rendered{"", std::nullopt});
  CHECK(render("{{nothing}}", r).missing == "nothing");
  CHECK(render("{{obj}}", r).missing == "obj");
  CHECK(render("{{arr}}", r).missing == "arr");
  CHECK(render("{{obj.a}}", r).missing == "obj.a");  // top-level keys only
}

TEST_CASE("a json key is found by its decoded name, and a repeated key gives its last value") {
  const Record r = jsonRecord(R"({"tea\u006d":"escaped","team":"first","team":"last"})");
  CHECK(render("{{team}}", r).text == "last");
  const Record e = jsonRecord(R"({"tea\u006d":"escaped"})");
  CHECK(render("{{team}}", e).text == "escaped");
}

TEST_CASE("the record's own keys win over static fields, and those over json keys, as in the encoding") {
  auto s = appSource({{"env", "static"}, {"input", "not this"}, {"blank", ""}});
  const Record r = jsonRecord(R"({"input":"json","env":"json","blank":"from json","stream":"json"})", s);
  CHECK(render("{{input}}", r).text == "app");
  CHECK(render("{{env}}", r).text == "static");
  CHECK(render("{{blank}}", r).text == "from json");     // an empty static field is not written either
  CHECK(render("{{stream}}", r).text == "json");         // no stream of its own: the object's shows
  CHECK(render("{{message}}", r).missing == "message");  // a json record's message is a key of its object
  CHECK(render("{{message}}", jsonRecord(R"({"message":"hello"})")).text == "hello");
}

TEST_CASE("a record that is not json has no object keys, even when its text looks like an object") {
  Record r = record();
  r.message = testing::keptText(R"({"service":"checkout"})");
  CHECK(render("{{service}}", r).missing == "service");
}

TEST_CASE("a record flagged too deep renders its own keys and has no object keys") {
  Record r = record();
  const std::string deep = "{\"service\":\"x\",\"a\":" + std::string(1000, '[') + std::string(1000, ']') + "}";
  REQUIRE(testing::keepJson(r, deep) == base::JsonVerdict::TooDeep);
  CHECK(render("{{input}}-{{service}}", r) == Rendered{"app-", "service"});
}

TEST_CASE("appendRecordField appends a value and leaves the text alone when the field is missing") {
  const Record r = jsonRecord(R"({"n":7})");
  std::string out = "x=";
  CHECK(sinks::appendRecordField(r, "n", out));
  CHECK(out == "x=7");
  CHECK_FALSE(sinks::appendRecordField(r, "missing", out));
  CHECK(out == "x=7");
}

}  // namespace
