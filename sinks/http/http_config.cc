#include "sinks/http/http_config.h"

#include "config/redact.h"
#include "config/section.h"
#include "sinks/record_template.h"

namespace logcapture::sinks::http {
namespace {

bool validUrl(const std::string& url) {
  for (std::string_view scheme : {"http://", "https://"}) {
    if (url.starts_with(scheme)) {
      const auto rest = std::string_view(url).substr(scheme.size());
      return !rest.empty() && rest.front() != '/' && rest.find_first_of(" \t\r\n") == std::string_view::npos;
    }
  }
  return false;
}

}  // namespace

void check(config::Section& s, TlsConfig& c) {
  c.caFile = s.resolvePath(c.caFile);
  c.certFile = s.resolvePath(c.certFile);
  c.keyFile = s.resolvePath(c.keyFile);
  if (c.certFile.empty() != c.keyFile.empty()) {
    s.error(c.certFile.empty() ? "key_file" : "cert_file", "mutual TLS needs both 'cert_file' and 'key_file'");
  }
}

void check(config::Section& s, HttpConfig& c) {
  if (!c.url.empty() && !validUrl(c.url)) {
    s.error("url",
            "expected a URL starting with http:// or https:// and a host, found '" + config::redactUrl(c.url) + "'");
  }
  if (!c.healthUrl.empty() && !validUrl(c.healthUrl)) {
    s.error("health_url", "expected a URL starting with http:// or https:// and a host, found '" +
                              config::redactUrl(c.healthUrl) + "'");
  }
  if (c.format == Format::Loki && c.labels.empty() && s.ok("format")) {
    s.error("format", "format: loki needs at least one stream label in 'labels', such as {job: logcapture}");
  }
  if (c.format == Format::EsBulk && c.index.empty() && s.ok("index")) {
    s.error("index", "format: es_bulk needs an index name");
  }
  if (c.format == Format::EsBulk) {
    if (auto problem = RecordTemplate::problem(c.index)) s.error("index", "template has " + *problem);
  }
  if (c.format == Format::Loki) {
    for (const auto& [name, value] : c.labels) {
      if (auto problem = RecordTemplate::problem(value)) {
        s.errorAt(s.pathOf("labels") + "." + name, "template has " + *problem);
      }
    }
  }
}

}  // namespace logcapture::sinks::http
