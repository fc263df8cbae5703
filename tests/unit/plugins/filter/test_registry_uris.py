# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The registry_uris filter as an adapter; the rules are tested in
tests/unit/plugins/plugin_utils/test_site_inputs.py."""
from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from ansible_collections.nanoedge.core.plugins.filter import registry_uris

MANAGERS = {"m1": {"inventory_hostname": "m1", "nanoedge_address": "fd00::1"},
            "m2": {"inventory_hostname": "m2", "nanoedge_address": "::1"},
            "m3": {"inventory_hostname": "m3"}}


def render(expression: str, **variables: object) -> object:
    templar = Templar(loader=DataLoader(), variables=dict({"groups": {"managers": list(MANAGERS)},
                                                           "hostvars": MANAGERS}, **variables))
    return templar.template(trust_as_template(expression))


def test_registered():
    assert registry_uris.FilterModule().filters() == {"registry_uris": registry_uris.registry_uris_filter}


@pytest.mark.parametrize("expression, variables, expected", [
    ("{{ groups['managers'] | map('extract', hostvars) | nanoedge.core.registry_uris }}", {},
     ["coap://[fd00::1]:5683", "coap://[::1]:5683", "coap://m3:5683"]),
    # as site.yml and the reconcile role call it: the port from the inventory, or the default
    ("{{ groups['managers'] | map('extract', hostvars) | nanoedge.core.registry_uris(port=nanoedge_registry_port | default(none)) }}",
     {"nanoedge_registry_port": "5684"}, ["coap://[fd00::1]:5684", "coap://[::1]:5684", "coap://m3:5684"]),
    ("{{ groups['managers'] | map('extract', hostvars) | nanoedge.core.registry_uris(port=nanoedge_registry_port | default(none)) }}",
     {}, ["coap://[fd00::1]:5683", "coap://[::1]:5683", "coap://m3:5683"]),
    ("{{ ['fd00::1', '[::1]'] | nanoedge.core.registry_uris(6000) }}", {}, ["coap://[fd00::1]:6000", "coap://[::1]:6000"]),
])
def test_through_jinja(expression, variables, expected):
    assert render(expression, **variables) == expected


def test_errors_name_the_filter_and_the_manager():
    with pytest.raises(AnsibleFilterError) as error:
        registry_uris.registry_uris_filter([{"inventory_hostname": "m1", "nanoedge_address": "fd00::1:5683:x"}])
    assert error.value.message == ("nanoedge.core.registry_uris: manager 'm1': host 'fd00::1:5683:x': has a ':' but "
                                   "is not an IPv6 address (give the port separately)")
