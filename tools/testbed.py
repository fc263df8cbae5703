# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The demo cluster: bring it up, take it down, show it.

    python tools/testbed.py up       # idempotent
    python tools/testbed.py status
    python tools/testbed.py down
    python tools/testbed.py plug w2 sys/bus/w1 --from w1   # move w1's temperature probe to w2
    python tools/testbed.py unplug w2 sys/bus/w1
    python tools/testbed.py unplug w4 dev/ttyUSB0                      # a device file leaves the node's /dev
    python tools/testbed.py plug w2 dev/ttyUSB0 --from w4              # ... and appears in another's
    python tools/testbed.py cut m1 m2 w1 w2 w3   # drop m1's traffic with m2, w1, w2, w3 (tools/testbed_network.py)
    python tools/testbed.py heal                 # every cut ends
    python tools/testbed.py blip w3 --seconds 2  # w3 is off the network for 2 s
    python tools/testbed.py battery w1 15        # w1's battery falls to 15 %

Reads testbed/cluster.yml (see testbed/README.md). ``up`` builds the node
image when it is missing, creates the Docker network, starts a second,
read-only registry process on the network's gateway (the nodes cannot reach
127.0.0.1:5000, which is the host's loopback), starts one container per
node with its cgroup limits and fake hardware, and waits until every node's
own Docker engine answers and reaches the registry through the gateway.
``--prefix``, ``--network`` and ``--subnet`` run an independent copy next to
the usual one (the integration test does that).

Needs the docker CLI, Debian's docker-registry and PyYAML (in the project's
venv, as ansible-core depends on it). Run it as root or as a docker user.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
import typing as t
from pathlib import Path

# Run as a script: this folder is on sys.path, and the cluster's parts are beside this file.
from testbed_cluster import (  # pylint: disable=import-error
    DEFAULT_CLUSTER, HARDWARE_MOUNTS, Cluster, Node, TestbedError, build_image, container_state, docker, docker_out,
    ensure_network, log, node_ready, pull_on_nodes, registry_answers, start_gateway_registry, start_node,
    stop_gateway_registry, wait_ready,
)
from testbed_network import blip, cut, heal  # pylint: disable=import-error


# ------------------------------------------------------------------- commands


def up(cluster: Cluster, timeout: float, rebuild: bool = False, pull: t.Sequence[str] = ()) -> None:
    started = time.monotonic()
    build_image(cluster, force=rebuild)
    ensure_network(cluster)
    start_gateway_registry(cluster)
    for node in cluster.nodes:
        outcome = start_node(cluster, node)
        if outcome != "running":
            log("%s %s (%s, %g CPU, %s)" % (outcome, node.container, node.address, node.cpus, node.memory))
    wait_ready(cluster, cluster.nodes, timeout)
    for image in pull:
        pull_on_nodes(cluster, [n for n in cluster.nodes if n.role == "worker"], image)
    log("up: %d node(s) ready in %.1f s" % (len(cluster.nodes), time.monotonic() - started))


def down(cluster: Cluster) -> None:
    for node in cluster.nodes:
        if docker("rm", "-f", "-v", node.container, check=False).returncode == 0:
            log("removed %s" % node.container)
    left = docker_out("ps", "-aq", "--filter", "network=%s" % cluster.network, check=False)
    if not left and docker("network", "inspect", cluster.network, check=False).returncode == 0:
        docker("network", "rm", cluster.network)
        log("removed network %s" % cluster.network)
    elif left:
        log("kept network %s: other containers are still attached" % cluster.network)
    stop_gateway_registry(cluster)
    for node in cluster.nodes:
        shutil.rmtree(cluster.live_hardware(node), ignore_errors=True)


def _hardware_path(cluster: Cluster, node: Node, path: str) -> Path:
    rel = Path(path.strip("/"))
    if not rel.parts or ".." in rel.parts or not any(
            rel.parts[:len(Path(m).parts)] == Path(m).parts for m in HARDWARE_MOUNTS):
        raise TestbedError("%s: must be a path under one of %s" % (path, ", ".join(HARDWARE_MOUNTS)))
    if node.hardware is None:
        raise TestbedError("node %s has no hardware folder" % node.host)
    return rel


def _device_file(rel: Path) -> bool:
    """Whether ``rel`` is a device file (``dev/...``): the node's /dev is its own, so a device is
    written into the running container rather than into the hardware folder it mounts."""
    return rel.parts[0] == "dev"


