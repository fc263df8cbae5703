# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fingerprints of the live profiles and their differences."""

from __future__ import annotations

import copy
import json
import typing as t

import pytest

from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.fingerprint import (
    describe_diff, diff_fingerprints, fingerprint_digest, fingerprint_of, valid_fingerprint_entry,
)

PROFILE = {
    "schema": 1, "node": "w4", "collected_at": "2026-11-26T02:30:00Z", "arch": "armv7l",
    "model": "Raspberry Pi 3 Model B Plus Rev 1.3", "cpu": {"cores": 4, "bogomips": 89.6, "load1": 0.31},
    "memory_mb": {"total": 926, "available": 640}, "storage_mb": {"total": 29820, "free": 21033},
    "power": {"source": "ac", "battery_percent": None, "battery_health": None, "charging": None},
    "network": ["wifi", "bluetooth", "ethernet"], "capabilities": ["pom"],
    "devices": [{"capability": "pom", "kind": "sensor", "name": "BerryMed BM1000B", "bus": "usb", "id": "0403:6001"}],
    "labels": {},
}


def test_fingerprint_leaves_out_what_moves_on_every_report():
    drifted = copy.deepcopy(PROFILE)
    drifted.update(collected_at="2026-11-26T09:00:00Z", cpu={"cores": 4, "bogomips": 89.6, "load1": 3.9},
                   memory_mb={"total": 926, "available": 12}, storage_mb={"total": 29820, "free": 1},
                   labels={"room": "ambulance"})
    assert fingerprint_of({"w4": PROFILE}) == fingerprint_of({"w4": drifted}) == ({"w4": {
        "capabilities": ["pom"], "power": "ac", "network": ["bluetooth", "ethernet", "wifi"], "arch": "arm/v7",
        "battery": None}}, [])


def test_fingerprint_of_a_profile_without_capabilities_or_power():
    assert fingerprint_of({"w9": {"node": "w9"}}) == (
        {"w9": {"capabilities": [], "power": None, "network": [], "arch": None, "battery": None}}, [])


def test_fingerprint_of_skips_malformed_profiles_and_refuses_non_objects():
    fingerprint, problems = fingerprint_of({"w4": PROFILE, "w5": "garbage", "w6": None})
    assert list(fingerprint) == ["w4"]
    assert problems == ["profile of w5 is str, not an object", "profile of w6 is NoneType, not an object"]
    with pytest.raises(ValueError, match="expected a JSON object node -> profile, got list"):
        fingerprint_of([PROFILE])


@pytest.mark.parametrize("change, problem", [
    ({"power": {"source": "solar"}}, "profile of w7: power.source: must be one of ac, dc, got 'solar'"),
    ({"capabilities": "pom"}, "profile of w7: capabilities: must be a list, got str"),
    ({"network": ["wifi", "carrier-pigeon"]},
     "profile of w7: network[1]: must be one of bluetooth, cellular, ethernet, lora, thread, wban, wifi, zigbee,"
     " got 'carrier-pigeon'"),
])
def test_a_profile_with_a_malformed_facet_is_skipped_with_what_is_wrong(change, problem):
    broken = dict(copy.deepcopy(PROFILE), node="w7", **change)
    fingerprint, problems = fingerprint_of({"w4": PROFILE, "w7": broken})
    assert (list(fingerprint), problems) == (["w4"], [problem])


def fp(capabilities: t.Sequence[str] = (), power: str = "ac", network: t.Sequence[str] = ("wifi",),
       arch: str = "armv7l", battery: t.Optional[int] = None) -> t.Dict[str, t.Any]:
    return {"capabilities": sorted(capabilities), "power": power, "network": sorted(network), "arch": arch,
            "battery": battery}


@pytest.mark.parametrize("before, after, diff, text", [
    ({"w1": fp()}, {"w1": fp(), "w4": fp(["pom", "bot"])},
     {"added": ["w4"], "removed": [], "changed": {}}, ["w4 joined (capabilities bot, pom)"]),
    ({"w1": fp(), "w4": fp(["pom"])}, {"w1": fp()},
     {"added": [], "removed": ["w4"], "changed": {}}, ["w4 left (no live profile: lease expired or deleted)"]),
    ({"w2": fp(["bot"])}, {"w2": fp(["pom"])},
     {"added": [], "removed": [], "changed": {"w2": {"capabilities_added": ["pom"], "capabilities_removed": ["bot"]}}},
     ["w2 gained capability pom", "w2 lost capability bot"]),
    ({"w3": fp(power="ac", network=["wifi"])}, {"w3": fp(power="dc", network=["bluetooth", "ethernet", "wifi"])},
     {"added": [], "removed": [], "changed": {"w3": {"network_added": ["bluetooth", "ethernet"],
                                                     "power": ["ac", "dc"]}}},
     ["w3 gained networks bluetooth, ethernet", "w3 power ac -> dc"]),
    ({"w5": fp(arch="armv7l")}, {"w5": fp(arch="aarch64")},
     {"added": [], "removed": [], "changed": {"w5": {"arch": ["armv7l", "aarch64"]}}}, ["w5 arch armv7l -> aarch64"]),
    ({"w1": fp(power="dc", battery=80)}, {"w1": fp(power="dc", battery=15)},
     {"added": [], "removed": [], "changed": {"w1": {"battery": [80, 15]}}}, ["w1 battery 80% -> 15%"]),
    ({"w1": fp(power="dc")}, {"w1": fp(power="dc", battery=15)},
     {"added": [], "removed": [], "changed": {"w1": {"battery": [None, 15]}}}, ["w1 battery unknown -> 15%"]),
    (None, {"w0": fp()}, {"added": ["w0"], "removed": [], "changed": {}}, ["w0 joined (no capabilities)"]),
    ({"w1": fp(["bot"])}, {"w1": fp(["bot"])}, {"added": [], "removed": [], "changed": {}}, []),
])
def test_diff_and_its_description(before, after, diff, text):
    assert diff_fingerprints(before, after) == diff
    assert describe_diff(diff, after) == text


def test_fingerprint_digest_is_stable_and_sensitive():
    one = {"w1": fp(["bot"]), "w4": fp(["pom"])}
    assert fingerprint_digest(one) == fingerprint_digest(json.loads(json.dumps(one)))
    assert fingerprint_digest(one) != fingerprint_digest({"w1": fp(["bot"]), "w4": fp()})
    assert fingerprint_digest(None) is None


@pytest.mark.parametrize("entry, valid", [
    (fp(["pom"]), True),
    ({"capabilities": [], "power": None, "network": [], "arch": None}, True),
    ({"capabilities": [], "power": "dc", "network": [], "arch": None, "battery": 80}, True),
    ({"capabilities": [], "power": "dc", "network": [], "arch": None, "battery": "80"}, False),
    ({"capabilities": [], "power": "dc", "network": [], "arch": None, "battery": True}, False),
    ({"capabilities": "pom", "power": "ac", "network": [], "arch": None}, False),
    ({"capabilities": [], "power": {"source": "ac"}, "network": [], "arch": None}, False),
    ({"capabilities": [], "power": "ac", "network": []}, False),
])
def test_fingerprint_entries_read_back_from_the_state_file(entry, valid):
    assert valid_fingerprint_entry(entry) is valid
