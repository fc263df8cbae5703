# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The heuristics with one heap of candidate nodes per distinct requirement: the fastest way when
there are few distinct requirements (``run_heuristic`` picks it when the heaps hold fewer entries than
a budget), as their filling costs O(requirements x nodes).

Because a node's capacity only ever decreases, a node that cannot take a given
requirement now never will: each heap drops a node for good the first time it
does not fit. The answer is the index's (``_allocate_index``) exactly.
"""

from __future__ import annotations

import heapq
import typing as t

from ansible_collections.nanoedge.core.plugins.plugin_utils._allocate_model import (
    Key,
    Service,
    Signature,
    statically_fits,
)

if t.TYPE_CHECKING:
    from ansible_collections.nanoedge.core.plugins.plugin_utils._allocate_heuristics import State


class _Candidates:
    """Nodes that might still take one requirement, best first; a node that does not fit is dropped for good."""

    __slots__ = ("heap", "dead")

    def __init__(self, heap: t.List[t.Tuple[float, int]]) -> None:
        self.heap = heap
        self.dead: t.Set[int] = set()


def run_heaps(pending: t.Sequence[Service], state: "State", score: t.Callable[[int], float], ranked: bool) -> None:
    """Place every replica still missing of ``pending``, in order, on the least-scored node that fits."""
    nodes = state.nodes
    cpu, memory, storage = state.cpu, state.memory, state.storage
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
        if ranked:
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
