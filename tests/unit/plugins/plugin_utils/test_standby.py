# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Standby images: which images a node pulls ahead for the services it could take over."""

from __future__ import annotations

import typing as t

import pytest

from ansible_collections.nanoedge.core.plugins.plugin_utils._allocate import allocate
from ansible_collections.nanoedge.core.plugins.plugin_utils._standby import StandbyError, standby_images


def node(name: str, capabilities: t.Sequence[str] = (), cores: t.Any = 4, available: int = 1024, total: int = 2048,
         power: str = "ac", battery: t.Any = None) -> t.Dict[str, t.Any]:
    return {"node": name, "capabilities": list(capabilities), "cpu": {"cores": cores},
            "memory_mb": {"available": available, "total": total}, "storage_mb": {"free": 5000, "total": 8000},
            "power": {"source": power, "battery_percent": battery}, "network": []}


def service(name: str, **requires: t.Any) -> t.Dict[str, t.Any]:
    return {"name": name, "image": "127.0.0.1:5000/nanoedge/%s:latest" % name, "digest": "sha256:%064d" % len(name),
            "requires": requires}


SERVICES = [service("spo2", capabilities=["pom"], cpu=0.5), service("bot", capabilities=["bot"], min_battery_percent=20),
            service("alert", cpu=0.25, power="ac"), service("big", cpu=8), service("ram", memory_mb=1500)]
NODES = {"w1": node("w1", ["bot", "pom"], power="dc", battery=81), "w2": node("w2", cores=1),
         "w4": node("w4", ["pom"])}


def images(node_name: str, **options: t.Any) -> t.List[str]:
    plan = allocate([{"name": s["name"], "requires": s["requires"]} for s in SERVICES], NODES)
    return [item["service"] for item in standby_images(plan, SERVICES, node_name, NODES[node_name], **options)]


def test_a_node_keeps_the_images_of_what_it_could_take_over() -> None:
    plan = allocate([{"name": s["name"], "requires": s["requires"]} for s in SERVICES], NODES)
    # ram needs 1500 MB and no node has that much available now: unplaced
    assert plan["placements"] == {"spo2": "w1", "bot": "w1", "alert": "w2"}
    # w4 has the oximeter and mains power: spo2 and alert; never what needs 8 cores, nor BoT's probe; and ram,
    # which fits its total memory
    assert images("w4") == ["spo2", "alert", "ram"]
    # w1 runs spo2 and bot; alert needs mains power, w1 runs on its battery
    assert images("w1") == ["ram"]
    # w2, one core and no capability: only what needs neither (alert runs there already)
    assert images("w2") == ["ram"]
    assert standby_images(plan, SERVICES, "w4", NODES["w4"], pull_registry="172.30.0.1:5000")[0] == {
        "service": "spo2", "image": "172.30.0.1:5000/nanoedge/spo2@sha256:%064d" % 4}


@pytest.mark.parametrize("options, expected", [
    ({"limit": 1}, ["spo2"]),
    ({"limit": 0}, []),
    ({"backend": "swarm"}, []),
    ({"backends": {"spo2": "baremetal"}}, ["alert", "ram"]),
])
def test_what_is_left_out(options: t.Dict[str, t.Any], expected: t.List[str]) -> None:
    assert images("w4", **options) == expected


def test_a_low_battery_is_no_standby_for_a_service_that_needs_more() -> None:
    plan = {"by_node": {}}
    low = node("w1", ["bot"], power="dc", battery=15, total=1024)
    assert standby_images(plan, SERVICES, "w1", low) == []
    assert standby_images(plan, SERVICES, "w1", dict(low, power={"source": "dc", "battery_percent": 50})) == [
        {"service": "bot", "image": "127.0.0.1:5000/nanoedge/bot@sha256:%064d" % 3}]


def test_without_a_profile_nothing() -> None:
    assert standby_images({"by_node": {}}, SERVICES, "w9", {}) == []


@pytest.mark.parametrize("plan, services, profile, limit, message", [
    ({}, SERVICES, NODES["w4"], 8, "the plan must be the result of nanoedge.core.allocate (a dict with by_node)"),
    ({"by_node": {}}, "spo2", NODES["w4"], 8, "services must be the list of service profiles, got str"),
    ({"by_node": {}}, SERVICES, NODES["w4"], -1, "limit must be a whole number from 0, got -1"),
    ({"by_node": {}}, SERVICES, {"node": "w4"}, 8, "node 'w4': missing field capabilities"),
    ({"by_node": {}}, [service("x", cpu="many")], NODES["w4"], 8,
     "service 'x' requires cpu must be a number, got 'many'"),
])
def test_bad_input_names_the_fault(plan: t.Any, services: t.Any, profile: t.Any, limit: t.Any, message: str) -> None:
    with pytest.raises(StandbyError) as error:
        standby_images(plan, services, "w4", profile, limit=limit)
    assert str(error.value).startswith(message)
