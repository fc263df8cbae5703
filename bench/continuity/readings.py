# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Readings lost and duplicated during an event, counted at the consumer against each source's own numbering.

The alert follows the SpO2 service's numbered readings and serves what it processed at ``/counters``
(per source ``service/instance``: ``last_seq``, ``received``, ``duplicates``, ``missing`` and ``gaps``,
``resets``, and ``head``, the newest number the producer reported). The bench reads it just before an
event and again once the cluster settled and the alert caught up. Per source:

- the same alert instance before and after: what its counters added (``missing``, ``duplicates``);
- a new instance (the alert moved, or restarted): its own counters, plus the hand-over between the two
  instances, which neither sees alone. The new one processed ``received`` readings up to ``last_seq``
  with ``missing`` ones skipped, so it started at ``last_seq - received - missing + 1``. Readings at or
  below the old instance's last one in the snapshot were processed twice. Readings after it and before
  that start are lost, unless the new instance resumed where the producer last heard from the consumer
  (``resumed_from``): the producer records a position only when the consumer asks for what follows it,
  so the old instance handled up to there, after the snapshot (the bench takes it right before the fault,
  and the alert handles one reading a second);
- a source that is no longer the one followed (the producer moved with its sensor): what it took and the
  consumer never got (``head - last_seq``) is lost, since no one serves that history any more.

A ``resets`` increase means a producer lost its history folder: how many readings it lost is unknown, and
the row's note says so. Nothing here touches the cluster; ``tests/unit/bench/test_continuity.py``.
"""

from __future__ import annotations

import typing as t

Counters = t.Dict[str, t.Any]


class Tally(t.NamedTuple):
    lost: int
    duplicates: int
    notes: t.List[str]


def _sources(counters: t.Optional[Counters]) -> t.Dict[str, t.Dict[str, t.Any]]:
    sources = (counters or {}).get("sources")
    return {str(k): v for k, v in sources.items() if isinstance(v, dict)} if isinstance(sources, dict) else {}


def _int(state: t.Mapping[str, t.Any], key: str) -> int:
    value = state.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def same_instance(before: Counters, after: Counters) -> bool:
    """Whether ``after`` comes from the instance that answered ``before``: its counters only ever grow."""
    if before.get("instance") is not None or after.get("instance") is not None:
        return before.get("instance") == after.get("instance")
    old, new = _sources(before), _sources(after)
    return all(source in new and _int(new[source], "received") >= _int(state, "received")
               and _int(new[source], "last_seq") >= _int(state, "last_seq") for source, state in old.items())


def first_processed(state: t.Mapping[str, t.Any]) -> int:
    """The first number an instance processed of a source, from what it counted since it started."""
    return _int(state, "last_seq") - _int(state, "received") - _int(state, "missing") + 1


def tally(before: Counters, after: Counters) -> Tally:
    """Readings lost and processed twice between two ``/counters`` answers of the consumer."""
    old, new = _sources(before), _sources(after)
    lost = duplicates = 0
    notes: t.List[str] = []
    same = same_instance(before, after)
    current = after.get("current")
    for source, state in sorted(new.items()):
        previous = old.get(source)
        if same or previous is None:
            base = previous if same and previous is not None else {}
            lost += _int(state, "missing") - _int(base, "missing")
            duplicates += _int(state, "duplicates") - _int(base, "duplicates")
            resets = _int(state, "resets") - _int(base, "resets")
        else:
            lost += _int(state, "missing")
            duplicates += _int(state, "duplicates")
            resets = _int(state, "resets")
            if _int(state, "received") or _int(state, "missing"):
                start, last_before = first_processed(state), _int(previous, "last_seq")
                handled = max(last_before, _int(state, "resumed_from"))
                lost += max(0, start - handled - 1)
                duplicates += max(0, last_before + 1 - start)
        if resets > 0:
            notes.append("%s started a new numbering %d time(s): what it lost is unknown" % (source, resets))
        if source != current:
            lost += max(0, _int(state, "head") - _int(state, "last_seq"))
    for source, state in sorted(old.items()):
        if source not in new:
            # the new instance never heard of it: what the old one had not processed is gone
            lost += max(0, _int(state, "head") - _int(state, "last_seq"))
    return Tally(lost, duplicates, notes)


def caught_up(counters: t.Optional[Counters]) -> bool:
    """Whether the consumer has processed everything its current source reported."""
    if not counters:
        return False
    current = counters.get("current")
    state = _sources(counters).get(str(current)) if current else None
    return state is not None and _int(state, "head") <= _int(state, "last_seq")
