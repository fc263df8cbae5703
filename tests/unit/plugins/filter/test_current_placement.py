# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The current_placement filter as an adapter; the rules are tested in
tests/unit/plugins/plugin_utils/test_site_inputs.py."""
from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from ansible_collections.nanoedge.core.plugins.filter import current_placement

HOSTVARS = {
    "w1": {"inventory_hostname": "w1", "nanoedge_deploy_running": {"services": ["bot"]}},
    "w4": {"inventory_hostname": "w4", "nanoedge_deploy_running": {"services": ["spo2", "hr"]}},
}


def test_registered():
    assert current_placement.FilterModule().filters() == {"current_placement": current_placement.current_placement_filter}


@pytest.mark.parametrize("variables, expected", [
    ({}, {"bot": "w1", "spo2": "w4", "hr": "w4"}),
    ({"nanoedge_swarm_current": {"hr": "w1"}}, {"bot": "w1", "spo2": "w4", "hr": "w1"}),
    ({"_previous": {"placements": {"alert": "w2", "dd": "w4"}}}, {"bot": "w1", "spo2": "w4", "hr": "w4", "alert": "w2"}),
])
def test_as_site_yml_calls_it(variables, expected):
    templar = Templar(loader=DataLoader(), variables=dict(
        {"hostvars": HOSTVARS, "_nodes": {"w1": {}, "w4": {}}, "_previous": {}}, **variables))
    current = templar.template(trust_as_template(
        "{{ _nodes | map('extract', hostvars)"
        " | nanoedge.core.current_placement(swarm=nanoedge_swarm_current | default({}), previous=_previous) }}"))
    assert current == expected


def test_errors_name_the_filter():
    with pytest.raises(AnsibleFilterError) as error:
        current_placement.current_placement_filter([], previous={"placements": ["bot"]})
    assert error.value.message == "nanoedge.core.current_placement: previous.placements must be a dict, got list"
