# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import copy
import typing as t

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.nanoedge.core.plugins.module_utils._plan import cause_text, counts_text
from ansible_collections.nanoedge.core.plugins.plugin_utils._allocate import (
    AllocationError,
    allocate,
    explain,
)
from ansible_collections.nanoedge.core.tests.unit import healthcare
from ansible_collections.nanoedge.core.tests.unit.algorithm1 import algorithm1

HEURISTICS = ("first_fit", "best_fit", "spread")
PROPERTY_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def node(name: str, capabilities: t.Sequence[str] = (), cores: t.Any = 4, memory: t.Any = 1024, storage: t.Any = 10000,
         power: str = "ac", battery: t.Any = None, network: t.Sequence[str] = ("wifi",)) -> t.Dict[str, t.Any]:
    return {"node": name, "capabilities": list(capabilities), "cpu": {"cores": cores},
            "memory_mb": {"available": memory}, "storage_mb": {"free": storage},
            "power": {"source": power, "battery_percent": battery}, "network": list(network)}


def svc(name: str, **requires: t.Any) -> t.Dict[str, t.Any]:
    extra = {key: requires.pop(key) for key in ("priority", "replicas") if key in requires}
    return dict({"name": name, "requires": requires}, **extra)


# --------------------------------------------------------------------------- the paper's scenario

def test_healthcare_first_fit_is_the_papers_table_13():
    result = allocate(healthcare.services(), healthcare.workers())
    assert result["placements"] == healthcare.FIRST_FIT_PLACEMENTS
    assert result["by_node"] == {"w1": ["bot", "alert"], "w2": [], "w3": ["oc"], "w4": ["spo2", "hrv", "hr"],
                                 "w5": ["display"]}
    assert result["unplaced"] == []
    assert result["moves"] == []
    assert result["placed"] == 7
    assert result["remaining"] == {
        "w1": {"cpu": 2, "memory_mb": 530, "storage_mb": 24390},
        "w2": {"cpu": 4, "memory_mb": 480, "storage_mb": 9120},
        "w3": {"cpu": 3, "memory_mb": 1356, "storage_mb": 25870},
        "w4": {"cpu": 1, "memory_mb": 480, "storage_mb": 20983},
        "w5": {"cpu": 3, "memory_mb": 2992, "storage_mb": 25954},
    }


@pytest.mark.parametrize("strategy", HEURISTICS)
def test_healthcare_every_strategy_puts_device_services_on_their_device(strategy):
    result = allocate(healthcare.services(), healthcare.workers(), strategy=strategy)
    assert result["strategy"] == strategy
    assert {name: result["placements"][name] for name in ("spo2", "hrv", "hr", "bot", "oc", "display")} == {
        "spo2": "w4", "hrv": "w4", "hr": "w4", "bot": "w1", "oc": "w3", "display": "w5"}
    assert result["unplaced"] == []


def test_healthcare_matches_reference_transcription():
    placements, remaining = algorithm1(healthcare.services(), healthcare.workers())
    result = allocate(healthcare.services(), healthcare.workers())
    assert (result["placements"], result["remaining"]) == (placements, remaining)


def test_healthcare_second_oximeter_service_too_many_explained():
    services = healthcare.services() + [svc("ecg", capabilities=["pom"], cpu=2)]
    result = allocate(services, healthcare.workers())
    assert result["unplaced"] == [{"service": "ecg", "missing": 1, "counts": [
        {"code": "capability", "missing": ["pom"], "count": 4}, {"code": "cpu", "needs": 2, "count": 1}],
        "summary": "0/5 nodes fit: 4 missing capability pom, 1 not enough cpu (needs 2 cores)", "reasons": {
        "w1": "missing capability pom", "w2": "missing capability pom", "w3": "missing capability pom",
        "w4": "needs 2 cores, 1 left after spo2, hrv, hr", "w5": "missing capability pom"}, "causes": [
        {"code": "capability", "missing": ["pom"], "nodes": ["w1", "w2", "w3", "w5"]},
        {"code": "cpu", "needs": 2, "has": 1, "after": ["spo2", "hrv", "hr"], "nodes": ["w4"]}]}]


# --------------------------------------------------------------------------- every requirement kind

