# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import copy
import typing as t

import pytest

from ansible_collections.nanoedge.core.plugins.module_utils._deploy_layout import (
    SPEC_FIELDS,
    io_layout,
    node_backend,
    on_node,
    path_type,
    spec_digest,
)
from ansible_collections.nanoedge.core.plugins.plugin_utils._deployment import deployments
from ansible_collections.nanoedge.core.tests.unit.plugins.plugin_utils.test_deployment import (
    ADDRESSES,
    PLAN,
    services,
)

SENSOR = {"host_path": "/dev/ttyUSB0", "container_path": "/dev/pom", "mode": "ro", "kind": "sensor",
          "env": "NANOEDGE_POM_DEVICE"}
VALVE = {"host_path": "/dev/sda", "container_path": "/dev/valve", "mode": "rw", "kind": "actuator", "env": None}
STATE = {"host_path": "/var/lib/nanoedge/spo2", "container_path": "/state", "mode": "rw", "kind": "state",
         "env": "NANOEDGE_STATE_DIR"}
DESCRIPTION = {
    "name": "spo2", "image": "10.0.0.1:5000/nanoedge/spo2@sha256:" + "ab" * 32, "platform": "linux/arm/v7",
    "env": {"NANOEDGE_PORT": "5701"}, "mounts": [], "devices": ["/dev/ttyUSB0:/dev/ttyUSB0:r"], "cpus": 0.5,
    "memory": "64M", "port": {"number": 5701, "protocol": "udp"},
    "labels": {"io.nanoedge.service": "spo2", "io.nanoedge.node": "w4"},
    "description": "pulse oximeter", "unit_name": "nanoedge-svc-spo2.service",
}
DIGEST = "sha256:79f123015b19f0e97545e9fe026c7fa59dbf4622f43912eae908835d7c130634"


@pytest.mark.parametrize("value, expected", [
    ({"exists": True, "ischr": True}, "char"),
    ({"exists": True, "isblk": True}, "block"),
    ({"exists": True, "isdir": True}, "dir"),
    ({"exists": True, "isreg": True}, "file"),
    ({"exists": True}, "file"),
    ({"exists": False}, "missing"),
    ("char", "char"),
    ("unknown", "unknown"),
    (None, "missing"),
    (["char"], "missing"),
])
def test_path_type(value: t.Any, expected: str) -> None:
    assert path_type(value) == expected


@pytest.mark.parametrize("entries, backend, types, expected", [
    ([SENSOR], "container", {"/dev/ttyUSB0": "char"},
     ([], ["/dev/ttyUSB0:/dev/pom:r"], [{"path": "/dev/ttyUSB0", "mode": "ro", "kind": "sensor", "type": "char"}],
      {"NANOEDGE_POM_DEVICE": "/dev/pom"})),
    ([SENSOR], "baremetal", {"/dev/ttyUSB0": {"exists": True, "ischr": True}},
     ([], ["/dev/ttyUSB0:/dev/pom:r"], [{"path": "/dev/ttyUSB0", "mode": "ro", "kind": "sensor", "type": "char"}],
      {"NANOEDGE_POM_DEVICE": "/dev/ttyUSB0"})),
    ([SENSOR], "container", {"/dev/ttyUSB0": {"exists": True, "isreg": True}},
     ([{"type": "bind", "source": "/dev/ttyUSB0", "target": "/dev/pom", "read_only": True}], [],
      [{"path": "/dev/ttyUSB0", "mode": "ro", "kind": "sensor", "type": "file"}], {"NANOEDGE_POM_DEVICE": "/dev/pom"})),
    ([VALVE], "container", {"/dev/sda": "block"},
     ([], ["/dev/sda:/dev/valve:rwm"], [{"path": "/dev/sda", "mode": "rw", "kind": "actuator", "type": "block"}], {})),
    ([STATE], "container", {},
     ([{"type": "bind", "source": "/var/lib/nanoedge/spo2", "target": "/state", "read_only": False}], [],
      [{"path": "/var/lib/nanoedge/spo2", "mode": "rw", "kind": "state", "type": "unknown"}],
      {"NANOEDGE_STATE_DIR": "/state"})),
    ([STATE], "container", {"/var/lib/nanoedge/spo2": {"exists": False}},
     ([{"type": "bind", "source": "/var/lib/nanoedge/spo2", "target": "/state", "read_only": False}], [],
      [{"path": "/var/lib/nanoedge/spo2", "mode": "rw", "kind": "state", "type": "missing"}],
      {"NANOEDGE_STATE_DIR": "/state"})),
    ([], "container", {}, ([], [], [], {})),
])
def test_io_layout(entries: t.List[t.Dict[str, t.Any]], backend: str, types: t.Dict[str, t.Any],
                   expected: t.Tuple[t.Any, ...]) -> None:
    assert io_layout(entries, backend, types) == expected


