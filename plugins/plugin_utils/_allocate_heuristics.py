# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The placement state of allocation and its heuristic strategies.

Strategies
----------
``first_fit`` is the paper's Algorithm 1 exactly: services in the given order,
for each the first node in the given order that satisfies it.

``best_fit`` and ``spread`` take services by priority (highest first) and pick,
among the nodes that fit, the one with the least (``best_fit``) or the most
(``spread``) remaining capacity. Remaining capacity is scored as the sum over
cpu, memory and storage of what is left divided by the largest node's figure;
since every candidate loses the same amount when the service is placed, this
ranks nodes identically before and after the placement. Ties go to the node
that comes first.

Every strategy finds its node in one of two ways with the same answer (the one
a scan of every node gives): with one heap of candidates per distinct
requirement (``_allocate_heaps``) when there are few of them, else with an
index over the nodes (``_allocate_index``) whose cost does not depend on how
many distinct requirements there are.
"""

from __future__ import annotations

import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._plan import Cause, capacity_cause, cause_text
from ansible_collections.nanoedge.core.plugins.plugin_utils._allocate_heaps import run_heaps
from ansible_collections.nanoedge.core.plugins.plugin_utils._allocate_index import NodeIndex
from ansible_collections.nanoedge.core.plugins.plugin_utils._allocate_model import (
    AllocationError,
    Node,
    Service,
    battery_ok,
    from_milli,
    milli_down,
    statically_fits,
)


# the heaps' entries (distinct requirements x nodes) per service or node up to which they beat the index
HEAP_BUDGET = 8


# --------------------------------------------------------------------------- state

class State:
    """Remaining capacity and hosted services per node; only ever decreases."""

    def __init__(self, nodes: t.Sequence[Node]) -> None:
        self.nodes = nodes
        self.cpu = [node.cpu for node in nodes]
        self.memory = [node.memory for node in nodes]
        self.storage = [node.storage for node in nodes]
        self.hosted: t.List[t.List[str]] = [[] for node in nodes]
        self.assigned: t.Dict[str, t.List[int]] = {}

    def copy(self) -> State:
        other = State.__new__(State)
        other.nodes = self.nodes
        other.cpu = list(self.cpu)
        other.memory = list(self.memory)
        other.storage = list(self.storage)
        other.hosted = [list(names) for names in self.hosted]
        other.assigned = {name: list(where) for name, where in self.assigned.items()}
        return other

    def fits(self, service: Service, index: int) -> bool:
        return (self.cpu[index] >= service.cpu and self.memory[index] >= service.memory
                and self.storage[index] >= service.storage and index not in self.assigned.get(service.name, ())
                and statically_fits(service.signature, self.nodes[index]))

    def place(self, service: Service, index: int) -> None:
        self.cpu[index] -= service.cpu
        self.memory[index] -= service.memory
        self.storage[index] -= service.storage
        self.hosted[index].append(service.name)
        self.assigned.setdefault(service.name, []).append(index)

    def placed_count(self, service: Service) -> int:
        return len(self.assigned.get(service.name, ()))

    def reason(self, service: Service, index: int) -> t.Optional[str]:
        """The text of ``cause``, or None when the node can take one more replica."""
        cause = self.cause(service, index)
        return None if cause is None else cause_text(cause)

    def cause(self, service: Service, index: int) -> t.Optional[Cause]:
        """The first reason, in Algorithm 1's order of checks, why the node cannot take one more replica."""
        node = self.nodes[index]
        if index in self.assigned.get(service.name, ()):
            return {"code": "replica", "service": service.name}
        missing = [capability for capability in service.capabilities if capability not in node.capabilities]
        if missing:
            return {"code": "capability", "missing": missing}
        if service.cpu > self.cpu[index]:
            return self._capacity("cpu", service.cpu, index, self.cpu[index], node.cpu)
        if service.memory > self.memory[index]:
            return self._capacity("memory", service.memory, index, self.memory[index], node.memory)
        if service.power and service.power != node.power:
            return {"code": "power", "needs": service.power, "has": node.power}
        if service.min_battery and not battery_ok(service.min_battery, node):
            level = None if node.battery is None else from_milli(milli_down(node.battery))
            return {"code": "battery", "needs": from_milli(service.min_battery), "has": level}
        if service.network and service.network not in node.network:
            return {"code": "network", "needs": service.network, "has": sorted(node.network)}
        if service.storage > self.storage[index]:
            return self._capacity("storage", service.storage, index, self.storage[index], node.storage)
        return None

    def _capacity(self, code: str, needs: int, index: int, left: int, total: int) -> Cause:
        # Name what took the room only when something did.
        return capacity_cause(code, from_milli(needs), from_milli(left), self.hosted[index] if left != total else ())

    def nodes_used(self) -> int:
        return sum(1 for names in self.hosted if names)

    def units(self) -> int:
        return sum(len(where) for where in self.assigned.values())


