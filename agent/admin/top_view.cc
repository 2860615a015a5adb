#include "agent/admin/top_view.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <ctime>

#include "agent/admin/breakers_command.h"

namespace logcapture::agent::admin {

std::string_view MetricSample::label(std::string_view key) const {
  for (const auto& [k, v] : labels) {
    if (k == key) return v;
  }
  return {};
}

namespace {

// `name{a="x",b="y"} value [timestamp]`; false when the line is not of that form.
bool parseSampleLine(std::string_view line, MetricSample& out) {
  std::size_t i = 0;
  while (i < line.size() && line[i] != '{' && line[i] != ' ' && line[i] != '\t') ++i;
  out.name = std::string(line.substr(0, i));
  if (out.name.empty()) return false;
  if (i < line.size() && line[i] == '{') {
    ++i;
    while (i < line.size() && line[i] != '}') {
      const std::size_t eq = line.find('=', i);
      if (eq == std::string_view::npos || eq + 1 >= line.size() || line[eq + 1] != '"') return false;
      std::string key(line.substr(i, eq - i));
      std::string value;
      std::size_t j = eq + 2;
      for (; j < line.size() && line[j] != '"'; ++j) {
        if (line[j] == '\\' && j + 1 < line.size()) {
          ++j;
          value += line[j] == 'n' ? '\n' : line[j];
        } else {
          value += line[j];
        }
      }
      if (j >= line.size()) return false;
      out.labels.emplace_back(std::move(key), std::move(value));
      i = j + 1;
      if (i < line.size() && line[i] == ',') ++i;
    }
    if (i >= line.size()) return false;
    ++i;  // '}'
  }
  while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
  const std::size_t end = line.find_first_of(" \t", i);
  const std::string_view number = line.substr(i, end == std::string_view::npos ? std::string_view::npos : end - i);
  if (number == "NaN") {
    out.value = std::nan("");
    return true;
  }
  if (number == "+Inf" || number == "-Inf") {
    out.value = number[0] == '+' ? HUGE_VAL : -HUGE_VAL;
    return true;
  }
  const auto r = std::from_chars(number.data(), number.data() + number.size(), out.value);
  return r.ec == std::errc() && r.ptr == number.data() + number.size() && !number.empty();
}

std::uint64_t count(double v) { return std::isfinite(v) && v > 0 ? static_cast<std::uint64_t>(v) : 0; }

std::uint64_t unsignedAt(const Json& j, std::string_view key) {
  const auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<std::uint64_t>() : 0;
}

}  // namespace

std::vector<MetricSample> parsePrometheusText(std::string_view text) {
  std::vector<MetricSample> samples;
  while (!text.empty()) {
    const std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line[0] == '#') continue;
    MetricSample s;
    if (parseSampleLine(line, s)) samples.push_back(std::move(s));
  }
  return samples;
}

std::optional<std::chrono::system_clock::time_point> parseRfc3339(std::string_view text) {
  std::tm tm{};
  int consumed = 0;
  const std::string s(text);
  if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                  &tm.tm_sec, &consumed) != 6 ||
      consumed != 19) {
    return std::nullopt;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  std::size_t i = 19;
  std::int64_t nanos = 0;
  if (i < s.size() && s[i] == '.') {
    std::int64_t scale = 100000000;
    for (++i; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i, scale /= 10) nanos += (s[i] - '0') * scale;
  }
  if (i + 1 != s.size() || s[i] != 'Z') return std::nullopt;
  const time_t seconds = ::timegm(&tm);
  return std::chrono::system_clock::time_point(std::chrono::duration_cast<std::chrono::system_clock::duration>(
      std::chrono::seconds(seconds) + std::chrono::nanoseconds(nanos)));
}

