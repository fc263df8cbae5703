# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""An index over the nodes, in their order, that answers the heuristics' one question:
which node takes this service (first, with the least or with the most capacity left)?

A segment tree over the node order keeps, per subtree, the most cpu, memory
and storage any of its nodes has left and, for best_fit and spread, the
least score (see ``_allocate_heuristics``); a placement updates one leaf and
its ancestors. The requirements no placement changes (capabilities, power,
network, battery) are bitsets over the node order, one per node feature,
AND-ed once per distinct signature. A search descends only into subtrees that
hold an eligible node and whose maxima cover the demand, so its cost does not
depend on how many distinct requirements the services have.

Because capacity only ever decreases, a subtree that cannot take the smallest
demand of any service of a signature never will: its nodes leave that
signature's bitset for good (what the former per-requirement heaps did per node).
"""

from __future__ import annotations

import typing as t

from ansible_collections.nanoedge.core.plugins.plugin_utils._allocate_model import Node, Service, Signature, milli_down

Score = t.Callable[[int], float]
_NONE = -1


class Eligible:
    """The nodes that satisfy each signature statically, as bitsets over the node order."""

    def __init__(self, nodes: t.Sequence[Node]) -> None:
        self.nodes = nodes
        self.all = (1 << len(nodes)) - 1
        self._feature: t.Dict[t.Tuple[str, str], int] = {}
        for node in nodes:
            bit = 1 << node.index
            for feature in [("capability", name) for name in node.capabilities] + \
                    [("network", name) for name in node.network] + [("power", node.power)]:
                self._feature[feature] = self._feature.get(feature, 0) | bit
        self._battery: t.Dict[int, int] = {}
        self._cache: t.Dict[Signature, int] = {}

    def of(self, signature: Signature) -> int:
        """The bitset of the nodes that satisfy ``signature`` (capabilities, power, network, battery)."""
        found = self._cache.get(signature)
        if found is None:
            found = self._cache[signature] = self._compute(signature)
        return found

    def _compute(self, signature: Signature) -> int:
        capabilities, power, network, min_battery = signature
        bits = self.all
        for name in capabilities:
            bits &= self._feature.get(("capability", name), 0)
        if power:
            bits &= self._feature.get(("power", power), 0)
        if network:
            bits &= self._feature.get(("network", network), 0)
        if min_battery:
            bits &= self.battery(min_battery)
        return bits

    def battery(self, min_battery: int) -> int:
        # A mains-powered node is never "nearly empty"; a DC node must report its level.
        found = self._battery.get(min_battery)
        if found is None:
            found = 0
            for node in self.nodes:
                if node.power == "ac" or (node.battery is not None and milli_down(node.battery) >= min_battery):
                    found |= 1 << node.index
            self._battery[min_battery] = found
        return found

    def feature(self, kind: str, name: str) -> int:
        return self._feature.get((kind, name), 0)


class NodeIndex:
    """Per-subtree maxima of what the nodes have left (and least score), updated in place."""

    def __init__(self, cpu: t.List[int], memory: t.List[int], storage: t.List[int],
                 score: t.Optional[Score] = None) -> None:
        count = len(cpu)
        size = 1
        while size < count:
            size *= 2
        self.size = size
        self.cpu, self.memory, self.storage = cpu, memory, storage
        self.score = score
        self.max_cpu = [_NONE] * (2 * size)
        self.max_memory = [_NONE] * (2 * size)
        self.max_storage = [_NONE] * (2 * size)
        self.least = [float("inf")] * (2 * size)
        self.max_cpu[size:size + count] = cpu
        self.max_memory[size:size + count] = memory
        self.max_storage[size:size + count] = storage
        if score is not None:
            self.least[size:size + count] = [score(index) for index in range(count)]
        for k in range(size - 1, 0, -1):
            self._pull(k)
        # the width mask of each depth, to test a subtree's range of a bitset
        self.masks = [(1 << (size >> depth)) - 1 for depth in range(size.bit_length())]

    def _pull(self, k: int) -> None:
        left, right = 2 * k, 2 * k + 1
        max_cpu, max_memory, max_storage, least = self.max_cpu, self.max_memory, self.max_storage, self.least
        max_cpu[k] = max(max_cpu[left], max_cpu[right])
        max_memory[k] = max(max_memory[left], max_memory[right])
        max_storage[k] = max(max_storage[left], max_storage[right])
        least[k] = min(least[left], least[right])

    def update(self, index: int) -> None:
        """Node ``index`` took a service: its leaf and every ancestor follow."""
        k = self.size + index
        self.max_cpu[k] = self.cpu[index]
        self.max_memory[k] = self.memory[index]
        self.max_storage[k] = self.storage[index]
        if self.score is not None:
            self.least[k] = self.score(index)
        k //= 2
        while k:
            self._pull(k)
            k //= 2

    def first(self, pool: "Pool", demand: t.Tuple[int, int, int], start: int = 0) -> int:
        """The first node at or after ``start`` in ``pool`` with room for ``demand``, or -1."""
        need_cpu, need_memory, need_storage = demand
        max_cpu, max_memory, max_storage, masks, size = self.max_cpu, self.max_memory, self.max_storage, \
            self.masks, self.size
        stack = [1]
        while stack:
            k = stack.pop()
            depth = k.bit_length() - 1
            width = size >> depth
            low = (k - (1 << depth)) * width
            if low + width <= start or not (pool.bits >> low) & masks[depth]:
                continue
            if max_cpu[k] < need_cpu or max_memory[k] < need_memory or max_storage[k] < need_storage:
                pool.drop(self, k, low, masks[depth])
                continue
            if k >= size:
                return low
            stack.append(2 * k + 1)
            stack.append(2 * k)
        return _NONE

    def best(self, pool: "Pool", demand: t.Tuple[int, int, int], floor: float, taken: t.Container[int]) -> int:
        """The node in ``pool`` with room for ``demand`` and the least score (the first on ties), or -1.

        ``floor`` is a score no node with room for ``demand`` can be under (for pruning).
        """
        need_cpu, need_memory, need_storage = demand
        max_cpu, max_memory, max_storage, least, masks, size = self.max_cpu, self.max_memory, \
            self.max_storage, self.least, self.masks, self.size
        best_score, best_index = float("inf"), _NONE
        stack = [1]
        while stack:
            k = stack.pop()
            depth = k.bit_length() - 1
            width = size >> depth
            low = (k - (1 << depth)) * width
            bound = least[k] if least[k] > floor else floor
            if bound > best_score or (bound == best_score and low >= best_index) \
                    or not (pool.bits >> low) & masks[depth]:
                continue
            if max_cpu[k] < need_cpu or max_memory[k] < need_memory or max_storage[k] < need_storage:
                pool.drop(self, k, low, masks[depth])
                continue
            if k >= size:
                if low not in taken:
                    best_score, best_index = least[k], low
                continue
            left, right = 2 * k, 2 * k + 1
            # the more promising child last, so that it is searched first
            if least[right] < least[left]:
                stack.append(left)
                stack.append(right)
            else:
                stack.append(right)
                stack.append(left)
        return best_index


class Pool:
    """The nodes that may still take a service of one signature: a bitset that only shrinks."""

    __slots__ = ("bits", "smallest")

    def __init__(self, bits: int, smallest: t.Tuple[int, int, int]) -> None:
        self.bits = bits
        # the least cpu, memory and storage any service of the signature asks for
        self.smallest = smallest

    def drop(self, index: NodeIndex, k: int, low: int, mask: int) -> None:
        """Forget subtree ``k`` for good when it cannot take even the smallest demand of the signature."""
        cpu, memory, storage = self.smallest
        if index.max_cpu[k] < cpu or index.max_memory[k] < memory or index.max_storage[k] < storage:
            self.bits &= ~(mask << low)


def pools(services: t.Iterable[Service], eligible: Eligible) -> t.Dict[Signature, Pool]:
    """One pool per signature of ``services``, with the smallest demand among them."""
    smallest: t.Dict[Signature, t.Tuple[int, int, int]] = {}
    for service in services:
        found = smallest.get(service.signature)
        smallest[service.signature] = service.demand if found is None else (
            min(found[0], service.cpu), min(found[1], service.memory), min(found[2], service.storage))
    return {signature: Pool(eligible.of(signature), demand) for signature, demand in smallest.items()}