@pytest.mark.parametrize("requires, target, reason, cause", [
    ({"capabilities": ["pom"]}, node("w1", ["bot"]), "missing capability pom",
     {"code": "capability", "missing": ["pom"]}),
    ({"capabilities": ["pom", "xr"]}, node("w1", ["bot"]), "missing capabilities pom, xr",
     {"code": "capability", "missing": ["pom", "xr"]}),
    ({"capabilities": ["pom", "xr"]}, node("w1", ["pom"]), "missing capability xr",
     {"code": "capability", "missing": ["xr"]}),
    ({"cpu": 2}, node("w1", cores=1), "needs 2 cores, has 1",
     {"code": "cpu", "needs": 2, "has": 1}),
    ({"cpu": 1.5}, node("w1", cores=1), "needs 1.5 cores, has 1",
     {"code": "cpu", "needs": 1.5, "has": 1}),
    ({"cpu": 4.25}, node("w1", cores=4), "needs 4.25 cores, has 4",
     {"code": "cpu", "needs": 4.25, "has": 4}),
    ({"memory_mb": 2048}, node("w1", memory=512), "needs 2048 MB memory, has 512",
     {"code": "memory", "needs": 2048, "has": 512}),
    ({"storage_mb": 100}, node("w1", storage=20), "needs 100 MB storage, has 20",
     {"code": "storage", "needs": 100, "has": 20}),
    ({"power": "ac"}, node("w1", power="dc", battery=90), "needs ac power, runs on dc",
     {"code": "power", "needs": "ac", "has": "dc"}),
    ({"power": "dc"}, node("w1"), "needs dc power, runs on ac",
     {"code": "power", "needs": "dc", "has": "ac"}),
    ({"network": "bluetooth"}, node("w1", network=["ethernet", "wifi"]), "needs bluetooth network, has ethernet, wifi",
     {"code": "network", "needs": "bluetooth", "has": ["ethernet", "wifi"]}),
    ({"network": "wban"}, node("w1", network=[]), "needs wban network, has none",
     {"code": "network", "needs": "wban", "has": []}),
    ({"min_battery_percent": 30}, node("w1", power="dc", battery=12), "needs battery at 30% or more, has 12%",
     {"code": "battery", "needs": 30, "has": 12}),
    ({"min_battery_percent": 30}, node("w1", power="dc", battery=None), "needs battery at 30% or more, battery level unknown",
     {"code": "battery", "needs": 30, "has": None}),
    # Algorithm 1's order: capability before cores before memory before power, network, storage
    ({"capabilities": ["pom"], "cpu": 9, "memory_mb": 9999}, node("w1"), "missing capability pom",
     {"code": "capability", "missing": ["pom"]}),
    ({"cpu": 9, "memory_mb": 9999, "storage_mb": 99999}, node("w1"), "needs 9 cores, has 4",
     {"code": "cpu", "needs": 9, "has": 4}),
    ({"memory_mb": 9999, "power": "dc", "storage_mb": 99999}, node("w1"), "needs 9999 MB memory, has 1024",
     {"code": "memory", "needs": 9999, "has": 1024}),
    ({"power": "dc", "network": "wban", "storage_mb": 99999}, node("w1"), "needs dc power, runs on ac",
     {"code": "power", "needs": "dc", "has": "ac"}),
    ({"network": "wban", "storage_mb": 99999}, node("w1"), "needs wban network, has wifi",
     {"code": "network", "needs": "wban", "has": ["wifi"]}),
])
def test_each_requirement_kind_blocks_with_its_reason(requires, target, reason, cause):
    result = allocate([svc("s", **requires)], [target])
    assert result["placements"] == {}
    counted = {key: value for key, value in cause.items() if key in ("code", "missing", "needs")}
    assert result["unplaced"] == [{"service": "s", "reasons": {"w1": reason}, "causes": [dict(cause, nodes=["w1"])],
                                   "missing": 1, "counts": [dict(counted, count=1)],
                                   "summary": counts_text([dict(counted, count=1)])}]
    assert cause_text(cause) == reason


@pytest.mark.parametrize("requires, target", [
    ({"capabilities": ["pom"]}, node("w1", ["bot", "pom"])),
    ({"cpu": 4, "memory_mb": 1024, "storage_mb": 10000}, node("w1")),  # exactly full is a fit (<=)
    ({"power": "dc"}, node("w1", power="dc", battery=5)),
    ({"network": "bluetooth"}, node("w1", network=["bluetooth", "wifi"])),
    ({"min_battery_percent": 30}, node("w1", power="dc", battery=30)),
    ({"min_battery_percent": 30}, node("w1", power="ac", battery=None)),  # mains power never runs empty
    ({"min_battery_percent": 30}, node("w1", power="ac", battery=3)),
    ({"capabilities": 0, "cpu": 0, "memory_mb": None, "power": "", "network": ""}, node("w1", cores=1, memory=0, storage=0)),
])
def test_each_requirement_kind_fits(requires, target):
    assert allocate([svc("s", **requires)], [target])["placements"] == {"s": "w1"}


def test_capabilities_are_shared_not_consumed():
    result = allocate([svc("spo2", capabilities=["pom"]), svc("hrv", capabilities=["pom"])], [node("w4", ["pom"])])
    assert result["by_node"] == {"w4": ["spo2", "hrv"]}


