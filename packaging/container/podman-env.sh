# Sourced by build-image.sh and the image test: podman as this project's machines need it. The default
# runtime crun refuses their mixed cgroup setup, and podman's default open-files limit is above their
# hard limit, so both are set in a containers.conf of our own. Usage: podman_env DIR
podman_env() {
  mkdir -p "$1"
  cat >"$1/containers.conf" <<'CONF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
CONF
  export CONTAINERS_CONF="$1/containers.conf"
}
