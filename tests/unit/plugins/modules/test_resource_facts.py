# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import collections
import json
import typing as t
from pathlib import Path

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.nanoedge.core.plugins.module_utils import _discovery
from ansible_collections.nanoedge.core.plugins.modules import resource_facts

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "hw"
NOW = "2026-11-26T02:30:00Z"
StatVfs = collections.namedtuple("StatVfs", "f_blocks f_frsize f_bavail")

W4 = {
    "schema": 1,
    "node": "w4",
    "collected_at": NOW,
    "arch": "arm/v7",
    "machine": "armv7l",
    "model": "Raspberry Pi 3 Model B Plus Rev 1.3",
    "cpu": {"cores": 4, "bogomips": 89.6, "load1": 0.31},
    "memory_mb": {"total": 926, "available": 640},
    "storage_mb": {"total": 29824, "free": 21033},
    "power": {"source": "ac", "battery_percent": None, "battery_health": None, "charging": None},
    "network": ["bluetooth", "ethernet", "wifi"],
    "capabilities": ["hr", "pom"],
    "devices": [
        {"capability": "hr", "kind": "sensor", "name": "Maxim MAX30102 heart-rate sensor", "bus": "i2c",
         "id": "max30102", "path": "1-0057"},
        {"capability": "pom", "kind": "sensor", "name": "Maxim MAX30102 pulse oximeter", "bus": "i2c",
         "id": "max30102", "path": "1-0057"},
        {"capability": "pom", "kind": "sensor", "name": "BerryMed BM1000B", "bus": "usb", "id": "0403:6001",
         "serial": "A50285BI", "path": "1-1.3"},
    ],
    "labels": {"site": "ward-3"},
}


@pytest.fixture(autouse=True)
def fixed_clock_and_disk(monkeypatch):
    statvfs_paths: t.List[str] = []

    def fake_statvfs(path: str) -> StatVfs:
        statvfs_paths.append(path)
        return StatVfs(7634944, 4096, 5384448)

    monkeypatch.setattr(_discovery.os, "statvfs", fake_statvfs)
    monkeypatch.setattr(_discovery, "utc_now", lambda: NOW)
    return statvfs_paths


def run_module(args: t.Dict[str, t.Any], capsys) -> t.Tuple[int, t.Dict[str, t.Any]]:
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exc:
            resource_facts.main()
    return exc.value.code, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("check_mode", [False, True])
def test_returns_the_profile_as_a_fact(capsys, check_mode, fixed_clock_and_disk):
    code, result = run_module({
        "root": str(FIXTURES / "pi-3b-plus"),
        "node": "w4",
        "storage_path": "/srv",
        "device_catalog": [{"capability": "pom", "kind": "sensor", "name": "BerryMed BM1000B", "usb": "0403:6001"}],
        "labels": {"site": "ward-3"},
        "_ansible_check_mode": check_mode,
    }, capsys)
    assert code == 0
    assert result["changed"] is False
    assert result["ansible_facts"] == {"nanoedge_profile": W4, "nanoedge_profile_warnings": []}
    assert fixed_clock_and_disk == [str(FIXTURES / "pi-3b-plus" / "srv")]


def test_declared_capabilities_join_the_found_ones(capsys):
    code, result = run_module({"root": str(FIXTURES / "pi-zero-w"), "capabilities": ["oc"]}, capsys)
    assert code == 0
    profile = result["ansible_facts"]["nanoedge_profile"]
    assert profile["node"] == "w1"  # the host's own name when no node is given
    assert profile["capabilities"] == ["bot", "oc"]


def test_warnings_are_returned_not_raised(capsys):
    code, result = run_module({"root": str(FIXTURES / "missing"), "node": "empty"}, capsys)
    assert code == 0
    assert "failed" not in result
    assert result["ansible_facts"]["nanoedge_profile_warnings"][:2] == [
        "/proc/cpuinfo: missing", "/sys/devices/system/cpu/online: missing"]
    assert result["ansible_facts"]["nanoedge_profile"]["cpu"] == {"cores": 1, "bogomips": None, "load1": None}


@pytest.mark.parametrize("args, message", [
    ({"device_catalog": [{"capability": "pom", "kind": "sensor", "name": "BerryMed BM1000B", "usb": "0403"}]},
     "nanoedge.core.resource_facts: device_catalog[0] ('BerryMed BM1000B'): usb '0403' must be VVVV:PPPP "
     "(4 hex digits each)"),
    ({"device_catalog": [{"capability": "oc", "kind": "valve", "name": "Valve", "hat": "Automation HAT"}]},
     "nanoedge.core.resource_facts: device_catalog[0] ('Valve'): kind 'valve' must be one of sensor, actuator"),
    ({"node": "Ward 3"},
     "nanoedge.core.resource_facts: node 'Ward 3' must match ^[a-z0-9][a-z0-9._-]{0,62}$ "
     "(set option node, e.g. to the inventory hostname)"),
    ({"capabilities": ["POM"]},
     "nanoedge.core.resource_facts: capabilities[0] 'POM' must match ^[a-z0-9][a-z0-9_.-]{0,62}$"),
])
def test_bad_input_fails_naming_the_culprit(capsys, args, message):
    code, result = run_module(dict(args, root=str(FIXTURES / "pi-3b")), capsys)
    assert code == 1
    assert result["failed"] is True
    assert result["msg"] == message


def test_invalid_profile_is_never_returned(capsys, monkeypatch):
    real_discover = resource_facts.discover

    def broken(**kwargs: t.Any):
        profile, warnings = real_discover(**kwargs)
        profile["memory_mb"]["available"] = profile["memory_mb"]["total"] + 1
        return profile, warnings

    monkeypatch.setattr(resource_facts, "discover", broken)
    code, result = run_module({"root": str(FIXTURES / "pi-3b")}, capsys)
    assert code == 1
    assert result["msg"] == ("nanoedge.core.resource_facts: built an invalid profile: "
                             "memory_mb.available: exceeds memory_mb.total")
