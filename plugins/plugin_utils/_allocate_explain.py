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
    battery_ok,
    from_milli,
)

Count = t.Dict[str, t.Any]
# services asking for more capabilities than this have their capability causes grouped node by node
_SUBSETS_UP_TO = 4
_STRIDE = 64


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
        self._battery: t.Dict[int, int] = {}
        # per resource the nodes from the most left to the least, and the bitsets of their prefixes on demand
        self._resources = [_Threshold(values) for values in (cpu, memory, storage)]

    def feature(self, kind: str, name: str) -> int:
        return self._feature.get((kind, name), 0)

    def battery(self, min_battery: int) -> int:
        found = self._battery.get(min_battery)
        if found is None:
            found = 0
            for node in self.nodes:
                if battery_ok(min_battery, node):
                    found |= 1 << node.index
            self._battery[min_battery] = found
        return found

    def counts(self, service: Service, taken: t.Iterable[int]) -> t.List[Count]:
        """The cause codes with their node counts and the values involved, in the order of the checks."""
        counts: t.List[Count] = []
        left = self.all

        def take(bits: int, entry: Count) -> None:
            nonlocal left
            bits &= left
            if bits:
                entry["count"] = bits.bit_count()
                counts.append(entry)
                left &= ~bits

        replicas = 0
        for index in taken:
            replicas |= 1 << index
        take(replicas, {"code": "replica", "service": service.name})
        self._capabilities(service, left, take)
        cpu, memory, storage = self._resources
        take(~cpu.at_least(service.cpu), {"code": "cpu", "needs": from_milli(service.cpu)})
        take(~memory.at_least(service.memory), {"code": "memory", "needs": from_milli(service.memory)})
        if service.power:
            take(~self.feature("power", service.power), {"code": "power", "needs": service.power})
        if service.min_battery:
            take(~self.battery(service.min_battery), {"code": "battery", "needs": from_milli(service.min_battery)})
        if service.network:
            take(~self.feature("network", service.network), {"code": "network", "needs": service.network})
        take(~storage.at_least(service.storage), {"code": "storage", "needs": from_milli(service.storage)})
        take(left, {"code": "fits"})
        return counts

    def _capabilities(self, service: Service, left: int, take: t.Callable[[int, Count], None]) -> None:
        wanted = service.capabilities
        if not wanted:
            return
        has = [self.feature("capability", name) for name in wanted]
        if len(wanted) > _SUBSETS_UP_TO:
            groups: t.Dict[t.Tuple[str, ...], int] = {}
            for node in self.nodes:
                missing = tuple(name for name in wanted if name not in node.capabilities)
                if missing and left >> node.index & 1:
                    groups[missing] = groups.get(missing, 0) | (1 << node.index)
            for missing, bits in groups.items():
                take(bits, {"code": "capability", "missing": list(missing)})
            return
        # the nodes that lack exactly each subset of the wanted capabilities, the subsets in a fixed order
        for subset in range(1, 1 << len(wanted)):
            bits = left
            for position, bitset in enumerate(has):
                bits &= ~bitset if subset >> position & 1 else bitset
            if bits:
                take(bits, {"code": "capability",
                            "missing": [name for position, name in enumerate(wanted) if subset >> position & 1]})


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
