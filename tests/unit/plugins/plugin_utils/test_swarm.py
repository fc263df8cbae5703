# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import copy
import json
import pathlib
import re
import typing as t

import pytest

from ansible_collections.nanoedge.core.plugins.plugin_utils._allocate import allocate
from ansible_collections.nanoedge.core.plugins.plugin_utils._deployment import deployments
from ansible_collections.nanoedge.core.plugins.plugin_utils._swarm import (
    SwarmError,
    constraint,
    node_labels,
    placements,
    service_spec,
    stale_labels,
)
from ansible_collections.nanoedge.core.tests.unit import healthcare

ROOT = pathlib.Path(__file__).resolve().parents[4]
DIGEST = "sha256:" + "cd" * 32
ADDRESSES = {"w%d" % i: "172.30.0.2%d" % i for i in range(1, 6)}


def workers() -> t.Dict[str, t.Dict[str, t.Any]]:
    return {profile["node"]: profile for profile in healthcare.workers()}


def described(node: str, **options: t.Any) -> t.List[t.Dict[str, t.Any]]:
    """What the deploy role hands the swarm role for ``node``: the paper's plan, the example services' service.json."""
    services = healthcare.services()
    for service in services:
        service["digest"] = DIGEST
        service["image"] = "127.0.0.1:5000/nanoedge/%s:latest" % service["name"]
    specs = {path.parent.name: json.loads(path.read_text())
             for path in sorted((ROOT / "nanoservices").glob("*/service.json"))}
    plan = allocate(services, healthcare.workers())
    return deployments(plan, services, node, specs=specs, addresses=ADDRESSES, backend="swarm",
                       pull_registry="172.30.0.1:5000", **options)


def named(descriptions: t.List[t.Dict[str, t.Any]], name: str) -> t.Dict[str, t.Any]:
    (found,) = [d for d in descriptions if d["name"] == name]
    return found


def test_node_labels_of_the_paper_workers() -> None:
    labels = {name: node_labels(profile, name) for name, profile in workers().items()}
    assert labels["w4"] == {"nanoedge.arch": "arm/v7", "nanoedge.cap.pom": "true", "nanoedge.net.bluetooth": "true",
                            "nanoedge.net.wifi": "true", "nanoedge.node": "w4", "nanoedge.power": "ac"}
    assert labels["w2"]["nanoedge.node"] == "w2"
    assert not [key for key in labels["w2"] if key.startswith("nanoedge.cap.")]
    assert {name: value["nanoedge.power"] for name, value in labels.items()} == {
        "w1": "ac", "w2": "dc", "w3": "ac", "w4": "ac", "w5": "dc"}
    assert labels["w5"]["nanoedge.cap.dd"] == "true" and labels["w5"]["nanoedge.arch"] == "arm64"


def test_node_name_defaults_to_the_profile() -> None:
    assert node_labels({"node": "n1"}) == {"nanoedge.node": "n1"}


@pytest.mark.parametrize("current, expected", [
    (None, []),
    ({}, []),
    # Labels others set are not ours, whatever they say.
    ({"zone": "ward3", "nanoedgex.cap.pom": "true"}, []),
    ({"nanoedge.cap.pom": "true", "nanoedge.node": "w4"}, []),
    ({"nanoedge.cap.bot": "true", "nanoedge.net.cellular": "true", "nanoedge.power": "dc", "zone": "ward3"},
     ["nanoedge.cap.bot", "nanoedge.net.cellular"]),
])
def test_stale_labels(current: t.Any, expected: t.List[str]) -> None:
    wanted = node_labels({"node": "w4", "capabilities": ["pom"], "power": {"source": "dc"}})
    assert stale_labels(current, wanted) == expected


@pytest.mark.parametrize("profile, node, message", [
    ("w4", None, "the profile must be a dict (a node profile), got str"),
    ({}, None, "node None: the node name must match ^[a-z0-9][a-z0-9._-]{0,62}$"),
    ({"node": "w4"}, "W4!", "node 'W4!': the node name must match ^[a-z0-9][a-z0-9._-]{0,62}$"),
    ({"node": "w4\n"}, None, "node 'w4\\n': the node name must match ^[a-z0-9][a-z0-9._-]{0,62}$"),
    ({"node": "w4", "capabilities": ["pom\n"]}, None, "node 'w4': capabilities[0]: 'pom\\n' is not a valid name"),
    ({"node": "w4", "arch": "armv7l\n"}, None, "node 'w4': arch 'armv7l\\n' is not a platform"),
    ({"node": "w4", "capabilities": "pom"}, None, "node 'w4': capabilities: must be a list, got str"),
    ({"node": "w4", "capabilities": ["P O M"]}, None,
     "node 'w4': capabilities[0]: 'P O M' is not a valid name"),
    ({"node": "w4", "power": {"source": "solar"}}, None, "node 'w4': power.source: must be one of ac, dc, got 'solar'"),
    ({"node": "w4", "network": ["carrier-pigeon"]}, None,
     "node 'w4': network[0]: must be one of bluetooth, cellular, ethernet, lora, thread, wban, wifi, zigbee, got 'carrier-pigeon'"),
    ({"node": "w4", "network": "wifi"}, None, "node 'w4': network: must be a list, got str"),
    ({"node": "w4", "arch": "arm v7"}, None, "node 'w4': arch 'arm v7' is not a platform"),
])
def test_node_labels_errors(profile: t.Any, node: t.Any, message: str) -> None:
    with pytest.raises(SwarmError) as info:
        node_labels(profile, node)
    assert str(info.value) == message


