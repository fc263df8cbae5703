# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from ansible_collections.nanoedge.core.plugins.filter import explain as plugin
from ansible_collections.nanoedge.core.plugins.filter.explain import FilterModule, explain_filter
from ansible_collections.nanoedge.core.plugins.module_utils._plan import DEFAULT_STRATEGY, STRATEGIES
from ansible_collections.nanoedge.core.tests.unit import healthcare


def test_filter_is_registered():
    assert FilterModule().filters() == {"explain": explain_filter}


def test_documented_strategies_are_the_strategies():
    strategy = yaml.safe_load(plugin.DOCUMENTATION)["options"]["strategy"]
    assert (strategy["choices"], strategy["default"]) == (list(STRATEGIES), DEFAULT_STRATEGY)


def test_healthcare_matrix():
    services = healthcare.services() + [{"name": "xray", "requires": {"capabilities": ["xr"], "memory_mb": 2048}}]
    matrix = explain_filter(services, healthcare.workers())
    assert list(matrix) == ["spo2", "hrv", "hr", "bot", "alert", "oc", "display", "xray"]
    assert matrix["spo2"] == {"w1": "missing capability pom", "w2": "missing capability pom",
                              "w3": "missing capability pom", "w4": "placed", "w5": "missing capability pom"}
    assert matrix["alert"] == {"w1": "placed", "w2": "fits", "w3": "fits", "w4": "fits", "w5": "fits"}
    assert matrix["hr"]["w4"] == "placed"
    assert matrix["display"]["w2"] == "missing capability dd"
    assert matrix["oc"] == {"w1": "missing capability oc", "w2": "missing capability oc", "w3": "placed",
                            "w4": "missing capability oc", "w5": "missing capability oc"}
    assert matrix["xray"] == {node: "missing capability xr" for node in ("w1", "w2", "w3", "w4", "w5")}


def test_through_jinja_with_the_fqcn():
    templar = Templar(loader=DataLoader(), variables={"services": healthcare.services(), "nodes": healthcare.workers()})
    matrix = templar.template(trust_as_template("{{ services | nanoedge.core.explain(nodes, static=true) }}"))
    assert matrix["spo2"]["w4"] == "fits"
    assert matrix["oc"]["w5"] == "missing capability oc"


def test_static_matrix_ignores_other_services():
    services = [{"name": "a", "requires": {"cpu": 4}}, {"name": "b", "requires": {"cpu": 4, "power": "dc"}}]
    nodes = [healthcare.workers()[0], healthcare.workers()[1]]
    assert explain_filter(services, nodes, static="yes") == {
        "a": {"w1": "fits", "w2": "fits"},
        "b": {"w1": "needs dc power, runs on ac", "w2": "fits"},
    }
    assert explain_filter(services, nodes) == {
        "a": {"w1": "placed", "w2": "needs 4 cores, 0 left after b"},
        "b": {"w1": "needs 4 cores, 0 left after a", "w2": "placed"},
    }


@pytest.mark.parametrize("args, kwargs, message", [
    (([{"name": "a", "requires": {"cpu": -1}}], []), {}, "nanoedge.core.explain: service 'a' requires cpu=-1: must be >= 0"),
    (([], []), {"static": "maybe"}, "nanoedge.core.explain: static must be a boolean, got 'maybe'"),
    (([], []), {"static": ["yes"]}, "nanoedge.core.explain: static must be a boolean, got ['yes']"),
    (([], {"w1": {"node": "w2"}}), {}, "nanoedge.core.explain: nodes['w1']: profile is for node 'w2'"),
])
def test_errors_name_the_filter(args, kwargs, message):
    with pytest.raises(AnsibleFilterError) as excinfo:
        explain_filter(*args, **kwargs)
    assert excinfo.value.message == message
