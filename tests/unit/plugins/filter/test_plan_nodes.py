# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The plan_nodes filter as an adapter; the rules are tested in
tests/unit/plugins/plugin_utils/test_site_inputs.py."""
from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from ansible_collections.nanoedge.core.plugins.filter import plan_nodes

W1 = {"node": "w1"}
W2 = {"node": "w2"}
HOSTVARS = {
    "w1": {"inventory_hostname": "w1", "nanoedge_site_discovered": {"ansible_facts": {}}, "nanoedge_profile": {"node": "w1", "old": True}},
    "w2": {"inventory_hostname": "w2", "nanoedge_site_discovered": {"ansible_facts": {}}, "nanoedge_profile": W2},
    "w3": {"inventory_hostname": "w3"},
}


def test_registered():
    assert plan_nodes.FilterModule().filters() == {"plan_nodes": plan_nodes.plan_nodes_filter}


@pytest.mark.parametrize("nodes_from, expected", [
    ("discovery", {"w1": W1, "w2": W2}),
    ("registry", {"w1": W1}),
])
def test_as_site_yml_calls_it(nodes_from, expected):
    templar = Templar(loader=DataLoader(), variables={
        "groups": {"workers": ["w1", "w2", "w3"]}, "hostvars": HOSTVARS, "nanoedge_live": {"profiles": {"w1": W1}},
        "nanoedge_site_nodes_from": nodes_from})
    nodes = templar.template(trust_as_template(
        "{{ groups['workers'] | default([]) | map('extract', hostvars)"
        " | nanoedge.core.plan_nodes(nanoedge_live.profiles, nodes_from=nanoedge_site_nodes_from | default('discovery')) }}"))
    assert nodes == expected


def test_errors_name_the_filter():
    with pytest.raises(AnsibleFilterError) as error:
        plan_nodes.plan_nodes_filter([], {}, nodes_from="inventory")
    assert error.value.message == "nanoedge.core.plan_nodes: nodes_from must be discovery or registry, got 'inventory'"
