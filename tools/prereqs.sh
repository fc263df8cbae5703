#!/usr/bin/env bash
# Installs and starts what the tests and the demo need on this machine, and
# skips what is already there (safe to run again and again):
#   Debian packages: docker.io, docker-registry, libcoap3-bin, debootstrap
#   dockerd (with 127.0.0.0/8 and the bridge gateway as insecure registries)
#   the OCI registry (CNCF distribution) on 127.0.0.1:5000
#   the testbed base image nanoedge/base:bookworm (debootstrap + docker import)
# With --bench, also the baseline tools the benchmarks in bench/ compare against.
set -euo pipefail

STATE_DIR=${NANOEDGE_STATE_DIR:-/var/lib/nanoedge-testbed}
REGISTRY_ADDR=${NANOEDGE_REGISTRY_ADDR:-127.0.0.1:5000}
BASE_IMAGE=${NANOEDGE_BASE_IMAGE:-nanoedge/base:bookworm}
PACKAGES=(docker.io docker-registry libcoap3-bin debootstrap iptables ca-certificates curl apache2-utils shellcheck nftables iproute2)
# the baselines the benchmarks compare against (the paper's toolchain, skopeo)
BENCH_PACKAGES=(lshw upower bluez jq skopeo)

log() { printf 'prereqs: %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

install_packages() {
    local missing=()
    for pkg in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

wait_for() { # wait_for SECONDS COMMAND...
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.2
    done
}

# A pid file left by an engine that was killed (not stopped) names a pid that
# may now belong to another process; dockerd then waits for a containerd that
# is not there. Remove pid files whose process is not the program they name.
remove_stale_pidfile() { # remove_stale_pidfile FILE PROGRAM
    local pid
    [ -f "$1" ] || return 0
    pid=$(cat "$1" 2>/dev/null || true)
    # a killed engine can linger as a zombie nobody reaps: that is not running
    if [ -z "$pid" ] || [ "$(cat "/proc/$pid/comm" 2>/dev/null)" != "$2" ] \
        || [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ]; then
        log "removing stale $1"
        as_root rm -f "$1"
    fi
}

start_dockerd() {
    if docker info >/dev/null 2>&1; then return 0; fi
    log "starting dockerd"
    as_root mkdir -p "$STATE_DIR"
    remove_stale_pidfile /var/run/docker.pid dockerd
    remove_stale_pidfile /var/run/docker/containerd/containerd.pid containerd
    # setsid: the engine must outlive this script and the shell that ran it
    as_root setsid dockerd --insecure-registry 172.16.0.0/12 \
        >"$STATE_DIR/dockerd.log" 2>&1 < /dev/null &
    wait_for 60 docker info || { tail -n 30 "$STATE_DIR/dockerd.log" >&2; log "dockerd did not start"; exit 1; }
}

registry_up() { curl -fsS -o /dev/null "http://$1/v2/" 2>/dev/null; }

start_registry() {
    if registry_up "$REGISTRY_ADDR"; then return 0; fi
    log "starting the OCI registry on $REGISTRY_ADDR"
    as_root mkdir -p "$STATE_DIR/registry/data"
    # Debian's own config turns on htpasswd auth and listens everywhere: use ours.
    as_root tee "$STATE_DIR/registry/config.yml" >/dev/null <<CONF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $STATE_DIR/registry/data
  delete:
    enabled: true
http:
  addr: $REGISTRY_ADDR
CONF
    as_root setsid docker-registry serve "$STATE_DIR/registry/config.yml" \
        >"$STATE_DIR/registry.log" 2>&1 < /dev/null &
    wait_for 30 registry_up "$REGISTRY_ADDR" || { tail -n 30 "$STATE_DIR/registry.log" >&2; log "registry did not start"; exit 1; }
}

debian_mirror() {
    local uri
    uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    [ -n "$uri" ] || uri=$(awk '/^deb / && !/security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
    printf '%s\n' "${uri:-http://deb.debian.org/debian}"
}

build_base_image() {
    if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then return 0; fi
    local rootfs
    rootfs=$(mktemp -d "${TMPDIR:-/tmp}/nanoedge-rootfs.XXXXXX")
    # shellcheck disable=SC2064
    trap "rm -rf '$rootfs'" RETURN
    log "building $BASE_IMAGE with debootstrap (about a minute)"
    as_root debootstrap --variant=minbase --include=python3 bookworm "$rootfs" "$(debian_mirror)" \
        >"$STATE_DIR/debootstrap.log" 2>&1 || { tail -n 30 "$STATE_DIR/debootstrap.log" >&2; exit 1; }
    as_root rm -f "$rootfs"/var/cache/apt/archives/*.deb
    as_root tar -C "$rootfs" -c . | docker import \
        -c 'CMD ["sleep","infinity"]' -c 'ENV LANG=C.UTF-8' - "$BASE_IMAGE" >/dev/null
}

main() {
    if [ "${1:-}" = "--bench" ]; then PACKAGES+=("${BENCH_PACKAGES[@]}"); fi
    install_packages
    as_root mkdir -p "$STATE_DIR"
    start_dockerd
    start_registry
    build_base_image
    log "ready: docker $(docker version -f '{{.Server.Version}}'), registry http://$REGISTRY_ADDR, image $BASE_IMAGE"
}

main "$@"
