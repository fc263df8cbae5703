# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""When the daemon runs the command and why: pending changes, debounce and backoff,
the reason of a run, a passive manager's skip, the leadership's role changes and
terms, and what a run leaves in the state files. The registry is left out: the
tests set the live profiles' fingerprint and hand the leadership answers over."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
import typing as t

import pytest

from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.config import validate_config
from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.daemon import Reconciler, only_lost


def fp(*capabilities: str) -> t.Dict[str, t.Any]:
    return {"capabilities": sorted(capabilities), "power": "ac", "network": ["wifi"], "arch": "armv7l"}


def make(tmp_path: t.Any, **settings: t.Any) -> Reconciler:
    raw = {"registry": "coap://m1", "command": ["true"], "state_dir": str(tmp_path / "state"), "debounce": 2}
    raw.update(settings)
    reconciler = Reconciler(validate_config(raw))
    reconciler.prepare_dirs()
    return reconciler


def lead(reconciler: Reconciler, **changes: t.Any) -> None:
    """The registry's answer to a request sent now: the leader at term 9 (``changes`` aside)."""
    answer = {"manager": "m1", "candidate": True, "term": 9, "leader": True, "lease_remaining": 2.81,
              "granted_by": ["w1", "w2", "w3"], "members": 7, "majority": 4, "highest_term": 9}
    answer.update(changes)
    change = reconciler.election.answered(reconciler.clock(), answer)
    if change is not None:
        reconciler._role_changed(change)  # pylint: disable=protected-access


def state(tmp_path: t.Any) -> t.Dict[str, t.Any]:
    return json.loads((tmp_path / "state" / "state.json").read_text())


def decisions(tmp_path: t.Any) -> t.List[t.Dict[str, t.Any]]:
    return [json.loads(line) for line in (tmp_path / "state" / "decisions.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("applied, force_reason, failures, reason, event", [
    (None, "became active: leader at term 9", 0,
     "became active: leader at term 9; no successful run yet; live nodes: w1, w2", "activated"),
    ({"w1": fp("pom")}, None, 0, "w2 joined (capabilities bot)", "change"),
    ({"w1": fp(), "w2": fp("bot")}, None, 0, "w1 gained capability pom", "change"),
    ({"w1": fp("pom"), "w2": fp("bot"), "w3": fp()}, None, 2,
     "retry 2 after rc 4; w3 left (no live profile: lease expired or deleted)", "retry"),
    ({"w1": fp("pom"), "w2": fp("bot")}, None, 1, "retry 1 after rc 4", "retry"),
    ({"w1": fp("pom"), "w2": fp("bot")}, None, 0, "the live profiles differ from the last successful run", "change"),
])
def test_the_reason_of_a_run(tmp_path, applied, force_reason, failures, reason, event):
    reconciler = make(tmp_path)
    reconciler.applied, reconciler.force_reason = applied, force_reason
    reconciler.runner.failures, reconciler.runner.last_run = failures, {"rc": 4}
    text, trigger = reconciler.trigger({"w1": fp("pom"), "w2": fp("bot")})
    assert text == reason
    assert (trigger["event"], trigger["nodes"]) == (event, ["w1", "w2"])


def test_a_change_is_pending_until_a_run_acted_on_it(tmp_path):
    reconciler = make(tmp_path)
    assert not reconciler.pending()  # nothing read yet
    reconciler.watcher.fingerprint = {"w1": fp()}
    assert reconciler.pending()
    reconciler.force_reason, reconciler.applied = None, {"w1": fp()}
    assert not reconciler.pending()


def test_a_run_waits_for_the_debounce_settle_and_backoff(tmp_path):
    reconciler = make(tmp_path, settle=30)
    now = time.monotonic()
    reconciler.last_change = now
    assert 29 < reconciler.due_in() <= 30  # the settle time since the start
    reconciler.started_at = now - 60
    assert 1 < reconciler.due_in() <= 2  # the debounce after the last change
    reconciler.runner.failures, reconciler.runner.next_retry = 1, now + 50
    assert 49 < reconciler.due_in() <= 50
    reconciler.last_change = reconciler.election.activated_at = now - 10
    reconciler.runner.failures = 0
    assert reconciler.due_in() == 0.0