def test_node_keeps_its_power_and_network_after_a_placement():
    # The paper's line 6 would copy b_k = "" and n_k = "" into the node; the node must stay dc and bluetooth.
    services = [svc("any"), svc("needs-dc", power="dc"), svc("needs-bt", network="bluetooth")]
    result = allocate(services, [node("w2", power="dc", battery=70, network=["bluetooth"])])
    assert result["placements"] == {"any": "w2", "needs-dc": "w2", "needs-bt": "w2"}


def test_reason_names_the_services_that_used_the_capacity():
    services = [svc("spo2", cpu=1, memory_mb=300), svc("hrv", cpu=2, memory_mb=300), svc("big", cpu=2, memory_mb=100),
                svc("fat", memory_mb=500), svc("disk", storage_mb=20000)]
    result = allocate(services, [node("w1", cores=4, memory=700)])
    assert result["unplaced"] == [
        {"service": "big", "reasons": {"w1": "needs 2 cores, 1 left after spo2, hrv"}, "missing": 1,
         "counts": [{"code": "cpu", "needs": 2, "count": 1}], "summary": "0/1 nodes fit: 1 not enough cpu (needs 2 cores)",
         "causes": [{"code": "cpu", "needs": 2, "has": 1, "after": ["spo2", "hrv"], "nodes": ["w1"]}]},
        {"service": "fat", "reasons": {"w1": "needs 500 MB memory, 100 left after spo2, hrv"}, "missing": 1,
         "counts": [{"code": "memory", "needs": 500, "count": 1}],
         "summary": "0/1 nodes fit: 1 not enough memory (needs 500 MB)",
         "causes": [{"code": "memory", "needs": 500, "has": 100, "after": ["spo2", "hrv"], "nodes": ["w1"]}]},
        {"service": "disk", "reasons": {"w1": "needs 20000 MB storage, has 10000"}, "missing": 1,
         "counts": [{"code": "storage", "needs": 20000, "count": 1}],
         "summary": "0/1 nodes fit: 1 not enough storage (needs 20000 MB)",
         "causes": [{"code": "storage", "needs": 20000, "has": 10000, "nodes": ["w1"]}]},
    ]


def test_identical_explanations_are_separate_dicts():
    first, second = allocate([svc("a", cpu=9), svc("b", cpu=9)], [node("w1")])["unplaced"]
    assert first["reasons"] == second["reasons"] == {"w1": "needs 9 cores, has 4"}
    assert first["reasons"] is not second["reasons"]
    assert first["causes"] == second["causes"] == [{"code": "cpu", "needs": 9, "has": 4, "nodes": ["w1"]}]
    assert first["causes"] is not second["causes"] and first["causes"][0] is not second["causes"][0]
    assert first["causes"][0]["nodes"] is not second["causes"][0]["nodes"]


def test_reason_lists_at_most_five_services():
    services = [svc("s%d" % i, cpu=1) for i in range(8)] + [svc("late", cpu=1)]
    result = allocate(services, [node("w1", cores=8)])
    assert result["unplaced"][0]["reasons"] == {"w1": "needs 1 core, 0 left after s0, s1, s2, s3, s4 and 3 more"}
    assert result["unplaced"][0]["causes"] == [
        {"code": "cpu", "needs": 1, "has": 0, "after": ["s0", "s1", "s2", "s3", "s4"], "more": 3, "nodes": ["w1"]}]


def test_fractions_add_up_exactly():
    result = allocate([svc("s%d" % i, cpu=0.1, memory_mb=0.3) for i in range(10)], [node("w1", cores=1, memory=3)])
    assert len(result["placements"]) == 10
    assert result["remaining"] == {"w1": {"cpu": 0, "memory_mb": 0, "storage_mb": 10000}}


def test_fractional_remaining_is_reported_as_float():
    result = allocate([svc("half", cpu=0.5, memory_mb=0.25)], [node("w1", cores=2, memory=100)])
    assert result["remaining"] == {"w1": {"cpu": 1.5, "memory_mb": 99.75, "storage_mb": 10000}}


def test_sixteenth_cores_fill_a_core_as_in_algorithm_1():
    """0.0625 is exact in binary, so the transcription fits 16 on one core; rounding it to 0.063 fitted 15."""
    services = [svc("s%d" % i, cpu=0.0625, memory_mb=0.0625) for i in range(16)]
    nodes = [node("w1", cores=1, memory=1), node("w2", cores=1)]
    placements, remaining = algorithm1(services, nodes)
    assert set(placements.values()) == {"w1"}
    result = allocate(services, nodes)
    assert result["placements"] == placements
    assert result["remaining"] == remaining == {"w1": {"cpu": 0, "memory_mb": 0, "storage_mb": 10000},
                                                "w2": {"cpu": 1, "memory_mb": 1024, "storage_mb": 10000}}


