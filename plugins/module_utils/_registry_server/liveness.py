# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The failure detector of the registry (docs/contracts.md, "The CoAP API"):
per node that has beaten since the registry started, ``alive`` ->
``suspected`` after ``suspect_after`` seconds without a beat -> ``lost``
after ``confirm_after`` seconds; any beat makes the node ``alive`` at once.

A beat only stores its time (no allocation, no heap push): every tracked
node has at most one deadline in a heap, and a tick pops only the deadlines
that are due, pushing a node back with its real deadline when it has beaten
since. With beats every second and ``suspect_after`` 2 s, a node's deadline
comes due about every 2 s, so a tick costs a few heap operations, not a scan
of every node.
"""

from __future__ import annotations

import heapq
import time
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._registry_server import LOG

Clock = t.Callable[[], float]

ALIVE = "alive"
SUSPECTED = "suspected"
LOST = "lost"
STATES = (ALIVE, SUSPECTED, LOST)
DEFAULT_SUSPECT_AFTER = 2.0
DEFAULT_CONFIRM_AFTER = 3.5
# How often the registry checks the detector: "lost" is confirmed within
# confirm_after + TICK of the last beat.
TICK = 0.25


class Transition(t.NamedTuple):
    node: str
    old: t.Optional[str]  # None: the node's first beat since the registry started
    new: str
    silent: float  # seconds since the last beat before this transition


class _Node:
    __slots__ = ("state", "since", "last_beat", "queued")

    def __init__(self, now: float) -> None:
        self.state = ALIVE
        self.since = now
        self.last_beat = now
        self.queued = False  # whether the node has its deadline in the heap


class Liveness:
    """The detector. ``tracked(node)`` says whether a node that is not yet
    tracked may be (the registry: it has a stored profile or is a member);
    at most ``max_nodes`` nodes outside ``always`` are tracked."""

    def __init__(self, suspect_after: float = DEFAULT_SUSPECT_AFTER, confirm_after: float = DEFAULT_CONFIRM_AFTER,
                 max_nodes: int = 1000, always: t.Iterable[str] = (),
                 tracked: t.Callable[[str], bool] = lambda node: True, clock: Clock = time.monotonic) -> None:
        if not 0 < suspect_after < confirm_after:
            raise ValueError("need 0 < suspect_after (%g) < confirm_after (%g)" % (suspect_after, confirm_after))
        self.suspect_after = suspect_after
        self.confirm_after = confirm_after
        self.max_nodes = max_nodes
        self.always = frozenset(always)
        self.may_track = tracked
        self.clock = clock
        self.nodes: t.Dict[str, _Node] = {}
        self.lost: t.Set[str] = set()
        self._others = 0  # tracked nodes outside ``always``
        self._heap: t.List[t.Tuple[float, str]] = []
        self.listeners: t.List[t.Callable[[Transition], None]] = []

    def _deadline(self, node: _Node) -> float:
        return node.last_beat + (self.suspect_after if node.state == ALIVE else self.confirm_after)

    def _queue(self, name: str, node: _Node) -> None:
        heapq.heappush(self._heap, (self._deadline(node), name))
        node.queued = True

    def beat(self, name: str, now: t.Optional[float] = None) -> t.Optional[Transition]:
        """A beat from ``name``; the transition it causes (a first beat, or back from suspected or lost), if any."""
        now = self.clock() if now is None else now
        node = self.nodes.get(name)
        if node is None:
            if name not in self.always:
                if self._others >= self.max_nodes or not self.may_track(name):
                    return None
                self._others += 1
            node = self.nodes[name] = _Node(now)
            self._queue(name, node)
            return self._emit(Transition(name, None, ALIVE, 0.0))
        silent = now - node.last_beat
        node.last_beat = now
        if not node.queued:
            self._queue(name, node)
        if node.state == ALIVE:
            return None
        old = node.state
        node.state, node.since = ALIVE, now
        self.lost.discard(name)
        return self._emit(Transition(name, old, ALIVE, silent))

    def tick(self, now: t.Optional[float] = None) -> t.List[Transition]:
        """Move the nodes whose deadline has passed on; the transitions."""
        now = self.clock() if now is None else now
        heap = self._heap
        changes = []
        while heap and heap[0][0] <= now:
            _deadline, name = heapq.heappop(heap)
            node = self.nodes.get(name)
            if node is None:
                continue  # forgotten since
            node.queued = False
            deadline = self._deadline(node)
            if deadline > now:  # it beat since this deadline was pushed
                self._queue(name, node)
                continue
            old = node.state
            node.since = deadline
            if old == ALIVE:
                node.state = SUSPECTED
                # the confirm deadline; a tick that came late pops it again in this same loop
                self._queue(name, node)
            else:
                node.state = LOST
                self.lost.add(name)
            changes.append(self._emit(Transition(name, old, node.state, now - node.last_beat)))
        return changes

    def _emit(self, change: Transition) -> Transition:
        if change.old is not None:
            what = "back" if change.new == ALIVE else change.new
            LOG.info("liveness node=%s %s (%s -> %s), last beat %.2f s ago",
                     change.node, what, change.old, change.new, change.silent)
        for listener in self.listeners:
            listener(change)
        return change

    def forget(self, name: str) -> None:
        """Stop tracking ``name`` (its profile is gone and it is no member)."""
        node = self.nodes.pop(name, None)
        if node is None:
            return
        self.lost.discard(name)
        if name not in self.always:
            self._others -= 1

    def state(self, name: str) -> t.Optional[str]:
        node = self.nodes.get(name)
        return None if node is None else node.state

    def snapshot(self, now: t.Optional[float] = None) -> t.Dict[str, t.Dict[str, t.Any]]:
        """The ``GET /liveness`` answer: node -> state, seconds in it, seconds since the last beat."""
        now = self.clock() if now is None else now
        return {name: {"state": node.state, "since": round(now - node.since, 3),
                       "last_beat": round(now - node.last_beat, 3)}
                for name, node in sorted(self.nodes.items())}