def test_a_full_run_an_operator_asks_for_does_not_wait_for_the_backoff(tmp_path):
    reconciler = make(tmp_path, settle=0)
    now = time.monotonic()
    reconciler.last_change = reconciler.election.activated_at = now - 10
    reconciler.runner.failures, reconciler.runner.next_retry = 3, now + 200
    reconciler.failed_nodes = ["w1"]
    reconciler.watcher.fingerprint = {"w1": fp()}
    reconciler.election.role = "active"
    assert reconciler.due_in() > 199
    reconciler.full_run_requested()
    assert reconciler.force_reason == "a full run requested (SIGHUP)"
    assert reconciler.due_in() == 0.0


@pytest.mark.parametrize("failed_nodes, live, waits", [
    (["w1", "w2"], ["w1", "w2"], True),  # the same nodes: the backoff
    (["w1", "w2"], ["w2"], False),  # w1 vanished (in the middle of the run): at once
    (["w2"], ["w1", "w2"], False),  # w1 came
    (None, ["w1"], True),  # a failure before any node was acted on (the lock): the backoff
])
def test_a_failed_run_is_retried_at_once_when_nodes_came_or_went(tmp_path, failed_nodes, live, waits):
    reconciler = make(tmp_path, settle=0)
    now = time.monotonic()
    reconciler.last_change = reconciler.election.activated_at = now - 10
    reconciler.runner.failures, reconciler.runner.next_retry = 1, now + 50
    reconciler.failed_nodes = failed_nodes
    reconciler.watcher.fingerprint = {node: fp() for node in live}
    assert (reconciler.due_in() > 49) is waits


def test_a_passive_manager_logs_each_change_it_leaves_alone_once(tmp_path):
    reconciler = make(tmp_path, managers=["coap://m0", "coap://m1"])
    reconciler.watcher.fingerprint = {"w1": fp("pom")}
    reconciler.watcher.last_change = reconciler.election.activated_at = time.monotonic() - 5
    assert asyncio.run(reconciler.evaluate()) == 30.0
    assert asyncio.run(reconciler.evaluate()) == 30.0
    skips = [record for record in decisions(tmp_path) if record["event"] == "skip"]
    assert len(skips) == 1
    assert skips[0]["reason"] == "no successful run yet; live nodes: w1"
    assert (skips[0]["role"], skips[0]["why"]) == ("passive", "passive")
    assert reconciler.runner.last_run is None


