# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node index of the heuristics and the counted causes of unplaced services, on diverse and
over-subscribed clusters: the index gives the heaps' answer (first_fit: Algorithm 1's), and the counts
agree with a node-by-node check."""

from __future__ import annotations

import typing as t

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.nanoedge.core.plugins.module_utils import _plan
from ansible_collections.nanoedge.core.plugins.plugin_utils import _allocate_heuristics, _allocate_index
from ansible_collections.nanoedge.core.plugins.plugin_utils._allocate import allocate, explain, plan
from ansible_collections.nanoedge.core.plugins.plugin_utils._allocate_explain import Counter
from ansible_collections.nanoedge.core.tests.unit.algorithm1 import algorithm1
from ansible_collections.nanoedge.core.tests.unit.plugins.plugin_utils.test_allocate import assert_feasible, node, svc

HEURISTICS = ("first_fit", "best_fit", "spread")
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CAPABILITIES = ("bot", "dd", "ecg", "pom")


@st.composite
def diverse(draw: t.Any, scarce: bool = False) -> t.Tuple[t.List[t.Any], t.List[t.Any]]:
    """Nodes with 0-2 devices and services each with its own requirement vector; ``scarce``: a third the room."""
    divide = 3 if scarce else 1
    nodes = []
    for index in range(draw(st.integers(0, 16))):
        power = draw(st.sampled_from(("ac", "ac", "dc")))
        nodes.append(node(
            "w%d" % index, draw(st.lists(st.sampled_from(CAPABILITIES), unique=True, max_size=2)),
            cores=draw(st.sampled_from((1, 2, 4))), memory=draw(st.integers(0, 2048)) // divide,
            storage=draw(st.integers(0, 3000)) // divide, power=power,
            battery=draw(st.sampled_from((None, 10, 45, 80))) if power == "dc" else None,
            network=draw(st.lists(st.sampled_from(("bluetooth", "ethernet", "wifi", "wban")), unique=True,
                                  min_size=1, max_size=3))))
    services = []
    for index in range(draw(st.integers(0, 40))):
        services.append(svc(
            "s%d" % index, capabilities=draw(st.lists(st.sampled_from(CAPABILITIES), unique=True, max_size=2)),
            # binary fractions are exact as floats, so the float transcription is exact on them too
            cpu=draw(st.sampled_from((0, 0.0625, 0.125, 0.25, 0.5, 1, 2))), memory_mb=draw(st.integers(0, 512)),
            storage_mb=draw(st.integers(0, 600)), power=draw(st.sampled_from(("", "", "", "ac", "dc"))),
            network=draw(st.sampled_from(("", "", "", "wifi", "wban"))),
            min_battery_percent=draw(st.sampled_from((0, 0, 0, 20, 50))), priority=draw(st.integers(0, 3))))
    return services, nodes


def index_only(patch: pytest.MonkeyPatch) -> None:
    """Always the index (never the heaps), with 3 demand levels (quantiles beyond) and 4 score levels."""
    patch.setattr(_allocate_heuristics, "HEAP_BUDGET", -1)
    patch.setattr(_allocate_index, "MAX_BOUNDS", 3)
    patch.setattr(_allocate_index, "SCORE_LEVELS", 4)


def _assigned(services: t.List[t.Any], nodes: t.List[t.Any], strategy: str) -> t.Dict[str, t.List[int]]:
    return plan(services, nodes, strategy).state.assigned


@SETTINGS
@given(st.one_of(diverse(), diverse(scarce=True)))
def test_property_the_index_first_fit_is_algorithm_1(cluster: t.Any) -> None:
    services, nodes = cluster
    placements, remaining = algorithm1(services, nodes)
    with pytest.MonkeyPatch.context() as patch:
        index_only(patch)
        result = allocate(services, nodes, strategy="first_fit")
    assert result["placements"] == placements
    assert result["remaining"] == remaining


@SETTINGS
@given(st.one_of(diverse(), diverse(scarce=True)), st.sampled_from(HEURISTICS), st.data())
def test_property_the_index_gives_the_heaps_answer(cluster: t.Any, strategy: str, data: t.Any) -> None:
    services, nodes = cluster
    for service in services:
        service["replicas"] = data.draw(st.integers(1, 3))
    heaps = _assigned(services, nodes, strategy)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_allocate_heuristics, "HEAP_BUDGET", -1)
        patch.setattr(_allocate_index, "MAX_BOUNDS", data.draw(st.sampled_from((1, 5, 4095))))
        patch.setattr(_allocate_index, "SCORE_LEVELS", data.draw(st.sampled_from((1, 3, 4096))))
        assert _assigned(services, nodes, strategy) == heaps
        assert_feasible(allocate(services, nodes, strategy=strategy), services, nodes)


@SETTINGS
@given(st.sampled_from((_allocate_index.Levels, _allocate_index.Staircase)), st.data())
def test_property_levels_answer_as_a_scan(kind: t.Any, data: t.Any) -> None:
    size = data.draw(st.integers(1, 20))
    levels = data.draw(st.lists(st.integers(0, size - 1), max_size=30))
    tree = kind(levels, size)
    moves = data.draw(st.lists(st.tuples(st.integers(0, 29), st.integers(0, size - 1)), max_size=20))
    for moved, level in [(moved, level) for moved, level in moves if moved < len(levels)] + [(-1, 0)]:
        if moved >= 0:
            tree.move(moved, level)
            levels[moved] = level
        for floor in range(-1, size + 2):
            assert tree.at_least(floor) == sum(1 << index for index, at in enumerate(levels) if at >= floor)
        if kind is _allocate_index.Levels:
            among = data.draw(st.integers(0, (1 << len(levels)) - 1)) if levels else 0
            chosen = [level for index, level in enumerate(levels) if among >> index & 1]
            assert tree.lowest(among) == sum(1 << index for index, level in enumerate(levels)
                                             if among >> index & 1 and level == min(chosen))


def test_the_nodes_of_a_bitset_in_order() -> None:
    assert list(_allocate_index.nodes_of(0b1010_0001)) == [0, 5, 7]
    assert list(_allocate_index.nodes_of(0)) == []


def _per_node(entry: t.Mapping[str, t.Any]) -> t.List[t.Dict[str, t.Any]]:
    """The counts a node-by-node check gives: the causes' nodes counted, their figures kept."""
    counted: t.Dict[str, t.Dict[str, t.Any]] = {}
    for cause in entry["causes"]:
        count = {key: value for key, value in cause.items() if key in ("code", "missing", "needs", "service")}
        found = counted.setdefault(repr(count), dict(count, count=0))
        found["count"] += len(cause["nodes"])
    return list(counted.values())


