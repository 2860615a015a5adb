#!/usr/bin/env bash
# The Debian package on this machine: lintian, install, what it installed (user, groups, directories,
# permissions, conffile, enabled unit), `logcapture check` of the shipped config, the service user
# reading an adm log, the unit's verification and security score, an upgrade that keeps a changed
# conffile, remove, and purge leaving only the system user.
#
# usage: packaging/tests/deb_test.sh DEB   (as root; it purges the package again, even on failure)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$root/packaging/tests/lib.sh"

deb=$(realpath "${1:?usage: deb_test.sh DEB}")
[ -f "$deb" ] || fail "no package at $deb"
[ "$(id -u)" -eq 0 ] || skip "installing a package needs root"
need lintian lintian
need systemd-analyze systemd
if dpkg-query -W -f='${Status}' logcapture 2>/dev/null | grep -q "installed\|config-files"; then
  skip "logcapture is already installed on this machine; the test does not replace it"
fi

unit=/lib/systemd/system/logcapture.service
probe_log=/var/log/logcapture-package-test.log
work=$(mktemp -d)
agent_pid=
cleanup() {
  [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null
  dpkg -P logcapture >/dev/null 2>&1 || true
  rm -rf "$work" "$probe_log"
}
trap cleanup EXIT

# What the package and its maintainer scripts may touch, listed before and compared after the purge.
watched=(/etc/logcapture /etc/systemd /etc/default /etc/init.d /lib/systemd /usr/bin /usr/share/doc
  /usr/share/lintian/overrides /var/lib/systemd /var/lib/logcapture)
snapshot() {
  { find "${watched[@]}" -xdev 2>/dev/null || true; } | grep -v -e '^/etc/\(passwd\|group\|shadow\|gshadow\)-\?$' | sort
}
snapshot >"$work/before"

step "lintian reports no errors"
lintian --fail-on error "$deb" >"$work/lintian" 2>&1 || {
  cat "$work/lintian"
  fail "lintian found errors"
}
sed 's/^/   /' "$work/lintian"

step "dpkg -i installs it"
dpkg -i "$deb" >"$work/dpkg" 2>&1 || {
  cat "$work/dpkg"
  fail "dpkg -i failed"
}
logcapture version | grep -q "^logcapture " || fail "logcapture version printed nothing"

step "a logcapture system user in group adm, with its state directory"
getent passwd logcapture | awk -F: '$3 < 1000 {found=1} END {exit !found}' || fail "no system user logcapture"
id -nG logcapture | tr ' ' '\n' | grep -qx adm || fail "logcapture is not in group adm: $(id -nG logcapture)"
[ "$(stat -c '%U:%G %a' /var/lib/logcapture)" = "logcapture:logcapture 750" ] ||
  fail "/var/lib/logcapture is $(stat -c '%U:%G %a' /var/lib/logcapture)"
[ "$(stat -c '%U:%G %a' /etc/logcapture/capture.yaml)" = "root:logcapture 640" ] ||
  fail "/etc/logcapture/capture.yaml is $(stat -c '%U:%G %a' /etc/logcapture/capture.yaml)"
dpkg-query -W -f='${Conffiles}\n' logcapture | grep -q "^ /etc/logcapture/capture.yaml " ||
  fail "capture.yaml is not a conffile"
[ -L /etc/systemd/system/multi-user.target.wants/logcapture.service ] || fail "the unit was not enabled"

step "logcapture check passes on the shipped config, as root and as the service user"
logcapture check -c /etc/logcapture/capture.yaml
runuser -u logcapture -- logcapture check -c /etc/logcapture/capture.yaml >/dev/null ||
  fail "the service user cannot load its config"

step "the service user reads an adm log and writes its state directory, without root"
# The shipped config, with the admin server on a free port (another agent may hold 9880 here).
# setpriv execs the agent, so $! is its pid.
port=$(free_port)
sed "s/listen: 127.0.0.1:9880/listen: 127.0.0.1:$port/" /etc/logcapture/capture.yaml >"$work/capture.yaml"
chmod 0644 "$work/capture.yaml"
chmod 0755 "$work"
install -m 0640 -o root -g adm /dev/null "$probe_log"
setpriv --reuid=logcapture --regid=logcapture --init-groups logcapture run -c "$work/capture.yaml" >"$work/agent.out" 2>"$work/agent.err" &
agent_pid=$!
ready() { curl -fsS "http://127.0.0.1:$port/ready" >/dev/null 2>&1; }
wait_for 30 ready || {
  cat "$work/agent.err"
  fail "the agent run by the service user did not become ready"
}
marker="package test line $RANDOM$RANDOM"
echo "$marker" >>"$probe_log"
shipped() { grep -q "$marker" "$work/agent.out"; }
wait_for 30 shipped || {
  cat "$work/agent.err"
  fail "the line appended to $probe_log (root:adm 0640) was not shipped"
}
kill -TERM "$agent_pid"
wait "$agent_pid" || fail "the agent exited with $? on SIGTERM"
agent_pid=
[ -f /var/lib/logcapture/checkpoints.json ] || fail "no checkpoints written in /var/lib/logcapture"
[ "$(stat -c %U /var/lib/logcapture/checkpoints.json)" = logcapture ] || fail "checkpoints.json is not the user's"

step "systemd-analyze verify prints nothing"
verify=$(systemd-analyze verify "$unit" 2>&1) || fail "systemd-analyze verify failed: $verify"
[ -z "$verify" ] || fail "systemd-analyze verify warned: $verify"

step "systemd-analyze security rates the unit at most 2.0, the score README.md prints"
security=$(systemd-analyze security --offline=true --no-pager "$unit" 2>&1 | grep "Overall exposure level") ||
  fail "systemd-analyze security printed no score"
score=$(echo "$security" | grep -oE '[0-9]+\.[0-9]+' | head -1)
echo "   $security"
awk -v s="$score" 'BEGIN {exit !(s <= 2.0)}' || fail "the unit's exposure is $score, above 2.0"
readme_score=$(grep -oE 'rates the unit [0-9]+\.[0-9]+' "$root/README.md" | grep -oE '[0-9.]+$' || true)
[ "$readme_score" = "$score" ] || fail "README.md prints ${readme_score:-no score}, systemd-analyze says $score"

step "an upgrade keeps a changed conffile, the user and the enabled unit"
echo "# changed by the administrator" >>/etc/logcapture/capture.yaml
dpkg -i "$deb" >"$work/dpkg" 2>&1 || {
  cat "$work/dpkg"
  fail "reinstalling failed"
}
grep -q "changed by the administrator" /etc/logcapture/capture.yaml || fail "the upgrade replaced the changed conffile"
[ ! -e /etc/logcapture/capture.yaml.dpkg-dist ] || fail "the upgrade left capture.yaml.dpkg-dist"
[ -L /etc/systemd/system/multi-user.target.wants/logcapture.service ] || fail "the upgrade disabled the unit"

step "dpkg -r removes the program, keeps the config and the state, masks the unit"
dpkg -r logcapture >/dev/null
[ ! -e /usr/bin/logcapture ] || fail "/usr/bin/logcapture is still there"
[ ! -e "$unit" ] || fail "$unit is still there"
[ -f /etc/logcapture/capture.yaml ] || fail "remove deleted the conffile"
[ -d /var/lib/logcapture ] || fail "remove deleted the state directory"
dpkg-query -W -f='${db:Status-Abbrev}' logcapture | grep -q '^rc' || fail "the package is not in state rc"
[ "$(readlink /etc/systemd/system/logcapture.service)" = /dev/null ] || fail "remove did not mask the unit"

step "dpkg -P leaves nothing but the system user"
dpkg -P logcapture >/dev/null
dpkg-query -W logcapture >/dev/null 2>&1 && fail "dpkg still knows logcapture"
compgen -G "/var/lib/dpkg/info/logcapture.*" >/dev/null && fail "dpkg kept files of logcapture in /var/lib/dpkg/info"
getent passwd logcapture >/dev/null || fail "purge deleted the system user (Debian keeps it)"
id -nG logcapture | tr ' ' '\n' | grep -qx adm && fail "logcapture is still in group adm"
snapshot >"$work/after"
comm -13 "$work/before" "$work/after" | sed 's/^/   left behind: /' >"$work/leftovers"
comm -23 "$work/before" "$work/after" | sed 's/^/   removed: /' >>"$work/leftovers"
if [ -s "$work/leftovers" ]; then
  cat "$work/leftovers"
  fail "purge did not leave the machine as it found it (above)"
fi
echo "deb: all checks passed"