def test_nodes_as_dict_keep_their_order():
    nodes = {"w9": node("w9"), "w1": node("w1")}
    result = allocate([svc("a")], nodes)
    assert result["placements"] == {"a": "w9"}
    assert list(result["by_node"]) == ["w9", "w1"]
    assert list(result["remaining"]) == ["w9", "w1"]


def test_other_profile_fields_and_service_keys_are_ignored():
    services = healthcare.services()
    services[0]["platforms"] = ["linux/arm64"]
    assert allocate(services, healthcare.workers())["placements"] == healthcare.FIRST_FIT_PLACEMENTS


def test_battery_percent_may_be_left_out():
    bare = node("w1", power="dc")
    del bare["power"]["battery_percent"]
    result = allocate([svc("a"), svc("b", min_battery_percent=10)], [bare])
    assert result["placements"] == {"a": "w1"}
    assert result["unplaced"][0]["reasons"] == {"w1": "needs battery at 10% or more, battery level unknown"}


def test_inputs_are_not_mutated():
    services, nodes = healthcare.services(), healthcare.workers()
    services[0]["replicas"] = 1
    current = {"spo2": "w4", "bot": ["w1"]}
    before = copy.deepcopy((services, nodes, current))
    for strategy in HEURISTICS:
        allocate(services, nodes, strategy=strategy, current=current)
        explain(services, nodes, strategy=strategy, current=current)
    assert (services, nodes, current) == before


def test_empty_input():
    assert allocate([], []) == {"strategy": "first_fit", "placements": {}, "by_node": {}, "unplaced": [],
                                "remaining": {}, "replica_nodes": {}, "placed": 0, "moves": []}
    assert allocate([svc("a")], [])["unplaced"] == [{"service": "a", "reasons": {}, "causes": [], "missing": 1,
                                                     "counts": [], "summary": "no live node"}]


# --------------------------------------------------------------------------- strategies and ties

def test_first_fit_keeps_given_order_and_ignores_priority():
    services = [svc("low", cpu=2, priority=1), svc("high", cpu=2, priority=9)]
    result = allocate(services, [node("w1", cores=2)])
    assert result["placements"] == {"low": "w1"}


@pytest.mark.parametrize("strategy", ("best_fit", "spread"))
def test_other_strategies_take_higher_priority_first(strategy):
    services = [svc("low", cpu=2, priority=1), svc("high", cpu=2, priority=9), svc("mid", cpu=2, priority=5)]
    result = allocate(services, [node("w1", cores=2), node("w2", cores=2)], strategy=strategy)
    assert sorted(result["placements"]) == ["high", "mid"]
    assert [entry["service"] for entry in result["unplaced"]] == ["low"]


@pytest.mark.parametrize("strategy", ("best_fit", "spread"))
def test_equal_priority_keeps_given_order(strategy):
    services = [svc("b", cpu=2), svc("a", cpu=2)]
    assert allocate(services, [node("w1", cores=2)], strategy=strategy)["placements"] == {"b": "w1"}


def test_best_fit_takes_the_tightest_node():
    nodes = [node("big", cores=4, memory=4000), node("small", cores=2, memory=1000), node("mid", cores=4, memory=2000)]
    result = allocate([svc("a", cpu=1, memory_mb=100)], nodes, strategy="best_fit")
    assert result["placements"] == {"a": "small"}


def test_best_fit_fills_a_node_before_opening_another():
    nodes = [node("w1", cores=4), node("w2", cores=4)]
    result = allocate([svc("a", cpu=1), svc("b", cpu=1), svc("c", cpu=1)], nodes, strategy="best_fit")
    assert result["by_node"] == {"w1": ["a", "b", "c"], "w2": []}


def test_best_fit_skips_tight_nodes_that_do_not_fit():
    nodes = [node("roomy", cores=4), node("tight", cores=1)]
    result = allocate([svc("a", cpu=2), svc("b", cpu=1)], nodes, strategy="best_fit")
    assert result["placements"] == {"a": "roomy", "b": "tight"}


def test_spread_takes_the_emptiest_node():
    nodes = [node("w1", cores=4), node("w2", cores=4), node("w3", cores=4)]
    result = allocate([svc("a", cpu=1), svc("b", cpu=1), svc("c", cpu=1), svc("d", cpu=1)], nodes, strategy="spread")
    assert result["by_node"] == {"w1": ["a", "d"], "w2": ["b"], "w3": ["c"]}


@pytest.mark.parametrize("strategy", HEURISTICS)
def test_ties_go_to_the_first_node(strategy):
    nodes = [node("w%d" % i) for i in range(1, 4)]
    assert allocate([svc("a", cpu=1)], nodes, strategy=strategy)["placements"] == {"a": "w1"}