def _key(count: t.Mapping[str, t.Any]) -> t.Tuple[int, str]:
    return _plan.CAUSE_CODES.index(count["code"]), repr(count)


@SETTINGS
@given(st.one_of(diverse(), diverse(scarce=True)), st.sampled_from(HEURISTICS + ("optimal",)))
def test_property_counts_add_up_and_agree_with_the_nodes(cluster: t.Any, strategy: str) -> None:
    services, nodes = cluster
    result = allocate(services, nodes, strategy=strategy, time_limit=1)
    for entry in result["unplaced"]:
        assert sum(count["count"] for count in entry["counts"]) == len(nodes)
        assert sorted(entry["counts"], key=_key) == sorted(_per_node(entry), key=_key)
        assert entry["summary"] == _plan.counts_text(entry["counts"])


@SETTINGS
@given(st.one_of(diverse(), diverse(scarce=True)))
def test_property_counts_match_the_state_without_detail(cluster: t.Any) -> None:
    services, nodes = cluster
    outcome = plan(services, nodes, "first_fit")
    counter = Counter(outcome.nodes, outcome.state.cpu, outcome.state.memory, outcome.state.storage)
    for service in outcome.services:
        where = outcome.state.assigned.get(service.name, [])
        codes: t.Dict[str, int] = {}
        for profile in outcome.nodes:
            cause = outcome.state.cause(service, profile.index) or {"code": "fits"}
            codes[cause["code"]] = codes.get(cause["code"], 0) + 1
        counted: t.Dict[str, int] = {}
        for count in counter.counts(service, where):
            counted[count["code"]] = counted.get(count["code"], 0) + count["count"]
        assert counted == codes


