# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The paper's healthcare testbed as test data (the demo cluster of testbed/README.md).

Five Raspberry Pi workers, Pi 3 and Pi 4, AC and battery (DC) power, all
with Wi-Fi and Bluetooth: the body-temperature sensor (bot) on w1, nothing
attached to w2, the oxygen controller (oc) on w3, the BerryMed BM1000B pulse
oximeter (pom) on w4, the data display (dd) on w5. Every profile is a full,
valid profile (docs/contracts.md, "The profile"), so any test can reuse it. The example nanoservices
carry requirements (docs/contracts.md, "Requirements"). Tests copy what they change: ``workers()`` and
``services()`` return fresh objects.
"""

from __future__ import annotations

import copy
import typing as t


def _profile(node: str, model: str, arch: str, cores: int, bogomips: float, memory: t.Tuple[int, int],
             storage: t.Tuple[int, int], power: t.Dict[str, t.Any], devices: t.List[t.Dict[str, str]]) -> t.Dict[str, t.Any]:
    return {
        "schema": 1,
        "node": node,
        "collected_at": "2026-11-26T02:30:00Z",
        "arch": arch,
        "model": model,
        "cpu": {"cores": cores, "bogomips": bogomips, "load1": 0.12},
        "memory_mb": {"total": memory[0], "available": memory[1]},
        "storage_mb": {"total": storage[0], "free": storage[1]},
        "power": power,
        "network": ["bluetooth", "wifi"],
        "capabilities": sorted({device["capability"] for device in devices}),
        "devices": devices,
        "labels": {},
    }


_AC = {"source": "ac", "battery_percent": None, "battery_health": None, "charging": None}

_WORKERS = [
    _profile("w1", "Raspberry Pi 3 Model B Plus Rev 1.3", "armv7l", 4, 89.6, (926, 610), (29820, 24410), _AC,
             [{"capability": "bot", "kind": "sensor", "name": "DS18B20 body temperature probe", "bus": "w1",
               "id": "28-0316a2795aff"}]),
    _profile("w2", "Raspberry Pi 3 Model B Rev 1.2", "armv7l", 4, 76.8, (926, 480), (14800, 9120),
             {"source": "dc", "battery_percent": 64, "battery_health": 0.93, "charging": False}, []),
    _profile("w3", "Raspberry Pi 4 Model B Rev 1.4", "aarch64", 4, 108.0, (1848, 1420), (29820, 25890), _AC,
             [{"capability": "oc", "kind": "actuator", "name": "oxygen flow controller", "bus": "usb",
               "id": "2341:0043"}]),
    _profile("w4", "Raspberry Pi 3 Model B Plus Rev 1.3", "armv7l", 4, 89.6, (926, 640), (29820, 21033), _AC,
             [{"capability": "pom", "kind": "sensor", "name": "BerryMed BM1000B", "bus": "usb", "id": "0403:6001"}]),
    _profile("w5", "Raspberry Pi 4 Model B Rev 1.4", "aarch64", 4, 108.0, (3794, 3120), (29820, 26004),
             {"source": "dc", "battery_percent": 88, "battery_health": 0.97, "charging": False},
             [{"capability": "dd", "kind": "actuator", "name": "Pimoroni HyperPixel 4.0", "bus": "hat",
               "id": "HyperPixel 4"}]),
]

# Table 1 of the paper plus the two helpers of the demo (hr, alert); in deployment order.
_SERVICES = [
    {"name": "spo2", "image": "127.0.0.1:5000/nanoedge/spo2:1.0",
     "requires": {"capabilities": ["pom"], "cpu": 1, "memory_mb": 64, "storage_mb": 20, "power": "", "network": ""}},
    {"name": "hrv", "image": "127.0.0.1:5000/nanoedge/hrv:1.0",
     "requires": {"capabilities": ["pom"], "cpu": 1, "memory_mb": 64, "storage_mb": 20, "power": "", "network": ""}},
    {"name": "hr", "image": "127.0.0.1:5000/nanoedge/hr:1.0",
     "requires": {"capabilities": ["pom"], "cpu": 1, "memory_mb": 32, "storage_mb": 10, "power": "", "network": ""}},
    {"name": "bot", "image": "127.0.0.1:5000/nanoedge/bot:1.0",
     "requires": {"capabilities": ["bot"], "cpu": 1, "memory_mb": 32, "storage_mb": 10, "power": "", "network": ""}},
    {"name": "alert", "image": "127.0.0.1:5000/nanoedge/alert:1.0",
     "requires": {"capabilities": [], "cpu": 1, "memory_mb": 48, "storage_mb": 10, "power": "", "network": "wifi"}},
    {"name": "oc", "image": "127.0.0.1:5000/nanoedge/oc:1.0",
     "requires": {"capabilities": ["oc"], "cpu": 1, "memory_mb": 64, "storage_mb": 20, "power": "ac", "network": ""}},
    {"name": "display", "image": "127.0.0.1:5000/nanoedge/display:1.0",
     "requires": {"capabilities": ["dd"], "cpu": 1, "memory_mb": 128, "storage_mb": 50, "power": "",
                  "network": "wifi", "min_battery_percent": 20}},
]

# What Algorithm 1 (first_fit) gives on this cluster: the paper's Table 13 plus hr and alert.
FIRST_FIT_PLACEMENTS = {"spo2": "w4", "hrv": "w4", "hr": "w4", "bot": "w1", "alert": "w1", "oc": "w3", "display": "w5"}


def workers() -> t.List[t.Dict[str, t.Any]]:
    """The five worker profiles w1..w5, in order."""
    return copy.deepcopy(_WORKERS)


def services() -> t.List[t.Dict[str, t.Any]]:
    """The example nanoservices as the service_profiles lookup returns them (name, image, requires)."""
    return copy.deepcopy(_SERVICES)