def test_a_successful_run_is_recorded_in_the_decisions_and_the_state(tmp_path):
    reconciler = make(tmp_path)
    lead(reconciler)
    reconciler.watcher.fingerprint = {"w1": fp("pom")}
    result = asyncio.run(reconciler.reconcile({"w1": fp("pom")}))
    assert (result.rc, result.error) == (0, "")
    run = decisions(tmp_path)[-1]
    assert run["event"] == "run" and run["rc"] == 0 and run["command"] == ["true"] and run["term"] == 9
    assert run["reason"] == ("became active: leader at term 9, granted by w1, w2, w3 (majority 4 of 7 members);"
                             " no successful run yet; live nodes: w1")
    state = json.loads((tmp_path / "state" / "state.json").read_text())
    assert state["applied"] == {"w1": fp("pom")} and state["failures"] == 0 and state["running"] is False
    assert state["last_run"]["rc"] == 0 and reconciler.force_reason is None and not reconciler.pending()
    reconciler.load_state()
    assert reconciler.applied == {"w1": fp("pom")} and reconciler.runner.last_run["rc"] == 0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def simulate(tmp_path: t.Any, readings: t.Dict[float, t.Dict[str, t.Any]], until: float,
             **settings: t.Any) -> t.List[t.Tuple[float, t.Any]]:
    """The daemon's loop on an injected clock, every 0.25 s: the live profiles change at the
    given times (as the watcher would report them); (time, what acted on) of every run."""
    raw = {"registry": "coap://m1", "command": ["true"], "state_dir": str(tmp_path / "state"), "debounce": 2}
    raw.update(settings)
    clock = Clock()
    reconciler = Reconciler(validate_config(raw), clock)
    reconciler.prepare_dirs()
    lead(reconciler)
    reconciler.election.activated_at = 0.0
    reconciler.watcher.fingerprint = readings[0.0]
    reconciler.applied, reconciler.force_reason = readings[0.0], None
    runs = []

    async def loop() -> None:  # one event loop for all: the daemon's events belong to it
        for step in range(int(until * 4) + 1):
            clock.now = 1000.0 + step / 4
            reading = readings.get(step / 4)
            if reading is not None and reading != reconciler.watcher.fingerprint:
                reconciler.watcher.fingerprint, reconciler.watcher.last_change = reading, clock.now
                reconciler._profiles_changed()  # pylint: disable=protected-access
            lead(reconciler)  # the lease renewed every 0.25 s
            before = reconciler.applied
            await reconciler.evaluate()
            if reconciler.applied is not before:
                runs.append((step / 4, sorted(reconciler.applied)))

    asyncio.run(loop())
    return runs


W1, W9 = {"w1": fp("pom")}, {"w1": fp("pom"), "w9": fp()}


def flapping(times: t.Iterable[float], w1: t.Callable[[float], t.Dict[str, t.Any]] = lambda at: fp("pom")
             ) -> t.Dict[float, t.Dict[str, t.Any]]:
    """w1 as ``w1(time)`` says; w9 joins at the first time, leaves at the next, and so on."""
    readings = {0.0: W1}
    for flap, at in enumerate(times):
        readings[at] = dict({"w1": w1(at)}, **({"w9": fp()} if flap % 2 == 0 else {}))
    return readings


@pytest.mark.parametrize("settings, expected", [
    # the default limit, 4: four runs, held at the fifth change (a join after the debounce, a loss at once)
    ({}, [(5.0, ["w1", "w9"]), (6.0, ["w1"]), (11.0, ["w1", "w9"]), (12.0, ["w1"])]),
    ({"flap_limit": 2}, [(5.0, ["w1", "w9"]), (6.0, ["w1"])]),
])
def test_a_node_flapping_ten_times_in_30_s_causes_at_most_flap_limit_runs(tmp_path, settings, expected):
    runs = simulate(tmp_path, flapping(3.0 + 3 * flap for flap in range(10)), until=90, **settings)
    assert runs == expected
    held = [record for record in decisions(tmp_path) if record["event"] in ("hold", "release")]
    assert [(r["event"], r["node"], r["held"]) for r in held] == [("hold", "w9", ["w9"]), ("release", "w9", [])]
    assert held[0]["changes"] == len(expected) + 1


def test_without_damping_every_flap_is_a_run(tmp_path):
    assert len(simulate(tmp_path, flapping(3.0 + 3 * flap for flap in range(10)), until=90, flap_window=0)) == 10


def test_a_flapping_node_does_not_hold_back_a_real_change_elsewhere(tmp_path):
    # w9 flaps every second (inside the debounce) from 1 s to 30 s; w1 gains a capability at 20 s
    readings = flapping((1.0 + flap for flap in range(30)), lambda at: fp("pom", "bot") if at >= 20 else fp("pom"))
    runs = simulate(tmp_path, readings, until=90)
    assert runs == [(22.0, ["w1"])]


def test_a_single_real_change_acts_at_once_after_the_debounce(tmp_path):
    runs = simulate(tmp_path, {0.0: W1, 10.0: W9}, until=40)
    assert runs == [(12.0, ["w1", "w9"])]


