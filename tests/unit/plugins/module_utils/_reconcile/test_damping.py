# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Per-node damping with an injected clock: a flapping node is held, a single change is not."""

from __future__ import annotations

import typing as t

import pytest

from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.damping import Damper


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fp(*capabilities: str) -> t.Dict[str, t.Any]:
    return {"capabilities": sorted(capabilities), "power": "ac", "network": ["wifi"], "arch": "arm/v7"}


W1, W9 = {"w1": fp("pom")}, {"w1": fp("pom"), "w9": fp()}


def damper(limit: int = 2, window: float = 30) -> t.Tuple[Damper, Clock]:
    clock = Clock()
    return Damper(limit, window, clock), clock


def test_a_single_change_passes_at_once() -> None:
    damping, clock = damper()
    assert damping.observe(W1) == (W1, [])
    clock.now += 1
    assert damping.observe(W9) == (W9, [])
    assert damping.held == [] and damping.next_release() is None


def test_a_node_that_leaves_and_comes_back_is_not_held() -> None:
    damping, clock = damper()
    damping.observe(W9)
    for reading in (W1, W9):
        clock.now += 3
        assert damping.observe(reading) == (reading, [])


def test_ten_flaps_in_30_s_show_two_changes_then_a_hold_until_stable_for_the_window() -> None:
    damping, clock = damper()
    damping.observe(W1)
    views, events = [], []
    for flap in range(10):  # w9 joins, leaves, joins ... every 3 s
        clock.now = 1000.0 + 3 * flap
        view, new = damping.observe(W9 if flap % 2 == 0 else W1)
        views.append(sorted(view))
        events.extend(new)
    # the first two changes pass; from the third on, w9 is shown as it was after the second
    assert views == [["w1", "w9"]] + [["w1"]] * 9
    assert [(e.kind, e.node, e.changes) for e in events] == [("hold", "w9", 3)]
    assert events[0].line == "w9 changed 3 times within 30 s: held as it was until it is stable for 30 s"
    assert damping.held == ["w9"]
    clock.now = 1027.0 + 29.5  # the last flap was at 1027
    assert damping.next_release() == 0.5
    assert damping.observe(W1) == (W1, [])
    clock.now = 1027.0 + 30
    view, released = damping.observe(W1)
    assert (view, [(e.kind, e.node, e.line) for e in released]) == (W1, [("release", "w9", "w9 released: stable for 30 s")])
    assert damping.held == [] and damping.next_release() is None


def test_a_held_node_shows_its_last_value_then_its_current_one() -> None:
    damping, clock = damper(limit=1)
    damping.observe(W9)
    clock.now += 1
    assert damping.observe({"w1": fp("pom"), "w9": fp("bot")})[0]["w9"] == fp("bot")
    clock.now += 1
    view, events = damping.observe({"w1": fp("pom"), "w9": fp("oc")})
    assert view["w9"] == fp("bot") and [e.kind for e in events] == ["hold"]
    clock.now += 30
    assert damping.observe({"w1": fp("pom"), "w9": fp("oc")})[0]["w9"] == fp("oc")


def test_other_nodes_change_while_one_is_held() -> None:
    damping, clock = damper(limit=1)
    damping.observe(W9)
    for flap in range(3):
        clock.now += 1
        damping.observe(W1 if flap % 2 == 0 else W9)
    assert damping.held == ["w9"]
    clock.now += 1
    view, _events = damping.observe({"w1": fp("pom", "bot")})
    assert view == {"w1": fp("bot", "pom")}  # w9 held as absent, w1's change shows at once


@pytest.mark.parametrize("limit, window, holds", [(2, 30, 1), (2, 0, 0), (10, 30, 0), (1, 1, 0)])
def test_limit_and_window(limit: int, window: float, holds: int) -> None:
    damping, clock = damper(limit, window)
    damping.observe(W1)
    events = []
    for flap in range(10):
        clock.now += 3
        events.extend(damping.observe(W9 if flap % 2 == 0 else W1)[1])
    assert len([e for e in events if e.kind == "hold"]) == holds


def test_a_churn_of_made_up_names_is_forgotten_after_the_window() -> None:
    damping, clock = damper()
    damping.observe({})
    for index in range(1000):
        clock.now += 0.01
        damping.observe({"fake%d" % index: fp()})
    assert len(damping._changes) == 1000  # pylint: disable=protected-access
    damping.observe({})  # the last one leaves
    clock.now += 30
    damping.observe({})
    assert damping._changes == {} and damping.held == []  # pylint: disable=protected-access
