# shellcheck shell=bash
# Shared by the packaging tests: how a test says what it checked, fails, or is skipped.
# A test exits 0 (passed), 77 (skipped: a tool it needs cannot run here; it says which) or else (failed).

# A command that fails outside a test's own checks names itself before `set -e` ends the test.
trap 'echo "FAIL: ${BASH_SOURCE[0]##*/}:$LINENO: $BASH_COMMAND exited $?" >&2' ERR

step() { echo "-- $*"; }
fail() {
  echo "FAIL: $*" >&2
  exit 1
}
skip() {
  echo "SKIP: $*"
  exit 77
}
need() {  # need COMMAND PACKAGE: skip when a tool is missing
  command -v "$1" >/dev/null 2>&1 || skip "$1 is not installed (Debian package $2; `packaging/install-deps.sh test` installs it)"
}

# Polls COMMAND... until it succeeds or SECONDS pass; never a fixed sleep for a state.
wait_for() {
  local seconds=$1
  shift
  local deadline=$((SECONDS + seconds))
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

# A TCP port free on 127.0.0.1 now.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
