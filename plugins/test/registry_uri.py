# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: registry_uri
short_description: Whether a value is the URI of a CoAP profile registry
version_added: 0.1.0
author: nanoedge.core contributors (!UNKNOWN)
description:
  - True for a string C(coap://host) or C(coap://host:port), with an optional C(/) at the end, a port from 1 to 65535
    and an IPv6 address in brackets; the registry's paths are fixed, so nothing else may follow.
  - The same rule M(nanoedge.core.coap_report), the P(nanoedge.core.registry_profiles#lookup) lookup, the
    P(nanoedge.core.registry#inventory) inventory plugin and the roles apply to the registries they are given.
options:
  _input:
    description: The value to check.
    type: raw
    required: true
seealso:
  - plugin: nanoedge.core.registry_uris
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Check the registries before installing anything
  ansible.builtin.assert:
    that: registries | reject('nanoedge.core.registry_uri') | list | length == 0
    fail_msg: "not coap://host[:port]: {{ registries | reject('nanoedge.core.registry_uri') | list }}"
  vars:
    registries: ["coap://10.0.0.11", "coap://[fd00::12]:5683"]
"""

RETURN = r"""
_value:
  description: Whether the input is a registry URI.
  type: bool
"""

import typing as t  # noqa: E402

from ansible_collections.nanoedge.core.plugins.module_utils._coap import parse_registry  # noqa: E402


def registry_uri(value: t.Any) -> bool:
    try:
        parse_registry(value)
    except ValueError:
        return False
    return True


class TestModule:
    def tests(self) -> t.Dict[str, t.Callable[..., t.Any]]:
        return {"registry_uri": registry_uri}