def test_first_fit_against_dict_order_with_dc_battery_threshold():
    nodes = {"w5": node("w5", power="dc", battery=15), "w6": node("w6", power="dc", battery=60)}
    result = allocate([svc("long", min_battery_percent=50)], nodes)
    assert result["placements"] == {"long": "w6"}


# --------------------------------------------------------------------------- replicas

@pytest.mark.parametrize("strategy", HEURISTICS)
def test_replicas_land_on_distinct_nodes(strategy):
    nodes = [node("w1", cores=8), node("w2", cores=8), node("w3", cores=8)]
    result = allocate([svc("web", cpu=1, replicas=3)], nodes, strategy=strategy)
    assert sorted(result["replica_nodes"]["web"]) == ["w1", "w2", "w3"]
    assert result["placements"]["web"] == result["replica_nodes"]["web"][0]
    assert result["placed"] == 3


def test_first_fit_replicas_take_the_first_nodes_in_order():
    nodes = [node("w1", cores=2), node("w2", cores=1), node("w3", cores=4), node("w4", cores=4)]
    result = allocate([svc("web", cpu=2, replicas=2), svc("db", cpu=2)], nodes)
    assert result["replica_nodes"] == {"web": ["w1", "w3"], "db": ["w3"]}


def test_missing_replicas_are_reported():
    nodes = [node("w1", cores=8), node("w2", cores=1)]
    result = allocate([svc("web", cpu=2, replicas=3)], nodes)
    assert result["replica_nodes"] == {"web": ["w1"]}
    assert result["unplaced"] == [{"service": "web", "missing": 2, "counts": [
        {"code": "replica", "service": "web", "count": 1}, {"code": "cpu", "needs": 2, "count": 1}],
        "summary": "0/2 nodes fit: 1 already run a replica, 1 not enough cpu (needs 2 cores)", "reasons": {
        "w1": "already runs a replica of web", "w2": "needs 2 cores, has 1"}, "causes": [
        {"code": "replica", "service": "web", "nodes": ["w1"]}, {"code": "cpu", "needs": 2, "has": 1, "nodes": ["w2"]}]}]


# --------------------------------------------------------------------------- current placement and moves

@pytest.mark.parametrize("strategy", HEURISTICS)
def test_current_placement_is_kept_while_it_fits(strategy):
    nodes = [node("w1", cores=4), node("w2", cores=4)]
    result = allocate([svc("a", cpu=1), svc("b", cpu=1)], nodes, strategy=strategy, current={"a": "w2", "b": "w2"})
    assert result["placements"] == {"a": "w2", "b": "w2"}
    assert result["moves"] == []


def test_current_moves_only_what_no_longer_fits():
    nodes = [node("w1", cores=4), node("w2", cores=1)]  # w2 lost cores since the last run
    result = allocate([svc("a", cpu=1), svc("b", cpu=1)], nodes, current={"a": "w2", "b": "w2"})
    assert result["placements"] == {"a": "w2", "b": "w1"}
    assert result["moves"] == [{"service": "b", "from": "w2", "to": "w1"}]


def test_current_accepts_a_previous_result_and_reports_lost_and_new_replicas():
    services = [svc("a", cpu=1), svc("web", cpu=1, replicas=2), svc("gone", cpu=1)]
    before = allocate(services, [node("w1", cores=3), node("w2", cores=3)])
    assert before["replica_nodes"] == {"a": ["w1"], "web": ["w1", "w2"], "gone": ["w1"]}
    result = allocate(services, [node("w2", cores=2), node("w3", cores=1)], current=before)
    assert result["replica_nodes"] == {"a": ["w2"], "web": ["w2", "w3"]}
    assert result["moves"] == [{"service": "a", "from": "w1", "to": "w2"},
                               {"service": "web", "from": "w1", "to": "w3"},
                               {"service": "gone", "from": "w1", "to": None}]


def test_current_node_that_lost_its_capability_moves_the_service():
    nodes = [node("w1", ["pom"]), node("w4", [])]
    result = allocate([svc("spo2", capabilities=["pom"])], nodes, current={"spo2": "w4"})
    assert result["moves"] == [{"service": "spo2", "from": "w4", "to": "w1"}]


def test_current_for_unknown_services_is_ignored():
    assert allocate([svc("a")], [node("w1")], current={"old": "w1"})["moves"] == []


# --------------------------------------------------------------------------- explain

def test_explain_matrix_against_the_plan():
    services = [svc("spo2", capabilities=["pom"], cpu=1, memory_mb=64), svc("xray", memory_mb=2048),
                svc("tiny", cpu=1)]
    nodes = [node("w1", ["bot"], memory=512), node("w4", ["pom"], memory=640)]
    assert explain(services, nodes) == {
        "spo2": {"w1": "missing capability pom", "w4": "placed"},
        "xray": {"w1": "needs 2048 MB memory, has 512", "w4": "needs 2048 MB memory, 576 left after spo2"},
        "tiny": {"w1": "placed", "w4": "fits"},
    }


