# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Per-node damping of the live profiles: a node whose profile keeps changing is held.

A profile is self-reported: one node (or anyone who may write to the registry)
can make its entry appear, vanish or change as often as it likes, and every
change longer apart than the debounce would otherwise cost a full run of
``nanoedge.core.site``. A node that changed more than ``limit`` times within
``window`` seconds is held: the daemon sees it as it was before the change that
crossed the limit, until it has been stable for ``window`` seconds. A flapping
node thus causes at most ``limit`` runs, and its changes stop pushing back the
debounce of the other nodes' changes. A single real change is not delayed.
"""

from __future__ import annotations

import time
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.fingerprint import Fingerprint

Entry = t.Optional[t.Dict[str, t.Any]]  # a node's placement facets; None: the node has no live profile


class DampingEvent(t.NamedTuple):
    kind: str  # "hold" or "release"
    node: str
    changes: int  # the node's changes within the window
    line: str


class Damper:
    """The live profiles as the daemon acts on them: the watcher's, with flapping nodes held.

    ``observe`` is cheap and idempotent for the same reading, so the daemon calls it
    whenever it looks at the profiles; a window of 0 turns damping off."""

    def __init__(self, limit: int, window: float, clock: t.Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._raw: t.Optional[Fingerprint] = None
        self._changes: t.Dict[str, t.List[float]] = {}
        self._held: t.Dict[str, Entry] = {}
        self.view: t.Optional[Fingerprint] = None

    @property
    def held(self) -> t.List[str]:
        return sorted(self._held)

    def observe(self, raw: t.Optional[Fingerprint]) -> t.Tuple[t.Optional[Fingerprint], t.List[DampingEvent]]:
        """(the damped view of ``raw``, the holds and releases this reading caused)."""
        now = self.clock()
        events = []  # type: t.List[DampingEvent]
        if raw is not self._raw and raw != self._raw:
            if self._raw is not None and raw is not None and self.window > 0:
                for node in sorted(set(raw) | set(self._raw)):
                    if raw.get(node) != self._raw.get(node):
                        self._record(node, now, events)
            self._raw = raw
        self._release(now, events)
        self.view = self._damped()
        return self.view, events

    def next_release(self) -> t.Optional[float]:
        """Seconds until the first held node is released; None when none is held."""
        if not self._held:
            return None
        now = self.clock()
        return max(0.0, min(self._changes[node][-1] + self.window - now for node in self._held))

    def _recent(self, node: str, now: float) -> t.List[float]:
        return [when for when in self._changes.get(node, []) if now - when < self.window]

    def _record(self, node: str, now: float, events: t.List[DampingEvent]) -> None:
        changes = self._recent(node, now) + [now]
        self._changes[node] = changes
        if node in self._held or len(changes) <= self.limit:
            return
        # what the daemon saw before this change, so the change itself does not count
        self._held[node] = (self.view or {}).get(node)
        events.append(DampingEvent("hold", node, len(changes), (
            "%s changed %d times within %g s: held as it was until it is stable for %g s"
            % (node, len(changes), self.window, self.window))))

    def _release(self, now: float, events: t.List[DampingEvent]) -> None:
        for node in sorted(self._held):
            if now - self._changes[node][-1] >= self.window:
                del self._held[node]
                events.append(DampingEvent("release", node, 0, "%s released: stable for %g s" % (node, self.window)))
        # Forget what is out of the window: a churn of made-up node names must not grow this for ever.
        for node in [n for n, times in self._changes.items() if n not in self._held and now - times[-1] >= self.window]:
            del self._changes[node]

    def _damped(self) -> t.Optional[Fingerprint]:
        if self._raw is None:
            return None
        if not self._held:
            return self._raw
        view = {node: entry for node, entry in self._raw.items() if node not in self._held}
        view.update({node: entry for node, entry in self._held.items() if entry is not None})
        return dict(sorted(view.items()))
