# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Network faults on the demo cluster: cut the links between nodes, heal them, and a short blip.

Each fault is an nftables table, ``inet nanoedge_fault``, inside the node's own
network namespace (entered with nsenter from the host, so the node image needs
no nftables): packets to and from the cut peers are dropped in both
directions. Nothing on the host or the Docker network changes, and ``heal``
deletes the table, so a fault never outlives the cluster. Ansible reaches the
nodes through the Docker engine, not the network, so a cut node stays
manageable.
"""

from __future__ import annotations

import subprocess
import time
import typing as t

from testbed_cluster import Cluster, Node, TestbedError, container_state, log  # pylint: disable=import-error

TABLE = "nanoedge_fault"


def _pid(node: Node) -> int:
    state = container_state(node.container)
    if not state or not state["State"]["Running"]:
        raise TestbedError("node %s is not running" % node.host)
    return int(state["State"]["Pid"])


def _nft(node: Node, script: str) -> None:
    """Run an nft script in ``node``'s network namespace."""
    proc = subprocess.run(["nsenter", "-t", str(_pid(node)), "-n", "nft", "-f", "-"], input=script.encode(),
                          capture_output=True, timeout=30, check=False)
    if proc.returncode != 0:
        raise TestbedError("nft in %s: %s" % (node.host, proc.stderr.decode(errors="replace").strip()))


def _drop_script(addresses: t.Sequence[str]) -> str:
    """A table that drops every packet to or from ``addresses`` (everything but loopback when empty)."""
    if addresses:
        match_in, match_out = "ip saddr { %s }" % ", ".join(addresses), "ip daddr { %s }" % ", ".join(addresses)
    else:
        match_in, match_out = 'iifname != "lo"', 'oifname != "lo"'
    return ("table inet %s {}\nflush table inet %s\n"
            "table inet %s {\n"
            "  chain input { type filter hook input priority -10; %s drop; }\n"
            "  chain output { type filter hook output priority -10; %s drop; }\n"
            "}\n" % (TABLE, TABLE, TABLE, match_in, match_out))


def _cut_set(cluster: Cluster, host: str, peers: t.Iterable[str]) -> t.Set[str]:
    """The addresses ``host`` is cut from now (read back from its table), plus ``peers``'."""
    node = cluster.node(host)
    proc = subprocess.run(["nsenter", "-t", str(_pid(node)), "-n", "nft", "-j", "list", "table", "inet", TABLE],
                          capture_output=True, timeout=30, check=False)
    addresses = set()
    if proc.returncode == 0:
        text = proc.stdout.decode()
        addresses = {n.address for n in cluster.nodes if '"%s"' % n.address in text}
    return addresses | {cluster.node(peer).address for peer in peers}


def cut(cluster: Cluster, host: str, peers: t.Sequence[str]) -> None:
    """Drop all traffic between ``host`` and each of ``peers``, both ways, on both sides."""
    if not peers or host in peers:
        raise TestbedError("cut %s from at least one other node" % host)
    _nft(cluster.node(host), _drop_script(sorted(_cut_set(cluster, host, peers))))
    for peer in peers:
        _nft(cluster.node(peer), _drop_script(sorted(_cut_set(cluster, peer, [host]))))
    log("cut %s from %s" % (host, ", ".join(peers)))


def heal(cluster: Cluster, hosts: t.Sequence[str]) -> None:
    """Remove every fault from ``hosts`` (every running node when empty)."""
    for node in [cluster.node(h) for h in hosts] if hosts else cluster.nodes:
        state = container_state(node.container)
        if not state or not state["State"]["Running"]:
            continue
        subprocess.run(["nsenter", "-t", str(int(state["State"]["Pid"])), "-n", "nft", "delete", "table", "inet",
                        TABLE], capture_output=True, timeout=30, check=False)
    log("healed %s" % (", ".join(hosts) if hosts else "every node"))


def blip(cluster: Cluster, host: str, seconds: float) -> None:
    """Drop all of ``host``'s traffic for ``seconds``, then heal it."""
    node = cluster.node(host)
    _nft(node, _drop_script([]))
    started = time.monotonic()
    try:
        time.sleep(seconds)
    finally:
        subprocess.run(["nsenter", "-t", str(_pid(node)), "-n", "nft", "delete", "table", "inet", TABLE],
                       capture_output=True, timeout=30, check=False)
    log("blip: %s was off the network for %.2f s" % (host, time.monotonic() - started))