def lexicographic_value(state: State, order: t.Sequence[Service]) -> t.Tuple[int, float, int]:
    """What ``optimal`` maximises: placed replicas, then their total priority, then fewest nodes used."""
    priority = sum(service.priority * state.placed_count(service) for service in order)
    return (state.units(), priority, -state.nodes_used())


# --------------------------------------------------------------------------- heuristics

def processing_order(services: t.Sequence[Service], strategy: str) -> t.List[Service]:
    """first_fit keeps the paper's order; the others take higher priority first (stable on ties)."""
    if strategy == "first_fit":
        return list(services)
    return sorted(services, key=lambda service: -service.priority)


def keep_current(order: t.Sequence[Service], state: State, current: t.Mapping[str, t.Sequence[str]]) -> None:
    """Leave each service where it runs while that node still satisfies it."""
    if not current:
        return
    index_of = {node.name: node.index for node in state.nodes}
    for service in order:
        for node_name in current.get(service.name, ()):
            if state.placed_count(service) >= service.replicas:
                break
            index = index_of.get(node_name)
            if index is not None and state.fits(service, index):
                state.place(service, index)


def run_heuristic(strategy: str, order: t.Sequence[Service], state: State) -> None:
    """Place every replica still missing, in ``order``, on the node ``strategy`` picks."""
    assigned = state.assigned
    pending = [service for service in order if service.name not in assigned
               or len(assigned[service.name]) < service.replicas]
    if not pending:
        return
    score = _scorer(strategy, state)
    ranked = score is not _first_fit_score
    # services of one requirement vector share its key: counted by identity, cheaper than hashing each key
    requirements = len({id(service.key) for service in pending})
    if requirements * len(state.nodes) <= HEAP_BUDGET * (len(pending) + len(state.nodes)):
        # few distinct requirements: their heaps are cheaper than the index
        run_heaps(pending, state, score, ranked)
        return
    index = NodeIndex(state.nodes, pending, state.cpu, state.memory, state.storage, score if ranked else None)
    if not ranked:
        index.first_fit(pending, assigned, state.place)
        return
    for service in pending:
        taken = set(assigned.get(service.name, ()))
        wanted = service.replicas - len(taken)
        while wanted and not index.hopeless(service):
            where = index.best(service, taken)
            if where < 0:
                if not taken:
                    index.fail(service)
                break
            state.place(service, where)
            index.update(where)
            taken.add(where)
            wanted -= 1


def _first_fit_score(index: int) -> float:
    return 0.0


def _scales(strategy: str, state: State) -> t.Tuple[float, float, float]:
    if strategy not in ("best_fit", "spread"):
        raise AllocationError("strategy %r is not a heuristic" % strategy)
    nodes = state.nodes
    sign = -1.0 if strategy == "spread" else 1.0
    # One fixed scale per resource (the largest node) keeps the ranking the same before and after a placement.
    return (sign / max([node.cpu for node in nodes] + [1]), sign / max([node.memory for node in nodes] + [1]),
            sign / max([node.storage for node in nodes] + [1]))


def _scorer(strategy: str, state: State) -> t.Callable[[int], float]:
    if strategy == "first_fit":
        return _first_fit_score
    scale_cpu, scale_memory, scale_storage = _scales(strategy, state)
    cpu, memory, storage = state.cpu, state.memory, state.storage

    def score(index: int) -> float:
        return cpu[index] * scale_cpu + memory[index] * scale_memory + storage[index] * scale_storage

    return score