def test_each_role_change_is_a_decision_and_the_state_file_shows_the_lease(tmp_path):
    clock = Clock()
    raw = {"registry": "coap://m1", "command": ["true"], "state_dir": str(tmp_path / "state"),
           "managers": ["coap://m1", "coap://m2"]}
    reconciler = Reconciler(validate_config(raw), clock)
    reconciler.prepare_dirs()
    lead(reconciler)
    current = state(tmp_path)
    assert (current["role"], current["term"], current["leader"], current["lease_remaining"]) == (
        "active", 9, True, 2.81)
    assert (current["granted_by"], current["majority"], current["members"]) == (["w1", "w2", "w3"], 4, 7)
    assert reconciler.force_reason == "became active: leader at term 9, granted by w1, w2, w3 (majority 4 of 7 members)"
    clock.now += 2.81
    assert asyncio.run(reconciler.evaluate()) == 30.0  # nothing read yet: nothing to run
    reconciler.keeper.check()
    roles = [(record["previous"], record["role"], record["term"], record["why"])
             for record in decisions(tmp_path) if record["event"] == "role"]
    assert roles == [
        ("passive", "active", 9, "leader at term 9, granted by w1, w2, w3 (majority 4 of 7 members)"),
        ("active", "passive", 9, "the lease ran out without a renewal (no leader answer since 2.8 s)")]
    first = [record for record in decisions(tmp_path) if record["event"] == "role"][0]
    assert (first["granted_by"], first["majority"], first["members"], first["manager"]) == (
        ["w1", "w2", "w3"], 4, 7, "coap://m1:5683")
    assert (state(tmp_path)["role"], state(tmp_path)["leader"], state(tmp_path)["lease_remaining"]) == (
        "passive", False, 0.0)
    assert reconciler.force_reason is None


def test_a_run_carries_the_term_it_started_under(tmp_path):
    argv_file = tmp_path / "argv.json"
    script = "import json, sys; open(sys.argv[1], 'w').write(json.dumps(sys.argv[2:]))"
    reconciler = make(tmp_path, command=[sys.executable, "-c", script, str(argv_file)])
    lead(reconciler, term=14, manager="m2")
    reconciler.watcher.fingerprint = {"w1": fp()}
    assert asyncio.run(reconciler.reconcile({"w1": fp()})).rc == 0
    extra = json.loads(argv_file.read_text())
    assert extra[0] == "-e" and json.loads(extra[1]) == {"nanoedge_fence_term": 14, "nanoedge_fence_manager": "m2"}


def test_no_run_without_the_lease_even_when_called(tmp_path):
    reconciler = make(tmp_path)
    reconciler.watcher.fingerprint = {"w1": fp()}
    result = asyncio.run(reconciler.reconcile({"w1": fp()}))
    assert (result.rc, result.error) == (None, "not the leader")
    assert reconciler.runner.last_run is None


def test_a_run_continues_after_losing_the_lease_and_says_so(tmp_path, caplog):
    reconciler = make(tmp_path)
    lead(reconciler)
    reconciler.runner.running = True
    with caplog.at_level(logging.INFO, logger="nanoedge.reconcile"):
        lead(reconciler, leader=False, lease_remaining=0, granted_by=["w1"], term=11)
    assert [record.getMessage() for record in caplog.records][-1] == (
        "a run is continuing after losing the lease: it carries term 9, which the nodes refuse once another"
        " manager has a higher one")
    role = decisions(tmp_path)[-1]
    assert (role["event"], role["role"], role["term"], role["why"]) == (
        "role", "passive", 9, "the registry says m1 is not the leader")


