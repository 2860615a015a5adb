#!/usr/bin/env bash
# docs/configuration.md is what `logcapture reference` prints from the config declarations (the
# describe() tables), so the reference cannot drift from the loader. After changing a declaration:
#   build/logcapture reference > docs/configuration.md
#
# usage: packaging/tests/config_reference_test.sh LOGCAPTURE_BINARY
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$root/packaging/tests/lib.sh"
binary=$(realpath "${1:?usage: config_reference_test.sh LOGCAPTURE_BINARY}")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$binary" reference >"$work/reference.md" || fail "logcapture reference failed"
diff -u "$root/docs/configuration.md" "$work/reference.md" ||
  fail "docs/configuration.md differs from 'logcapture reference' (regenerate it: build/logcapture reference > docs/configuration.md)"
echo "reference: docs/configuration.md matches"