def test_explain_static_ignores_other_services():
    services = [svc("a", cpu=4), svc("b", cpu=4), svc("c", cpu=5)]
    assert explain(services, [node("w1", cores=4)], static=True) == {
        "a": {"w1": "fits"}, "b": {"w1": "fits"}, "c": {"w1": "needs 5 cores, has 4"}}
    assert explain(services, [node("w1", cores=4)]) == {
        "a": {"w1": "placed"}, "b": {"w1": "needs 4 cores, 0 left after a"}, "c": {"w1": "needs 5 cores, 0 left after a"}}


# --------------------------------------------------------------------------- validation

@pytest.mark.parametrize("services, nodes, kwargs, message", [
    ({"a": 1}, [], {}, "services must be a list of dicts, got dict"),
    (["a"], [], {}, "services[0] must be a dict, got str"),
    ([{"requires": {}}], [], {}, "services[0]: missing key name"),
    ([{"name": "", "requires": {}}], [], {}, "services[0]: name must be a non-empty string, got ''"),
    ([{"name": 5, "requires": {}}], [], {}, "services[0]: name must be a non-empty string, got 5"),
    ([svc("a"), svc("a")], [], {}, "service 'a' is listed twice"),
    ([{"name": "a"}], [], {}, "service 'a': missing key requires"),
    ([{"name": "a", "requires": ["pom"]}], [], {}, "service 'a': requires must be a dict, got list"),
    ([svc("spo2", memory_mb=-5)], [], {}, "service 'spo2' requires memory_mb=-5: must be >= 0"),
    ([svc("spo2", gpu=1)], [], {},
     "service 'spo2' requires unknown requirement key(s) 'gpu' (known: capabilities, cpu, memory_mb, storage_mb, "
     "power, network, min_battery_percent)"),
    ([svc("spo2", cpu="2")], [], {}, "service 'spo2' requires cpu must be a number, got '2'"),
    ([svc("spo2", power="solar")], [], {}, "service 'spo2' requires power='solar': must be one of ac, dc"),
    ([svc("spo2", min_battery_percent=101)], [], {}, "service 'spo2' requires min_battery_percent=101: must be <= 100"),
    ([svc("a", priority="high")], [], {}, "service 'a': priority must be a number, got 'high'"),
    ([svc("a", priority=True)], [], {}, "service 'a': priority must be a number, got True"),
    ([svc("a", replicas=0)], [], {}, "service 'a': replicas must be an integer >= 1, got 0"),
    ([svc("a", replicas=1.5)], [], {}, "service 'a': replicas must be an integer >= 1, got 1.5"),
    ([], "w1", {}, "nodes must be a list of profiles or a dict of node name to profile, got str"),
    ([], None, {}, "nodes must be a list of profiles or a dict of node name to profile, got null"),
    ([], ["w1"], {}, "nodes[0]: profile must be a dict, got str"),
    ([], [{"cpu": {"cores": 1}}], {}, "nodes[0]: missing field node"),
    ([], [dict(node("w1"), node="W 1")], {}, "nodes[0]: node must match ^[a-z0-9][a-z0-9._-]{0,62}$, got 'W 1'"),
    ([], {"w1": node("w2")}, {}, "nodes['w1']: profile is for node 'w2'"),
    ([], [node("w1"), node("w1")], {}, "node 'w1' is listed twice"),
    ([], [{k: v for k, v in node("w1").items() if k != "capabilities"}], {}, "node 'w1': missing field capabilities"),
    ([], [dict(node("w1"), capabilities="pom")], {}, "node 'w1': capabilities: must be a list, got str"),
    ([], [dict(node("w1"), cpu={})], {}, "node 'w1': missing field cpu.cores"),
    ([], [dict(node("w1"), cpu=4)], {}, "node 'w1': cpu: must be an object, got int"),
    ([], [node("w1", cores=-1)], {}, "node 'w1': cpu.cores: must be an integer >= 1, got -1"),
    ([], [node("w1", cores=True)], {}, "node 'w1': cpu.cores: must be an integer >= 1, got True"),
    ([], [node("w1", memory="1G")], {}, "node 'w1': memory_mb.available: must be an integer, got '1G'"),
    ([], [node("w1", storage=None)], {}, "node 'w1': storage_mb.free: must be an integer, got None"),
    ([], [dict(node("w1"), power={})], {}, "node 'w1': missing field power.source"),
    ([], [node("w1", power="solar")], {}, "node 'w1': power.source: must be one of ac, dc, got 'solar'"),
    ([], [node("w1", power="dc", battery=120)], {},
     "node 'w1': power.battery_percent: must be a number from 0 to 100 or null, got 120"),
    ([], [dict(node("w1"), network="wifi")], {}, "node 'w1': network: must be a list, got str"),
    ([], [node("w1", network=["wifi", "lan"])], {},
     "node 'w1': network[1]: must be one of bluetooth, cellular, ethernet, lora, thread, wban, wifi, zigbee, got 'lan'"),
    ([], [], {"strategy": "worst_fit"}, "strategy must be one of first_fit, best_fit, spread, optimal, got 'worst_fit'"),
    ([], [], {"current": ["w1"]},
     "current must be a dict of service name to node name (or a previous allocate result), got list"),
    ([], [], {"current": {"a": 5}}, "current: service 'a' must map to a node name or a list of node names, got 5"),
    ([], [], {"time_limit": 0}, "time_limit must be a number of seconds > 0, got 0"),
])
def test_errors_name_the_service_or_node_and_field(services, nodes, kwargs, message):
    with pytest.raises(AllocationError) as excinfo:
        allocate(services, nodes, **kwargs)
    assert str(excinfo.value) == message
    with pytest.raises(AllocationError) as excinfo:
        explain(services, nodes, static=True, **kwargs)
    assert str(excinfo.value) == message


