# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""tools/testbed_cluster.py's reading of testbed/cluster.yml, and that the Ansible
inventory of the demo cluster describes the same nodes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ansible_collections.nanoedge.core.tools import testbed_cluster as testbed

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture()
def cluster():
    return testbed.Cluster(ROOT / "testbed" / "cluster.yml")


def test_nodes_of_the_paper(cluster):
    assert [(n.host, n.role, n.container, n.address) for n in cluster.nodes] == [
        ("m1", "manager", "nanoedge-m1", "172.30.0.11"), ("m2", "manager", "nanoedge-m2", "172.30.0.12"),
        ("w1", "worker", "nanoedge-w1", "172.30.0.21"), ("w2", "worker", "nanoedge-w2", "172.30.0.22"),
        ("w3", "worker", "nanoedge-w3", "172.30.0.23"), ("w4", "worker", "nanoedge-w4", "172.30.0.24"),
        ("w5", "worker", "nanoedge-w5", "172.30.0.25"),
    ]
    assert cluster.gateway_registry == "172.30.0.1:5000"
    # this machine has 2 cores: no node may ask for more
    assert all(0 < n.cpus <= 2 for n in cluster.nodes)


def test_overrides_move_the_whole_cluster():
    moved = testbed.Cluster(ROOT / "testbed" / "cluster.yml", prefix="t-", network="net-x",
                            subnet="172.30.140.0/24", only=["w4", "w1"])
    assert [(n.host, n.container, n.address) for n in moved.nodes] == [
        ("w1", "t-w1", "172.30.140.21"), ("w4", "t-w4", "172.30.140.24")]
    assert (moved.network, moved.gateway, moved.gateway_registry) == ("net-x", "172.30.140.1", "172.30.140.1:5000")


def test_only_unknown_host(tmp_path):
    with pytest.raises(testbed.TestbedError) as error:
        testbed.Cluster(ROOT / "testbed" / "cluster.yml", only=["w9"])
    assert str(error.value) == "no such node(s) in %s: w9" % (ROOT / "testbed" / "cluster.yml")


def test_address_outside_the_subnet(tmp_path):
    data = yaml.safe_load((ROOT / "testbed" / "cluster.yml").read_text())
    data["nodes"]["w1"]["address"] = 300
    path = tmp_path / "cluster.yml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(testbed.TestbedError) as error:
        testbed.Cluster(path)
    assert str(error.value) == ("%s: node w1 has address 172.30.1.44 outside 172.30.0.0/24 or on the gateway"
                                % path)


@pytest.mark.parametrize("host, targets", [
    ("m1", []),
    ("w1", ["/proc/cpuinfo", "/sys/firmware", "/sys/bus", "/sys/class/power_supply"]),
    ("w2", ["/proc/cpuinfo", "/sys/firmware", "/sys/bus"]),
    ("w3", ["/proc/cpuinfo", "/sys/firmware", "/sys/bus", "/sys/class/power_supply"]),
    ("w4", ["/proc/cpuinfo", "/sys/firmware", "/sys/bus", "/dev/ttyUSB0"]),
    ("w5", ["/proc/cpuinfo", "/sys/firmware", "/sys/bus", "/sys/class/power_supply"]),
])
def test_hardware_mounts(cluster, host, targets):
    node = next(n for n in cluster.nodes if n.host == host)
    mounts = cluster.mounts(node)
    assert [mount[1] for mount in mounts] == targets
    assert all(source == ROOT / "testbed" / "hardware" / host / target.lstrip("/") for source, target in mounts)


def test_config_hash_follows_the_hardware(cluster, tmp_path):
    node = next(n for n in cluster.nodes if n.host == "w2")
    before = cluster.config_hash(node)
    assert before == cluster.config_hash(node)
    assert cluster.config_hash(node._replace(memory="512m")) != before


def test_image_tag_is_a_content_address(cluster):
    assert cluster.image == "nanoedge/testbed-worker:%s" % cluster.image_tag()
    assert len(cluster.image_tag()) == 12 and cluster.image_tag() == cluster.image_tag()


def test_inventory_matches_the_cluster(cluster):
    inventory = yaml.safe_load((ROOT / "inventory" / "testbed" / "hosts.yml").read_text())
    groups = inventory["all"]["children"]["testbed"]["children"]
    for role, group in (("manager", "managers"), ("worker", "workers")):
        hosts = groups[group]["hosts"]
        expected = {n.host: {"ansible_host": n.container, "nanoedge_address": n.address}
                    for n in cluster.nodes if n.role == role}
        assert hosts == expected
    group_vars = yaml.safe_load((ROOT / "inventory" / "testbed" / "group_vars" / "all.yml").read_text())
    assert group_vars["nanoedge_registry_pull"] == cluster.gateway_registry
    assert group_vars["nanoedge_registry_push"] == cluster.local_registry
