#!/usr/bin/env bash
# The package step of `tools/dev package` and `tools/dev test`: the .deb from BUILD_DIR's binary
# (no second compile), then the tests that install it on this machine (deb), under systemd in a
# container (systemd), and build and run the container image (image).
#
# usage: packaging/tests/run.sh BUILD_DIR
# Prints one line per test (passed, failed, skipped with the reason) and a closing count.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=$(realpath "${1:?usage: run.sh BUILD_DIR}")

# ctest shows a skipped test without its reason: the packaging tests there say it in their log.
if [ -f "$build/Testing/Temporary/LastTest.log" ]; then
  awk '/^[0-9]+\/[0-9]+ Test: / {name = $3} /^SKIP: / {print "package: ctest skipped " name ": " substr($0, 7)}' \
    "$build/Testing/Temporary/LastTest.log"
fi

SECONDS=0
if ! (cd "$build" && cpack -G DEB >"$build/cpack.log" 2>&1); then
  cat "$build/cpack.log"
  echo "package: 0 passed, 1 failed"
  exit 1
fi
deb=$(ls -t "$build"/package/logcapture_*.deb | head -1)
echo "package: built $(basename "$deb") in ${SECONDS}s"

# The three run at once: most of their time is spent waiting for apt and podman, not on the CPU.
# The base image they share is made first, so that they do not both make it.
if command -v podman >/dev/null && command -v mmdebstrap >/dev/null && [ "$(id -u)" -eq 0 ]; then
  # shellcheck source=packaging/container/podman-env.sh
  source "$root/packaging/container/podman-env.sh"
  podman_env "$root/build/container"
  debian_base >/dev/null || echo "package: could not make the Debian base image; the container tests will say why"
fi
tests=(deb systemd image)
declare -A pids
for t in "${tests[@]}"; do
  log=$build/package/$t-test.log
  case $t in
    deb) bash "$root/packaging/tests/deb_test.sh" "$deb" >"$log" 2>&1 & ;;
    systemd) bash "$root/packaging/tests/systemd_test.sh" "$deb" >"$log" 2>&1 & ;;
    image) bash "$root/packaging/tests/image_test.sh" "$deb" "$build" >"$log" 2>&1 & ;;
  esac
  pids[$t]=$!
done

passed=0 failed=0 skipped=0
for t in "${tests[@]}"; do
  log=$build/package/$t-test.log
  wait "${pids[$t]}"
  rc=$?
  if [ $rc -eq 0 ]; then
    passed=$((passed + 1))
    echo "package: $t passed (done at ${SECONDS}s)"
  elif [ $rc -eq 77 ]; then
    skipped=$((skipped + 1))
    echo "package: $t skipped: $(grep '^SKIP: ' "$log" | tail -1 | cut -c7-)"
  else
    failed=$((failed + 1))
    cat "$log"
    echo "package: $t FAILED (log: $log)"
  fi
done
echo "package: $passed passed, $failed failed, $skipped skipped"
[ $failed -eq 0 ]