def _plug_device(node: Node, rel: Path, origin: Path) -> None:
    script = "umount /%s 2>/dev/null; rm -f /%s; cat > /%s" % (rel, rel, rel)
    docker("exec", "-i", node.container, "sh", "-c", script, input_data=origin.read_bytes())


def _unplug_device(node: Node, rel: Path) -> None:
    proc = docker("exec", node.container, "sh", "-c", "test -e /%s && { umount /%s 2>/dev/null; rm -f /%s; }"
                  % (rel, rel, rel), check=False)
    if proc.returncode != 0:
        raise TestbedError("%s has no /%s" % (node.host, rel))


def plug(cluster: Cluster, host: str, path: str, source_host: str) -> None:
    """Copy ``path`` of ``source_host``'s hardware folder into ``host``'s running node."""
    node, source = cluster.node(host), cluster.node(source_host)
    rel = _hardware_path(cluster, source, path)
    origin = (source.hardware or Path("/nonexistent")) / rel
    if not origin.exists():
        raise TestbedError("%s has no %s in %s" % (source_host, rel, source.hardware))
    if _device_file(rel):
        _plug_device(node, rel, origin)
        log("plugged %s of %s into %s" % (rel, source_host, host))
        return
    _hardware_path(cluster, node, path)
    mount = next(Path(m) for m in HARDWARE_MOUNTS if rel.parts[:len(Path(m).parts)] == Path(m).parts)
    if not (cluster.live_hardware(node) / mount).is_dir():
        raise TestbedError("%s does not mount /%s (its hardware folder has none), so nothing can be plugged "
                           "in there while it runs" % (host, mount))
    target = cluster.live_hardware(node) / rel
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    if origin.is_dir():
        shutil.copytree(origin, target, symlinks=True)
    else:
        shutil.copy2(origin, target)
    log("plugged %s of %s into %s" % (rel, source_host, host))


def unplug(cluster: Cluster, host: str, path: str) -> None:
    node = cluster.node(host)
    rel = _hardware_path(cluster, node, path)
    if _device_file(rel):
        _unplug_device(node, rel)
        log("unplugged %s from %s" % (path, host))
        return
    target = cluster.live_hardware(node) / rel
    if target.is_dir():
        shutil.rmtree(target)
    elif target.exists():
        target.unlink()
    else:
        raise TestbedError("%s has no %s" % (host, path))
    log("unplugged %s from %s" % (path, host))


def battery(cluster: Cluster, host: str, percent: int) -> None:
    """Set the charge of ``host``'s batteries in its running node (uevent and capacity, as the kernel shows them)."""
    if not 0 <= percent <= 100:
        raise TestbedError("battery: %d is not a percentage" % percent)
    node = cluster.node(host)
    supplies = cluster.live_hardware(node) / "sys" / "class" / "power_supply"
    changed = []
    for supply in sorted(supplies.iterdir()) if supplies.is_dir() else []:
        uevent = supply / "uevent"
        lines = uevent.read_text().splitlines() if uevent.is_file() else []
        if "POWER_SUPPLY_TYPE=Battery" not in lines:
            continue
        lines = [line for line in lines if not line.startswith("POWER_SUPPLY_CAPACITY=")]
        uevent.write_text("\n".join(lines + ["POWER_SUPPLY_CAPACITY=%d" % percent]) + "\n")
        if (supply / "capacity").is_file():
            (supply / "capacity").write_text("%d\n" % percent)
        changed.append(supply.name)
    if not changed:
        raise TestbedError("%s has no battery in %s" % (host, supplies))
    log("%s: %s at %d %%" % (host, ", ".join(changed), percent))


