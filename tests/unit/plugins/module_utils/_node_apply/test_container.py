# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ContainerCreate body: what community.docker.docker_container sends for the deploy role's parameters."""

from __future__ import annotations

import typing as t

import pytest

from ansible_collections.nanoedge.core.plugins.module_utils._node_apply.container import create_body
from ansible_collections.nanoedge.core.plugins.module_utils._node_apply.request import Docker
from ansible_collections.nanoedge.core.tests.unit.plugins.module_utils._node_apply.data import (
    SENSOR,
    STATE,
    description,
    finished,
)

SPO2 = finished(description("spo2", [SENSOR, STATE], cpus=0.5, memory="64M", env={"NANOEDGE_PORT": "5701"},
                            platform="linux/arm/v7"))
DETACHED = {"AttachStdin": False, "AttachStdout": False, "AttachStderr": False, "OpenStdin": False,
            "StdinOnce": False}


def test_the_body_on_the_host_network() -> None:
    assert create_body(SPO2, Docker("/s", "missing", "unless-stopped", "host", "nanoedge-svc-")) == dict(
        DETACHED,
        Image=SPO2["image"],
        Env=["NANOEDGE_POM_DEVICE=/dev/ttyUSB0", "NANOEDGE_PORT=5701", "NANOEDGE_STATE_DIR=/var/lib/nanoedge/spo2"],
        Labels=SPO2["labels"],
        HostConfig={
            "RestartPolicy": {"Name": "unless-stopped", "MaximumRetryCount": 0},
            "NetworkMode": "host",
            "Mounts": [{"Target": "/var/lib/nanoedge/spo2", "Source": "/var/lib/nanoedge/spo2", "Type": "bind",
                        "ReadOnly": False}],
            "Devices": [{"PathOnHost": "/dev/ttyUSB0", "PathInContainer": "/dev/ttyUSB0", "CgroupPermissions": "r"}],
            "NanoCpus": 500000000,
            "Memory": 67108864,
        })


def test_another_network_publishes_the_port_on_every_address() -> None:
    body = create_body(SPO2, Docker("/s", "missing", "always", "bridge", "nanoedge-svc-"))
    assert body["ExposedPorts"] == {"5701/udp": {}}
    assert body["HostConfig"]["PortBindings"] == {"5701/udp": [{"HostIp": "0.0.0.0", "HostPort": "5701"}]}
    assert body["HostConfig"]["RestartPolicy"] == {"Name": "always", "MaximumRetryCount": 0}
    assert body["HostConfig"]["NetworkMode"] == "bridge"


@pytest.mark.parametrize("fields, host", [
    ({"cpus": None, "memory": None}, {}),
    ({"cpus": 2, "memory": "1G"}, {"NanoCpus": 2000000000, "Memory": 1 << 30}),
    ({"cpus": 0.333, "memory": None}, {"NanoCpus": 333000000}),
])
def test_limits_only_when_given(fields: t.Dict[str, t.Any], host: t.Dict[str, int]) -> None:
    body = create_body(dict(SPO2, **fields), Docker("/s", "missing", "no", "host", "nanoedge-svc-"))
    assert {key: body["HostConfig"][key] for key in ("NanoCpus", "Memory") if key in body["HostConfig"]} == host


@pytest.mark.parametrize("device, expected", [
    ("/dev/sda", {"PathOnHost": "/dev/sda", "PathInContainer": "/dev/sda", "CgroupPermissions": "rwm"}),
    ("/dev/sda:/dev/disk", {"PathOnHost": "/dev/sda", "PathInContainer": "/dev/disk", "CgroupPermissions": "rwm"}),
    ("/dev/sda:/dev/disk:r", {"PathOnHost": "/dev/sda", "PathInContainer": "/dev/disk", "CgroupPermissions": "r"}),
])
def test_devices(device: str, expected: t.Dict[str, str]) -> None:
    body = create_body(dict(SPO2, devices=[device]), Docker("/s", "missing", "no", "host", "nanoedge-svc-"))
    assert body["HostConfig"]["Devices"] == [expected]
