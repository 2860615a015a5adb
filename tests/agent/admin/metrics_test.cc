// The Prometheus text writer, without a network: families, labels and their escaping.

#include "agent/admin/metrics.h"

#include <doctest/doctest.h>

#include <limits>

using logcapture::agent::admin::Family;
using logcapture::agent::admin::MetricType;
using logcapture::agent::admin::PrometheusText;

TEST_CASE("a family is written as HELP, TYPE, then its samples") {
  PrometheusText out;
  constexpr Family kRecords{"x_records_total", MetricType::Counter, "Records read."};
  out.family(kRecords);
  out.sample({{"input", "a"}}, std::uint64_t{3});
  out.sample({{"input", "b"}}, std::uint64_t{18446744073709551615ull});
  out.single(Family{"x_seconds", MetricType::Gauge, "Time."}, 0.25);
  CHECK(out.text() ==
        "# HELP x_records_total Records read.\n"
        "# TYPE x_records_total counter\n"
        "x_records_total{input=\"a\"} 3\n"
        "x_records_total{input=\"b\"} 18446744073709551615\n"
        "# HELP x_seconds Time.\n"
        "# TYPE x_seconds gauge\n"
        "x_seconds 0.25\n");
}

TEST_CASE("label values escape backslash, double quote and newline, and help escapes backslash and newline") {
  PrometheusText out;
  out.family(Family{"x", MetricType::Gauge, "a \\ \"b\"\nc"});
  out.sample({{"path", "C:\\logs\\\"a\"\nb"}, {"k", "v"}}, 1.5);
  CHECK(out.text() ==
        "# HELP x a \\\\ \"b\"\\nc\n"
        "# TYPE x gauge\n"
        "x{path=\"C:\\\\logs\\\\\\\"a\\\"\\nb\",k=\"v\"} 1.5\n");
}

TEST_CASE("non-finite values use the format's spellings") {
  PrometheusText out;
  out.family(Family{"x", MetricType::Gauge, "h"});
  out.sample({}, std::numeric_limits<double>::infinity());
  out.sample({{"a", "b"}}, -std::numeric_limits<double>::infinity());
  out.sample({{"a", "c"}}, std::numeric_limits<double>::quiet_NaN());
  CHECK(out.text() == "# HELP x h\n# TYPE x gauge\nx +Inf\nx{a=\"b\"} -Inf\nx{a=\"c\"} NaN\n");
}
