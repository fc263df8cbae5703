# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: plan_hosts
short_description: The nodes a new plan touches, and how
version_added: 0.1.0
author: nanoedge.core contributors (!UNKNOWN)
description:
  - Compares the placement running now with a new plan and lists, among the nodes given, those the change touches.
  - C(start), the nodes that gain a service; C(rewire), the nodes that keep a consumer of a service whose nodes
    changed (the consumer must start again with its producers' new addresses); C(stop), the nodes that lose a
    service, or that O(returning) names (they may still run what was moved away from them).
  - The playbook C(nanoedge.core.site) deploys to a worker that already runs its part of the plan only when it is
    to be rewired; the reconcile service's targeted runs deploy to these nodes only, C(start) and C(rewire) before
    C(stop) (make-before-break).
options:
  _input:
    description: The new plan, the result of P(nanoedge.core.allocate#filter).
    type: dict
    required: true
  services:
    description: The services as step 3 returned them (P(nanoedge.core.service_profiles#lookup)), with their descriptions.
    type: list
    elements: dict
    required: true
  current:
    description: Service name to the node (or nodes) it runs on now (P(nanoedge.core.current_placement#filter)).
    type: dict
    required: true
  nodes:
    description: The nodes that can be deployed to, in order (the nodes planned for).
    type: list
    elements: str
    required: true
  returning:
    description: Nodes the previous plan was not made for.
    type: list
    elements: str
    default: []
  directory:
    description:
      - The nodes' service directory as their services reach it (the deploy role's C(nanoedge_deploy_directory));
        empty for none. A consumer that finds a producer there by name (both descriptions set
        C(directory) to V(true)) is not rewired when that producer moves.
    type: str
    default: ""
extends_documentation_fragment:
  - nanoedge.core.attributes.filter
seealso:
  - plugin: nanoedge.core.allocate
    plugin_type: filter
  - plugin: nanoedge.core.current_placement
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Find the nodes the plan touches
  ansible.builtin.set_fact:
    touched: "{{ plan | nanoedge.core.plan_hosts(services, current=current, nodes=plan.by_node | list) }}"
  # spo2 moved from w4 to w2 and display on w5 reads it:
  # touched == {"start": ["w2"], "rewire": ["w5"], "stop": ["w4"]}
"""

RETURN = r"""
_value:
  description: C(start), C(rewire) and C(stop), each a list of node names in the order of O(nodes).
  type: dict
  sample: {"start": ["w2"], "rewire": ["w5"], "stop": ["w4"]}
"""

import typing as t  # noqa: E402

from ansible.errors import AnsibleFilterError  # noqa: E402

from ansible_collections.nanoedge.core.plugins.plugin_utils._moves import MoveError, hosts_to_deploy  # noqa: E402

FILTER = "nanoedge.core.plan_hosts"


def plan_hosts(plan: t.Any, services: t.Any, current: t.Any, nodes: t.Any, returning: t.Any = (),
               directory: t.Any = "") -> t.Dict[str, t.Any]:
    try:
        return hosts_to_deploy(services, current, plan, list(nodes) if isinstance(nodes, (list, tuple)) else nodes,
                               returning or (), str(directory or ""))
    except MoveError as exc:
        raise AnsibleFilterError("%s: %s" % (FILTER, exc)) from exc


class FilterModule:
    def filters(self) -> t.Dict[str, t.Callable[..., t.Any]]:
        return {"plan_hosts": plan_hosts}