def test_stale_labels_refuses_a_non_dict() -> None:
    with pytest.raises(SwarmError, match=r"^the node's current labels must be a dict, got list$"):
        stale_labels([], {})


def test_service_spec_of_spo2_on_w4() -> None:
    spo2 = named(described("w4", path_types={"/dev/ttyUSB0": "file"}), "spo2")
    spec = service_spec(spo2)
    assert re.fullmatch(r"[0-9a-f]{16}", spec["labels"].pop("io.nanoedge.spec"))
    assert spec == {
        "name": "nanoedge-svc-spo2",
        "image": "172.30.0.1:5000/nanoedge/spo2@" + DIGEST,
        "resolve_image": False,
        "mode": "replicated",
        "replicas": 1,
        "labels": dict(spo2["labels"], **{"io.nanoedge.network": "host"}),
        "container_labels": spo2["labels"],
        "env": {"NANOEDGE_POM_DEVICE": "/dev/ttyUSB0", "NANOEDGE_PORT": "5701",
                "NANOEDGE_STATE_DIR": "/var/lib/nanoedge/spo2"},
        "mounts": [{"type": "bind", "source": "/dev/ttyUSB0", "target": "/dev/ttyUSB0", "readonly": True},
                   {"type": "bind", "source": "/var/lib/nanoedge/spo2", "target": "/var/lib/nanoedge/spo2",
                    "readonly": False}],
        "placement": {"constraints": ["node.labels.nanoedge.node == w4"]},
        "restart_config": {"condition": "any", "delay": "5s"},
        "update_config": {"order": "stop-first"},
        "stop_grace_period": "10s",
        "limits": {"cpus": 1.0, "memory": "64M"},
        "reservations": {"cpus": 1.0, "memory": "64M"},
        "networks": ["host"],
        "publish": [],
    }
    assert spo2["labels"]["io.nanoedge.service"] == "spo2" and spo2["labels"]["io.nanoedge.node"] == "w4"


@pytest.mark.parametrize("policy, condition", [
    ("always", "any"), ("unless-stopped", "any"), ("on-failure", "on-failure"), ("no", "none"),
])
def test_restart_policies(policy: str, condition: str) -> None:
    bot = named(described("w1"), "bot")
    assert service_spec(bot, restart_policy=policy, restart_delay=2.5)["restart_config"] == {
        "condition": condition, "delay": "2.5s"}


def test_a_bridge_network_publishes_the_port_on_the_node() -> None:
    bot = named(described("w1"), "bot")
    spec = service_spec(bot, network_mode="nanoedge", stop_grace_period=0)
    assert spec["networks"] == ["nanoedge"]
    assert spec["labels"]["io.nanoedge.network"] == "nanoedge"
    assert spec["publish"] == [{"published_port": 5704, "target_port": 5704, "protocol": "udp", "mode": "host"}]
    assert spec["stop_grace_period"] == "0s"


def test_no_requirements_no_limits() -> None:
    bot = named(described("w1"), "bot")
    spec = service_spec(dict(bot, cpus=None, memory=None))
    assert spec["limits"] == {} and spec["reservations"] == {}


def test_a_device_node_keeps_the_service_off_swarm() -> None:
    result = described("w4", path_types={"/dev/ttyUSB0": "char"})
    assert {d["backend"] for d in result} == {"container"}
    with pytest.raises(SwarmError) as info:
        service_spec(result[0])
    assert str(info.value) == (
        "service 'spo2': Swarm services cannot be given devices (/dev/ttyUSB0:/dev/ttyUSB0:r); the deployments "
        "filter runs a service that needs a device node on its node's engine instead")


