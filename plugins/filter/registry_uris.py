# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: registry_uris
short_description: The URIs of the managers' CoAP profile registries
version_added: 0.1.0
author: nanoedge.core contributors (!UNKNOWN)
description:
  - Turns the managers of the inventory into the URIs of their profile registries (role
    R(nanoedge.core.registry,ansible_collections.nanoedge.core.registry_role)), C(coap://host:port), in the order
    given, which is the order clients fail over in.
  - A manager's registry is at its C(nanoedge_address), or at its inventory name when it has none.
  - IPv6 addresses are put in brackets (C(coap://[fd00::1]:5683)); an address already in brackets is kept.
  - Every URI is checked with the rule every registry URI given to the collection is checked with (see the
    P(nanoedge.core.registry_uri#test) test).
options:
  _input:
    description:
      - The managers, in priority order. Each is either the variables of a manager (C(hostvars[name]), so
        C(groups['managers'] | map('extract', hostvars)) is the usual input), read for C(inventory_hostname) and
        C(nanoedge_address), or the address itself (a host name, an IPv4 or an IPv6 address).
    type: list
    elements: raw
    required: true
  port:
    description:
      - The UDP port of every registry, as an integer or a string of digits (as C(--extra-vars) gives it).
      - V(null) means the default.
    type: raw
    default: 5683
extends_documentation_fragment:
  - nanoedge.core.attributes.filter
seealso:
  - plugin: nanoedge.core.registry_uri
    plugin_type: test
  - plugin: nanoedge.core.registry_profiles
    plugin_type: lookup
  - module: nanoedge.core.coap_report
"""

EXAMPLES = r"""
- name: Report to every manager's registry
  nanoedge.core.coap_report:
    registries: >-
      {{ groups['managers'] | map('extract', hostvars)
         | nanoedge.core.registry_uris(port=nanoedge_registry_port | default(none)) }}
  # managers m1 (nanoedge_address: 10.0.0.11) and m2 (nanoedge_address: fd00::12):
  # ["coap://10.0.0.11:5683", "coap://[fd00::12]:5683"]

- name: Registries from addresses
  ansible.builtin.debug:
    msg: "{{ ['m1.local', '::1'] | nanoedge.core.registry_uris(port=5684) }}"
  # ["coap://m1.local:5684", "coap://[::1]:5684"]
"""

RETURN = r"""
_value:
  description: One C(coap://host:port) per manager, in the order given.
  type: list
  elements: str
  sample: ["coap://10.0.0.11:5683", "coap://[fd00::12]:5683"]
"""

import typing as t  # noqa: E402

from ansible.errors import AnsibleFilterError  # noqa: E402

from ansible_collections.nanoedge.core.plugins.module_utils._coap import DEFAULT_PORT  # noqa: E402
from ansible_collections.nanoedge.core.plugins.plugin_utils._site_inputs import SiteInputError, registry_uris  # noqa: E402

FILTER = "nanoedge.core.registry_uris"


def registry_uris_filter(managers: t.Any, port: t.Any = DEFAULT_PORT) -> t.List[str]:
    try:
        return registry_uris(managers, port)
    except SiteInputError as exc:
        raise AnsibleFilterError("%s: %s" % (FILTER, exc)) from exc


class FilterModule:
    def filters(self) -> t.Dict[str, t.Callable[..., t.Any]]:
        return {"registry_uris": registry_uris_filter}