def status(cluster: Cluster, as_json: bool = False) -> int:
    rows = []
    for node in cluster.nodes:
        state = container_state(node.container)
        running = bool(state and state["State"]["Running"])
        engine = "-"
        if running:
            engine = "ok" if node_ready(cluster, node) is None else "not ready"
        rows.append({"host": node.host, "role": node.role, "container": node.container,
                     "state": state["State"]["Status"] if state else "absent", "address": node.address,
                     "cpus": node.cpus, "memory": node.memory, "engine": engine,
                     "hardware": node.description})
    registry = "up" if registry_answers(cluster.gateway_registry) else "down"
    if as_json:
        print(json.dumps({"network": cluster.network, "gateway_registry": cluster.gateway_registry,
                          "registry": registry, "nodes": rows}, indent=2))
    else:
        columns = ("host", "role", "state", "address", "cpus", "memory", "engine", "hardware")
        table = [columns] + [tuple("%g" % r[c] if c == "cpus" else str(r[c]) for c in columns) for r in rows]
        widths = [max(len(row[i]) for row in table) for i in range(len(columns) - 1)]
        for row in table:
            print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])
        print("network %s, registry for the nodes http://%s (%s)"
              % (cluster.network, cluster.gateway_registry, registry))
    return 0 if all(r["engine"] == "ok" for r in rows) and registry == "up" else 1


def main(argv: t.Optional[t.Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="testbed.py", description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--cluster", type=Path, default=DEFAULT_CLUSTER, help="cluster file (testbed/cluster.yml)")
    parser.add_argument("--prefix", help="container name prefix instead of the cluster file's")
    parser.add_argument("--network", help="Docker network name instead of the cluster file's")
    parser.add_argument("--subnet", help="subnet instead of the cluster file's (node addresses keep their host part)")
    parser.add_argument("--only", help="comma-separated hosts to act on (default: all)")
    sub = parser.add_subparsers(dest="command", required=True)
    up_parser = sub.add_parser("up", help="start the cluster (idempotent)")
    up_parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the nodes")
    up_parser.add_argument("--rebuild", action="store_true", help="rebuild the node image")
    up_parser.add_argument("--pull", action="append", default=[], metavar="REPO:TAG",
                           help="then pull this registry image on every worker (repeatable)")
    sub.add_parser("down", help="remove the containers, the network and the gateway registry")
    status_parser = sub.add_parser("status", help="table of nodes; exit 1 unless all are ready")
    status_parser.add_argument("--json", action="store_true")
    sub.add_parser("image", help="build the node image if missing and print its name")
    plug_parser = sub.add_parser("plug", help="plug a device of one node's hardware folder into a running node")
    plug_parser.add_argument("host")
    plug_parser.add_argument("path", help="e.g. sys/bus/w1 (the 1-Wire bus with its probe)")
    plug_parser.add_argument("--from", dest="source", required=True, metavar="HOST",
                             help="the node whose hardware folder has the device")
    unplug_parser = sub.add_parser("unplug", help="remove a device from a running node")
    unplug_parser.add_argument("host")
    unplug_parser.add_argument("path")
    cut_parser = sub.add_parser("cut", help="drop all traffic between a node and the others named, both ways")
    cut_parser.add_argument("host")
    cut_parser.add_argument("peers", nargs="+")
    heal_parser = sub.add_parser("heal", help="end the cuts of the nodes named (default: all)")
    heal_parser.add_argument("hosts", nargs="*")
    blip_parser = sub.add_parser("blip", help="take a node off the network for a few seconds")
    blip_parser.add_argument("host")
    blip_parser.add_argument("--seconds", type=float, default=2.0)
    battery_parser = sub.add_parser("battery", help="set the charge of a node's batteries")
    battery_parser.add_argument("host")
    battery_parser.add_argument("percent", type=int)
    args = parser.parse_args(argv)
    only = [h.strip() for h in args.only.split(",") if h.strip()] if args.only else None
    try:
        cluster = Cluster(args.cluster, args.prefix, args.network, args.subnet, only)
        if args.command == "up":
            up(cluster, args.timeout, args.rebuild, args.pull)
        elif args.command == "down":
            down(cluster)
        elif args.command == "status":
            return status(cluster, args.json)
        elif args.command == "image":
            print(build_image(cluster))
        elif args.command == "plug":
            plug(cluster, args.host, args.path, args.source)
        elif args.command == "unplug":
            unplug(cluster, args.host, args.path)
        elif args.command == "cut":
            cut(cluster, args.host, args.peers)
        elif args.command == "heal":
            heal(cluster, args.hosts)
        elif args.command == "blip":
            blip(cluster, args.host, args.seconds)
        elif args.command == "battery":
            battery(cluster, args.host, args.percent)
    except TestbedError as exc:
        log("error: %s" % exc)
        return 1
    except subprocess.TimeoutExpired as exc:
        log("error: timed out: %s" % " ".join(str(a) for a in exc.cmd))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
