# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The profile schema: its validator and the placement facets every consumer reads."""

from __future__ import annotations

import copy
import typing as t

import pytest

from ansible_collections.nanoedge.core.plugins.module_utils._profile import (
    PLACEMENT_FACETS,
    ProfileError,
    placement_facets,
    platform_of,
    validate_profile,
)
from ansible_collections.nanoedge.core.tests.unit import healthcare

# w4 of the healthcare testbed, its lists out of order and with a second capability
PROFILE = dict(healthcare.workers()[3], network=["wifi", "bluetooth"], capabilities=["spo2.v1", "pom"],
               labels={"room": "3"})


def changed(**changes: t.Any) -> t.Dict[str, t.Any]:
    result = copy.deepcopy(PROFILE)
    result.update(changes)
    return result


def test_a_full_profile_is_valid() -> None:
    validate_profile(PROFILE)


def test_the_kernels_machine_is_optional_but_a_string() -> None:
    """Profiles of older versions have no machine: registries still hold them."""
    validate_profile(changed(arch="arm/v7", machine="aarch64"))
    assert "machine" not in PROFILE
    with pytest.raises(ProfileError) as info:
        validate_profile(changed(machine=8))
    assert str(info.value) == "machine: must be a string, got 8"


@pytest.mark.parametrize("arch, platform", [
    ("arm/v7", "arm/v7"), ("arm64", "arm64"), ("amd64", "amd64"), ("arm/v6", "arm/v6"), ("riscv64", "riscv64"),
    # what profiles of older versions hold: the kernel's machine
    ("armv6l", "arm/v6"), ("armv7l", "arm/v7"), ("armv8l", "arm/v7"), ("aarch64", "arm64"), ("x86_64", "amd64"),
    ("i686", "386"), ("armv5tel", "arm/v5"),
    ("unknown", "unknown"), ("", ""),
])
def test_platform_of(arch: str, platform: str) -> None:
    assert platform_of(arch) == platform


def test_placement_reads_a_profile_of_an_older_version_as_its_platform() -> None:
    assert placement_facets(changed(arch="aarch64"))["arch"] == placement_facets(changed(arch="arm64"))["arch"] == "arm64"


@pytest.mark.parametrize("profile, message", [
    ("w4", "profile: must be an object, got str"),
    (changed(schema=2), "schema: must be 1, got 2"),
    (changed(node="W4"), "node: must match ^[a-z0-9][a-z0-9._-]{0,62}$, got 'W4'"),
    (changed(node="w1\n"), "node: must match ^[a-z0-9][a-z0-9._-]{0,62}$, got 'w1\\n'"),
    (changed(gpu=1), "profile: unknown key(s) gpu"),
    (changed(cpu={"cores": 0, "bogomips": None, "load1": None}), "cpu.cores: must be an integer >= 1, got 0"),
    (changed(memory_mb={"total": 10, "available": 11}), "memory_mb.available: exceeds memory_mb.total"),
    (changed(power={"source": "solar", "battery_percent": None, "battery_health": None, "charging": None}),
     "power.source: must be one of ac, dc, got 'solar'"),
    (changed(network=["wifi", "smoke"]),
     "network[1]: must be one of bluetooth, cellular, ethernet, lora, thread, wban, wifi, zigbee, got 'smoke'"),
    (changed(capabilities=["pom", "Pulse Ox"]), "capabilities[1]: 'Pulse Ox' is not a valid name"),
    (changed(capabilities=["pom", "pom\n"]), "capabilities[1]: 'pom\\n' is not a valid name"),
    (changed(capabilities=[]), "devices[0].capability: 'pom' is not listed in capabilities"),
])
def test_validate_profile_names_the_field(profile: t.Any, message: str) -> None:
    with pytest.raises(ProfileError) as info:
        validate_profile(profile)
    assert str(info.value) == message


@pytest.mark.parametrize("profile", [
    {},
    {"node": "w1", "cpu": {"cores": 2}, "memory_mb": {"available": 512}, "storage_mb": {"free": 0},
     "power": {"source": "dc", "battery_percent": 40}, "network": ["wifi"], "capabilities": ["pom"]},
    # a device is checked against the capabilities only when they are given
    {"devices": [{"capability": "pom", "kind": "sensor", "name": "Ox", "bus": "usb", "id": "0403:6001"}]},
])
def test_an_incomplete_profile_may_leave_keys_out(profile: t.Dict[str, t.Any]) -> None:
    validate_profile(profile, complete=False)


