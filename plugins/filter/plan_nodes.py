# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: plan_nodes
short_description: The workers to plan for and the profiles to plan with
version_added: 0.1.0
author: nanoedge.core contributors (!UNKNOWN)
description:
  - Gives the nodes input of the P(nanoedge.core.allocate#filter) filter in the playbook C(nanoedge.core.site), that
    is the workers to plan for, in the order given (the order first fit tries nodes in), each with its profile.
  - With O(nodes_from=discovery), the workers reached in this run (their C(nanoedge_site_discovered), the result
    step 1 registers, has C(ansible_facts)); each with its live profile from O(live) when the registry has one, else
    the profile this run discovered (C(nanoedge_profile), the fact of M(nanoedge.core.resource_facts)); in check mode
    nothing was reported, so the discovered profile stands in.
  - With O(nodes_from=registry) (continuous reconcile, which skips discovery), every worker with a live profile in
    O(live), with that profile.
options:
  _input:
    description:
      - The workers, as their variables (C(groups['workers'] | map('extract', hostvars))), read for
        C(inventory_hostname), C(nanoedge_site_discovered) and C(nanoedge_profile).
    type: list
    elements: dict
    required: true
  live:
    description: Node name to live profile, the C(profiles) of the P(nanoedge.core.registry_profiles#lookup) lookup.
    type: dict
    required: true
  nodes_from:
    description: Where the set of workers comes from.
    type: str
    default: discovery
    choices: [discovery, registry]
extends_documentation_fragment:
  - nanoedge.core.attributes.filter
seealso:
  - plugin: nanoedge.core.allocate
    plugin_type: filter
  - plugin: nanoedge.core.current_placement
    plugin_type: filter
  - plugin: nanoedge.core.registry_profiles
    plugin_type: lookup
"""

EXAMPLES = r"""
- name: Plan for the workers reached in this run
  ansible.builtin.set_fact:
    plan: "{{ services | nanoedge.core.allocate(nodes) }}"
  vars:
    live: "{{ lookup('nanoedge.core.registry_profiles', registries=['coap://10.0.0.11']) }}"
    nodes: >-
      {{ groups['workers'] | map('extract', hostvars)
         | nanoedge.core.plan_nodes(live.profiles, nodes_from=nanoedge_site_nodes_from | default('discovery')) }}
  # nodes == {"w1": {"node": "w1", ...}, "w4": {"node": "w4", ...}}
"""

RETURN = r"""
_value:
  description: Worker name to the profile to plan with, in the order given.
  type: dict
  sample: {"w1": {"node": "w1", "capabilities": ["bot"]}, "w4": {"node": "w4", "capabilities": ["pom"]}}
"""

import typing as t  # noqa: E402

from ansible.errors import AnsibleFilterError  # noqa: E402

from ansible_collections.nanoedge.core.plugins.plugin_utils._site_inputs import SiteInputError, plan_nodes  # noqa: E402

FILTER = "nanoedge.core.plan_nodes"


def plan_nodes_filter(workers: t.Any, live: t.Any, nodes_from: t.Any = "discovery") -> t.Dict[str, t.Any]:
    try:
        return plan_nodes(workers, live, nodes_from)
    except SiteInputError as exc:
        raise AnsibleFilterError("%s: %s" % (FILTER, exc)) from exc


class FilterModule:
    def filters(self) -> t.Dict[str, t.Callable[..., t.Any]]:
        return {"plan_nodes": plan_nodes_filter}