def test_becoming_active_mid_life_does_not_wait_for_settle(tmp_path):
    clock = Clock()
    raw = {"registry": "coap://m1", "command": ["true"], "state_dir": str(tmp_path / "state"), "settle": 30,
           "debounce": 0.5}
    reconciler = Reconciler(validate_config(raw), clock)
    reconciler.prepare_dirs()
    clock.now += 600  # long after the start
    lead(reconciler)
    assert reconciler.due_in() == 0.5


def test_every_renewal_rewrites_the_state_file_with_the_lease(tmp_path):
    clock = Clock()
    reconciler = Reconciler(validate_config({"registry": "coap://m1", "command": ["true"],
                                             "state_dir": str(tmp_path / "state")}), clock)
    reconciler.prepare_dirs()
    asked = []

    async def exchange(candidate: t.Optional[bool], ttl: float, timeout: float) -> t.Tuple[str, t.Any]:
        asked.append((candidate, ttl, timeout))
        return "answer", {"manager": "m1", "candidate": True, "term": 3, "leader": True, "lease_remaining": 3600.0,
                          "granted_by": [], "members": 6, "majority": 4, "highest_term": 3}

    reconciler.keeper.exchange = exchange
    asyncio.run(reconciler.keeper.renew())
    assert [record["event"] for record in decisions(tmp_path)] == ["role"]
    clock.now += 0.75
    asyncio.run(reconciler.keeper.renew())
    assert (state(tmp_path)["lease_remaining"], state(tmp_path)["term"]) == (3.0, 3)
    clock.now += 0.5
    asyncio.run(reconciler.keeper.renew())
    assert [record["event"] for record in decisions(tmp_path)] == ["role"]  # renewals are no decisions
    assert state(tmp_path)["lease_remaining"] == 3.0 and asked == [(True, 3.0, 3.0)] * 3


@pytest.mark.parametrize("applied, term_back, forced", [
    ({"w1": {}}, 9, False),  # back at the term it held, after a successful run: nobody led meanwhile
    ({"w1": {}}, 11, True),  # a new term: another manager may have led, so a run re-reads everything
    (None, 9, True),  # nothing applied yet
])
def test_a_lease_regained_at_the_same_term_forces_no_run(tmp_path, applied, term_back, forced):
    clock = Clock()
    raw = {"registry": "coap://m1", "command": ["true"], "state_dir": str(tmp_path / "state"),
           "managers": ["coap://m1", "coap://m2"]}
    reconciler = Reconciler(validate_config(raw), clock)
    reconciler.prepare_dirs()
    lead(reconciler)
    reconciler.force_reason = None  # as after the first run
    reconciler.applied = applied
    clock.now += 3.0
    reconciler.keeper.check()
    assert reconciler.election.role == "passive"
    lead(reconciler, term=term_back)
    assert reconciler.election.role == "active"
    assert (reconciler.force_reason is not None) == forced


def test_a_lost_node_is_acted_on_at_once_and_any_other_change_after_the_debounce(tmp_path):
    # w9 lost at 10 s: the registry's failure detector already waited (confirm_after), so no debounce;
    # w9 back at 20 s, w1 losing a capability at 30 s while w9 is lost at 30 s: the debounce
    runs = simulate(tmp_path, {0.0: W9, 10.0: W1, 20.0: W9, 30.0: {"w1": fp()}}, until=40)
    assert runs == [(10.0, ["w1"]), (22.0, ["w1", "w9"]), (32.0, ["w1"])]


@pytest.mark.parametrize("before, after, lost", [
    ({"w1": fp(), "w9": fp()}, {"w1": fp()}, True),
    ({"w1": fp(), "w9": fp()}, {}, True),
    ({"w1": fp(), "w9": fp()}, {"w1": fp("pom")}, False),  # and another changed
    ({"w1": fp()}, {"w1": fp(), "w9": fp()}, False),
    ({"w1": fp()}, {"w1": fp()}, False),
    (None, {"w1": fp()}, False),
    ({"w1": fp()}, None, False),
])
def test_only_lost(before, after, lost):
    assert only_lost(before, after) is lost
