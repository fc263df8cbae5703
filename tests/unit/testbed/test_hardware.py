# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The demo cluster's fake hardware (testbed/hardware/<node>/) is what
resource discovery finds the paper's scenario in: run the real discovery on
each tree, with only the device catalog the testbed inventory declares."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ansible_collections.nanoedge.core.plugins.module_utils._device_catalog import build_catalog
from ansible_collections.nanoedge.core.plugins.module_utils._discovery import discover

ROOT = Path(__file__).resolve().parents[3]
SITE_CATALOG = yaml.safe_load((ROOT / "inventory" / "testbed" / "group_vars" / "workers.yml").read_text())[
    "nanoedge_device_catalog"]


class _Statvfs:
    f_frsize = 4096
    f_blocks = 7634944  # a 32 GB SD card
    f_bavail = 5384480


def _profile(host):
    profile, warnings = discover(catalog=build_catalog(SITE_CATALOG), root=str(ROOT / "testbed" / "hardware" / host),
                                 node=host, statvfs=lambda path: _Statvfs(), clock=lambda: "2026-11-26T00:00:00Z")
    # only what a container gets from the kernel is missing from the trees, and the userland: on the
    # node, /bin/sh and the interpreter are the container's (the host's platform, which images are built for)
    assert set(warnings) <= {"/sys/devices/system/cpu/online: missing", "/proc/loadavg: missing",
                             "/proc/meminfo: missing",
                             "arch: /bin/sh is missing or has no ELF header; assumed from the kernel's machine"}, warnings
    return profile


@pytest.mark.parametrize("host, capabilities, devices", [
    ("w1", ["bot", "ups"], [("bot", "w1", "28-3c01d607d9a1"), ("ups", "i2c", "max17043")]),
    ("w2", [], []),
    ("w3", ["oc", "ups"], [("oc", "hat", "Automation HAT"), ("ups", "i2c", "max17043")]),
    ("w4", ["pom"], [("pom", "usb", "0403:6001")]),
    ("w5", ["dd", "ups"], [("dd", "i2c", "7inch-touchscreen-panel-regulator"), ("ups", "i2c", "max17043")]),
])
def test_discovery_finds_the_scenario(host, capabilities, devices):
    profile = _profile(host)
    assert profile["capabilities"] == capabilities
    assert [(d["capability"], d["bus"], d["id"]) for d in profile["devices"]] == devices


@pytest.mark.parametrize("host, power", [
    ("w1", {"source": "dc", "battery_percent": 81, "battery_health": 0.86, "charging": False}),
    ("w2", {"source": "ac", "battery_percent": None, "battery_health": None, "charging": None}),
    ("w3", {"source": "ac", "battery_percent": 95, "battery_health": 0.98, "charging": True}),
    ("w4", {"source": "ac", "battery_percent": None, "battery_health": None, "charging": None}),
    ("w5", {"source": "dc", "battery_percent": 64, "battery_health": 0.89, "charging": False}),
])
def test_power(host, power):
    assert _profile(host)["power"] == power


@pytest.mark.parametrize("host, model, bogomips", [
    ("w1", "Raspberry Pi 4 Model B Rev 1.4", 108.0),
    ("w2", "Raspberry Pi 3 Model B Plus Rev 1.3", 38.4),
    ("w3", "Raspberry Pi 3 Model B Plus Rev 1.3", 38.4),
    ("w4", "Raspberry Pi 4 Model B Rev 1.4", 108.0),
    ("w5", "Raspberry Pi 3 Model B Plus Rev 1.3", 38.4),
])
def test_board(host, model, bogomips):
    profile = _profile(host)
    assert (profile["model"], profile["arch"], profile["machine"], profile["cpu"]["bogomips"]) == (
        model, "arm/v7", "armv7l", bogomips)


def test_the_oximeter_needs_the_site_catalog():
    """The FTDI id is generic: without the inventory's entry w4 has no pom."""
    profile, _warnings = discover(catalog=build_catalog(), root=str(ROOT / "testbed" / "hardware" / "w4"),
                                  node="w4", statvfs=lambda path: _Statvfs())
    assert profile["capabilities"] == []
