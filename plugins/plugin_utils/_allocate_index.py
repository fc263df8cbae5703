# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""An index over the nodes, in their order, that answers the heuristics' one question:
which node takes this service (the first, the one with the least or with the most capacity left)?

One pool per set of capabilities the services ask for holds the nodes that
have them, in the node order, cut into chunks of 256. Each node's remaining
cpu, memory and storage is kept as a level (one byte): how many of the
services' distinct demands (at most 255 of them, quantiles beyond) it
reaches, so a node with room for a demand reaches the demand's level. Per
chunk the highest levels let a search skip it whole; inside a chunk
``bytearray.translate`` and ``int.from_bytes`` turn "level at least L" into a
bitset (one bit every eight) at C speed, and AND-ing those with the bitset of
the nodes that satisfy the service's power, network and battery leaves the
candidates. Candidates are checked exactly in node order (a few share a level
with the demand without reaching it), so the answer is the one a scan of every
node gives, whatever the number of distinct requirements. best_fit and spread
also keep each node's score, and its level: chunks are taken by their least
score and, inside one, the candidates of the lowest level are compared exactly.
"""

from __future__ import annotations

import bisect
import typing as t

from ansible_collections.nanoedge.core.plugins.plugin_utils._allocate_model import Node, Service, Signature, statically_fits

Demand = t.Tuple[int, int, int]
Score = t.Callable[[int], float]
NONE = -1
_LEVELS = 256
# per level L, the translation that maps a byte to 1 when it is at least (AT_LEAST) or at most (AT_MOST) L
AT_LEAST = [bytes(1 if value >= level else 0 for value in range(_LEVELS)) for level in range(_LEVELS)]
AT_MOST = [bytes(1 if value <= level else 0 for value in range(_LEVELS)) for level in range(_LEVELS)]
_INVERT = bytes(_LEVELS - 1 - value for value in range(_LEVELS))
_SIXTEENTH = bytes(value >> 4 for value in range(_LEVELS))
_BYTE = [bytes((value,)) for value in range(_LEVELS)]
# score levels: two bytes
_FINE = _LEVELS * _LEVELS
# nodes per chunk: a chunk whose best levels are below the demand's is skipped without looking at its nodes
CHUNK = 256
# best_fit and spread look at every chunk with room (no early stop), so theirs are larger: fewer steps in Python
SCORED = 16
# demands that get a level of their own; past that many, quantiles of them (a level is one byte)
MAX_BOUNDS = _LEVELS - 1


def bits_of(flags: t.Union[bytes, bytearray]) -> int:
    """One byte per node (0 or 1) to a bitset with node i at bit 8 * i."""
    return int.from_bytes(flags, "little")


def highest(levels: t.Union[bytes, bytearray]) -> int:
    """The highest byte of ``levels`` (0 when empty), found at C speed: first its high four bits, then it."""
    # max() walks the bytes one Python int at a time; ``in`` is one memchr per value tried, at most 32 here
    sixteenths = levels.translate(_SIXTEENTH)
    for high in range(15, -1, -1):
        if _BYTE[high] in sixteenths:
            for value in range(high * 16 + 15, high * 16, -1):
                if _BYTE[value] in levels:
                    return value
            return high * 16
    return 0


def _lowest(levels: bytearray, bits: int) -> int:
    """The nodes of ``bits`` (not empty) whose level is the lowest among them."""
    # (255 - level) at the nodes' bytes, 0 elsewhere: the most of it is the lowest level
    level = _LEVELS - 1 - highest((bits_of(levels.translate(_INVERT)) & bits * 255).to_bytes(len(levels), "little"))
    return bits & bits_of(levels.translate(AT_MOST[level]))


def nodes_of(bits: int) -> t.Iterator[int]:
    """The nodes of a bitset, in order."""
    while bits:
        low = bits & -bits
        yield (low.bit_length() - 1) >> 3
        bits ^= low


class Eligible:
    """The nodes that satisfy each signature statically, as bitsets (node i at bit 8 * i)."""

    def __init__(self, nodes: t.Sequence[Node]) -> None:
        self.count = len(nodes)
        self.all = bits_of(b"\x01" * len(nodes))
        flags: t.Dict[t.Tuple[str, str], bytearray] = {}
        for node in nodes:
            for feature in [("capability", name) for name in node.capabilities] + \
                    [("network", name) for name in node.network] + [("power", node.power)]:
                flags.setdefault(feature, bytearray(len(nodes)))[node.index] = 1
        self._feature = {feature: bits_of(value) for feature, value in flags.items()}
        # whole percents, mains power above all: "at least the service's whole percent" is a superset of the
        # nodes whose battery satisfies it, and candidates are checked exactly
        self._battery = bytearray(_LEVELS - 1 if node.power == "ac" else
                                  (0 if node.battery is None else min(_LEVELS - 2, int(node.battery)))
                                  for node in nodes)
        self._cache: t.Dict[Signature, int] = {}

    def of(self, signature: Signature) -> int:
        """The nodes that may satisfy ``signature`` (capabilities, power, network exactly; battery roughly)."""
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
            bits &= bits_of(self._battery.translate(AT_LEAST[min(_LEVELS - 2, min_battery // 1000000)]))
        return bits


def _bounds(values: t.Iterable[int]) -> t.List[int]:
    """At most 255 increasing demands (all of them, or quantiles): the level of x is how many are <= x."""
    distinct = sorted(set(values) - {0})
    if len(distinct) <= MAX_BOUNDS:
        return distinct
    step = len(distinct) / MAX_BOUNDS
    return sorted({distinct[int(rank * step)] for rank in range(MAX_BOUNDS)})


class Pool:
    """The nodes that have one set of capabilities, in the node order: their remaining capacity (and
    score) as levels, in chunks, updated in place. Positions are places in ``members``."""

    def __init__(self, members: t.List[int], index: "NodeIndex", size: int) -> None:
        self.members = members
        self.owner = index
        self.size = size
        self.levels = [bytearray(bisect.bisect_right(index.bounds[kind], index.resources[kind][node])
                                 for node in members) for kind in range(3)]
        self.chunks = [(low, min(low + size, len(members))) for low in range(0, len(members), size)]
        # per chunk, the highest level of each resource: a chunk below the demand's level is skipped whole.
        # Levels only fall, so a top that is too high is still a bound: it is brought down (``_refresh``)
        # only when its chunk is searched in vain, not at every placement.
        self.top = [[highest(levels[low:high]) for low, high in self.chunks] for levels in self.levels]
        self.stale = [False] * len(self.chunks)
        if index.score is not None:
            self.values = [index.score(node) for node in members]
            levels = [index.score_level(value) for value in self.values]
            # a score's level in two bytes: the high one (``scores``) picks the least candidates, the low one
            # (``fine``) narrows them to the few that are compared exactly
            self.scores = bytearray(level >> 8 for level in levels)
            self.fine = bytearray(level & 255 for level in levels)
            # per chunk, at most the least score of its nodes: no candidate there scores less
            self.least = [min(self.values[low:high]) for low, high in self.chunks]
        self._chunked: t.Dict[Signature, t.List[int]] = {}

    def update(self, position: int) -> None:
        """The node at ``position`` took a service."""
        owner, node = self.owner, self.members[position]
        chunk = position // self.size
        for kind in range(3):
            self.levels[kind][position] = bisect.bisect_right(owner.bounds[kind], owner.resources[kind][node])
        self.stale[chunk] = True
        if owner.score is not None:
            value = self.values[position] = owner.score(node)
            level = owner.score_level(value)
            self.scores[position] = level >> 8
            self.fine[position] = level & 255
            # best_fit's scores fall; spread's rise, and the least stays a bound
            if value < self.least[chunk]:
                self.least[chunk] = value

    def _refresh(self, chunk: int) -> None:
        """The chunk's tops brought down to its nodes' levels."""
        if self.stale[chunk]:
            low, high = self.chunks[chunk]
            for kind in range(3):
                self.top[kind][chunk] = highest(self.levels[kind][low:high])
            self.stale[chunk] = False

    def _eligible(self, signature: Signature) -> t.List[int]:
        """The signature's nodes, as one bitset per chunk (position ``low + i`` at bit 8 * i)."""
        found = self._chunked.get(signature)
        if found is None:
            flags = self.owner.eligible.of(signature).to_bytes(len(self.owner.nodes), "little")
            if len(self.members) != len(flags):
                flags = bytes(map(flags.__getitem__, self.members))
            found = self._chunked[signature] = [bits_of(flags[low:high]) for low, high in self.chunks]
        return found

    def _open(self, service: Service, need: t.Sequence[int]) -> t.Iterator[t.Tuple[int, int]]:
        """(chunk, its eligible nodes) for the chunks whose best levels reach the demand's."""
        top_cpu, top_memory, top_storage = self.top
        need_cpu, need_memory, need_storage = need
        for chunk, bits in enumerate(self._eligible(service.signature)):
            if bits and top_cpu[chunk] >= need_cpu and top_memory[chunk] >= need_memory \
                    and top_storage[chunk] >= need_storage:
                yield chunk, bits

    def _candidates(self, chunk: int, bits: int, need: t.Sequence[int]) -> int:
        """The chunk's nodes that may take the service: a superset of those that can."""
        low, high = self.chunks[chunk]
        for kind in range(3):
            if need[kind] and bits:
                bits &= bits_of(self.levels[kind][low:high].translate(AT_LEAST[need[kind]]))
        return bits

    def first(self, service: Service, taken: t.Container[int]) -> int:
        """The first node that can take the service and is not in ``taken``, or -1."""
        need, fits, members = self.owner.need(service), self.owner.fits, self.members
        for chunk, bits in self._open(service, need):
            low = self.chunks[chunk][0]
            candidates = self._candidates(chunk, bits, need)
            if not candidates:
                self._refresh(chunk)
            for offset in nodes_of(candidates):
                node = members[low + offset]
                if node not in taken and fits(service, node):
                    return node
        return NONE

    def best(self, service: Service, floor: float, taken: t.Container[int]) -> int:
        """The node that can take the service, not in ``taken``, with the least score (the first on ties), or -1.

        No node with room for the service scores under ``floor``.
        """
        need, fits, members, score = self.owner.need(service), self.owner.fits, self.members, self.owner.score
        if score is None:
            raise AssertionError("best() is for the scored strategies (best_fit, spread)")
        best_score, best_node = float("inf"), NONE
        for bound, chunk, bits in sorted((max(self.least[chunk], floor), chunk, bits)
                                         for chunk, bits in self._open(service, need)):
            low, high = self.chunks[chunk]
            # no node of this chunk (nor of the next ones) scores less, and on a tie it comes later
            if bound > best_score or (bound == best_score and members[low] > best_node):
                break
            bits = self._candidates(chunk, bits, need)
            if not bits:
                self._refresh(chunk)
            scores, fine = self.scores[low:high], self.fine[low:high]
            while bits:
                at_level = _lowest(fine, _lowest(scores, bits))
                found = [(score(members[low + offset]), members[low + offset]) for offset in nodes_of(at_level)
                         if members[low + offset] not in taken and fits(service, members[low + offset])]
                if found:
                    best_score, best_node = min([(best_score, best_node)] + found)
                    break
                bits ^= at_level
        return best_node


