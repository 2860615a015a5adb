#pragma once

// GET /metrics: the pipeline's counters in the Prometheus text format, version 0.0.4.
//
// Thread-safety: renderMetrics() reads relaxed atomics, breaker snapshots and the locked stats() of
// the queue and the buffers, so any number of threads may call it at once, alongside the pipeline.
// It walks pipeline.runners() and inputs() afresh on each call and keeps nothing between calls.
//
// What a scraper may rely on: every family has its # HELP and # TYPE lines before its samples, the
// samples of a family are contiguous, counters end in _total and never go down while the process
// runs, each breaker_state series exists for all five states (1 for the current one), and so does each
// breaker_state_seconds_total series, and each breaker_mode series for both modes (1 for the current one).

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace logcapture::agent {
class Pipeline;
}

namespace logcapture::agent::admin {

enum class MetricType { Counter, Gauge };

// One metric family, declared once in the lists in metrics.cc.
struct Family {
  std::string_view name;
  MetricType type;
  std::string_view help;
};

using Label = std::pair<std::string_view, std::string_view>;

// The text format writer: HELP and TYPE of a family, then its samples with escaped label values.
class PrometheusText {
 public:
  void family(const Family& f);
  // A sample of the family last started.
  void sample(std::initializer_list<Label> labels, double value);
  void sample(std::initializer_list<Label> labels, std::uint64_t value);
  // A family with one unlabelled sample.
  void single(const Family& f, double value);
  void single(const Family& f, std::uint64_t value);

  const std::string& text() const { return out_; }

 private:
  void labels(std::initializer_list<Label> labels);

  std::string out_;
  std::string_view current_;
};

// The exposition of everything the pipeline counts, and the process's own figures.
std::string renderMetrics(const Pipeline& pipeline);

// The content type of the text format, for the response header.
inline constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace logcapture::agent::admin
