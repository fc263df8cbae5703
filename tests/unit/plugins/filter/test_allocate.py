# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from ansible_collections.nanoedge.core.plugins.filter import allocate as plugin
from ansible_collections.nanoedge.core.plugins.filter.allocate import FilterModule, allocate_filter
from ansible_collections.nanoedge.core.plugins.module_utils._plan import DEFAULT_STRATEGY, STRATEGIES
from ansible_collections.nanoedge.core.tests.unit import healthcare


def test_filter_is_registered():
    assert FilterModule().filters() == {"allocate": allocate_filter}


def test_documented_strategies_are_the_strategies():
    strategy = yaml.safe_load(plugin.DOCUMENTATION)["options"]["strategy"]
    assert (strategy["choices"], strategy["default"]) == (list(STRATEGIES), DEFAULT_STRATEGY)


def test_healthcare_scenario_through_the_filter():
    result = allocate_filter(healthcare.services(), healthcare.workers())
    assert result["strategy"] == "first_fit"
    assert result["placements"] == healthcare.FIRST_FIT_PLACEMENTS
    assert set(result) == {"strategy", "placements", "by_node", "unplaced", "remaining", "replica_nodes", "placed",
                           "moves"}


def test_through_jinja_with_the_fqcn():
    templar = Templar(loader=DataLoader(), variables={"services": healthcare.services(), "nodes": healthcare.workers()})
    result = templar.template(trust_as_template("{{ services | nanoedge.core.allocate(nodes, strategy='best_fit') }}"))
    assert result["strategy"] == "best_fit"
    assert result["placements"]["display"] == "w5"
    with pytest.raises(AnsibleFilterError, match="nanoedge.core.allocate: strategy must be one of"):
        templar.template(trust_as_template("{{ services | nanoedge.core.allocate(nodes, strategy='fastest') }}"))


def test_nodes_as_registry_answer_and_options():
    nodes = {profile["node"]: profile for profile in healthcare.workers()}
    result = allocate_filter(healthcare.services(), nodes, strategy="spread", current={"alert": "w2"})
    assert result["placements"]["alert"] == "w2"
    assert result["moves"] == []


@pytest.mark.parametrize("args, kwargs, message", [
    (([{"name": "spo2", "requires": {"memory_mb": -5}}], []), {},
     "nanoedge.core.allocate: service 'spo2' requires memory_mb=-5: must be >= 0"),
    (([], [{"node": "w1"}]), {}, "nanoedge.core.allocate: node 'w1': missing field capabilities"),
    (([], []), {"strategy": "random"},
     "nanoedge.core.allocate: strategy must be one of first_fit, best_fit, spread, optimal, got 'random'"),
    (("spo2", []), {}, "nanoedge.core.allocate: services must be a list of dicts, got str"),
])
def test_errors_name_the_filter(args, kwargs, message):
    with pytest.raises(AnsibleFilterError) as excinfo:
        allocate_filter(*args, **kwargs)
    assert excinfo.value.message == message
