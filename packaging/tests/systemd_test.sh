#!/usr/bin/env bash
# The Debian package under a running systemd, in a container booted with systemd as its init (our
# machines have no systemd as PID 1): installing enables and starts the hardened unit, which signals
# READY, sends watchdog pings and a status line, reads an adm log as the logcapture user and writes
# to the journal; a reload validates and signals; a killed agent is restarted; an upgrade restarts
# it; remove stops and masks it; purge clears it.
#
# usage: packaging/tests/systemd_test.sh DEB
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$root/packaging/tests/lib.sh"
source "$root/packaging/container/podman-env.sh"

deb=$(realpath "${1:?usage: systemd_test.sh DEB}")
need podman podman
need mmdebstrap mmdebstrap
need runc runc
[ "$(id -u)" -eq 0 ] || skip "podman here runs as root only (no subordinate ids are set up for other users)"

name=logcapture-systemd-test-$$
work=$(mktemp -d)
cleanup() {
  podman rm --force --time 0 "$name" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
podman_env "$root/build/container"
inside() { podman exec "$name" "$@"; }
prop() { inside systemctl show logcapture -p "$1" --value; }

step "an image with systemd and the package's dependencies (no network needed to install it)"
base=$(debian_base)
# The Depends field without versions, the first of each alternative.
deps=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/|.*//; s/(.*)//; s/ //g' | sort | tr '\n' ' ')
image=localhost/logcapture-systemd-test:$(echo "$base $deps" | sha256sum | cut -c1-12)
if ! podman image exists "$image"; then
  cat >"$work/Containerfile" <<EOF
FROM $base
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \\
      systemd systemd-sysv curl $deps && rm -rf /var/lib/apt/lists/*
EOF
  nice podman build --quiet --runtime runc --pull=never -t "$image" "$work" >/dev/null
  forget_other_tags "$image"
fi

step "boot it with systemd as init"
# Privileged: the unit's sandboxing (mount namespaces, seccomp) needs what a plain container withholds.
podman run --detach --name "$name" --privileged --systemd=always "$image" /sbin/init >/dev/null
booted() { inside systemctl is-system-running 2>/dev/null | grep -qE '^(running|degraded)$'; }
wait_for 60 booted || fail "systemd did not finish booting in the container"

step "dpkg -i enables and starts the service, which reports ready"
podman cp "$deb" "$name:/root/logcapture.deb"
inside dpkg -i /root/logcapture.deb >"$work/dpkg" 2>&1 || {
  cat "$work/dpkg"
  fail "dpkg -i failed"
}
[ "$(inside systemctl is-enabled logcapture)" = enabled ] || fail "the unit is not enabled"
active() { [ "$(prop ActiveState)" = active ] && [ "$(prop SubState)" = running ]; }
wait_for 30 active || {
  inside systemctl status logcapture --no-pager || true
  fail "the service did not become active (Type=notify: READY=1)"
}
ready() { inside curl -fsS 127.0.0.1:9880/ready >/dev/null 2>&1; }
wait_for 30 ready || fail "/ready does not answer 200"
[ "$(prop User)" = logcapture ] || fail "the service does not run as logcapture"
[ -n "$(prop StatusText)" ] || fail "the service sends no status line"
echo "   status: $(prop StatusText)"

step "the service user reads an adm log and the preview sink writes it to the journal"
marker="systemd test line $RANDOM$RANDOM"
inside sh -c "install -m 0640 -o root -g adm /dev/null /var/log/logcapture-test.log && echo '$marker' >>/var/log/logcapture-test.log"
journaled() { inside journalctl -u logcapture --no-pager -o cat | grep -q "$marker"; }
wait_for 30 journaled || fail "the line appended to an adm log did not reach the journal"
inside test -s /var/lib/logcapture/checkpoints.json || fail "no checkpoints in the state directory"

step "the agent pings the watchdog"
first=$(prop WatchdogTimestampMonotonic)
pinged() { [ "$(prop WatchdogTimestampMonotonic)" != "$first" ]; }
wait_for 40 pinged || fail "no watchdog ping within WatchdogSec"

step "systemctl reload validates and reloads in place"
pid=$(prop MainPID)
inside systemctl reload logcapture || {
  inside journalctl -u logcapture --no-pager -n 20 || true
  fail "systemctl reload failed"
}
reloaded() { inside journalctl -u logcapture --no-pager -o cat | grep -q config_reloaded; }
wait_for 30 reloaded || fail "the agent did not log config_reloaded"
[ "$(prop MainPID)" = "$pid" ] || fail "reload restarted the agent"

step "a killed agent is restarted (Restart=on-failure)"
inside kill -9 "$pid"
restarted() { [ "$(prop NRestarts)" -ge 1 ] && active && [ "$(prop MainPID)" != "$pid" ]; }
wait_for 30 restarted || fail "the service was not restarted after SIGKILL"

step "systemd-analyze security on the loaded unit agrees with README.md"
score=$(inside systemd-analyze security logcapture --no-pager | grep -oE 'Overall exposure level for logcapture.service: [0-9.]+' | grep -oE '[0-9.]+$')
readme=$(grep -oE 'rates the unit [0-9]+\.[0-9]+' "$root/README.md" | grep -oE '[0-9.]+$' || true)
[ "$score" = "$readme" ] || fail "the loaded unit rates $score, README.md prints ${readme:-nothing}"

step "an upgrade restarts the service"
pid=$(prop MainPID)
inside dpkg -i /root/logcapture.deb >"$work/dpkg" 2>&1 || {
  cat "$work/dpkg"
  fail "reinstalling failed"
}
upgraded() { active && [ "$(prop MainPID)" != "$pid" ]; }
wait_for 30 upgraded || fail "the upgrade did not restart the service"

step "remove stops and masks the service; purge clears it"
inside dpkg -r logcapture >/dev/null
[ "$(prop ActiveState)" = inactive ] || fail "remove left the service $(prop ActiveState)"
[ "$(inside systemctl is-enabled logcapture 2>/dev/null || true)" = masked ] || fail "remove did not mask the unit"
inside dpkg -P logcapture >/dev/null
[ "$(inside systemctl is-enabled logcapture 2>/dev/null || true)" != masked ] || fail "purge left the unit masked"
inside test ! -e /var/lib/logcapture || fail "purge left /var/lib/logcapture"
inside test ! -e /etc/logcapture || fail "purge left /etc/logcapture"
echo "systemd: all checks passed"
