# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import typing as t

import pytest

from ansible_collections.nanoedge.core.plugins.plugin_utils._moves import (
    MoveError, consumers, hosts_to_deploy, replan, replica_nodes,
)
from ansible_collections.nanoedge.core.plugins.plugin_utils._service_description import normalize_description

NODES = ["w1", "w2", "w3", "w4", "w5"]


def service(name: str, consumes: t.Sequence[str] = (), **requires: t.Any) -> t.Dict[str, t.Any]:
    description = {"name": name, "version": "1.0.0", "requirements": {},
                   "port": {"number": 5700, "protocol": "udp"}, "provides": {"path": "/" + name},
                   "consumes": {p: {"env": "NANOEDGE_%s_URI" % p.upper(), "format": "uri"} for p in consumes}}
    return {"name": name, "image": "127.0.0.1:5000/nanoedge/%s:latest" % name, "digest": "sha256:" + "ab" * 32,
            "requires": requires, "description": normalize_description(description)}


# The demo's services: alert reads spo2 and oc, display reads everything.
SERVICES = [service("spo2", capabilities=["pom"]), service("hr", capabilities=["pom"]), service("oc"),
            service("alert", ["spo2", "oc"]), service("bot"),
            service("display", ["spo2", "hr", "alert", "oc", "bot"])]
RUNNING = {"spo2": "w4", "hr": "w4", "oc": "w3", "alert": "w2", "bot": "w1", "display": "w5"}


def moved(**changes: t.Any) -> t.Dict[str, t.Any]:
    return dict(RUNNING, **changes)


@pytest.mark.parametrize("after, nodes, returning, expected", [
    # nothing changed: nothing is deployed
    (RUNNING, NODES, (), {"start": [], "rewire": [], "stop": []}),
    # the oximeter moved from w4 to w2: its services start on w2, their consumers are rewired, w4 stops them
    (moved(spo2="w2", hr="w2"), NODES, (), {"start": ["w2"], "rewire": ["w5"], "stop": ["w4"]}),
    # w4 is lost: the same, but w4 cannot be reached
    (moved(spo2="w2", hr="w2"), ["w1", "w2", "w3", "w5"], (), {"start": ["w2"], "rewire": ["w5"], "stop": []}),
    # alert's node lost: alert starts on w1, display (its consumer) is rewired; alert consumes but feeds only display
    (moved(alert="w1"), ["w1", "w3", "w4", "w5"], (), {"start": ["w1"], "rewire": ["w5"], "stop": []}),
    # a service only consumed by a consumer on the node it moves to: that node starts, nothing to rewire elsewhere
    (moved(oc="w2"), NODES, (), {"start": ["w2"], "rewire": ["w5"], "stop": ["w3"]}),
    # bot becomes unplaced (battery low, nowhere else fits): w1 stops it, display is rewired without it
    ({k: v for k, v in RUNNING.items() if k != "bot"}, NODES, (), {"start": [], "rewire": ["w5"], "stop": ["w1"]}),
    # a node that comes back after the last plan left it out is cleaned up even when it keeps nothing
    (RUNNING, NODES, ("w3",), {"start": [], "rewire": [], "stop": ["w3"]}),
    # a consumer that moves itself is started, not rewired
    (moved(display="w1"), NODES, (), {"start": ["w1"], "rewire": [], "stop": ["w5"]}),
])
def test_hosts_to_deploy(after, nodes, returning, expected):
    assert hosts_to_deploy(SERVICES, RUNNING, after, nodes, returning) == expected


DIRECTORY = "coap://127.0.0.1:5690"
EVERY = ("spo2", "hr", "oc", "alert", "bot", "display")


def with_key(profile: t.Dict[str, t.Any], directory: bool = True) -> t.Dict[str, t.Any]:
    """The service as one whose description says ``"directory": true``: it registers itself at its node's
    directory and finds its producers there by name."""
    return dict(profile, description=dict(profile["description"], directory=directory))


def with_library(profile: t.Dict[str, t.Any]) -> t.Dict[str, t.Any]:
    """The service as one that ships nanoedge_ns but does not say it uses the directory."""
    return dict(profile, description=dict(profile["description"], libraries=["common/nanoedge_ns"]))


@pytest.mark.parametrize("keyed, library, directory, rewire", [
    # with the directory, consumers that use it keep running untouched when a producer that registers moves
    (EVERY, (), DIRECTORY, []),
    # only the display finds its producers by name: the alert (on w2, a consumer of oc) is rewired
    (("display", "oc"), (), DIRECTORY, ["w2"]),
    # oc does not say it registers: both its consumers were given its address and are rewired
    (("display", "alert"), (), DIRECTORY, ["w2", "w5"]),
    # shipping nanoedge_ns is not saying it: every consumer is rewired
    ((), EVERY, DIRECTORY, ["w2", "w5"]),
    # "directory": false said outright: the same
    ((), (), DIRECTORY, ["w2", "w5"]),
    # no directory on the nodes: every consumer is rewired as before
    (EVERY, (), "", ["w2", "w5"]),
])
def test_consumers_at_the_directory_are_not_rewired(keyed, library, directory, rewire):
    services = [with_key(s) if s["name"] in keyed else with_library(s) if s["name"] in library else with_key(s, False)
                for s in SERVICES]
    after = moved(oc="w4")
    assert hosts_to_deploy(services, RUNNING, after, NODES, (), directory) == {
        "start": ["w4"], "rewire": rewire, "stop": ["w3"]}