std::vector<SinkFigures> sinkFigures(const Json& breakers) {
  std::vector<SinkFigures> sinks;
  if (!breakers.is_array()) return sinks;
  for (const auto& b : breakers) {
    if (!b.is_object()) continue;
    SinkFigures f;
    f.name = b.value("sink", "?");
    f.state = b.value("state", "?");
    f.timeInStateSeconds = b.value("time_in_state_seconds", 0.0);
    if (const auto it = b.find("next_retry_at"); it != b.end() && it->is_string()) {
      f.nextRetryAt = parseRfc3339(it->get<std::string>());
    }
    if (const auto it = b.find("window"); it != b.end() && it->is_object() && it->contains("failure_rate")) {
      f.windowFailureRatePercent = (*it)["failure_rate"].get<double>();
    }
    const Json totals = b.value("totals", Json::object());
    f.calls = unsignedAt(totals, "calls");
    f.failures = unsignedAt(totals, "failures");
    const Json stats = b.value("sink_stats", Json::object());
    f.delivered = unsignedAt(stats, "delivered");
    f.inFlight = unsignedAt(stats, "batches_in_flight");
    if (stats.contains("concurrency_limit")) f.concurrencyLimit = unsignedAt(stats, "concurrency_limit");
    f.ramping = stats.value("ramping", false);
    f.deadLettered = unsignedAt(stats, "dead_lettered");
    const Json buffer = stats.value("buffer", Json::object());
    f.bufferRecords = unsignedAt(buffer, "records");
    f.bufferBytes = unsignedAt(buffer, "bytes");
    if (const auto it = buffer.find("max_bytes"); it != buffer.end() && it->is_number()) {
      f.bufferMaxBytes = it->get<std::uint64_t>();
    }
    const Json dropped = stats.value("dropped", Json::object());
    for (const auto& [reason, n] : dropped.items()) {
      if (reason != "total" && n.is_number()) f.dropped.emplace_back(reason, n.get<std::uint64_t>());
    }
    sinks.push_back(std::move(f));
  }
  return sinks;
}

std::vector<InputFigures> inputFigures(const std::vector<MetricSample>& metrics) {
  std::vector<InputFigures> inputs;
  const auto of = [&](std::string_view name) -> InputFigures& {
    for (auto& in : inputs) {
      if (in.name == name) return in;
    }
    inputs.push_back(InputFigures{.name = std::string(name)});
    return inputs.back();
  };
  for (const auto& m : metrics) {
    const std::string_view input = m.label("input");
    if (input.empty()) continue;
    if (m.name == "logcapture_input_records_total") {
      of(input).records = count(m.value);
    } else if (m.name == "logcapture_input_bytes_total") {
      of(input).bytes = count(m.value);
    } else if (m.name == "logcapture_input_lag_bytes") {
      of(input).lagBytes = count(m.value);
    }
  }
  return inputs;
}

std::optional<QueueFigures> queueFigures(const std::vector<MetricSample>& metrics) {
  std::optional<QueueFigures> queue;
  for (const auto& m : metrics) {
    if (m.name == "logcapture_queue_records") {
      (queue ? *queue : queue.emplace()).records = count(m.value);
    } else if (m.name == "logcapture_queue_bytes") {
      (queue ? *queue : queue.emplace()).bytes = count(m.value);
    } else if (m.name == "logcapture_queue_max_records") {
      (queue ? *queue : queue.emplace()).maxRecords = count(m.value);
    } else if (m.name == "logcapture_queue_max_bytes") {
      (queue ? *queue : queue.emplace()).maxBytes = count(m.value);
    } else if (m.name == "logcapture_queue_blocked") {
      (queue ? *queue : queue.emplace()).blocked = m.value > 0;
    }
  }
  return queue;
}

std::string rowText(const ScreenRow& row) {
  std::string text;
  for (const auto& s : row.spans) text += s.text;
  return text;
}

