# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.nanoedge.core.plugins.plugin_utils import _allocate_optimal
from ansible_collections.nanoedge.core.plugins.plugin_utils._allocate import AllocationError, allocate
from ansible_collections.nanoedge.core.tests.unit import healthcare
from ansible_collections.nanoedge.core.tests.unit.plugins.plugin_utils.test_allocate import (
    HEURISTICS,
    assert_feasible,
    clusters,
    node,
    svc,
)

pytest.importorskip("highspy")


def test_healthcare_optimal_places_everything_on_the_device_nodes():
    result = allocate(healthcare.services(), healthcare.workers(), strategy="optimal")
    assert result["unplaced"] == []
    assert {name: result["placements"][name] for name in ("spo2", "hrv", "hr", "bot", "oc", "display")} == {
        "spo2": "w4", "hrv": "w4", "hr": "w4", "bot": "w1", "oc": "w3", "display": "w5"}
    # fewest nodes: alert joins a node that is in use anyway, w2 stays empty
    assert result["by_node"]["w2"] == []
    assert result["optimal"]["proven"] is True
    assert result["optimal"]["gap"] == 0.0
    assert result["optimal"]["bound"] == result["optimal"]["placed"] == 7


def test_optimal_beats_first_fit_where_the_order_misleads_it():
    nodes = [node("w1", cores=2), node("w2", cores=1)]
    services = [svc("small", cpu=1), svc("large", cpu=2)]
    assert allocate(services, nodes)["placed"] == 1
    result = allocate(services, nodes, strategy="optimal")
    assert result["placements"] == {"small": "w2", "large": "w1"}
    assert result["optimal"]["proven"] is True
    assert result["optimal"]["source"] == "solver"


def test_optimal_prefers_higher_total_priority_when_counts_tie():
    nodes = [node("w1", cores=2)]
    services = [svc("a", cpu=2, priority=1), svc("b", cpu=2, priority=5), svc("c", cpu=2, priority=3)]
    result = allocate(services, nodes, strategy="optimal")
    assert result["placements"] == {"b": "w1"}
    assert [entry["service"] for entry in result["unplaced"]] == ["a", "c"]


def test_optimal_uses_the_fewest_nodes():
    nodes = [node("w%d" % i, cores=4) for i in range(4)]
    services = [svc("s%d" % i, cpu=2) for i in range(4)]
    result = allocate(services, nodes, strategy="optimal")
    assert sum(1 for hosted in result["by_node"].values() if hosted) == 2
    assert result["optimal"]["proven"] is True


def test_optimal_replicas_go_to_distinct_nodes():
    nodes = [node("w%d" % i, cores=1) for i in range(3)]
    result = allocate([svc("web", cpu=1, replicas=2), svc("db", cpu=1)], nodes, strategy="optimal")
    assert sorted(result["replica_nodes"]["web"]) != [] and len(set(result["replica_nodes"]["web"])) == 2
    assert result["placed"] == 3


def test_optimal_keeps_current_placement():
    nodes = [node("w1", cores=4), node("w2", cores=4)]
    result = allocate([svc("a", cpu=1), svc("b", cpu=1)], nodes, strategy="optimal", current={"a": "w1", "b": "w2"})
    assert result["placements"] == {"a": "w1", "b": "w2"}
    assert result["moves"] == []


def test_optimal_reports_solver_details():
    result = allocate([svc("a", cpu=1)], [node("w1")], strategy="optimal", time_limit=2)
    info = result["optimal"]
    assert set(info) == {"solver", "time_limit", "proven", "status", "bound", "placed", "gap", "seconds", "source"}
    assert info["solver"].startswith("highs ")
    assert info["time_limit"] == 2.0
    assert info["status"] == "Optimal"


def test_optimal_with_nothing_to_decide():
    result = allocate([svc("a", capabilities=["xr"])], [node("w1")], strategy="optimal")
    assert result["optimal"]["proven"] is True
    assert result["optimal"]["bound"] == 0
    assert result["unplaced"] == [{"service": "a", "reasons": {"w1": "missing capability xr"}, "missing": 1,
                                   "counts": [{"code": "capability", "missing": ["xr"], "count": 1}],
                                   "summary": "0/1 nodes fit: 1 missing capability xr",
                                   "causes": [{"code": "capability", "missing": ["xr"], "nodes": ["w1"]}]}]


def test_missing_solver_gives_one_clear_message(monkeypatch):
    monkeypatch.setattr(_allocate_optimal, "HIGHSPY_IMPORT_ERROR", ImportError("No module named 'highspy'"))
    with pytest.raises(AllocationError) as excinfo:
        allocate([svc("a")], [node("w1")], strategy="optimal")
    assert str(excinfo.value) == (
        "strategy 'optimal' needs the Python library highspy on the controller (pip install highspy); the "
        "strategies first_fit, best_fit and spread work without it: No module named 'highspy'")
    assert allocate([svc("a")], [node("w1")], strategy="spread")["placements"] == {"a": "w1"}


def test_time_limit_reached_still_returns_the_best_heuristic(monkeypatch):
    clock = iter(range(0, 10 ** 6, 100))
    monkeypatch.setattr(_allocate_optimal.time, "monotonic", lambda: float(next(clock)))
    services = [svc("small", cpu=1), svc("large", cpu=2)]
    result = allocate(services, [node("w1", cores=2), node("w2", cores=1)], strategy="optimal", time_limit=1)
    assert result["optimal"]["proven"] is False
    assert result["optimal"]["status"] == "Time limit reached"
    assert result["placed"] >= allocate(services, [node("w1", cores=2), node("w2", cores=1)])["placed"]


def test_time_limit_reached_never_places_fewer_than_first_fit_in_the_given_order(monkeypatch):
    """Priority order misleads every heuristic here (big first fills w1); first_fit in the given order places 2."""
    clock = iter(range(0, 10 ** 6, 100))
    monkeypatch.setattr(_allocate_optimal.time, "monotonic", lambda: float(next(clock)))
    services = [svc("a", cpu=1), svc("b", cpu=1), svc("big", cpu=2, priority=5)]
    nodes = [node("w1", cores=2)]
    assert allocate(services, nodes)["placements"] == {"a": "w1", "b": "w1"}
    result = allocate(services, nodes, strategy="optimal", time_limit=1)
    assert result["optimal"]["status"] == "Time limit reached"
    assert result["placements"] == {"a": "w1", "b": "w1"}
    assert result["optimal"]["source"] == "first_fit"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clusters(max_nodes=5, max_services=12), st.data())
def test_property_optimal_places_at_least_every_heuristic(cluster, data):
    services, nodes = cluster
    for service in services:
        service["replicas"] = data.draw(st.sampled_from((1, 1, 1, 2)))
    result = allocate(services, nodes, strategy="optimal")
    assert_feasible(result, services, nodes)
    assert result["optimal"]["proven"] is True
    for strategy in HEURISTICS:
        assert result["placed"] >= allocate(services, nodes, strategy=strategy)["placed"]
    assert result["optimal"]["bound"] == result["placed"]
