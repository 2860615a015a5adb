#!/usr/bin/env bash
# Installs the Debian 12 packages logcapture needs to build, test and run its demo.
# Idempotent: prints nothing and exits 0 when everything is already installed.
# `install-deps.sh test` also installs the tools of the fuzz targets and of the package and image tests.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  librdkafka-dev libhiredis-dev libcurl4-openssl-dev nlohmann-json3-dev libspdlog-dev
  libfmt-dev doctest-dev libyaml-cpp-dev zlib1g-dev libcpp-httplib-dev libsystemd-dev
  libcli11-dev libbenchmark-dev libssl-dev libncurses-dev
  redis-server python3 python3-prometheus-client
)
if [ "${1:-}" = test ]; then
  # the package and image tests
  packages+=(lintian mmdebstrap podman runc prometheus python3-yaml)
  # clang and its libFuzzer, ASan and UBSan runtimes, and llvm-14's symbolizer for their reports: tests/fuzz
  packages+=(clang-14 libclang-rt-14-dev llvm-14)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "logcapture: missing Debian packages: ${missing[*]}" >&2
  echo "logcapture: run as root (or: sudo $0), or install them with: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi

echo "logcapture: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# redis-server's package starts a system instance; tests and the demo start their own on free ports.
# The same for prometheus (only promtool is used).
if command -v systemctl >/dev/null 2>&1; then
  systemctl disable --now redis-server prometheus prometheus-node-exporter >/dev/null 2>&1 || true
fi