namespace {

std::string printed(const char* format, double v) {
  char buf[48];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

// 950, 12.3k, 4.5M: a rate or a count in at most six columns.
std::string quantity(double v) {
  if (v < 1000) return printed(v < 10 && v != std::floor(v) ? "%.1f" : "%.0f", v);
  if (v < 1e6) return printed("%.1fk", v / 1e3);
  if (v < 1e9) return printed("%.1fM", v / 1e6);
  return printed("%.1fG", v / 1e9);
}

std::string bytes(double v) {
  if (v < 1024) return printed("%.0fB", v);
  if (v < 1024.0 * 1024) return printed("%.1fKiB", v / 1024);
  if (v < 1024.0 * 1024 * 1024) return printed("%.1fMiB", v / (1024.0 * 1024));
  return printed("%.1fGiB", v / (1024.0 * 1024 * 1024));
}

// The rate of a counter between two samples; empty without a previous sample, when no time passed, or
// when the counter went down (the agent restarted, or a reload replaced the part).
std::optional<double> rate(std::optional<std::uint64_t> before, std::uint64_t now, double seconds) {
  if (!before || seconds <= 0 || now < *before) return std::nullopt;
  return double(now - *before) / seconds;
}

std::string shown(const std::optional<double>& rate, bool inBytes) {
  if (!rate) return "-";
  return inBytes ? bytes(*rate) + "/s" : quantity(*rate);
}

Tone stateTone(const std::string& state) {
  if (state == "closed") return Tone::Closed;
  if (state == "half_open") return Tone::HalfOpen;
  if (state == "open") return Tone::Open;
  if (state == "forced_open") return Tone::ForcedOpen;
  if (state == "disabled") return Tone::ForcedClosed;  // forced closed
  return Tone::Plain;
}

// A table: a heading row and data rows, each cell with its tone; columns aligned on the widest cell.
struct Table {
  std::vector<std::string> heads;
  struct Row {
    std::vector<Span> cells;
    bool selected = false;
  };
  std::vector<Row> rows;

  std::vector<ScreenRow> render(bool marks) const {
    std::vector<std::size_t> width(heads.size(), 0);
    for (std::size_t c = 0; c < heads.size(); ++c) width[c] = heads[c].size();
    for (const auto& r : rows) {
      for (std::size_t c = 0; c < r.cells.size() && c < width.size(); ++c) {
        width[c] = std::max(width[c], r.cells[c].text.size());
      }
    }
    const auto pad = [&](std::size_t c, const std::string& text) {
      return c + 1 == width.size() ? text : text + std::string(width[c] - text.size() + 2, ' ');
    };
    std::vector<ScreenRow> out;
    ScreenRow head;
    head.spans.push_back({marks ? "  " : "", Tone::Heading});
    for (std::size_t c = 0; c < heads.size(); ++c) head.spans.push_back({pad(c, heads[c]), Tone::Heading});
    out.push_back(std::move(head));
    for (const auto& r : rows) {
      ScreenRow row;
      row.selected = r.selected;
      row.spans.push_back({marks ? (r.selected ? "> " : "  ") : "", Tone::Plain});
      for (std::size_t c = 0; c < r.cells.size() && c < width.size(); ++c) {
        row.spans.push_back({pad(c, r.cells[c].text), r.cells[c].tone});
      }
      out.push_back(std::move(row));
    }
    return out;
  }
};

// The row cut to `width` columns (the text is ASCII but for names, which are cut as bytes).
ScreenRow cut(ScreenRow row, std::size_t width) {
  std::size_t used = 0;
  std::vector<Span> kept;
  for (auto& s : row.spans) {
    if (used >= width) break;
    if (used + s.text.size() > width) s.text.resize(width - used);
    used += s.text.size();
    kept.push_back(std::move(s));
  }
  row.spans = std::move(kept);
  return row;
}

ScreenRow line(std::string text, Tone tone) { return ScreenRow{{Span{std::move(text), tone}}, false}; }

}  // namespace

std::vector<ScreenRow> renderTop(const TopScreen& screen) {
  struct Marked {
    ScreenRow row;
    bool removable = false;  // a data row not selected: left out first when the screen is short
  };
  std::vector<Marked> rows;
  const auto add = [&](std::vector<ScreenRow> block, bool dataAfterHead) {
    for (std::size_t i = 0; i < block.size(); ++i) {
      const bool removable = dataAfterHead && i > 0 && !block[i].selected;
      rows.push_back({std::move(block[i]), removable});
    }
  };
  const TopSample* cur = screen.current;
  const TopSample* prev = screen.previous;
  const double seconds = cur && prev ? std::chrono::duration<double>(cur->at - prev->at).count() : 0;

  std::string title = "logcapture top  " + screen.adminUrl + "  every " +
                      printed("%gs", std::chrono::duration<double>(screen.interval).count());
  if (cur) {
    const std::time_t t = std::chrono::system_clock::to_time_t(cur->wallAt);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "  %H:%M:%S UTC", &tm);
    title += buf;
  }
  rows.push_back({line(title, Tone::Title), false});

