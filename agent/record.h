#pragma once

// A log record as it travels from an input through the queue to the sinks.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

namespace logcapture::agent {

enum class Stream : std::uint8_t { None, Stdout, Stderr };

// Where records come from: one per tailed file (or per stdin), shared by its records.
// Immutable once records point at it, so any thread may read it.
struct Source {
  std::string input;  // the input's name
  std::string path;   // the file; empty for stdin
  // Kubernetes metadata taken from the path; empty when the file is not a pod or container log.
  std::string kubeNamespace;
  std::string pod;
  std::string podUid;
  std::string container;
  std::string containerId;
  std::shared_ptr<const std::map<std::string, std::string>> fields;  // the input's static fields
};

struct Record {
  std::chrono::system_clock::time_point time;  // from the container format when present, else read time
  std::string message;
  std::shared_ptr<const Source> source;
  // Byte offset in the file just past the last line of this record: where reading resumes once the
  // record is finished with (checkpoint). Records of one source come in increasing offset order.
  std::uint64_t offset = 0;
  Stream stream = Stream::None;
  bool truncated = false;  // a line was cut at max_line_bytes
  bool json = false;       // message is a JSON object (format: json) whose fields belong to the record
};

}  // namespace logcapture::agent
