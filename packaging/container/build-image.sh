#!/usr/bin/env bash
# Builds logcapture's container image without a container registry: the same Containerfile, with a
# Debian 12 root made by mmdebstrap (imported into podman) as its base images, and the .deb already
# built on this machine in place of the build stage.
#
#   packaging/container/build-image.sh [--deb FILE] [--tag NAME]
#
# --deb defaults to the package in build/package/, --tag to localhost/logcapture:VERSION. Prints the
# image's name on its last line. The base is made once a day and kept in podman
# (localhost/logcapture-base:bookworm-slim-DATE).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$root/packaging/container/podman-env.sh"

deb=
tag=
while [ $# -gt 0 ]; do
  case "$1" in
    --deb) deb=$2; shift 2 ;;
    --tag) tag=$2; shift 2 ;;
    *) echo "usage: $0 [--deb FILE] [--tag NAME]" >&2; exit 2 ;;
  esac
done
if [ -z "$deb" ]; then
  deb=$(ls -t "$root"/build/package/logcapture_*.deb 2>/dev/null | head -1 || true)
  [ -n "$deb" ] || { echo "no .deb in build/package: run tools/dev package first" >&2; exit 1; }
fi
version=$(dpkg-deb -f "$deb" Version)
tag=${tag:-localhost/logcapture:$version}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
podman_env "$root/build/container"

base=$(debian_base)

mkdir "$work/context"
cp "$deb" "$work/context/logcapture.deb"
nice podman build --quiet --runtime runc --pull=never \
  -f "$root/packaging/container/Containerfile" \
  --build-arg DEBIAN="$base" --build-arg RUNTIME="$base" --build-arg PREBUILT_DEB=logcapture.deb \
  --label org.opencontainers.image.version="$version" \
  -t "$tag" "$work/context" >/dev/null
podman image prune --force >/dev/null
echo "$tag"