@pytest.mark.parametrize("keyed, expected", [
    (EVERY, {}),
    # spo2 does not register: its consumers are rewired when it moves, for it alone
    (("hr", "oc", "alert", "bot", "display"), {"spo2": ["alert", "display"]}),
    # the display does not use the directory: it is rewired for every producer it consumes
    (("spo2", "hr", "oc", "alert", "bot"), {"spo2": ["display"], "hr": ["display"], "alert": ["display"],
                                            "oc": ["display"], "bot": ["display"]}),
    ((), {"spo2": ["alert", "display"], "oc": ["alert", "display"], "hr": ["display"], "alert": ["display"],
          "bot": ["display"]}),
])
def test_consumers_by_address_with_the_directory(keyed, expected):
    services = [with_key(s) if s["name"] in keyed else with_library(s) for s in SERVICES]
    assert consumers(services, DIRECTORY) == expected


def test_hosts_follow_the_given_order_and_a_node_may_start_and_stop():
    after = moved(spo2="w2", alert="w4")
    assert hosts_to_deploy(SERVICES, RUNNING, after, ["w5", "w4", "w3", "w2", "w1"]) == {
        "start": ["w4", "w2"], "rewire": ["w5"], "stop": ["w4", "w2"]}


def test_replicas_count_as_a_set_of_nodes():
    before = {"spo2": ["w1", "w2"], "display": ["w5"]}
    same = {"replica_nodes": {"spo2": ["w2", "w1"], "display": ["w5"]}}
    assert hosts_to_deploy(SERVICES, before, same, NODES) == {"start": [], "rewire": [], "stop": []}
    assert hosts_to_deploy(SERVICES, before, {"spo2": ["w2", "w3"], "display": "w5"}, NODES) == {
        "start": ["w3"], "rewire": ["w5"], "stop": ["w1"]}


def test_consumers_from_the_descriptions():
    assert consumers(SERVICES) == {"spo2": ["alert", "display"], "oc": ["alert", "display"], "hr": ["display"],
                                   "alert": ["display"], "bot": ["display"]}


@pytest.mark.parametrize("call, message", [
    (lambda: replica_nodes(["w1"], "current"), "current must be a dict service -> node(s) or an allocation result, got list"),
    (lambda: hosts_to_deploy(SERVICES, {}, {"spo2": 3}, NODES), "plan['spo2'] must be a node name or a list of node names, got 3"),
    (lambda: hosts_to_deploy(SERVICES, {}, {}, "w1"), "nodes must be a list of node names"),
    (lambda: consumers([{"image": "x"}]), "services must be a list of service profiles, each with a name"),
    (lambda: replan(SERVICES, {}, NODES, {"by_node": {}}), "the previous plan must be a plan document with its strategy"),
])
def test_bad_input_names_what_is_wrong(call, message):
    with pytest.raises(MoveError) as error:
        call()
    assert str(error.value) == message


def profile(name: str, capabilities: t.Sequence[str] = (), battery: t.Any = None) -> t.Dict[str, t.Any]:
    return {"node": name, "capabilities": list(capabilities), "cpu": {"cores": 4},
            "memory_mb": {"available": 1024}, "storage_mb": {"free": 10000},
            "power": {"source": "ac" if battery is None else "dc", "battery_percent": battery}, "network": ["wifi"]}


def previous_document(placements: t.Mapping[str, str], nodes: t.Sequence[str]) -> t.Dict[str, t.Any]:
    return {"strategy": "first_fit", "replica_nodes": {s: [n] for s, n in placements.items()},
            "critical": ["spo2"], "nodes": {n: {} for n in nodes}}


def test_replan_moves_the_oximeter_services_and_keeps_the_rest():
    profiles = {"w1": profile("w1"), "w2": profile("w2", ["pom"]), "w3": profile("w3"), "w5": profile("w5")}
    previous = previous_document(RUNNING, NODES)
    result = replan(SERVICES, profiles, NODES, previous, registry="coap://m1:5683")
    assert result.plan["placements"] == moved(spo2="w2", hr="w2")
    assert result.hosts == {"start": ["w2"], "rewire": ["w5"], "stop": []}
    assert [(m["service"], m["from"], m["to"]) for m in result.document["moves"]] == [
        ("spo2", "w4", "w2"), ("hr", "w4", "w2")]
    assert result.document["current"] == RUNNING
    assert result.document["critical"] == ["spo2"] and result.document["registry"] == "coap://m1:5683"
    assert list(result.document["nodes"]) == ["w1", "w2", "w3", "w5"]


def test_replan_of_an_unchanged_cluster_touches_nothing_but_a_returning_node():
    profiles = {n: profile(n, ["pom"] if n == "w4" else []) for n in NODES}
    result = replan(SERVICES, profiles, NODES, previous_document(RUNNING, ["w1", "w2", "w4", "w5"]))
    assert result.plan["placements"] == RUNNING and result.plan["moves"] == []
    assert result.hosts == {"start": [], "rewire": [], "stop": ["w3"]}


def test_replan_plans_only_the_inventory_workers_in_inventory_order():
    profiles = {n: profile(n, ["pom"]) for n in NODES + ["stranger"]}
    result = replan(SERVICES, profiles, ["w5", "w1"], previous_document({}, []))
    assert list(result.plan["by_node"]) == ["w5", "w1"]
    assert result.plan["placements"]["spo2"] == "w5"
