#!/bin/sh
# The 2,000,000-line HTTP workload of logcapture_bench_sinks (bench/sink_bench.cc), once with the sink's
# buffer in memory and once on disk, to show what buffer.type: disk costs a healthy sink and that the
# memory path is unchanged. Prints each one's medians (lines/s, CPU-s, peak RSS).
#
#   bench/disk_buffer_bench.sh [BUILD_DIR]        RUNS=5 LINES=2000000 DIR=/tmp/logcapture-sink-bench
#
# Needs a build with -DLOGCAPTURE_BUILD_BENCH=ON. The disk run writes its segments under DIR/state-http.
set -eu
build=${1:-build}
bench="$build/bench/logcapture_bench_sinks"
runs=${RUNS:-3}
lines=${LINES:-2000000}
dir=${DIR:-/tmp/logcapture-sink-bench}
for buffer in "type: memory, when_full: block" \
              "type: disk, when_full: block, max_bytes: 1GiB" \
              "type: disk, when_full: block, max_bytes: 1GiB, sync: always"; do
  echo "== buffer: {$buffer}"
  "$bench" --sink http --runs "$runs" --lines "$lines" --dir "$dir" --buffer "$buffer" | grep -E "median of|incomplete"
done