# --------------------------------------------------------------------------- properties

CAPABILITIES = ("bot", "dd", "pom")
NETWORKS = ("bluetooth", "ethernet", "wifi")


@st.composite
def clusters(draw: t.Any, max_nodes: int = 7, max_services: int = 18) -> t.Tuple[t.List[t.Any], t.List[t.Any]]:
    """Small uneven clusters where most services fit somewhere and capacity runs out now and then."""
    count = draw(st.integers(0, max_nodes))
    nodes = []
    for index in range(count):
        power = draw(st.sampled_from(("ac", "ac", "dc")))
        nodes.append(node(
            "w%d" % index,
            capabilities=draw(st.lists(st.sampled_from(CAPABILITIES), unique=True, max_size=2)),
            cores=draw(st.integers(1, 8)),
            memory=draw(st.sampled_from((0, 256, 512, 926, 1848, 3794))),
            storage=draw(st.integers(0, 400)),
            power=power,
            battery=draw(st.one_of(st.none(), st.integers(0, 100))) if power == "dc" else None,
            network=draw(st.lists(st.sampled_from(NETWORKS), unique=True, min_size=1, max_size=3)),
        ))
    services = []
    for index in range(draw(st.integers(0, max_services))):
        requires = {
            "capabilities": draw(st.sampled_from(([], [], [], ["pom"], ["bot"], ["dd"]))),
            # binary fractions are exact as floats, so the float transcription is exact on them too
            "cpu": draw(st.sampled_from((0, 1, 2, 0, 1, 2, 0.5, 0.25, 0.0625))),
            "memory_mb": draw(st.sampled_from((0, 32, 64, 128, 300, 700))),
            "storage_mb": draw(st.integers(0, 120)),
            "power": draw(st.sampled_from(("", "", "", "ac", "dc"))),
            "network": draw(st.sampled_from(("", "", "", "wifi", "bluetooth"))),
            "min_battery_percent": draw(st.sampled_from((0, 0, 0, 20, 50))),
        }
        services.append({"name": "s%d" % index, "requires": requires,
                         "priority": draw(st.integers(0, 3))})
    return services, nodes


def assert_feasible(result: t.Dict[str, t.Any], services: t.List[t.Any], nodes: t.List[t.Any]) -> None:
    profiles = {profile["node"]: profile for profile in nodes}
    used = {name: [0, 0, 0] for name in profiles}
    for service in services:
        where = result["replica_nodes"].get(service["name"], [])
        assert len(where) == len(set(where)) <= service.get("replicas", 1)
        requires = service["requires"]
        for name in where:
            profile = profiles[name]
            assert set(requires["capabilities"]) <= set(profile["capabilities"])
            assert not requires["power"] or requires["power"] == profile["power"]["source"]
            assert not requires["network"] or requires["network"] in profile["network"]
            if requires["min_battery_percent"] and profile["power"]["source"] == "dc":
                assert (profile["power"]["battery_percent"] or 0) >= requires["min_battery_percent"]
            used[name][0] += requires["cpu"]
            used[name][1] += requires["memory_mb"]
            used[name][2] += requires["storage_mb"]
    for name, profile in profiles.items():
        left = result["remaining"][name]
        assert left == {"cpu": profile["cpu"]["cores"] - used[name][0],
                        "memory_mb": profile["memory_mb"]["available"] - used[name][1],
                        "storage_mb": profile["storage_mb"]["free"] - used[name][2]}
        assert min(left.values()) >= 0
    placed = set(result["replica_nodes"])
    assert [entry["service"] for entry in result["unplaced"]] == [
        service["name"] for service in services
        if len(result["replica_nodes"].get(service["name"], [])) < service.get("replicas", 1)]
    assert sum(len(where) for where in result["replica_nodes"].values()) == result["placed"]
    assert set(result["placements"]) == placed


