# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The placement state of allocation and its heuristic strategies.

Strategies
----------
``first_fit`` is the paper's Algorithm 1 exactly: services in the given order,
for each the first node in the given order that satisfies it. Because a node's
capacity only ever decreases, a node that cannot take a given requirement now
never will; each distinct requirement therefore keeps a heap of the nodes that
might still take it and drops a node for good the first time it does not fit.
That gives the same answer as scanning every node for every service, in
O(K*N + S log N) instead of O(S*N) for K distinct requirements.

``best_fit`` and ``spread`` take services by priority (highest first) and pick,
among the nodes that fit, the one with the least (``best_fit``) or the most
(``spread``) remaining capacity. Remaining capacity is scored as the sum over
cpu, memory and storage of what is left divided by the largest node's figure;
since every candidate loses the same amount when the service is placed, this
ranks nodes identically before and after the placement. Ties go to the node
that comes first.
"""

from __future__ import annotations

import heapq
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._plan import Cause, capacity_cause, cause_text
from ansible_collections.nanoedge.core.plugins.plugin_utils._allocate_model import (
    AllocationError,
    Key,
    Node,
    Service,
    Signature,
    from_milli,
    milli_down,
)


# --------------------------------------------------------------------------- state

def statically_fits(signature: Signature, node: Node) -> bool:
    """The requirements that no placement can change: capabilities, power, battery, network."""
    capabilities, power, network, min_battery = signature
    if capabilities and not node.capabilities.issuperset(capabilities):
        return False
    if power and power != node.power:
        return False
    if min_battery and not _battery_ok(min_battery, node):
        return False
    return not network or network in node.network


def _battery_ok(min_battery: int, node: Node) -> bool:
    # A mains-powered node is never "nearly empty"; a DC node must report its level.
    if node.power == "ac":
        return True
    return node.battery is not None and milli_down(node.battery) >= min_battery


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
        if service.min_battery and not _battery_ok(service.min_battery, node):
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

class _Candidates:
    """Nodes that might still take one requirement, best first; a node that does not fit is dropped for good."""

    __slots__ = ("heap", "dead")

    def __init__(self, heap: t.List[t.Tuple[float, int]]) -> None:
        self.heap = heap
        self.dead: t.Set[int] = set()


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
    pending = [service for service in order if state.placed_count(service) < service.replicas]
    if not pending:
        return
    nodes = state.nodes
    cpu, memory, storage = state.cpu, state.memory, state.storage
    score = _scorer(strategy, state)

    eligible: t.Dict[Signature, t.List[int]] = {}
    candidates: t.Dict[Key, _Candidates] = {}
    # for best_fit/spread a node's score changes when it takes a service: its new entry goes to every heap that holds it
    holders: t.List[t.List[_Candidates]] = [[] for node in nodes]
    for service in pending:
        if service.key in candidates:
            continue
        if service.signature not in eligible:
            eligible[service.signature] = [node.index for node in nodes if statically_fits(service.signature, node)]
        need_cpu, need_memory, need_storage = service.demand
        fitting = [index for index in eligible[service.signature]
                   if cpu[index] >= need_cpu and memory[index] >= need_memory and storage[index] >= need_storage]
        heap = [(score(index), index) for index in fitting]
        heapq.heapify(heap)
        entry = _Candidates(heap)
        candidates[service.key] = entry
        if score is not _first_fit_score:
            for index in fitting:
                holders[index].append(entry)

    for service in pending:
        entry = candidates[service.key]
        heap, dead = entry.heap, entry.dead
        need_cpu, need_memory, need_storage = service.demand
        wanted = service.replicas - state.placed_count(service)
        taken = set(state.assigned.get(service.name, ()))
        set_aside: t.List[t.Tuple[float, int]] = []
        while wanted and heap:
            value, index = heap[0]
            if index in dead or value != score(index):
                heapq.heappop(heap)
                continue
            if cpu[index] < need_cpu or memory[index] < need_memory or storage[index] < need_storage:
                heapq.heappop(heap)
                dead.add(index)
                continue
            if index in taken:
                set_aside.append(heapq.heappop(heap))
                continue
            state.place(service, index)
            taken.add(index)
            wanted -= 1
            if holders[index]:
                fresh = (score(index), index)
                for holder in holders[index]:
                    if index not in holder.dead:
                        heapq.heappush(holder.heap, fresh)
        for item in set_aside:
            heapq.heappush(heap, item)


def _first_fit_score(index: int) -> float:
    return 0.0


def _scorer(strategy: str, state: State) -> t.Callable[[int], float]:
    if strategy == "first_fit":
        return _first_fit_score
    if strategy not in ("best_fit", "spread"):
        raise AllocationError("strategy %r is not a heuristic" % strategy)
    nodes = state.nodes
    sign = -1.0 if strategy == "spread" else 1.0
    # One fixed scale per resource (the largest node) keeps the ranking the same before and after a placement.
    scale_cpu = sign / max([node.cpu for node in nodes] + [1])
    scale_memory = sign / max([node.memory for node in nodes] + [1])
    scale_storage = sign / max([node.storage for node in nodes] + [1])
    cpu, memory, storage = state.cpu, state.memory, state.storage

    def score(index: int) -> float:
        return cpu[index] * scale_cpu + memory[index] * scale_memory + storage[index] * scale_storage

    return score
