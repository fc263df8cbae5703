# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""When the daemon runs the command and why: pending changes, debounce and backoff,
the reason of a run, a passive manager's skip, and what a run leaves in the state
files. The registry is left out: the tests set the live profiles' fingerprint."""

from __future__ import annotations

import asyncio
import json
import time
import typing as t

import pytest

from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.config import validate_config
from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.daemon import Reconciler


def fp(*capabilities: str) -> t.Dict[str, t.Any]:
    return {"capabilities": sorted(capabilities), "power": "ac", "network": ["wifi"], "arch": "armv7l"}


def make(tmp_path: t.Any, **settings: t.Any) -> Reconciler:
    raw = {"registry": "coap://m1", "command": ["true"], "state_dir": str(tmp_path / "state"), "debounce": 2}
    raw.update(settings)
    reconciler = Reconciler(validate_config(raw))
    reconciler.prepare_dirs()
    return reconciler


def decisions(tmp_path: t.Any) -> t.List[t.Dict[str, t.Any]]:
    return [json.loads(line) for line in (tmp_path / "state" / "decisions.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("applied, force_reason, failures, reason, event", [
    (None, "started as the active manager", 0,
     "started as the active manager; no successful run yet; live nodes: w1, w2", "activated"),
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
    reconciler.watcher.last_change = now
    assert 29 < reconciler.due_in() <= 30  # the settle time since the start
    reconciler.started_at = now - 60
    assert 1 < reconciler.due_in() <= 2  # the debounce after the last change
    reconciler.runner.failures, reconciler.runner.next_retry = 1, now + 50
    assert 49 < reconciler.due_in() <= 50
    reconciler.watcher.last_change = reconciler.election.activated_at = now - 10
    reconciler.runner.failures = 0
    assert reconciler.due_in() == 0.0


def test_a_passive_manager_logs_each_change_it_leaves_alone_once(tmp_path):
    reconciler = make(tmp_path, managers=["coap://m0", "coap://m1"])
    reconciler.watcher.fingerprint = {"w1": fp("pom")}
    reconciler.watcher.last_change = reconciler.election.activated_at = time.monotonic() - 5
    assert asyncio.run(reconciler.evaluate()) == 30.0
    assert asyncio.run(reconciler.evaluate()) == 30.0
    skips = [record for record in decisions(tmp_path) if record["event"] == "skip"]
    assert len(skips) == 1
    assert skips[0]["reason"] == "no successful run yet; live nodes: w1"
    assert (skips[0]["active_peer"], skips[0]["role"], skips[0]["why"]) == ("coap://m0:5683", "passive", "passive")


def test_a_successful_run_is_recorded_in_the_decisions_and_the_state(tmp_path):
    reconciler = make(tmp_path)
    reconciler.watcher.fingerprint = {"w1": fp("pom")}
    result = asyncio.run(reconciler.reconcile({"w1": fp("pom")}))
    assert (result.rc, result.error) == (0, "")
    run = decisions(tmp_path)[-1]
    assert run["event"] == "run" and run["rc"] == 0 and run["command"] == ["true"]
    assert run["reason"] == "started as the active manager; no successful run yet; live nodes: w1"
    state = json.loads((tmp_path / "state" / "state.json").read_text())
    assert state["applied"] == {"w1": fp("pom")} and state["failures"] == 0 and state["running"] is False
    assert state["last_run"]["rc"] == 0 and reconciler.force_reason is None and not reconciler.pending()
    reconciler.load_state()
    assert reconciler.applied == {"w1": fp("pom")} and reconciler.runner.last_run["rc"] == 0
