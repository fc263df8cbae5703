#!/bin/sh
# Entry point of a simulated Raspberry Pi (see testbed/README.md).
# Docker hands the container a read-only /sys and read-only cgroup bind
# mounts; the inner Docker engine and systemd both need them writable.
# --privileged is not available on every host (it needs CAP_SYS_RESOURCE),
# so tools/testbed.py grants the individual capabilities instead.
set -eu

mount -o remount,rw /sys
for hierarchy in /sys/fs/cgroup/*; do
    # cgroup v1: each hierarchy is a bind mount, so the remount must say "bind"
    mountpoint -q "$hierarchy" && mount -o remount,bind,rw "$hierarchy"
done
# cgroup v2 (unified): one mount at /sys/fs/cgroup
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    mount -o remount,rw /sys/fs/cgroup
fi

# Docker mounts cpu and cpuacct as two hierarchies; systemd expects them
# joined and leaves an empty "cpu,cpuacct" folder behind when they are not.
# Link it as a host with joined controllers (Raspberry Pi OS) has it, so
# whoever looks for cpu,cpuacct finds the container's limits there.
if [ -d /sys/fs/cgroup/cpu ] && [ ! -e /sys/fs/cgroup/cpu,cpuacct ] && [ ! -f /sys/fs/cgroup/cgroup.controllers ]; then
    ln -s cpu /sys/fs/cgroup/cpu,cpuacct
fi

# The OCI registry as a Pi sees it: reached over the network, plain HTTP.
mkdir -p /etc/docker
registries=""
for registry in $(printf '%s' "${NANOEDGE_REGISTRY:-}" | tr ',' ' '); do
    registries="${registries:+$registries, }\"$registry\""
done
printf '{"insecure-registries": [%s], "log-driver": "json-file", "log-opts": {"max-size": "1m", "max-file": "2"}}\n' \
    "$registries" > /etc/docker/daemon.json

if [ "${NANOEDGE_ENGINE:-on}" = off ]; then
    rm -f /etc/systemd/system/multi-user.target.wants/docker.service
fi

# Host keys of this node, made once (the image carries none).
ssh-keygen -A >/dev/null

exec /lib/systemd/systemd
