# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The plan_hosts filter as an adapter; the rules are tested in tests/unit/plugins/plugin_utils/test_moves.py."""
from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from ansible_collections.nanoedge.core.plugins.filter import plan_hosts
from ansible_collections.nanoedge.core.plugins.plugin_utils._service_description import normalize_description


def service(name, consumes=()):
    return {"name": name, "requires": {}, "description": normalize_description({
        "name": name, "version": "1.0.0", "requirements": {}, "port": {"number": 5700, "protocol": "udp"},
        "provides": {"path": "/" + name},
        "consumes": {p: {"env": "NANOEDGE_%s_URI" % p.upper(), "format": "uri"} for p in consumes}})}


SERVICES = [service("spo2"), service("alert", ["spo2"])]


def test_registered():
    assert plan_hosts.FilterModule().filters() == {"plan_hosts": plan_hosts.plan_hosts}


def test_as_site_yml_calls_it():
    templar = Templar(loader=DataLoader(), variables={
        "plan": {"replica_nodes": {"spo2": ["w2"], "alert": ["w1"]}, "by_node": {"w1": ["alert"], "w2": ["spo2"]}},
        "services": SERVICES, "current": {"spo2": "w4", "alert": "w1"}})
    touched = templar.template(trust_as_template(
        "{{ plan | nanoedge.core.plan_hosts(services, current=current, nodes=plan.by_node | list) }}"))
    assert touched == {"start": ["w2"], "rewire": ["w1"], "stop": []}


def test_errors_name_the_filter():
    with pytest.raises(AnsibleFilterError) as error:
        plan_hosts.plan_hosts({"replica_nodes": {}}, SERVICES, ["w1"], ["w1"])
    assert str(error.value) == ("nanoedge.core.plan_hosts: current must be a dict service -> node(s) or an allocation"
                                " result, got list")
