# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: current_placement
short_description: Where each service runs now, for re-planning
version_added: 0.1.0
author: nanoedge.core contributors (!UNKNOWN)
description:
  - Gives the O(nanoedge.core.allocate#filter:current) input of the P(nanoedge.core.allocate#filter) filter in the
    playbook C(nanoedge.core.site), so services stay where they run while their node fits them.
  - First the services each worker reports running (its C(nanoedge_deploy_running.services), the fact of
    M(nanoedge.core.running_facts)), on that worker; a service found on two workers is on the later one.
  - Then O(swarm), over what the workers reported.
  - Then, for a service found nowhere so far whose node in O(previous) is not among the workers given (a worker not
    reached, or whose lease ran out), that node; so the plan lists the services that leave a lost node as moves.
options:
  _input:
    description:
      - The workers planned for, as their variables, in order (C(nodes | map('extract', hostvars)), where C(nodes) is
        the result of P(nanoedge.core.plan_nodes#filter)), read for C(inventory_hostname) and
        C(nanoedge_deploy_running).
    type: list
    elements: dict
    required: true
  swarm:
    description: Service name to the node its Docker Swarm service is pinned to (backend C(swarm)).
    type: dict
    default: {}
  previous:
    description:
      - The previous plan document (the plan file C(nanoedge.core.site) writes); its C(placements) are read.
      - V({}) or V(null) when there is none.
    type: dict
    default: {}
extends_documentation_fragment:
  - nanoedge.core.attributes.filter
seealso:
  - plugin: nanoedge.core.allocate
    plugin_type: filter
  - plugin: nanoedge.core.plan_nodes
    plugin_type: filter
  - module: nanoedge.core.running_facts
"""

EXAMPLES = r"""
- name: Re-plan, keeping services where they run
  ansible.builtin.set_fact:
    plan: "{{ services | nanoedge.core.allocate(nodes, current=current) }}"
  vars:
    previous: "{{ lookup('ansible.builtin.file', 'nanoedge-plan.json') | from_json }}"
    current: >-
      {{ nodes | map('extract', hostvars)
         | nanoedge.core.current_placement(swarm=nanoedge_swarm_current | default({}), previous=previous) }}
  # w4 runs spo2 and hrv, w2 was not reached and ran bot:
  # current == {"spo2": "w4", "hrv": "w4", "bot": "w2"}
"""

RETURN = r"""
_value:
  description: Service name to the node it runs on now.
  type: dict
  sample: {"spo2": "w4", "hrv": "w4", "bot": "w2"}
"""

import typing as t  # noqa: E402

from ansible.errors import AnsibleFilterError  # noqa: E402

from ansible_collections.nanoedge.core.plugins.plugin_utils._site_inputs import SiteInputError, current_placement  # noqa: E402

FILTER = "nanoedge.core.current_placement"


def current_placement_filter(workers: t.Any, swarm: t.Any = None, previous: t.Any = None) -> t.Dict[str, t.Any]:
    try:
        return current_placement(workers, swarm, previous)
    except SiteInputError as exc:
        raise AnsibleFilterError("%s: %s" % (FILTER, exc)) from exc


class FilterModule:
    def filters(self) -> t.Dict[str, t.Callable[..., t.Any]]:
        return {"current_placement": current_placement_filter}
