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

from ansible_collections.nanoedge.core.plugins.module_utils._plan import count_line, count_text, counts_text, fits_text
from ansible_collections.nanoedge.core.plugins.plugin_utils._allocate_model import (
    Node,
    Service,
    from_milli,
    milli_down,
)

Count = t.Dict[str, t.Any]
# services asking for more capabilities than this have their capability causes grouped node by node
_SUBSETS_UP_TO = 4
_STRIDE = 16
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
        # per set of wanted capabilities, the nodes lacking each subset of them (the same for every service)
        self._groups: t.Dict[t.Tuple[str, ...], t.List[t.Tuple[t.List[str], int]]] = {}
        self._lacking: t.Dict[t.Tuple[str, str], int] = {}
        # the text of each count, by code and value: services share the few hundred distinct values they need
        self._texts: t.Dict[t.Tuple[str, t.Any], str] = {}
        # the capability counts of a service with no replica placed, by the capabilities it wants
        self._everywhere: t.Dict[t.Tuple[str, ...], t.Tuple[t.List[Count], t.List[str], int]] = {}

    def feature(self, kind: str, name: str) -> int:
        return self._feature.get((kind, name), 0)

    def battery(self, min_battery: int) -> int:
        """The nodes whose battery satisfies ``min_battery`` (> 0), as ``battery_ok`` decides."""
        return self._battery.at_least(min_battery)

    def counts(self, service: Service, taken: t.Iterable[int]) -> t.List[Count]:
        """The cause codes with their node counts and the values involved, in the order of the checks."""
        return self.explained(service, taken)[0]

    def explained(self, service: Service, taken: t.Iterable[int]) -> t.Tuple[t.List[Count], str]:
        """``counts`` and their summary, as ``counts_text`` gives it (the text of each count made once)."""
        counts: t.List[Count] = []
        # the count_line of each count but fits
        causes: t.List[str] = []
        left = self.all
        replicas = 0
        for index in taken:
            replicas |= 1 << index
        if replicas:
            left ^= replicas
            self._count(counts, causes, replicas, "replica", "service", service.name)
        if service.capabilities:
            left = self._capabilities(service.capabilities, left, counts, causes)
        cpu, memory, storage = self._resources
        # a check the service does not ask for fails on no node: it is skipped
        if service.cpu:
            bits = left & cpu.lacking(service.cpu)
            if bits:
                left ^= bits
                self._count(counts, causes, bits, "cpu", "needs", from_milli(service.cpu))
        if service.memory:
            bits = left & memory.lacking(service.memory)
            if bits:
                left ^= bits
                self._count(counts, causes, bits, "memory", "needs", from_milli(service.memory))
        if service.power:
            bits = left & self._without("power", service.power)
            if bits:
                left ^= bits
                self._count(counts, causes, bits, "power", "needs", service.power)
        if service.min_battery:
            bits = left & self._battery.lacking(service.min_battery)
            if bits:
                left ^= bits
                self._count(counts, causes, bits, "battery", "needs", from_milli(service.min_battery))
        if service.network:
            bits = left & self._without("network", service.network)
            if bits:
                left ^= bits
                self._count(counts, causes, bits, "network", "needs", service.network)
        if service.storage:
            bits = left & storage.lacking(service.storage)
            if bits:
                left ^= bits
                self._count(counts, causes, bits, "storage", "needs", from_milli(service.storage))
        fits = left.bit_count()
        if fits:
            counts.append({"code": "fits", "count": fits})
        if not counts:
            return counts, counts_text(counts)
        return counts, fits_text(fits, len(self.nodes), causes)

    def _count(self, counts: t.List[Count], causes: t.List[str], bits: int, code: str,
               detail: str, value: t.Any) -> None:
        """Counts the nodes of ``bits`` under ``code`` (with the service's ``detail``)."""
        number = bits.bit_count()
        counts.append({"code": code, detail: value, "count": number})
        known = (code, tuple(value) if code == "capability" else value)
        causes.append(count_line(number, self._texts.get(known) or self._text(known, detail, value)))

    def _text(self, known: t.Tuple[str, t.Any], detail: str, value: t.Any) -> str:
        """The text of a count (``count_text``), by code and value: services share the few values they need."""
        text = self._texts[known] = count_text({"code": known[0], detail: value})
        return text

    def _without(self, kind: str, name: str) -> int:
        """The nodes without a power source or network."""
        found = self._lacking.get((kind, name))
        if found is None:
            found = self._lacking[kind, name] = self.all ^ self.feature(kind, name)
        return found

    def _capabilities(self, wanted: t.Tuple[str, ...], left: int, counts: t.List[Count],
                      causes: t.List[str]) -> int:
        """Counts the nodes of ``left`` that lack capabilities; returns the rest."""
        if left != self.all:
            return self._capabilities_among(wanted, left, counts, causes)
        # no replica placed (the usual case): the same counts for every service that wants these
        known = self._everywhere.get(wanted)
        if known is None:
            found: t.List[Count] = []
            found_causes: t.List[str] = []
            rest = self._capabilities_among(wanted, left, found, found_causes)
            known = self._everywhere[wanted] = (found, found_causes, rest)
        # separate copies: YAML dumps of shared dicts and lists show anchors
        counts.extend([{"code": "capability", "missing": list(count["missing"]), "count": count["count"]}
                       for count in known[0]])
        causes.extend(known[1])
        return known[2]

    def _capabilities_among(self, wanted: t.Tuple[str, ...], left: int, counts: t.List[Count],
                            causes: t.List[str]) -> int:
        groups = self._groups.get(wanted)
        if groups is None:
            groups = self._groups[wanted] = self._lacking_groups(wanted)
        found = [(bits & -bits, missing, bits) for missing, bits in ((missing, left & bits) for missing, bits in groups)
                 if bits]
        if len(wanted) > _SUBSETS_UP_TO:
            # grouped node by node: in the order of the first node of ``left`` that lacks each set
            found.sort(key=lambda item: item[0])
        for _lowest, missing, bits in found:
            left ^= bits
            self._count(counts, causes, bits, "capability", "missing", list(missing))
        return left

    def _lacking_groups(self, wanted: t.Tuple[str, ...]) -> t.List[t.Tuple[t.List[str], int]]:
        """The nodes that lack each set of the ``wanted`` capabilities (and have the others), none left out."""
        if len(wanted) > _SUBSETS_UP_TO:
            grouped: t.Dict[t.Tuple[str, ...], int] = {}
            for node in self.nodes:
                missing = tuple(name for name in wanted if name not in node.capabilities)
                if missing:
                    grouped[missing] = grouped.get(missing, 0) | (1 << node.index)
            return [(list(missing), bits) for missing, bits in grouped.items()]
        has = [self.feature("capability", name) for name in wanted]
        # the subsets in a fixed order
        groups = []
        for subset in range(1, 1 << len(wanted)):
            bits = self.all
            for position, bitset in enumerate(has):
                bits &= ~bitset if subset >> position & 1 else bitset
            if bits:
                groups.append(([name for position, name in enumerate(wanted) if subset >> position & 1], bits))
        return groups


class _Threshold:
    """The nodes with at least a given amount of one resource left, as bitsets."""

    def __init__(self, values: t.Sequence[int]) -> None:
        self.order = sorted(range(len(values)), key=lambda index: -values[index])
        self.descending = [-values[index] for index in self.order]
        # the bitset of the first 16 * i nodes of ``order``, for every i: any prefix is one of them and < 16 bits
        self.checkpoints = [0]
        self.prefixes: t.Dict[int, int] = {}
        self.lacks: t.Dict[int, int] = {}
        self.all = (1 << len(values)) - 1
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

    def lacking(self, amount: int) -> int:
        """The nodes with less than ``amount`` left."""
        found = self.lacks.get(amount)
        if found is None:
            found = self.lacks[amount] = self.all ^ self.at_least(amount)
        return found
