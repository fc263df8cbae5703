# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The failure detector with an injected clock: suspect, confirm, come back,
blips and flapping, the bound on tracked nodes and the cost of a tick."""

from __future__ import annotations

import logging
import typing as t

import pytest

from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.liveness import (
    ALIVE, LOST, SUSPECTED, TICK, Liveness, Transition,
)


def drive(detector: Liveness, node: str, beats: t.Sequence[float], until: float) -> t.List[t.Tuple[float, str]]:
    """Beat at the given times and tick every TICK from 0 to ``until``; (time, state) at every change."""
    seen = []
    pending = sorted(beats)
    now = 0.0
    while now <= until + 1e-9:
        while pending and pending[0] <= now + 1e-9:
            change = detector.beat(node, pending.pop(0))
            if change is not None and change.old is not None:
                seen.append((round(now, 2), change.new))
        for change in detector.tick(now):
            seen.append((round(now, 2), change.new))
        now += TICK
    return seen


def every(start: float, stop: float, step: float = 1.0) -> t.List[float]:
    out = []
    value = start
    while value <= stop + 1e-9:
        out.append(round(value, 3))
        value += step
    return out


@pytest.mark.parametrize("name, beats, until, expected", [
    ("steady beats", every(0, 20), 20, []),
    ("dead after 5 s", every(0, 5), 12, [(7.0, SUSPECTED), (8.5, LOST)]),
    # a 2 s blip: beats at 5 and 6 are lost, the gap between received beats is 3 s
    ("blip of 2 s", every(0, 4) + every(7, 20), 20, [(6.0, SUSPECTED), (7.0, ALIVE)]),
    ("back from lost", every(0, 3) + every(10, 14), 14, [(5.0, SUSPECTED), (6.5, LOST), (10.0, ALIVE)]),
    ("flapping", [0.0, 2.5, 5.0, 7.5, 10.0], 11,
     [(2.0, SUSPECTED), (2.5, ALIVE), (4.5, SUSPECTED), (5.0, ALIVE), (7.0, SUSPECTED), (7.5, ALIVE),
      (9.5, SUSPECTED), (10.0, ALIVE)]),
])
def test_transitions(name: str, beats: t.List[float], until: float, expected: t.List[t.Tuple[float, str]]) -> None:
    detector = Liveness(2.0, 3.5)
    assert drive(detector, "w1", beats, until) == expected, name


def test_a_blip_of_two_seconds_with_one_second_beats_is_never_lost() -> None:
    # every phase of the blip against the beats and the ticks
    for offset in every(0.0, 0.95, 0.05):
        detector = Liveness(2.0, 3.5)
        beats = [b for b in every(offset, 30 + offset) if not 10 + offset < b < 12 + offset + 0.01]
        assert LOST not in [state for _at, state in drive(detector, "w1", beats, 31)], offset


def test_a_dead_node_is_lost_within_confirm_after_and_one_tick() -> None:
    for last in every(0.0, 0.95, 0.05):
        detector = Liveness(2.0, 3.5)
        changes = drive(detector, "w1", [last], 10)
        lost_at = [at for at, state in changes if state == LOST]
        assert len(lost_at) == 1 and lost_at[0] - last <= 3.5 + TICK + 1e-9, (last, changes)


def test_a_late_tick_owes_both_steps() -> None:
    detector = Liveness(2.0, 3.5)
    detector.beat("w1", 0.0)
    assert [(c.old, c.new) for c in detector.tick(9.0)] == [(ALIVE, SUSPECTED), (SUSPECTED, LOST)]
    assert detector.lost == {"w1"}


def test_the_transitions_carry_the_silence_and_are_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="nanoedge.registry")
    detector = Liveness(2.0, 3.5)
    heard: t.List[Transition] = []
    detector.listeners.append(heard.append)
    detector.beat("w1", 0.0)
    detector.tick(2.25)
    detector.tick(2.5)
    detector.tick(3.75)
    detector.tick(4.0)
    detector.beat("w1", 9.0)
    assert heard == [Transition("w1", None, ALIVE, 0.0), Transition("w1", ALIVE, SUSPECTED, 2.25),
                     Transition("w1", SUSPECTED, LOST, 3.75), Transition("w1", LOST, ALIVE, 9.0)]
    assert [r.getMessage() for r in caplog.records] == [
        "liveness node=w1 suspected (alive -> suspected), last beat 2.25 s ago",
        "liveness node=w1 lost (suspected -> lost), last beat 3.75 s ago",
        "liveness node=w1 back (lost -> alive), last beat 9.00 s ago",
    ]


def test_snapshot() -> None:
    detector = Liveness(2.0, 3.5)
    detector.beat("w2", 0.0)
    detector.beat("w1", 1.0)
    detector.tick(2.5)
    assert detector.snapshot(3.0) == {
        "w1": {"state": ALIVE, "since": 2.0, "last_beat": 2.0},
        "w2": {"state": SUSPECTED, "since": 1.0, "last_beat": 3.0},
    }


def test_only_members_and_nodes_with_a_profile_are_tracked_within_the_cap() -> None:
    profiles = {"p1", "p2", "p3"}
    detector = Liveness(2.0, 3.5, max_nodes=2, always=["m1", "w1"], tracked=profiles.__contains__)
    for node in ("stranger", "m1", "w1", "p1", "p2", "p3"):
        detector.beat(node, 0.0)
    assert sorted(detector.nodes) == ["m1", "p1", "p2", "w1"]
    detector.forget("p1")
    detector.beat("p3", 1.0)
    assert sorted(detector.nodes) == ["m1", "p2", "p3", "w1"]
    detector.forget("m1")
    detector.forget("absent")
    assert sorted(detector.nodes) == ["p2", "p3", "w1"]


def test_a_forgotten_node_leaves_no_deadline_behind() -> None:
    detector = Liveness(2.0, 3.5)
    detector.beat("w1", 0.0)
    detector.forget("w1")
    assert detector.tick(10.0) == [] and detector.snapshot(10.0) == {}


def test_a_tick_touches_only_the_deadlines_that_are_due() -> None:
    detector = Liveness(2.0, 3.5)
    for index in range(500):
        detector.beat("n%03d" % index, index / 500)
    heap = detector._heap  # pylint: disable=protected-access
    assert len(heap) == 500
    # one beat per second each: the heap never grows, a tick before any deadline pops nothing
    for second in range(1, 30):
        for index in range(500):
            detector.beat("n%03d" % index, second + index / 500)
        assert detector.tick(second + 0.5) == []
        assert len(heap) == 500
    assert all(state["state"] == ALIVE for state in detector.snapshot(30.0).values())


@pytest.mark.parametrize("suspect, confirm", [(0.0, 3.5), (2.0, 2.0), (3.0, 2.0), (-1.0, 1.0)])
def test_windows_must_be_ordered(suspect: float, confirm: float) -> None:
    with pytest.raises(ValueError, match="need 0 < suspect_after"):
        Liveness(suspect, confirm)
