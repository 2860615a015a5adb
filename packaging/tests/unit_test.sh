#!/usr/bin/env bash
# The systemd unit as it stands in the tree: `systemd-analyze verify` prints nothing (it exits 0 on
# unknown keys, so its output is what counts), `systemd-analyze security --offline=true` rates it at
# most 2.0 and as README.md prints, and the agent's `check` passes on the config the package ships.
# The installed unit is verified again by deb_test.sh.
#
# usage: packaging/tests/unit_test.sh LOGCAPTURE_BINARY
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$root/packaging/tests/lib.sh"
binary=$(realpath "${1:?usage: unit_test.sh LOGCAPTURE_BINARY}")
need systemd-analyze systemd
unit=$root/packaging/systemd/logcapture.service

step "the packaged config passes logcapture check"
"$binary" check -c "$root/packaging/debian/capture.yaml"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
step "systemd-analyze verify prints nothing"
# verify wants the commands to exist: the unit as it is, with the binary of this build for /usr/bin's.
sed "s|/usr/bin/logcapture|$binary|g" "$unit" >"$work/logcapture.service"
verify=$(systemd-analyze verify "$work/logcapture.service" 2>&1) || fail "systemd-analyze verify failed: $verify"
[ -z "$verify" ] || fail "systemd-analyze verify warned: $verify"

step "systemd-analyze security rates it at most 2.0, the score README.md prints"
line=$(systemd-analyze security --offline=true --no-pager "$unit" 2>&1 | grep "Overall exposure level") ||
  fail "systemd-analyze security printed no score"
echo "   $line"
score=$(echo "$line" | grep -oE '[0-9]+\.[0-9]+' | head -1)
awk -v s="$score" 'BEGIN {exit !(s <= 2.0)}' || fail "exposure $score is above 2.0"
readme=$(grep -oE 'rates the unit [0-9]+\.[0-9]+' "$root/README.md" | grep -oE '[0-9.]+$' || true)
[ "$readme" = "$score" ] || fail "README.md prints ${readme:-no score}, systemd-analyze says $score"
echo "unit: all checks passed"