@pytest.mark.parametrize("backend, types, expected", [
    ("swarm", {"/dev/ttyUSB0": "char"},
     ("container", "runs on the node's engine: Swarm services cannot use the device(s) /dev/ttyUSB0")),
    ("swarm", {"/dev/ttyUSB0": "file"}, ("swarm", "")),
    ("container", {"/dev/ttyUSB0": "char"}, ("container", "")),
])
def test_node_backend(backend: str, types: t.Dict[str, t.Any], expected: t.Tuple[str, str]) -> None:
    assert node_backend([SENSOR, STATE], backend, types) == expected


def test_spec_digest_is_stable() -> None:
    assert spec_digest(DESCRIPTION) == DIGEST
    shuffled = dict(reversed(list(copy.deepcopy(DESCRIPTION).items())))
    shuffled["env"] = dict(reversed(list(shuffled["env"].items())))
    assert spec_digest(shuffled) == DIGEST


@pytest.mark.parametrize("field, value", [
    ("image", "10.0.0.1:5000/nanoedge/spo2@sha256:" + "cd" * 32),
    ("platform", "linux/arm64"),
    ("env", {"NANOEDGE_PORT": "5702"}),
    ("mounts", [{"type": "bind", "source": "/a", "target": "/a", "read_only": True}]),
    ("devices", ["/dev/ttyUSB0:/dev/ttyUSB0:rwm"]),
    ("cpus", 0.25),
    ("memory", "32M"),
    ("port", {"number": 5701, "protocol": "tcp"}),
    ("labels", {"io.nanoedge.service": "spo2", "io.nanoedge.node": "w2"}),
])
def test_spec_digest_changes_with_each_field(field: str, value: t.Any) -> None:
    assert spec_digest(dict(DESCRIPTION, **{field: value})) != DIGEST


@pytest.mark.parametrize("field, value", [
    ("labels", dict(DESCRIPTION["labels"], **{"io.nanoedge.spec": "sha256:" + "00" * 32})),
    ("description", "another text"),
    ("unit_name", "x.service"),
    ("paths", [{"path": "/dev/ttyUSB0"}]),
])
def test_spec_digest_ignores_its_own_label_and_other_fields(field: str, value: t.Any) -> None:
    assert spec_digest(dict(DESCRIPTION, **{field: value})) == DIGEST


def test_spec_fields() -> None:
    assert SPEC_FIELDS == ("image", "platform", "env", "mounts", "devices", "cpus", "memory", "port", "labels")


@pytest.mark.parametrize("node, backend, types", [
    ("w4", "container", {"/dev/ttyUSB0": {"exists": True, "ischr": True},
                         "/var/lib/nanoedge/spo2": {"exists": True, "isdir": True}}),
    ("w4", "container", {"/dev/ttyUSB0": {"exists": True, "isreg": True}, "/var/lib/nanoedge/spo2": "missing"}),
    ("w4", "container", {}),
    ("w4", "swarm", {"/dev/ttyUSB0": "char"}),
    ("w4", "swarm", {"/dev/ttyUSB0": "file"}),
    ("w4", "baremetal", {"/dev/ttyUSB0": "char"}),
    ("w1", "container", {"/var/lib/nanoedge/bot": "dir"}),
    ("w5", "container", {"/run/nanoedge/display": "missing"}),
])
def test_on_node_equals_describe_with_the_node_s_path_types(
        node: str, backend: str, types: t.Dict[str, t.Any]) -> None:
    common = {"addresses": ADDRESSES, "pull_registry": "172.30.0.1:5000", "backend": backend}
    without = deployments(PLAN, services(), node, **common)
    wanted = deployments(PLAN, services(), node, path_types=types, **common)
    assert [on_node(d, d["io"], types) for d in without] == wanted


def test_on_node_leaves_its_input_alone() -> None:
    (bot,) = deployments(PLAN, services(), "w1", addresses=ADDRESSES)
    before = copy.deepcopy(bot)
    on_node(bot, bot["io"], {"/var/lib/nanoedge/bot": "char"})
    assert bot == before
