# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: allocate
short_description: Decide which node runs each nanoservice
version_added: 0.1.0
author: nanoedge.core contributors (!UNKNOWN)
description:
  - Matches service requirements (as returned by the P(nanoedge.core.service_profiles#lookup) lookup) against node
    resource profiles (as built by the M(nanoedge.core.resource_facts) module) and
    returns where each service runs, and why a service cannot run anywhere.
  - A node satisfies a service when it has every required capability, at least the required CPU cores,
    available memory and free storage, the required power source, the required network type and, on battery
    (DC) power, at least O(ignore:min_battery_percent) percent charge. Capabilities are shared (two services can use
    one sensor); cores, memory and storage are used up by each service placed on the node.
  - With O(strategy=first_fit) this is Algorithm 1 of Islam et al. (IEEE Access 2021) exactly; the other
    strategies are additions.
  - Pure function of its input; nothing is contacted and the input is not changed.
options:
  _input:
    description:
      - The services to place, in the order O(strategy=first_fit) considers them.
      - Each is a dictionary with C(name) (unique) and C(requires) (the requirement dictionary with keys
        C(capabilities), C(cpu), C(memory_mb), C(storage_mb), C(power), C(network), C(min_battery_percent);
        a missing key, V(0), V(null) or V("") means no requirement).
      - Optional C(priority) (number, default V(0)); higher goes first in every strategy but O(strategy=first_fit),
        which keeps the given order.
      - Optional C(replicas) (integer, default V(1)); the replicas of one service go to distinct nodes.
      - Other keys are ignored.
    type: list
    elements: dict
    required: true
  nodes:
    description:
      - The node resource profiles, as a list, or as a dictionary of node name to profile (the answer of the
        CoAP profile registry's C(GET /profiles)). The order given is the order nodes are tried in.
      - Each profile needs C(node), C(capabilities), C(cpu.cores), C(memory_mb.available), C(storage_mb.free),
        C(power.source) and C(network); C(power.battery_percent) is read when present. Other fields may be left out,
        but every field given must follow the profile schema (the one M(nanoedge.core.resource_facts) and the
        registry use), for example C(cpu.cores) a whole number of at least 1 and capability names in lower case.
    type: raw
    required: true
  strategy:
    description:
      - V(first_fit) takes services in the given order and puts each on the first node, in the given order,
        that satisfies it (the paper's algorithm).
      - V(best_fit) puts each service on the node that satisfies it with the least capacity left, packing
        services onto few nodes.
      - V(spread) puts each service on the node that satisfies it with the most capacity left, balancing load.
      - V(optimal) places as many services as possible, then maximises their total priority, then uses as few
        nodes as possible, with the HiGHS mixed-integer solver (Python library C(highspy) on the controller).
        It never places fewer services than V(first_fit).
    type: str
    default: first_fit
    choices: [first_fit, best_fit, spread, optimal]
  current:
    description:
      - The placement running now, as a dictionary of service name to node name (or list of node names for
        replicated services), or the result of an earlier call of this filter.
      - Each service stays on its current node while that node still satisfies it; only the rest is allocated
        with O(strategy). RV(_value.moves) lists what changes.
    type: dict
  time_limit:
    description:
      - Seconds the solver may spend with O(strategy=optimal). When it runs out, the best placement found so
        far is returned and RV(_value.optimal.proven) is V(false).
    type: float
    default: 10
extends_documentation_fragment:
  - nanoedge.core.attributes.filter
notes:
  - Quantities are compared in millionths; requirements are rounded up and capacities down.
  - For each service that cannot be placed (or misses replicas) RV(_value.unplaced) counts the nodes by the first reason
    they do not fit, in the order the paper checks them (capability, cores, memory, power, battery, network,
    storage), and, in clusters of up to 50 nodes, gives that reason per node. The result grows with services +
    nodes. The P(nanoedge.core.explain#filter) filter gives the service by node table, for named services too.
seealso:
  - plugin: nanoedge.core.explain
    plugin_type: filter
  - plugin: nanoedge.core.service_profiles
    plugin_type: lookup
  - module: nanoedge.core.resource_facts
"""

EXAMPLES = r"""
- name: Place the healthcare services with the paper's algorithm
  ansible.builtin.set_fact:
    plan: "{{ services | nanoedge.core.allocate(nodes) }}"
  vars:
    services:
      - name: spo2
        requires: {capabilities: [pom], cpu: 1, memory_mb: 64, storage_mb: 20}
      - name: hrv
        requires: {capabilities: [pom], cpu: 1, memory_mb: 64, storage_mb: 20}
      - name: bot
        requires: {capabilities: [bot], cpu: 1, memory_mb: 32}
      - name: xray
        requires: {capabilities: [xr], memory_mb: 2048}
    nodes:
      - node: w1
        capabilities: [bot]
        cpu: {cores: 4}
        memory_mb: {available: 900}
        storage_mb: {free: 20000}
        power: {source: ac, battery_percent: null}
        network: [bluetooth, wifi]
      - node: w4
        capabilities: [pom]
        cpu: {cores: 4}
        memory_mb: {available: 640}
        storage_mb: {free: 21033}
        power: {source: dc, battery_percent: 80}
        network: [bluetooth, wifi]
  # plan.placements == {"spo2": "w4", "hrv": "w4", "bot": "w1"}
  # plan.unplaced[0].reasons == {"w1": "missing capability xr", "w4": "missing capability xr"}

- name: Fail early when a service cannot run anywhere
  ansible.builtin.assert:
    that: plan.unplaced | length == 0
    fail_msg: "{{ plan.unplaced | to_nice_yaml }}"

- name: Gather each worker's profile (fact nanoedge_profile)
  nanoedge.core.resource_facts:

- name: Allocate the images found in the OCI registry to the profiled workers, balancing load
  ansible.builtin.set_fact:
    plan: >-
      {{ lookup('nanoedge.core.service_profiles', registry='http://127.0.0.1:5000', repositories=['nanoedge/*'])
         | nanoedge.core.allocate(ansible_play_hosts | map('extract', hostvars, 'nanoedge_profile') | list,
                                  strategy='spread') }}
  run_once: true

- name: Re-plan after a node changed, moving as few services as possible
  ansible.builtin.set_fact:
    new_plan: "{{ services | nanoedge.core.allocate(nodes, strategy='best_fit', current=plan) }}"

- name: Show what moves
  ansible.builtin.debug:
    msg: "{{ item.service }}: {{ item.from }} -> {{ item.to }}"
  loop: "{{ new_plan.moves }}"

- name: Best placement with the solver, at most 5 seconds
  ansible.builtin.set_fact:
    plan: "{{ services | nanoedge.core.allocate(nodes, strategy='optimal', time_limit=5) }}"

- name: Run every service on its node (one host per node name)
  ansible.builtin.debug:
    msg: "{{ inventory_hostname }} runs {{ plan.by_node[inventory_hostname] | default([]) }}"
"""

RETURN = r"""
_value:
  description: The allocation (C(docs/contracts.md), "The allocation result and the plan file").
  type: dict
  contains:
    strategy:
      description: The strategy used.
      type: str
      returned: always
      sample: first_fit
    placements:
      description:
        - Service name to the node it runs on, for every service placed.
        - For a service with several replicas, the node of its first replica; RV(_value.replica_nodes) has them all.
      type: dict
      returned: always
      sample: {"spo2": "w4", "hrv": "w4", "bot": "w1"}
    replica_nodes:
      description: Service name to the list of nodes its replicas run on, for every service placed.
      type: dict
      returned: always
      sample: {"spo2": ["w4"], "hrv": ["w4"], "bot": ["w1"], "web": ["w1", "w3"]}
    by_node:
      description: Every node, in the given order, to the services placed on it, in placement order.
      type: dict
      returned: always
      sample: {"w1": ["bot"], "w2": [], "w4": ["spo2", "hrv"]}
    unplaced:
      description: The services (in the given order) that could not be placed, or not with all their replicas.
      type: list
      elements: dict
      returned: always
      contains:
        service:
          description: The service name.
          type: str
          sample: xray
        summary:
          description: The counts as one line, for people.
          type: str
          sample: "0/3 nodes fit: 1 missing capability xr, 1 not enough memory (needs 2048 MB), 1 not enough cpu (needs 2 cores)"
        counts:
          description:
            - Why, for programs that must not read English; one entry per cause C(code) (see RV(_value.unplaced[].causes);
              per set of C(missing) capabilities for V(capability)) with C(count), how many nodes fail first with
              it, checked against what is left on them after the placement, and the service's figures involved
              (C(needs), C(missing), C(service)). The counts add up to the number of nodes.
          type: list
          elements: dict
          sample: [{"code": "capability", "missing": ["xr"], "count": 1}, {"code": "memory", "needs": 2048, "count": 1},
                   {"code": "cpu", "needs": 2, "count": 1}]
        reasons:
          description:
            - Only with at most 50 nodes. Node name to the first reason that node cannot take the service, checked
              against what is left on it after the placement.
          type: dict
          sample: {"w1": "missing capability xr", "w2": "needs 2048 MB memory, has 512",
                   "w4": "needs 2 cores, 1 left after spo2, hrv"}
        causes:
          description:
            - The same reasons as data, for programs that must not read English; one entry per distinct cause,
              with the nodes (in the given order) it applies to. Together they name every node once.
            - C(code) is V(replica) (the node already runs a replica; C(service)), V(capability) (C(missing),
              the capabilities the node lacks), V(cpu), V(memory) or V(storage) (C(needs), what is left C(has),
              and when other services took the room C(after), the first five of them, and C(more), how many
              others), V(power) or V(network) (C(needs), what the node C(has)), V(battery) (C(needs) in percent,
              the node's level C(has), V(null) when unknown) or V(fits) (the node could take it).
            - Only with at most 50 nodes, like RV(_value.unplaced[].reasons).
          type: list
          elements: dict
          sample: [{"code": "capability", "missing": ["xr"], "nodes": ["w1"]},
                   {"code": "memory", "needs": 2048, "has": 512, "nodes": ["w2"]},
                   {"code": "cpu", "needs": 2, "has": 1, "after": ["spo2", "hrv"], "nodes": ["w4"]}]
        missing:
          description: How many replicas of the service are not placed (V(1) for a service without replicas).
          type: int
          sample: 1
      sample: [{"service": "xray", "summary": "0/1 nodes fit: 1 missing capability xr",
                "counts": [{"code": "capability", "missing": ["xr"], "count": 1}],
                "reasons": {"w1": "missing capability xr"},
                "causes": [{"code": "capability", "missing": ["xr"], "nodes": ["w1"]}], "missing": 1}]
    remaining:
      description: Every node to the CPU cores, memory (MB) and storage (MB) left after the placement.
      type: dict
      returned: always
      sample: {"w1": {"cpu": 3, "memory_mb": 400, "storage_mb": 900}}
    placed:
      description: The number of service replicas placed.
      type: int
      returned: always
      sample: 3
    moves:
      description:
        - With O(current), each change against it. V(null) in C(from) means a new replica, in C(to) a replica
          that could not be placed again. Empty without O(current).
      type: list
      elements: dict
      returned: always
      sample: [{"service": "hrv", "from": "w4", "to": "w2"}]
    optimal:
      description: With O(strategy=optimal), what the solver proved.
      type: dict
      returned: when O(strategy=optimal)
      contains:
        proven:
          description: Whether the placement is proven optimal for all three goals.
          type: bool
          sample: true
        status:
          description: The solver status of the first goal (most services placed).
          type: str
          sample: Optimal
        bound:
          description: Upper bound on the number of replicas any placement can place.
          type: int
          sample: 20
        placed:
          description: The number of replicas placed.
          type: int
          sample: 20
        gap:
          description: (RV(_value.optimal.bound) - RV(_value.optimal.placed)) / RV(_value.optimal.bound); V(0) when proven.
          type: float
          sample: 0.0
        source:
          description:
            - Where the placement comes from, V(solver), or the name of the heuristic whose placement was better
              than what the solver found within the time limit (V(current) when nothing was left to place).
          type: str
          sample: solver
        solver:
          description: Solver name and version.
          type: str
          sample: highs 1.11.0
        seconds:
          description: Time spent in the solver and heuristics.
          type: float
          sample: 0.012
        time_limit:
          description: The O(time_limit) used.
          type: float
          sample: 10.0
"""

import typing as t

from ansible.errors import AnsibleFilterError

from ansible_collections.nanoedge.core.plugins.module_utils._plan import DEFAULT_STRATEGY
from ansible_collections.nanoedge.core.plugins.plugin_utils._allocate import DEFAULT_TIME_LIMIT, AllocationError, allocate

FILTER = "nanoedge.core.allocate"


def allocate_filter(services: t.Any, nodes: t.Any, strategy: t.Any = DEFAULT_STRATEGY, current: t.Any = None,
                    time_limit: t.Any = DEFAULT_TIME_LIMIT) -> t.Dict[str, t.Any]:
    try:
        return allocate(services, nodes, strategy=strategy, current=current, time_limit=time_limit)
    except AllocationError as exc:
        raise AnsibleFilterError("%s: %s" % (FILTER, exc)) from exc


class FilterModule:
    def filters(self) -> t.Dict[str, t.Callable[..., t.Any]]:
        return {"allocate": allocate_filter}
