# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The registry_uri test: the one rule the roles check registry URIs with."""
from __future__ import annotations

import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from ansible_collections.nanoedge.core.plugins.test import registry_uri


def test_registered():
    assert registry_uri.TestModule().tests() == {"registry_uri": registry_uri.registry_uri}


@pytest.mark.parametrize("value, expected", [
    ("coap://m1", True),
    ("coap://m1:5684", True),
    ("coap://m1:5684/", True),
    ("coap://172.30.0.11:5683", True),
    ("coap://[fd00::1]:5683", True),
    ("coap://[::1]", True),
    ("coap://fd00::1:5683", False),
    ("coap://[10.0.0.1]:5683", False),
    ("coap://m1:0", False),
    ("coap://m1:65536", False),
    ("coap://m1/profiles", False),
    ("coap://m1?x=1", False),
    ("coap://u@m1", False),
    ("coaps://m1", False),
    ("http://m1", False),
    ("coap://", False),
    ("", False),
    (5683, False),
    (None, False),
])
def test_registry_uri(value, expected):
    assert registry_uri.registry_uri(value) is expected


def test_as_the_roles_use_it():
    templar = Templar(loader=DataLoader(), variables={"registries": ["coap://[fd00::1]:5683", "coap://fd00::1:5683", "coap://m1"]})
    assert templar.template(trust_as_template("{{ registries | reject('nanoedge.core.registry_uri') | list }}")) == ["coap://fd00::1:5683"]
    assert templar.template(trust_as_template("{{ 'coap://[::1]' is nanoedge.core.registry_uri }}")) is True