  if (cur) {
    if (cur->inputs) {
      Table inputs{{"INPUT", "LINES/S", "BYTES/S", "LAG"}, {}};
      for (const auto& in : *cur->inputs) {
        std::optional<std::uint64_t> records, bytesRead;
        if (prev && prev->inputs) {
          for (const auto& p : *prev->inputs) {
            if (p.name == in.name) records = p.records, bytesRead = p.bytes;
          }
        }
        inputs.rows.push_back({{{in.name},
                                {shown(rate(records, in.records, seconds), false)},
                                {shown(rate(bytesRead, in.bytes, seconds), true)},
                                {bytes(double(in.lagBytes))}},
                               false});
      }
      rows.push_back({line("", Tone::Plain), true});
      add(inputs.render(false), true);
    }
    if (cur->queue) {
      const QueueFigures& q = *cur->queue;
      rows.push_back({line("", Tone::Plain), true});
      ScreenRow queue{{{"QUEUE  ", Tone::Heading},
                       {quantity(double(q.records)) + " records, " + bytes(double(q.bytes)), Tone::Plain}},
                      false};
      // Full is whichever bound is nearer.
      if (q.maxRecords > 0 && q.maxBytes > 0) {
        const double fill = std::max(double(q.records) / double(q.maxRecords), double(q.bytes) / double(q.maxBytes));
        queue.spans.push_back(
            {"  " + std::to_string(static_cast<int>(std::min(fill, 1.0) * 100)) + "% full", Tone::Plain});
      }
      if (q.blocked) queue.spans.push_back({"  full: inputs wait", Tone::Warning});
      rows.push_back({std::move(queue), false});
    }

    Table sinks{{"SINK", "DELIVERED/S", "IN FLIGHT", "BUFFER", "FILL", "DEAD LETTERS", "DROPS"}, {}};
    Table breakers{{"BREAKER", "STATE", "IN STATE", "FAILURES", "NEXT RETRY"}, {}};
    for (std::size_t i = 0; i < cur->sinks.size(); ++i) {
      const SinkFigures& s = cur->sinks[i];
      const SinkFigures* p = nullptr;
      if (prev) {
        for (const auto& candidate : prev->sinks) {
          if (candidate.name == s.name) p = &candidate;
        }
      }
      const bool selected = i == screen.selected;
      std::string drops;
      for (const auto& [reason, n] : s.dropped) {
        if (n > 0) drops += (drops.empty() ? "" : " ") + reason + "=" + quantity(double(n));
      }
      // Against the limit the sink sends under (workers, or what workers: auto and a ramp allow now).
      std::string inFlight = quantity(double(s.inFlight));
      if (s.concurrencyLimit) inFlight += "/" + quantity(double(*s.concurrencyLimit));
      if (s.ramping) inFlight += " ramping";
      std::string fill = "-";
      if (s.bufferMaxBytes && *s.bufferMaxBytes > 0) {
        fill = printed("%.0f%%", 100.0 * double(s.bufferBytes) / double(*s.bufferMaxBytes));
      }
      sinks.rows.push_back({{{s.name},
                             {shown(rate(p ? std::optional(p->delivered) : std::nullopt, s.delivered, seconds), false)},
                             {inFlight, s.ramping ? Tone::Warning : Tone::Plain},
                             {quantity(double(s.bufferRecords)) + " (" + bytes(double(s.bufferBytes)) + ")"},
                             {fill},
                             {quantity(double(s.deadLettered)), s.deadLettered > 0 ? Tone::Warning : Tone::Plain},
                             {drops.empty() ? "none" : drops, drops.empty() ? Tone::Plain : Tone::Warning}},
                            selected});

      // The window's rate when the breaker has one (what it decides on), else the failures among the
      // calls since the last sample.
      std::string failures = "-";
      if (s.windowFailureRatePercent) {
        failures = printed("%.0f%%", *s.windowFailureRatePercent) + " (window)";
      } else if (p && s.calls > p->calls && s.failures >= p->failures) {
        failures = printed("%.0f%%", 100.0 * double(s.failures - p->failures) / double(s.calls - p->calls));
      } else if (p && s.calls == p->calls) {
        failures = "no calls";
      }
      std::string nextRetry = "-";
      if (s.nextRetryAt) {
        const double in = std::chrono::duration<double>(*s.nextRetryAt - cur->wallAt).count();
        nextRetry = in > 0 ? "in " + elapsed(std::ceil(in)) : "now";
      }
      breakers.rows.push_back(
          {{{s.name}, {s.state, stateTone(s.state)}, {elapsed(s.timeInStateSeconds)}, {failures}, {nextRetry}},
           selected});
    }
    rows.push_back({line("", Tone::Plain), true});
    add(sinks.render(true), true);
    rows.push_back({line("", Tone::Plain), true});
    add(breakers.render(true), true);
  }

  const std::size_t width = static_cast<std::size_t>(std::max(screen.width, 0));
  const std::size_t height = static_cast<std::size_t>(std::max(screen.height, 1));
  // Short of rows: leave out data rows from the bottom up, never the selected sink's, then cut.
  for (std::size_t i = rows.size(); rows.size() + 1 > height && i-- > 0;) {
    if (rows[i].removable) rows.erase(rows.begin() + static_cast<std::ptrdiff_t>(i));
  }
  if (rows.size() + 1 > height) rows.resize(height - 1);

  std::vector<ScreenRow> out;
  out.reserve(height);
  for (auto& r : rows) out.push_back(cut(std::move(r.row), width));
  while (out.size() + 1 < height) out.push_back(ScreenRow{});
  const std::string status =
      screen.status.empty() ? "up/down j/k select   o open  c close  r reset  a auto   q quit" : screen.status;
  out.push_back(cut(line(status, screen.statusIsError ? Tone::Error : Tone::Status), width));
  return out;
}

}  // namespace logcapture::agent::admin
