# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Why a service stays unplaced, counted: per cause code, how many nodes fail with it (docs/contracts.md,
"The allocation result and the plan file").

Each node counts once, under the first check it fails in Algorithm 1's order
(replica, capability, cpu, memory, power, battery, network, storage) or under
``fits``, so the counts add up to the number of nodes. They are computed on
bitsets over the node order (one bit per node), a few operations per service
whatever the number of nodes, which keeps the result and the plan file growing
with services + nodes.
"""

from __future__ import annotations

import bisect
import typing as t

from ansible_collections.nanoedge.core.plugins.plugin_utils._allocate_model import (
    Node,
    Service,
    from_milli,
    milli_down,
)

Count = t.Dict[str, t.Any]
# services asking for more capabilities than this have their capability causes grouped node by node
_SUBSETS_UP_TO = 4
_STRIDE = 64
_MAINS = 1 << 62


class Counter:
    """Counts the causes of unplaced services against the final state of an allocation."""

    def __init__(self, nodes: t.Sequence[Node], cpu: t.Sequence[int], memory: t.Sequence[int],
                 storage: t.Sequence[int]) -> None:
        self.nodes = nodes
        self.all = (1 << len(nodes)) - 1
        self._feature: t.Dict[t.Tuple[str, str], int] = {}
        for node in nodes:
            for feature in [("capability", name) for name in node.capabilities] + \
                    [("network", name) for name in node.network] + [("power", node.power)]:
                self._feature[feature] = self._feature.get(feature, 0) | (1 << node.index)
        # battery_ok as a threshold: mains power above every level, a DC node without a level below them all
        self._battery = _Threshold([_MAINS if node.power == "ac" else
                                    (-1 if node.battery is None else milli_down(node.battery)) for node in nodes])
        # per resource the nodes from the most left to the least, and the bitsets of their prefixes on demand
        self._resources = [_Threshold(values) for values in (cpu, memory, storage)]

    def feature(self, kind: str, name: str) -> int:
        return self._feature.get((kind, name), 0)

    def battery(self, min_battery: int) -> int:
        """The nodes whose battery satisfies ``min_battery`` (> 0), as ``battery_ok`` decides."""
        return self._battery.at_least(min_battery)

    def counts(self, service: Service, taken: t.Iterable[int]) -> t.List[Count]:
        """The cause codes with their node counts and the values involved, in the order of the checks."""
        counts: t.List[Count] = []
        replicas = 0
        for index in taken:
            replicas |= 1 << index
        left = _take(counts, self.all, replicas, "replica", "service", service.name)
        left = self._capabilities(service, left, counts)
        cpu, memory, storage = self._resources
        # a check the service does not ask for fails on no node: it is skipped
        if service.cpu:
            left = _take(counts, left, ~cpu.at_least(service.cpu), "cpu", "needs", from_milli(service.cpu))
        if service.memory:
            left = _take(counts, left, ~memory.at_least(service.memory), "memory", "needs",
                         from_milli(service.memory))
        if service.power:
            left = _take(counts, left, ~self.feature("power", service.power), "power", "needs", service.power)
        if service.min_battery:
            left = _take(counts, left, ~self.battery(service.min_battery), "battery", "needs",
                         from_milli(service.min_battery))
        if service.network:
            left = _take(counts, left, ~self.feature("network", service.network), "network", "needs",
                         service.network)
        if service.storage:
            left = _take(counts, left, ~storage.at_least(service.storage), "storage", "needs",
                         from_milli(service.storage))
        if left:
            counts.append({"code": "fits", "count": left.bit_count()})
        return counts

    def _capabilities(self, service: Service, left: int, counts: t.List[Count]) -> int:
        """Counts the nodes of ``left`` that lack capabilities; returns the rest."""
        wanted = service.capabilities
        if not wanted:
            return left
        has = [self.feature("capability", name) for name in wanted]
        if len(wanted) > _SUBSETS_UP_TO:
            groups: t.Dict[t.Tuple[str, ...], int] = {}
            for node in self.nodes:
                missing = tuple(name for name in wanted if name not in node.capabilities)
                if missing and left >> node.index & 1:
                    groups[missing] = groups.get(missing, 0) | (1 << node.index)
            for missing, bits in groups.items():
                left = _take(counts, left, bits, "capability", "missing", list(missing))
            return left
        # the nodes that lack exactly each subset of the wanted capabilities, the subsets in a fixed order
        for subset in range(1, 1 << len(wanted)):
            bits = left
            for position, bitset in enumerate(has):
                bits &= ~bitset if subset >> position & 1 else bitset
            if bits:
                left = _take(counts, left, bits, "capability", "missing",
                             [name for position, name in enumerate(wanted) if subset >> position & 1])
        return left


def _take(counts: t.List[Count], left: int, bits: int, code: str, detail: str, value: t.Any) -> int:
    """Counts the nodes of ``bits`` still ``left`` under ``code`` (with the service's ``detail``); returns the rest."""
    bits &= left
    if not bits:
        return left
    counts.append({"code": code, detail: value, "count": bits.bit_count()})
    return left ^ bits


class _Threshold:
    """The nodes with at least a given amount of one resource left, as bitsets."""

    def __init__(self, values: t.Sequence[int]) -> None:
        self.order = sorted(range(len(values)), key=lambda index: -values[index])
        self.descending = [-values[index] for index in self.order]
        # the bitset of the first 64 * i nodes of ``order``, for every i: any prefix is one of them and < 64 bits
        self.checkpoints = [0]
        self.prefixes: t.Dict[int, int] = {}
        bits = 0
        for position, index in enumerate(self.order, 1):
            bits |= 1 << index
            if position % _STRIDE == 0:
                self.checkpoints.append(bits)

    def at_least(self, amount: int) -> int:
        size = bisect.bisect_right(self.descending, -amount)
        bits = self.prefixes.get(size)
        if bits is None:
            # each prefix once: services of a large cluster share the few hundred distinct amounts they need
            bits = self.checkpoints[size // _STRIDE]
            for index in self.order[size - size % _STRIDE:size]:
                bits |= 1 << index
            self.prefixes[size] = bits
        return bits
