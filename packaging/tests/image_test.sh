#!/usr/bin/env bash
# The container image, built offline from the .deb (packaging/container/build-image.sh) and run:
# its entrypoint and user, `logcapture version`, `check` of the config it ships, and a short run on a
# read-only root that ships a file mounted into the container to an HTTP receiver on this machine's
# loopback, then resumes from the checkpoint in its state volume after a restart.
#
# usage: packaging/tests/image_test.sh DEB BUILD_DIR   (BUILD_DIR holds logcapture-http-receiver)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$root/packaging/tests/lib.sh"
source "$root/packaging/container/podman-env.sh"

deb=$(realpath "${1:?usage: image_test.sh DEB BUILD_DIR}")
build=$(realpath "${2:?usage: image_test.sh DEB BUILD_DIR}")
receiver_bin=$build/logcapture-http-receiver
[ -x "$receiver_bin" ] || fail "no $receiver_bin: build the tree first"
need podman podman
need mmdebstrap mmdebstrap
need runc runc
[ "$(id -u)" -eq 0 ] || skip "podman here runs as root only (no subordinate ids are set up for other users)"

work=$(mktemp -d)
name=logcapture-image-test-$$
volume=logcapture-image-test-state-$$
receiver_pid=
cleanup() {
  podman rm --force --time 0 "$name" >/dev/null 2>&1 || true
  podman volume rm --force "$volume" >/dev/null 2>&1 || true
  [ -z "$receiver_pid" ] || kill "$receiver_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
podman_env "$root/build/container"

step "build the image offline (mmdebstrap, podman import, podman build --runtime runc)"
SECONDS=0
image=$("$root/packaging/container/build-image.sh" --deb "$deb" 2> >(tee "$work/build.err" >&2) | tail -1) ||
  fail "build-image.sh failed"
echo "   $image in ${SECONDS}s"
# A container that cannot start at all means podman cannot run here; anything after that is ours.
if ! podman run --rm --entrypoint /bin/true "$image" >"$work/probe" 2>&1; then
  cat "$work/probe"
  skip "podman cannot start a container on this machine (see above)"
fi

step "entrypoint, user and state directory"
[ "$(podman image inspect --format '{{json .Config.Entrypoint}}' "$image")" = \
  '["/usr/bin/logcapture","run","-c","/etc/logcapture/capture.yaml"]' ] ||
  fail "entrypoint is $(podman image inspect --format '{{json .Config.Entrypoint}}' "$image")"
[ "$(podman image inspect --format '{{.Config.User}}' "$image")" = logcapture ] || fail "the image does not run as logcapture"
podman run --rm --entrypoint /bin/sh "$image" -c \
  'test "$(stat -c %U /var/lib/logcapture)" = logcapture && id -nG | grep -qw adm' ||
  fail "/var/lib/logcapture is not the user's, or the user is not in adm"

step "logcapture version, and check of the config the image ships"
podman run --rm --entrypoint /usr/bin/logcapture "$image" version | grep -qx "logcapture $(dpkg-deb -f "$deb" Version)" ||
  fail "logcapture version does not print the package's version"
podman run --rm --entrypoint /usr/bin/logcapture "$image" check -c /etc/logcapture/capture.yaml

step "a run ships a mounted file to a receiver on the host's loopback, on a read-only root"
"$receiver_bin" --listen 127.0.0.1:0 --out "$work/received" >"$work/receiver.out" 2>&1 &
receiver_pid=$!
listening() { grep -q "listening on" "$work/receiver.out"; }
wait_for 20 listening || fail "the HTTP receiver did not start"
port=$(grep -oE 'listening on [0-9.]+:[0-9]+' "$work/receiver.out" | grep -oE '[0-9]+$')
admin_port=$(free_port)
cat >"$work/capture.yaml" <<EOF
agent:
  admin: {listen: "127.0.0.1:$admin_port"}
inputs:
  - {name: app, type: file, paths: [/var/log/app/*.log], start_at: beginning}
sinks:
  - {name: receiver, type: http, url: "http://127.0.0.1:$port/ingest", batch: {linger: 50ms}}
EOF
mkdir "$work/logs"
printf 'first line\nsecond line\nthird line\n' >"$work/logs/app.log"
chmod 0644 "$work/capture.yaml" "$work/logs/app.log"
chmod 0755 "$work" "$work/logs"
run_agent() {
  podman run --detach --name "$name" --network host --read-only \
    -v "$volume:/var/lib/logcapture" -v "$work/capture.yaml:/etc/logcapture/capture.yaml:ro" \
    -v "$work/logs:/var/log/app:ro" "$image" >/dev/null
}
received() { [ "$(wc -l <"$work/received" 2>/dev/null || echo 0)" -ge "$1" ]; }
stop_agent() {
  podman stop --time 20 "$name" >/dev/null
  local code
  code=$(podman inspect --format '{{.State.ExitCode}}' "$name")
  [ "$code" = 0 ] || {
    podman logs "$name" | tail -20
    fail "the agent exited with $code on SIGTERM"
  }
  podman rm "$name" >/dev/null
}
run_agent
wait_for 60 received 3 || {
  podman logs "$name" | tail -20
  fail "the receiver got $(wc -l <"$work/received" 2>/dev/null || echo 0) of 3 records"
}
grep -q "third line" "$work/received" || fail "the records received are not the file's lines"
stop_agent

step "a new container on the same state volume resumes from its checkpoint"
echo "fourth line" >>"$work/logs/app.log"
run_agent
wait_for 60 received 4 || {
  podman logs "$name" | tail -20
  fail "the line written while the agent was down was not shipped"
}
stop_agent
[ "$(wc -l <"$work/received")" -eq 4 ] || fail "the restart sent lines again: $(wc -l <"$work/received") records for 4 lines"
echo "image: all checks passed"
