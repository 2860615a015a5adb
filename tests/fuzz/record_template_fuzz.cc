// Record templates (Kafka topic and key, Elasticsearch index, Loki labels) on arbitrary text, rendered
// against a record that has every kind of field. The input: the template up to the first newline, then
// the record's message (a json record when it is one JSON object, as the json decoder decides).
// Checked besides the sanitizers: a template without placeholders renders as its text.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "agent/inputs/decode/formats.h"
#include "sinks/record_template.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace logcapture;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto newline = input.find('\n');
  const std::string_view text = input.substr(0, newline);
  const std::string_view message = newline == std::string_view::npos ? std::string_view() : input.substr(newline + 1);

  (void)sinks::RecordTemplate::problem(text);
  const sinks::RecordTemplate tmpl(text);

  static const auto source = [] {
    auto s = std::make_shared<base::Source>();
    s->input = "app";
    s->path = "/var/log/containers/web_prod_nginx-0123.log";
    s->kubeNamespace = "prod";
    s->pod = "web";
    s->container = "nginx";
    s->fields = std::make_shared<const std::map<std::string, std::string>>(
        std::map<std::string, std::string>{{"env", "staging"}, {"team", ""}});
    return s;
  }();
  base::Record record;
  record.message = message;
  record.source = source.get();
  record.stream = base::Stream::Stderr;
  record.json = agent::decode::isJsonObject(message);

  std::string out;
  (void)tmpl.render(record, out);
  if (tmpl.constant() && out != tmpl.text()) {
    std::fprintf(stderr, "a template without placeholders rendered as something else\n");
    std::abort();
  }
  return 0;
}