@PROPERTY_SETTINGS
@given(clusters(), st.sampled_from(HEURISTICS))
def test_property_every_placement_is_feasible_and_no_capacity_negative(cluster, strategy):
    services, nodes = cluster
    assert_feasible(allocate(services, nodes, strategy=strategy), services, nodes)


@PROPERTY_SETTINGS
@given(clusters(), st.sampled_from(HEURISTICS), st.data())
def test_property_replicas_are_feasible(cluster, strategy, data):
    services, nodes = cluster
    for service in services:
        service["replicas"] = data.draw(st.integers(1, 3))
    assert_feasible(allocate(services, nodes, strategy=strategy), services, nodes)


@PROPERTY_SETTINGS
@given(clusters(max_nodes=9, max_services=30))
def test_property_first_fit_is_algorithm_1(cluster):
    services, nodes = cluster
    placements, remaining = algorithm1(services, nodes)
    result = allocate(services, nodes, strategy="first_fit")
    assert result["placements"] == placements
    assert result["remaining"] == remaining


@PROPERTY_SETTINGS
@given(clusters(), st.sampled_from(HEURISTICS))
def test_property_unplaced_reasons_are_true(cluster, strategy):
    services, nodes = cluster
    result = allocate(services, nodes, strategy=strategy)
    for entry in result["unplaced"]:
        assert set(entry["reasons"]) == {profile["node"] for profile in nodes}
        assert "fits" not in entry["reasons"].values()


@PROPERTY_SETTINGS
@given(clusters(), clusters(), st.sampled_from(HEURISTICS))
def test_property_current_never_moves_a_service_whose_node_still_fits(before, after, strategy):
    services, old_nodes = before
    new_nodes = after[1]
    nodes = new_nodes or old_nodes
    current = allocate(services, old_nodes, strategy=strategy)
    result = allocate(services, nodes, strategy=strategy, current=current)
    assert_feasible(result, services, nodes)
    kept_alone = allocate([s for s in services if s["name"] in current["placements"]], nodes, strategy=strategy,
                          current=current)
    # every service whose node still takes it (given the others kept before it) stays
    for name, where in kept_alone["placements"].items():
        if where == current["placements"][name]:
            assert result["placements"][name] == where
    # when the running plan still fits as a whole, nothing moves
    if not allocate([s for s in services if s["name"] in current["placements"]], nodes, strategy=strategy,
                    current=current)["moves"]:
        assert all(result["placements"][name] == where for name, where in current["placements"].items())
    moved = {move["service"] for move in result["moves"]}
    assert all(current["placements"].get(name) != result["placements"].get(name) for name in moved)
    # the same, worked out from the profiles alone: a service left its node only if that node, less what
    # the services kept there before it (in processing order) use, cannot take it
    profiles = {profile["node"]: profile for profile in nodes}
    used = {name: [0, 0, 0] for name in profiles}
    order = services if strategy == "first_fit" else sorted(services, key=lambda service: -service["priority"])
    for service in order:
        was = current["placements"].get(service["name"])
        if was not in profiles:
            continue
        requires, profile, taken = service["requires"], profiles[was], used[was]
        still_fits = (
            set(requires["capabilities"]) <= set(profile["capabilities"])
            and requires["cpu"] <= profile["cpu"]["cores"] - taken[0]
            and requires["memory_mb"] <= profile["memory_mb"]["available"] - taken[1]
            and (not requires["power"] or requires["power"] == profile["power"]["source"])
            and (not requires["min_battery_percent"] or profile["power"]["source"] == "ac"
                 or (profile["power"]["battery_percent"] or 0) >= requires["min_battery_percent"])
            and (not requires["network"] or requires["network"] in profile["network"])
            and requires["storage_mb"] <= profile["storage_mb"]["free"] - taken[2])
        if still_fits:
            assert result["placements"].get(service["name"]) == was, service["name"]
            taken[0] += requires["cpu"]
            taken[1] += requires["memory_mb"]
            taken[2] += requires["storage_mb"]
        else:
            assert result["placements"].get(service["name"]) != was, service["name"]


@PROPERTY_SETTINGS
@given(clusters(), st.sampled_from(HEURISTICS))
def test_property_unchanged_cluster_replans_without_moves(cluster, strategy):
    services, nodes = cluster
    current = allocate(services, nodes, strategy=strategy)
    again = allocate(services, nodes, strategy=strategy, current=current)
    assert again["moves"] == []
    assert again["placements"] == current["placements"]
