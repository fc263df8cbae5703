# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import pytest

from ansible_collections.nanoedge.core.plugins.module_utils._requirements import (
    RequirementError,
    normalize_requirements,
)

NONE = {"capabilities": [], "cpu": 0, "memory_mb": 0, "storage_mb": 0, "power": "", "network": "", "min_battery_percent": 0}


@pytest.mark.parametrize("raw, expected", [
    (None, NONE),
    ({}, NONE),
    ({"capabilities": ["pom"], "cpu": 1, "memory_mb": 64, "storage_mb": 20, "power": "ac", "network": "wifi"},
     dict(NONE, capabilities=["pom"], cpu=1, memory_mb=64, storage_mb=20, power="ac", network="wifi")),
    # the paper's convention: 0 (or null, "") means "no requirement"
    ({"capabilities": 0, "cpu": 0, "memory_mb": None, "power": 0, "network": ""}, NONE),
    ({"capabilities": "pom"}, dict(NONE, capabilities=["pom"])),
    ({"capabilities": ["pom", "bot", "pom"]}, dict(NONE, capabilities=["bot", "pom"])),
    ({"cpu": 0.5, "memory_mb": 64.0}, dict(NONE, cpu=0.5, memory_mb=64)),
    ({"power": "DC", "network": " WiFi "}, dict(NONE, power="dc", network="wifi")),
    ({"min_battery_percent": 30}, dict(NONE, min_battery_percent=30)),
])
def test_normalize(raw, expected):
    assert normalize_requirements(raw) == expected


@pytest.mark.parametrize("raw, message", [
    ([], "requirements must be a JSON object, got list"),
    ({"gpu": 1}, "unknown requirement key(s) 'gpu' (known: capabilities, cpu, memory_mb, storage_mb, power, network, min_battery_percent)"),
    ({"memory_mb": -5}, "memory_mb=-5: must be >= 0"),
    ({"cpu": "2"}, "cpu must be a number, got '2'"),
    ({"cpu": True}, "cpu must be a number, got True"),
    ({"cpu": float("nan")}, "cpu must be a number, got nan"),
    ({"power": "solar"}, "power='solar': must be one of ac, dc"),
    ({"network": 5}, "network must be a string, got 5"),
    ({"capabilities": ["Pulse Ox"]}, "capabilities: 'Pulse Ox' is not a valid capability name"),
    ({"capabilities": ["pom\n"]}, "capabilities: 'pom\\n' is not a valid capability name"),
    ({"capabilities": {"pom": 1}}, "capabilities must be a list of strings, got {'pom': 1}"),
    ({"min_battery_percent": 101}, "min_battery_percent=101: must be <= 100"),
])
def test_errors(raw, message):
    with pytest.raises(RequirementError) as excinfo:
        normalize_requirements(raw)
    assert str(excinfo.value) == message