@pytest.mark.parametrize("profile, message", [
    ({"gpu": 1}, "profile: unknown key(s) gpu"),
    ({"cpu": {"cores": 0.5}}, "cpu.cores: must be an integer >= 1, got 0.5"),
    ({"cpu": {"threads": 2}}, "cpu: unknown key(s) threads"),
    ({"memory_mb": {"total": 10, "available": 11}}, "memory_mb.available: exceeds memory_mb.total"),
    ({"storage_mb": {"free": 1.5}}, "storage_mb.free: must be an integer, got 1.5"),
    ({"power": {"battery_percent": 120}}, "power.battery_percent: must be a number from 0 to 100 or null, got 120"),
    ({"capabilities": ["bot"], "devices": [
        {"capability": "pom", "kind": "sensor", "name": "Ox", "bus": "usb", "id": "0403:6001"}]},
     "devices[0].capability: 'pom' is not listed in capabilities"),
])
def test_an_incomplete_profile_follows_the_same_rules(profile: t.Dict[str, t.Any], message: str) -> None:
    with pytest.raises(ProfileError) as info:
        validate_profile(profile, complete=False)
    assert str(info.value) == message
    with pytest.raises(ProfileError):
        validate_profile(dict(PROFILE, **profile))


def test_placement_facets_of_a_full_profile() -> None:
    assert placement_facets(PROFILE) == {
        "capabilities": ["pom", "spo2.v1"], "power": "ac", "network": ["bluetooth", "wifi"], "arch": "arm/v7",
        "battery": None}
    assert tuple(placement_facets(PROFILE)) == PLACEMENT_FACETS


def test_placement_facets_leave_out_what_moves_on_every_report() -> None:
    drifted = changed(collected_at="2026-11-26T09:00:00Z", cpu={"cores": 4, "bogomips": 89.6, "load1": 3.9},
                      memory_mb={"total": 926, "available": 12}, storage_mb={"total": 29820, "free": 1},
                      labels={"room": "ambulance"}, capabilities=["pom", "spo2.v1"], network=["bluetooth", "wifi"])
    assert placement_facets(drifted) == placement_facets(PROFILE)


@pytest.mark.parametrize("profile, expected", [
    ({"node": "w9"}, {"capabilities": [], "power": None, "network": [], "arch": None, "battery": None}),
    ({"capabilities": None, "power": None, "network": None, "arch": None},
     {"capabilities": [], "power": None, "network": [], "arch": None, "battery": None}),
    ({"power": {}}, {"capabilities": [], "power": None, "network": [], "arch": None, "battery": None}),
    ({"power": {"source": "dc"}, "capabilities": ["pom"]},
     {"capabilities": ["pom"], "power": "dc", "network": [], "arch": None, "battery": None}),
    # a battery counts in steps of 5 %, and not on mains
    ({"power": {"source": "dc", "battery_percent": 81}},
     {"capabilities": [], "power": "dc", "network": [], "arch": None, "battery": 80}),
    ({"power": {"source": "dc", "battery_percent": 19.9}},
     {"capabilities": [], "power": "dc", "network": [], "arch": None, "battery": 15}),
    ({"power": {"source": "dc", "battery_percent": 20}},
     {"capabilities": [], "power": "dc", "network": [], "arch": None, "battery": 20}),
    ({"power": {"battery_percent": 0}}, {"capabilities": [], "power": None, "network": [], "arch": None, "battery": 0}),
    ({"power": {"source": "ac", "battery_percent": 95}},
     {"capabilities": [], "power": "ac", "network": [], "arch": None, "battery": None}),
])
def test_placement_facets_of_a_partial_profile(profile: t.Dict[str, t.Any], expected: t.Dict[str, t.Any]) -> None:
    assert placement_facets(profile) == expected


@pytest.mark.parametrize("profile, message", [
    (["w4"], "profile: must be an object, got list"),
    ({"capabilities": "pom"}, "capabilities: must be a list, got str"),
    ({"capabilities": ["pom", "pom"]}, "capabilities: has duplicates"),
    ({"capabilities": ["P O M"]}, "capabilities[0]: 'P O M' is not a valid name"),
    ({"capabilities": ["pom\n"]}, "capabilities[0]: 'pom\\n' is not a valid name"),
    ({"network": "wifi"}, "network: must be a list, got str"),
    ({"network": ["carrier-pigeon"]},
     "network[0]: must be one of bluetooth, cellular, ethernet, lora, thread, wban, wifi, zigbee, got 'carrier-pigeon'"),
    ({"power": "ac"}, "power: must be an object, got str"),
    ({"power": {"source": "solar"}}, "power.source: must be one of ac, dc, got 'solar'"),
    ({"arch": 7}, "arch: must be a string, got 7"),
    ({"power": {"battery_percent": 101}}, "power.battery_percent: must be a number from 0 to 100, got 101"),
    ({"power": {"battery_percent": True}}, "power.battery_percent: must be a number from 0 to 100, got True"),
])
def test_placement_facets_refuse_a_malformed_facet(profile: t.Any, message: str) -> None:
    with pytest.raises(ProfileError) as info:
        placement_facets(profile)
    assert str(info.value) == message
