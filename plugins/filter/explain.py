# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: explain
short_description: Tell, for every service and every node, whether the node can run the service and why not
version_added: 0.1.0
author: nanoedge.core contributors (!UNKNOWN)
description:
  - Companion of the P(nanoedge.core.allocate#filter) filter for C(--check) runs and troubleshooting. Takes the same
    input and options and returns the whole service by node table instead of the placement.
  - Each cell is V(placed) (the allocation puts the service, or one of its replicas, there), V(fits) (the node
    could take the service in addition to what the allocation put on it), or the first reason it cannot, in
    the order the paper checks them (capability, cores, memory, power, battery, network, storage), for example
    V(missing capability pom) or V(needs 2 cores, 1 left after spo2, hrv).
  - With O(static=true) each service is checked against each node's whole profile, as if nothing else ran
    there, so cells are only V(fits) or a reason.
options:
  _input:
    description: The services, as for P(nanoedge.core.allocate#filter).
    type: list
    elements: dict
    required: true
  nodes:
    description: The node profiles, a list or a dictionary of node name to profile, as for P(nanoedge.core.allocate#filter).
    type: raw
    required: true
  strategy:
    description: The strategy of the allocation the table is made for (see P(nanoedge.core.allocate#filter)).
    type: str
    default: first_fit
    choices: [first_fit, best_fit, spread, optimal]
  current:
    description: The placement running now, as for P(nanoedge.core.allocate#filter).
    type: dict
  time_limit:
    description: Seconds the solver may spend with O(strategy=optimal).
    type: float
    default: 10
  static:
    description: Check each service against each node's whole profile instead of against the allocation.
    type: bool
    default: false
  names:
    description:
      - Only these services (by name) get a row. The way to see, node by node, why a service of a large
        cluster is unplaced; past 50 nodes P(nanoedge.core.allocate#filter) gives only counts per cause.
    type: list
    elements: str
extends_documentation_fragment:
  - nanoedge.core.attributes.filter
seealso:
  - plugin: nanoedge.core.allocate
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Show why each service can or cannot run on each node
  ansible.builtin.debug:
    msg: "{{ services | nanoedge.core.explain(nodes) }}"
  vars:
    services:
      - name: spo2
        requires: {capabilities: [pom], cpu: 1, memory_mb: 64}
      - name: xray
        requires: {memory_mb: 2048}
    nodes:
      - node: w1
        capabilities: [bot]
        cpu: {cores: 4}
        memory_mb: {available: 512}
        storage_mb: {free: 20000}
        power: {source: ac, battery_percent: null}
        network: [wifi]
      - node: w4
        capabilities: [pom]
        cpu: {cores: 4}
        memory_mb: {available: 640}
        storage_mb: {free: 21033}
        power: {source: ac, battery_percent: null}
        network: [wifi]
  # {"spo2": {"w1": "missing capability pom", "w4": "placed"},
  #  "xray": {"w1": "needs 2048 MB memory, has 512", "w4": "needs 2048 MB memory, 576 left after spo2"}}

- name: In check mode, print the table for the plan the play would apply
  ansible.builtin.debug:
    msg: "{{ services | nanoedge.core.explain(nodes, strategy='spread') | to_nice_yaml }}"
  when: ansible_check_mode

- name: Node by node, why two services of a large cluster stay unplaced
  ansible.builtin.debug:
    msg: "{{ services | nanoedge.core.explain(nodes, names=['spo2', 'xray']) }}"

- name: Which nodes could run each service at all
  ansible.builtin.debug:
    msg: "{{ services | nanoedge.core.explain(nodes, static=true) }}"
"""

RETURN = r"""
_value:
  description:
    - Service name (in the given order; with O(names) only those) to a dictionary of node name (in the given
      order) to V(placed), V(fits) or the first reason the node cannot run the service.
  type: dict
  sample:
    spo2: {w1: missing capability pom, w4: placed}
    xray: {w1: "needs 2048 MB memory, has 512", w4: "needs 2048 MB memory, 576 left after spo2"}
"""

import typing as t

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import BOOLEANS_FALSE, BOOLEANS_TRUE

from ansible_collections.nanoedge.core.plugins.module_utils._plan import DEFAULT_STRATEGY
from ansible_collections.nanoedge.core.plugins.plugin_utils._allocate import DEFAULT_TIME_LIMIT, AllocationError, explain

FILTER = "nanoedge.core.explain"


def explain_filter(services: t.Any, nodes: t.Any, strategy: t.Any = DEFAULT_STRATEGY, current: t.Any = None,
                   time_limit: t.Any = DEFAULT_TIME_LIMIT, static: t.Any = False,
                   names: t.Any = None) -> t.Dict[str, t.Dict[str, str]]:
    if isinstance(static, str):
        static = static.lower()
    if not isinstance(static, (str, int, float)) or (static not in BOOLEANS_TRUE and static not in BOOLEANS_FALSE):
        raise AnsibleFilterError("%s: static must be a boolean, got %r" % (FILTER, static))
    as_static = static in BOOLEANS_TRUE
    try:
        return explain(services, nodes, strategy=strategy, current=current, time_limit=time_limit, static=as_static,
                       names=names)
    except AllocationError as exc:
        raise AnsibleFilterError("%s: %s" % (FILTER, exc)) from exc


class FilterModule:
    def filters(self) -> t.Dict[str, t.Callable[..., t.Any]]:
        return {"explain": explain_filter}