@pytest.mark.parametrize("change, message", [
    ("bot", "a deployment description (nanoedge.core.deployments) must be a dict, got str"),
    ({"name": ""}, "the deployment description has no service name"),
    ({"name": "bot"}, "service 'bot': the deployment description has no 'node' (use nanoedge.core.deployments)"),
])
def test_service_spec_needs_a_description(change: t.Any, message: str) -> None:
    with pytest.raises(SwarmError) as info:
        service_spec(change)
    assert str(info.value) == message


@pytest.mark.parametrize("options, message", [
    ({"restart_policy": "sometimes"},
     "service 'bot': restart_policy must be one of always, no, on-failure, unless-stopped, got 'sometimes'"),
    ({"network_mode": ""}, "service 'bot': network_mode must be a network name, got ''"),
    ({"restart_delay": -1}, "restart_delay must be a number of seconds >= 0, got -1"),
    ({"stop_grace_period": "10s"}, "stop_grace_period must be a number of seconds >= 0, got '10s'"),
])
def test_service_spec_option_errors(options: t.Dict[str, t.Any], message: str) -> None:
    bot = named(described("w1"), "bot")
    with pytest.raises(SwarmError) as info:
        service_spec(bot, **options)
    assert str(info.value) == message


def test_constraint() -> None:
    assert constraint("w4") == "node.labels.nanoedge.node == w4"
    with pytest.raises(SwarmError, match=r"^node 'W 4' is not a valid node name$"):
        constraint("W 4")
    with pytest.raises(SwarmError, match=r"^node 'w4\\n' is not a valid node name$"):
        constraint("w4\n")


def _service(name: str, constraints: t.List[str], label: t.Optional[str] = None) -> t.Dict[str, t.Any]:
    labels = {"io.nanoedge.service": label or name} if label != "" else {}
    spec = {"Name": "nanoedge-svc-" + name, "Labels": labels, "TaskTemplate": {"Placement": {"Constraints": constraints}}}
    return {"ID": "id-" + name, "Spec": spec}


def test_placements_read_back_the_constraints() -> None:
    services = [
        _service("spo2", ["node.labels.nanoedge.node == w4"]),
        _service("alert", ["node.labels.nanoedge.node==w3", "node.platform.os == linux"]),
        # not placed by nanoedge: no label, pinned twice, pinned by hostname, not pinned
        _service("other", ["node.labels.nanoedge.node == w1"], label=""),
        _service("twice", ["node.labels.nanoedge.node == w1", "node.labels.nanoedge.node == w2"]),
        _service("host", ["node.hostname == w1"]),
        {"ID": "id-free", "Spec": {"Name": "free", "Labels": {"io.nanoedge.service": "free"}}},
        "not a service",
    ]
    assert placements(services) == {"alert": "w3", "spo2": "w4"}
    # A specification alone (Spec without the envelope) reads the same.
    assert placements([services[0]["Spec"]]) == {"spo2": "w4"}
    assert placements(None) == {}
    relabelled = [_service("x", ["node.labels.nanoedge.node == w5"], label="spo2")]
    assert placements(relabelled, label="io.nanoedge.service") == {"spo2": "w5"}


def test_placements_round_trip_through_service_spec() -> None:
    """What the swarm role writes is what the next plan reads as the current placement."""
    written = []
    for node in ADDRESSES:
        for description in described(node, path_types={"/dev/ttyUSB0": "file"}):
            spec = service_spec(description)
            written.append({"Spec": {"Name": spec["name"], "Labels": spec["labels"],
                                     "TaskTemplate": {"Placement": {"Constraints": spec["placement"]["constraints"]}}}})
    assert placements(written) == {"alert": "w1", "bot": "w1", "display": "w5", "hr": "w4", "hrv": "w4", "oc": "w3",
                                   "spo2": "w4"}


def test_placements_refuses_a_non_list() -> None:
    with pytest.raises(SwarmError, match=r"^the services must be a list \(docker_swarm_info with verbose_output\), got dict$"):
        placements({})


def test_the_spec_label_changes_with_the_spec_and_only_with_it() -> None:
    """A service whose spec label differs is updated, and the update names the network again."""
    bot = named(described("w1"), "bot")
    label = service_spec(bot)["labels"]["io.nanoedge.spec"]
    assert service_spec(copy.deepcopy(bot))["labels"]["io.nanoedge.spec"] == label
    moved = dict(bot, node="w2")
    rewired = dict(bot, env=dict(bot["env"], NANOEDGE_EXTRA="1"))
    assert len({label, service_spec(moved)["labels"]["io.nanoedge.spec"],
                service_spec(rewired)["labels"]["io.nanoedge.spec"],
                service_spec(bot, network_mode="nanoedge")["labels"]["io.nanoedge.spec"],
                service_spec(bot, restart_delay=2)["labels"]["io.nanoedge.spec"]}) == 5
    assert "io.nanoedge.spec" not in service_spec(bot)["container_labels"]
