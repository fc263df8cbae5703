# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The plan_json filter: the plan file's text, indented for a small cluster, compact for a large one."""
from __future__ import annotations

import json

import pytest
from ansible.errors import AnsibleFilterError
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.filter.core import to_nice_json
from ansible.template import Templar, trust_as_template

from ansible_collections.nanoedge.core.plugins.filter import plan_json

UNPLACED = [{"service": "xray", "missing": 1, "summary": "0/1 nodes fit: 1 missing capability xr",
             "counts": [{"code": "capability", "missing": ["xr"], "count": 1}]}]


def test_registered() -> None:
    assert plan_json.FilterModule().filters() == {"plan_json": plan_json.plan_json_filter}


def test_a_small_plan_as_to_nice_json_writes_it() -> None:
    document = {"strategy": "first_fit", "by_node": {"w1": ["bot"]}, "unplaced": UNPLACED}
    assert plan_json.plan_json_filter(document) == to_nice_json(document, indent=2)


def test_a_large_plan_compact_and_without_summaries() -> None:
    document = {"strategy": "first_fit", "by_node": {"w%02d" % index: [] for index in range(51)}, "unplaced": UNPLACED,
                "placements": {}, "why": {"xray": "no node fits: 1 missing capability xr"}}
    text = plan_json.plan_json_filter(document)
    assert text.startswith('{"by_node":{"w00":[],"w01":[]')
    assert " " not in text
    assert json.loads(text) == dict(document, why={}, unplaced=[
        {"service": "xray", "missing": 1, "counts": [{"code": "capability", "missing": ["xr"], "count": 1}]}])


def test_as_site_yml_calls_it() -> None:
    templar = Templar(loader=DataLoader(), variables={"plan": {"by_node": {"w1": []}, "unplaced": []}})
    assert templar.template(trust_as_template("{{ plan | nanoedge.core.plan_json }}")) == \
        '{\n  "by_node": {\n    "w1": []\n  },\n  "unplaced": []\n}'


def test_errors_name_the_filter() -> None:
    with pytest.raises(AnsibleFilterError) as error:
        plan_json.plan_json_filter([])
    assert str(error.value) == "nanoedge.core.plan_json: the input must be a plan document (a dict), got list"
