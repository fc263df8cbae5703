# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""An index over the nodes, in their order, that answers the heuristics' one question:
which node takes this service (the first, the one with the least or with the most capacity left)?

Sets of nodes are Python integers used as bitsets (node i at bit i), so that
intersecting two sets of thousands of nodes is one operation at C speed.
Each node's remaining cpu, memory and storage is kept as a level: how many of
a few bounds (the services' distinct demands, up to ``MAX_BOUNDS`` of them,
quantiles beyond) it reaches. Per resource a staircase (``Staircase``) holds,
for each level, the set of nodes at or above it: "the nodes with room for
this demand" is one look-up, and a node whose level falls leaves the steps it
falls past, which happens at most once per step and node over a whole run.
The candidates of a service are the nodes with its capabilities, power,
network and (roughly) battery, intersected with those at or above its three
levels: a superset of the nodes that can take it (exactly those when every
demand is a bound). Each is checked exactly, in node order, so the answer is
the one a scan of every node gives, whatever the number of distinct
requirements: first_fit takes the lowest candidate that fits. best_fit and
spread also keep each node's score as a level in a segment tree
(``Levels``), descend it to the candidates of the lowest score level and
compare those exactly.
"""

from __future__ import annotations

import bisect
import typing as t

from ansible_collections.nanoedge.core.plugins.plugin_utils._allocate_model import (
    Node,
    Service,
    Signature,
    battery_ok,
    statically_fits,
)

Demand = t.Tuple[int, int, int]
Score = t.Callable[[int], float]
NONE = -1
# demands that get a level of their own; past that many, quantiles of them. Few levels keep the steps a
# node falls past few; the candidates they let through that do not fit are few too (checked exactly).
MAX_BOUNDS = 32
# score levels of best_fit and spread: the candidates of one level are compared exactly
SCORE_LEVELS = 4096
# battery levels: whole percents, mains power above them all
_BATTERY_LEVELS = 102


def nodes_of(bits: int) -> t.Iterator[int]:
    """The nodes of a bitset, in order."""
    while bits:
        low = bits & -bits
        yield low.bit_length() - 1
        bits ^= low


class _ByLevel:
    """Nodes by the level of one quantity, in sets of nodes: a node that moves changes the sets that tell its
    old level and its new one apart."""

    level: t.List[int]

    def move(self, node: int, level: int) -> None:
        """Node ``node`` is now at ``level``."""
        old = self.level[node]
        if old != level:
            self.level[node] = level
            self._shift(1 << node, old, level)

    def _shift(self, bit: int, old: int, level: int) -> None:
        raise NotImplementedError


class Levels(_ByLevel):
    """Nodes by the level of one quantity (0 <= level < ``size``): a segment tree whose cells hold the set
    of nodes whose level is in the cell's range (cell 1 all of them, cell c the halves 2c and 2c + 1,
    cell ``width + level`` one level)."""

    def __init__(self, levels: t.Sequence[int], size: int) -> None:
        width = 1
        while width < size:
            width *= 2
        self.width = width
        self.level = list(levels)
        cells = [0] * (2 * width)
        for node, level in enumerate(levels):
            cells[width + level] |= 1 << node
        for cell in range(width - 1, 0, -1):
            cells[cell] = cells[2 * cell] | cells[2 * cell + 1]
        self.cells = cells

    def _shift(self, bit: int, old: int, level: int) -> None:
        """Out of the cells of the old level, into those of the new one."""
        cells, before, after = self.cells, old + self.width, level + self.width
        # the cells both levels fall in keep the node
        while before != after:
            cells[before] ^= bit
            cells[after] ^= bit
            before >>= 1
            after >>= 1

    def at_least(self, level: int) -> int:
        """The nodes at ``level`` or above: the cells that cover the levels from there to the top."""
        if level <= 0:
            return self.cells[1]
        cells, low, high = self.cells, level + self.width, 2 * self.width
        found = 0
        while low < high:
            if low & 1:
                found |= cells[low]
                low += 1
            low >>= 1
            high >>= 1
        return found

    def lowest(self, among: int) -> int:
        """The nodes of ``among`` at the lowest level any of them is at (0 when ``among`` has none here)."""
        cells = self.cells
        if not cells[1] & among:
            return 0
        cell, width = 1, self.width
        while cell < width:
            cell *= 2
            if not cells[cell] & among:
                cell += 1
        return cells[cell] & among


class Staircase(_ByLevel):
    """Nodes by the level of one quantity (0 <= level < ``size``): ``steps[level]`` is the set of nodes at that
    level or above (``steps[size]`` none)."""

    def __init__(self, levels: t.Sequence[int], size: int) -> None:
        self.level = list(levels)
        at = [0] * (size + 1)
        for node, level in enumerate(levels):
            at[level] |= 1 << node
        for level in range(size - 1, -1, -1):
            at[level] |= at[level + 1]
        self.steps = at

    def _shift(self, bit: int, old: int, level: int) -> None:
        """Out of (or into) the steps between the old level and the new."""
        steps = self.steps
        for step in range(min(old, level) + 1, max(old, level) + 1):
            steps[step] ^= bit

    def at_least(self, level: int) -> int:
        """The nodes at ``level`` or above."""
        steps = self.steps
        return steps[max(0, min(level, len(steps) - 1))]


class Eligible:
    """The nodes that satisfy each signature statically (capabilities, power and network exactly, battery
    roughly), as bitsets."""

    def __init__(self, nodes: t.Sequence[Node]) -> None:
        self.all = (1 << len(nodes)) - 1
        self._feature: t.Dict[t.Tuple[str, str], int] = {}
        for node in nodes:
            for feature in [("capability", name) for name in node.capabilities] + \
                    [("network", name) for name in node.network] + [("power", node.power)]:
                self._feature[feature] = self._feature.get(feature, 0) | (1 << node.index)
        # whole percents: "at least the service's whole percent" is a superset of the nodes whose battery
        # satisfies it, and candidates are checked exactly
        percents = [_BATTERY_LEVELS - 1 if node.power == "ac" else
                    (0 if node.battery is None else max(0, min(_BATTERY_LEVELS - 2, int(node.battery))))
                    for node in nodes]
        self._battery = Levels(percents, _BATTERY_LEVELS)
        self._cache: t.Dict[Signature, int] = {}

    def of(self, signature: Signature) -> int:
        """The nodes that may satisfy ``signature``."""
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
            bits &= self._battery.at_least(min(_BATTERY_LEVELS - 2, min_battery // 1000000))
        return bits


def _bounds(values: t.Iterable[int]) -> t.List[int]:
    """At most MAX_BOUNDS increasing demands (all of them, or quantiles): the level of x is how many are <= x."""
    distinct = sorted(set(values) - {0})
    if len(distinct) <= MAX_BOUNDS:
        return distinct
    step = len(distinct) / MAX_BOUNDS
    return sorted({distinct[int(rank * step)] for rank in range(MAX_BOUNDS)})


class NodeIndex:
    """The nodes' levels, kept in step with the state's capacity (and, with ``score``, their scores')."""

    def __init__(self, nodes: t.Sequence[Node], services: t.Sequence[Service], cpu: t.List[int],
                 memory: t.List[int], storage: t.List[int], score: t.Optional[Score] = None) -> None:
        self.nodes = nodes
        self.resources = (cpu, memory, storage)
        self.bounds = [_bounds(service.demand[kind] for service in services) for kind in range(3)]
        # every demand a bound: a candidate without a battery to check is known to fit
        self.exact = all(len(bounds) < MAX_BOUNDS for bounds in self.bounds)
        self.levels = [Staircase([bisect.bisect_right(bounds, value) for value in values], len(bounds) + 1)
                       for bounds, values in zip(self.bounds, self.resources)]
        self.eligible = Eligible(nodes)
        self.score = score
        if score is not None:
            values = [score(index) for index in range(len(nodes))]
            # scores only move towards 0 (less left: best_fit's fall, spread's negative ones rise)
            self.span = (min(values + [0.0]), max(values + [0.0]))
            self.ranks = Levels([self.score_level(value) for value in values], SCORE_LEVELS)
        self.failed: t.Dict[Signature, t.List[Demand]] = {}

    def score_level(self, value: float) -> int:
        """A score's level: linear, so that it never decreases with the score."""
        low, high = self.span
        if high <= low:
            return 0
        return max(0, min(SCORE_LEVELS - 1, int((value - low) * ((SCORE_LEVELS - 1) / (high - low)))))

    def update(self, index: int) -> None:
        """Node ``index`` took a service."""
        for bounds, values, levels in zip(self.bounds, self.resources, self.levels):
            level = bisect.bisect_right(bounds, values[index])
            if level != levels.level[index]:
                levels.move(index, level)
        if self.score is not None:
            self.ranks.move(index, self.score_level(self.score(index)))

    def fits(self, service: Service, index: int) -> bool:
        cpu, memory, storage = self.resources
        return cpu[index] >= service.cpu and memory[index] >= service.memory and storage[index] >= service.storage \
            and statically_fits(service.signature, self.nodes[index])

    def candidates(self, service: Service) -> int:
        """The nodes that may take the service: a superset of those that can."""
        bits = self.eligible.of(service.signature)
        for bounds, levels, demand in zip(self.bounds, self.levels, service.demand):
            if demand and bits:
                bits &= levels.at_least(bisect.bisect_right(bounds, demand))
        return bits

    def first_fit(self, pending: t.Sequence[Service], assigned: t.Mapping[str, t.Sequence[int]],
                  place: t.Callable[[Service, int], None]) -> None:
        """Place every replica still missing of ``pending``, in order, on the first node that can take it.

        One loop with everything at hand: at a thousand nodes a service costs a few microseconds, and
        calls and look-ups would be most of them."""
        cpu, memory, storage = self.resources
        cpu_bounds, memory_bounds, storage_bounds = self.bounds
        cpu_steps, memory_steps, storage_steps = (levels.steps for levels in self.levels)
        cpu_level, memory_level, storage_level = (levels.level for levels in self.levels)
        nodes, eligible, failed, bisect_right = self.nodes, self.eligible.of, self.failed, bisect.bisect_right
        for service in pending:
            signature = service.signature
            need_cpu, need_memory, need_storage = service.demand
            if signature in failed and self.hopeless(service):
                continue
            bits = eligible(signature)
            if need_cpu and bits:
                bits &= cpu_steps[bisect_right(cpu_bounds, need_cpu)]
            if need_memory and bits:
                bits &= memory_steps[bisect_right(memory_bounds, need_memory)]
            if need_storage and bits:
                bits &= storage_steps[bisect_right(storage_bounds, need_storage)]
            taken = assigned.get(service.name, ())
            wanted = service.replicas - len(taken)
            battery = service.min_battery
            placed = False
            # the candidates in node order; a node that takes a replica cannot take another, the others keep
            # their room: the next replica's node is further on among the same candidates
            while wanted and bits:
                low = bits & -bits
                node = low.bit_length() - 1
                bits ^= low
                if cpu[node] < need_cpu or memory[node] < need_memory or storage[node] < need_storage \
                        or node in taken or (battery and not battery_ok(battery, nodes[node])):
                    continue
                place(service, node)
                placed = True
                wanted -= 1
                # the node's levels only fall: it leaves the steps between the new level and the old
                level = bisect_right(cpu_bounds, cpu[node])
                for step in range(level + 1, cpu_level[node] + 1):
                    cpu_steps[step] ^= low
                cpu_level[node] = level
                level = bisect_right(memory_bounds, memory[node])
                for step in range(level + 1, memory_level[node] + 1):
                    memory_steps[step] ^= low
                memory_level[node] = level
                level = bisect_right(storage_bounds, storage[node])
                for step in range(level + 1, storage_level[node] + 1):
                    storage_steps[step] ^= low
                storage_level[node] = level
            if wanted and not placed and not taken:
                self.fail(service)

    def best(self, service: Service, taken: t.Container[int]) -> int:
        """The node that can take the service, not in ``taken``, with the least score (the first on ties), or -1."""
        score, fits = self.score, self.fits
        if score is None:
            raise ValueError("best() is for the scored strategies (best_fit, spread)")
        bits = self.candidates(service)
        exact = self.exact and not service.min_battery
        while bits:
            # every node of a lower score level scores less: the answer is among the lowest that fit
            level = self.ranks.lowest(bits)
            found = [(score(node), node) for node in nodes_of(level)
                     if node not in taken and (exact or fits(service, node))]
            if found:
                return min(found)[1]
            bits ^= level
        return NONE

    def hopeless(self, service: Service) -> bool:
        """Whether no node had room, with the service's signature, for less than its demand (nor has now)."""
        cpu, memory, storage = service.demand
        for failed_cpu, failed_memory, failed_storage in self.failed.get(service.signature, ()):
            if failed_cpu <= cpu and failed_memory <= memory and failed_storage <= storage:
                return True
        return False

    def fail(self, service: Service) -> None:
        """No node had room for the service: keep its demand among the least such ones of its signature."""
        cpu, memory, storage = service.demand
        failed = [other for other in self.failed.get(service.signature, ())
                  if not (cpu <= other[0] and memory <= other[1] and storage <= other[2])]
        failed.append(service.demand)
        self.failed[service.signature] = failed
