# shellcheck shell=bash
# Sourced by build-image.sh and the package tests: podman as this project's machines need it, and the
# Debian 12 base image made without a registry.

# podman_env DIR: the default runtime crun refuses the machines' mixed cgroup setup, and podman's
# default open-files limit is above their hard limit, so both are set in a containers.conf of ours.
podman_env() {
  mkdir -p "$1"
  cat >"$1/containers.conf" <<'CONF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
CONF
  # Absolute: podman's helper processes do not run in our directory.
  CONTAINERS_CONF="$(cd "$1" && pwd)/containers.conf"
  export CONTAINERS_CONF
}

# debian_base: prints the name of a Debian 12 image trimmed like debian:bookworm-slim (debuerreotype
# --slimify: no manuals, locales or docs but the copyright files, for the base and every package
# installed on it later), made by mmdebstrap and imported into podman once a day (about 20 s on an
# idle machine).
debian_base() {
  local base tmp p
  base=localhost/logcapture-base:bookworm-slim-$(date -u +%Y%m%d)
  if ! podman image exists "$base"; then
    echo "building $base with mmdebstrap" >&2
    local slim=()
    for p in doc man groff info lintian linda locale; do
      slim+=(--dpkgopt="path-exclude=/usr/share/$p/*")
    done
    slim+=(--dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-include=/usr/share/locale/locale.alias')
    tmp=$(mktemp -d)
    nice mmdebstrap --quiet --variant=minbase "${slim[@]}" bookworm "$tmp/root.tar" >&2 &&
      podman import --quiet --change 'CMD ["/bin/bash"]' "$tmp/root.tar" "$base" >/dev/null
    local rc=$?
    rm -rf "$tmp"
    [ $rc -eq 0 ] || return $rc
    forget_other_tags "$base"
  fi
  echo "$base"
}

# forget_other_tags NAME:TAG: removes the other tags of NAME (yesterday's base, another dependency set),
# so that they do not pile up in podman's storage.
forget_other_tags() {
  local repo=${1%:*} other
  for other in $(podman images --format '{{.Repository}}:{{.Tag}}' "$repo"); do
    [ "$other" = "$1" ] || podman rmi "$other" >/dev/null 2>&1 || true
  done
}