class NodeIndex:
    """One pool per set of capabilities the services ask for, kept in step with the state's capacity."""

    def __init__(self, nodes: t.Sequence[Node], services: t.Sequence[Service], cpu: t.List[int],
                 memory: t.List[int], storage: t.List[int], score: t.Optional[Score] = None) -> None:
        self.nodes = nodes
        self.resources = (cpu, memory, storage)
        self.bounds = [_bounds(service.demand[kind] for service in services) for kind in range(3)]
        self.score = score
        if score is not None:
            values = [score(index) for index in range(len(nodes))]
            # scores only move towards 0 (less left: best_fit's fall, spread's negative ones rise)
            self.span = (min(values + [0.0]), max(values + [0.0]))
        self.eligible = Eligible(nodes)
        self.pools: t.Dict[t.Tuple[str, ...], Pool] = {}
        self.holders: t.List[t.List[t.Tuple[Pool, int]]] = [[] for node in nodes]
        for capabilities in sorted({service.capabilities for service in services}):
            wanted = set(capabilities)
            members = [node.index for node in nodes if node.capabilities.issuperset(wanted)]
            pool = self.pools[capabilities] = Pool(members, self, CHUNK if score is None else CHUNK * SCORED)
            for position, node in enumerate(members):
                self.holders[node].append((pool, position))
        self.failed: t.Dict[Signature, t.List[Demand]] = {}

    def score_level(self, value: float) -> int:
        """A score's level: linear, so that it never decreases with the score."""
        low, high = self.span
        if high <= low:
            return 0
        return max(0, min(_FINE - 1, int((value - low) * ((_FINE - 1) / (high - low)))))

    def need(self, service: Service) -> t.List[int]:
        """The levels of the service's demand: a node with room for it is at least there."""
        return [bisect.bisect_right(self.bounds[kind], service.demand[kind]) for kind in range(3)]

    def update(self, index: int) -> None:
        """Node ``index`` took a service."""
        for pool, position in self.holders[index]:
            pool.update(position)

    def fits(self, service: Service, index: int) -> bool:
        cpu, memory, storage = self.resources
        return cpu[index] >= service.cpu and memory[index] >= service.memory and storage[index] >= service.storage \
            and statically_fits(service.signature, self.nodes[index])

    def first(self, service: Service, taken: t.Container[int]) -> int:
        """The first node that can take the service and is not in ``taken``, or -1."""
        return self.pools[service.capabilities].first(service, taken)

    def best(self, service: Service, floor: float, taken: t.Container[int]) -> int:
        """The node that can take the service, not in ``taken``, with the least score (the first on ties), or -1."""
        return self.pools[service.capabilities].best(service, floor, taken)

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