def test_past_the_detail_limit_only_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_plan, "DETAIL_NODES", 2)
    monkeypatch.setattr("ansible_collections.nanoedge.core.plugins.plugin_utils._allocate.DETAIL_NODES", 2)
    nodes = [node("w1", ["pom"], memory=100), node("w2"), node("w3", ["pom"], cores=1), node("w4")]
    result = allocate([svc("big", capabilities=["pom"], cpu=2, memory_mb=512)], nodes)
    assert result["unplaced"] == [{
        "service": "big", "missing": 1,
        "counts": [{"code": "capability", "missing": ["pom"], "count": 2}, {"code": "cpu", "needs": 2, "count": 1},
                   {"code": "memory", "needs": 512, "count": 1}],
        "summary": "0/4 nodes fit: 2 missing capability pom, 1 not enough cpu (needs 2 cores), "
                   "1 not enough memory (needs 512 MB)"}]
    assert explain([svc("big", capabilities=["pom"], cpu=2, memory_mb=512), svc("small")], nodes,
                   names=["big"]) == {"big": {"w1": "needs 512 MB memory, has 100", "w2": "missing capability pom",
                                              "w3": "needs 2 cores, has 1", "w4": "missing capability pom"}}


@pytest.mark.parametrize("names, message", [
    ("big", "names must be a list of service names, got 'big'"),
    (["big", "nope"], "names: unknown service(s) nope"),
])
def test_explain_names_errors(names: t.Any, message: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        explain([svc("big")], [node("w1")], names=names)
    assert str(excinfo.value) == message


@pytest.mark.parametrize("counts, text", [
    ([], "no live node"),
    ([{"code": "fits", "count": 3}], "3/3 nodes fit"),
    ([{"code": "capability", "missing": ["pom"], "count": 4980}, {"code": "memory", "needs": 512, "count": 20}],
     "0/5000 nodes fit: 4,980 missing capability pom, 20 not enough memory (needs 512 MB)"),
    ([{"code": "replica", "service": "web", "count": 1}, {"code": "capability", "missing": ["a", "b"], "count": 1},
      {"code": "cpu", "needs": 1, "count": 1}, {"code": "storage", "needs": 5, "count": 1},
      {"code": "power", "needs": "dc", "count": 1}, {"code": "battery", "needs": 30, "count": 1},
      {"code": "network", "needs": "wban", "count": 1}, {"code": "fits", "count": 1}],
     "1/8 nodes fit: 1 already run a replica, 1 missing capabilities a, b, 1 not enough cpu (needs 1 core), "
     "1 not enough storage (needs 5 MB), 1 not on dc power, 1 battery under 30% or unknown, 1 without wban network"),
])
def test_counts_text(counts: t.List[t.Dict[str, t.Any]], text: str) -> None:
    assert _plan.counts_text(counts) == text
    assert _plan.unplaced_summary({"service": "x", "counts": counts}) == text


def test_a_large_plan_file_says_briefly_why_a_service_is_unplaced(monkeypatch: pytest.MonkeyPatch) -> None:
    from ansible_collections.nanoedge.core.plugins.plugin_utils import _allocate, _site_report

    monkeypatch.setattr(_allocate, "DETAIL_NODES", 2)
    monkeypatch.setattr(_site_report, "DETAIL_NODES", 2)
    nodes = [node("w1", ["pom"], memory=100), node("w2"), node("w3", ["pom"], cores=1), node("w4")]
    services = [svc("big", capabilities=["pom"], cpu=2, memory_mb=512), svc("small")]
    document = _site_report.plan_report(allocate(services, nodes), services, nodes)
    assert document["why"] == {"big": "no node fits: 2 missing capability pom and 2 other causes",
                               "small": "first node in order that fits"}
    assert _site_report.plan_table(document)[-3] == (
        "big       0/4 nodes fit: 2 missing capability pom, 1 not enough cpu (needs 2 cores), "
        "1 not enough memory (needs 512 MB)")
