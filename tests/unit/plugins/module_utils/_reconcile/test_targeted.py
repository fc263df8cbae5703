# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Targeted re-placement in the daemon: a change re-planned in process, nothing run when nothing moves,
the move command given the nodes it touches, and a full run whenever the re-plan cannot be trusted.
The choice of nodes itself is tested in tests/unit/plugins/plugin_utils/test_moves.py."""

from __future__ import annotations

import asyncio
import json
import sys
import typing as t

import pytest

from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.config import ConfigError, validate_config
from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.daemon import Reconciler
from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.fingerprint import fingerprint_of
from ansible_collections.nanoedge.core.plugins.plugin_utils._service_description import normalize_description

WORKERS = ["w1", "w2", "w3", "w4"]
# records its argv and the move file it was given; fails when the folder holds a file "fail"
SCRIPT = """
import json, os, sys
out = sys.argv[1]
move = [a[1:] for a in sys.argv if a.startswith("@") and a.endswith("move.json")]
with open(os.path.join(out, "calls.jsonl"), "a") as f:
    f.write(json.dumps({"argv": sys.argv[2:], "move": json.load(open(move[0])) if move else None}) + "\\n")
sys.exit(3 if os.path.exists(os.path.join(out, "fail")) else 0)
"""


def service(name: str, consumes: t.Sequence[str] = (), critical: bool = False, **requires: t.Any) -> t.Dict[str, t.Any]:
    description = {"name": name, "version": "1.0.0", "requirements": {},
                   "port": {"number": 5700, "protocol": "udp"}, "provides": {"path": "/" + name},
                   "consumes": {p: {"env": "NANOEDGE_%s_URI" % p.upper(), "format": "uri"} for p in consumes}}
    result = {"name": name, "image": "127.0.0.1:5000/nanoedge/%s:latest" % name, "digest": "sha256:" + "ab" * 32,
              "requires": requires, "description": normalize_description(description)}
    if critical:
        result["critical"] = True
    return result


SERVICES = [service("spo2", capabilities=["pom"]), service("alert", ["spo2"], power="ac"), service("bot")]


def profile(name: str, *capabilities: str, power: str = "ac") -> t.Dict[str, t.Any]:
    return {"node": name, "arch": "armv7l", "capabilities": sorted(capabilities), "cpu": {"cores": 4},
            "memory_mb": {"available": 1024}, "storage_mb": {"free": 10000},
            "power": {"source": power, "battery_percent": 80 if power == "dc" else None}, "network": ["wifi"]}


PREVIOUS = {"strategy": "first_fit", "placements": {"spo2": "w4", "alert": "w1", "bot": "w1"},
            "replica_nodes": {"spo2": ["w4"], "alert": ["w1"], "bot": ["w1"]}, "critical": [],
            "nodes": {n: {} for n in WORKERS}}


def make(tmp_path: t.Any, services: t.Any = None, **settings: t.Any) -> Reconciler:
    (tmp_path / "plan.json").write_text(json.dumps(PREVIOUS))
    (tmp_path / "services.json").write_text(json.dumps(SERVICES if services is None else services))
    raw = {"registry": "coap://m1", "command": [sys.executable, "-c", SCRIPT, str(tmp_path), "full"],
           "state_dir": str(tmp_path / "state"), "debounce": 2, "workers": WORKERS,
           "move_command": [sys.executable, "-c", SCRIPT, str(tmp_path), "move"],
           "plan_file": str(tmp_path / "plan.json"), "services_file": str(tmp_path / "services.json")}
    raw.update(settings)
    reconciler = Reconciler(validate_config(raw))
    reconciler.prepare_dirs()
    reconciler.election.answered(reconciler.clock(), {
        "manager": "m1", "candidate": True, "term": 9, "leader": True, "lease_remaining": 2.8,
        "granted_by": ["w1", "w2", "w3"], "members": 5, "majority": 3, "highest_term": 9})
    reconciler.last_full = reconciler.clock()
    reconciler.applied = {}
    return reconciler


def live(reconciler: Reconciler, *profiles: t.Dict[str, t.Any]) -> t.Dict[str, t.Any]:
    reconciler.watcher.profiles = {p["node"]: p for p in profiles}
    reconciler.watcher.fingerprint = fingerprint_of(reconciler.watcher.profiles)[0]
    return reconciler.watcher.fingerprint


def calls(tmp_path: t.Any) -> t.List[t.Dict[str, t.Any]]:
    path = tmp_path / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def decisions(tmp_path: t.Any) -> t.List[t.Dict[str, t.Any]]:
    return [json.loads(line) for line in (tmp_path / "state" / "decisions.jsonl").read_text().splitlines()]


def test_a_change_that_moves_nothing_runs_nothing(tmp_path):
    reconciler = make(tmp_path)
    fingerprint = live(reconciler, profile("w1"), profile("w2"), profile("w3"), profile("w4", "pom", "temp"))
    assert asyncio.run(reconciler.reconcile(fingerprint)).rc == 0
    assert calls(tmp_path) == []
    assert reconciler.applied == fingerprint
    last = decisions(tmp_path)[-1]
    assert last["event"] == "replan" and last["unplaced"] == []
    assert last["reason"].endswith("w4 joined (capabilities pom, temp)")
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan["placements"] == PREVIOUS["placements"] and plan["moves"] == []
    assert plan["nodes"]["w4"]["capabilities"] == ["pom", "temp"]


def test_a_moved_sensor_runs_the_move_command_on_the_nodes_it_touches(tmp_path):
    reconciler = make(tmp_path)
    fingerprint = live(reconciler, profile("w1"), profile("w2", "pom"), profile("w3"), profile("w4"))
    assert asyncio.run(reconciler.reconcile(fingerprint)).rc == 0
    [call] = calls(tmp_path)
    assert call["argv"][0] == "move" and call["argv"][-2:] == ["-e", '{"nanoedge_fence_manager": "m1", "nanoedge_fence_term": 9}']
    move = call["move"]["nanoedge_move"]
    assert (move["start"], move["rewire"], move["stop"]) == (["w2"], ["w1"], ["w4"])
    assert move["plan"]["placements"] == {"spo2": "w2", "alert": "w1", "bot": "w1"}
    assert move["platforms"] == {n: "armv7l" for n in WORKERS} and move["services"] == SERVICES
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert [(m["service"], m["from"], m["to"]) for m in plan["moves"]] == [("spo2", "w4", "w2")]
    run = decisions(tmp_path)[-1]
    assert run["event"] == "run" and run["targeted"] is True and run["trigger"]["targeted"]["start"] == ["w2"]
    assert run["moves"] == [{"service": "spo2", "from": "w4", "to": "w2", "why": plan["moves"][0]["why"]}]
    assert run["reason"].endswith("targeted: start on w2; rewire on w1; stop on w4")


def test_a_failed_move_leaves_the_plan_file_and_the_next_run_is_full(tmp_path):
    reconciler = make(tmp_path)
    (tmp_path / "fail").write_text("")
    fingerprint = live(reconciler, profile("w1"), profile("w2", "pom"), profile("w3"), profile("w4"))

    async def twice() -> None:
        assert (await reconciler.reconcile(fingerprint)).rc == 3
        assert json.loads((tmp_path / "plan.json").read_text()) == PREVIOUS
        assert reconciler.applied == {} and reconciler.runner.failures == 1
        (tmp_path / "fail").unlink()
        assert (await reconciler.reconcile(fingerprint)).rc == 0

    asyncio.run(twice())
    assert [c["argv"][0] for c in calls(tmp_path)] == ["move", "full"]
    assert reconciler.applied == fingerprint


@pytest.mark.parametrize("setup, why", [
    (lambda r, p: setattr(r, "last_full", None), None),
    (lambda r, p: setattr(r, "force_reason", "became active: leader at term 9"), None),
    (lambda r, p: setattr(r, "last_full", r.clock() - 901), "a full run every 900 s (full_every), the last 901 s ago"),
    (lambda r, p: (p / "services.json").unlink(), "a full run: no services file yet (%s/services.json)"),
    (lambda r, p: (p / "plan.json").write_text("{"), "a full run: cannot read the plan file %s/plan.json: "),
    (lambda r, p: (p / "services.json").write_text(json.dumps([service("spo2", critical=True, capabilities=["xr"])])),
     "a full run: critical service(s) spo2 cannot be placed"),
])
def test_a_full_run_when_the_re_plan_cannot_be_trusted(tmp_path, setup, why):
    reconciler = make(tmp_path)
    fingerprint = live(reconciler, profile("w1"), profile("w2", "pom"), profile("w3"), profile("w4"))
    setup(reconciler, tmp_path)
    assert asyncio.run(reconciler.reconcile(fingerprint)).rc == 0
    assert [c["argv"][0] for c in calls(tmp_path)] == ["full"]
    run = decisions(tmp_path)[-1]
    assert run["targeted"] is False
    if why:
        assert why.replace("%s", str(tmp_path)) in run["reason"]
    assert reconciler.last_full == pytest.approx(reconciler.clock(), abs=5)


def test_a_full_run_is_due_after_full_every(tmp_path):
    reconciler = make(tmp_path, full_every=60)
    fingerprint = live(reconciler, profile("w1"))
    reconciler.applied = fingerprint
    assert reconciler.full_due() is None and not reconciler.pending()
    reconciler.last_full -= 61
    assert reconciler.pending() and reconciler.full_due().startswith("a full run every 60 s (full_every)")


def test_without_a_move_command_every_run_is_full(tmp_path):
    reconciler = make(tmp_path, move_command=[])
    fingerprint = live(reconciler, profile("w1"), profile("w2", "pom"), profile("w3"), profile("w4"))
    assert asyncio.run(reconciler.reconcile(fingerprint)).rc == 0
    assert [c["argv"][0] for c in calls(tmp_path)] == ["full"]
    assert "a full run" not in decisions(tmp_path)[-1]["reason"]
    reconciler.last_full -= 10000
    assert reconciler.full_due() is None


@pytest.mark.parametrize("settings, message", [
    ({"workers": ["w1", "w1"]}, "workers must be a list of distinct node names"),
    ({"workers": [""]}, "workers must be a list of distinct node names"),
    ({"move_command": [""], "workers": ["w1"]}, "move_command must be a list of strings (the argv of a targeted run), or empty"),
    ({"move_command": ["x"]}, "move_command needs workers, plan_file and services_file (what a targeted run plans from)"),
    ({"full_every": 0}, "full_every must be > 0, got 0"),
])
def test_bad_targeted_settings_are_named(settings, message):
    raw = {"registry": "coap://m1", "command": ["true"], "state_dir": "/var/lib/x"}
    raw.update(settings)
    with pytest.raises(ConfigError) as error:
        validate_config(raw)
    assert str(error.value) == message


def test_sighup_asks_the_active_manager_for_a_full_run(tmp_path):
    reconciler = make(tmp_path)
    fingerprint = live(reconciler, profile("w1"), profile("w2"), profile("w3"), profile("w4", "pom"))
    reconciler.applied = fingerprint
    assert not reconciler.pending()
    reconciler.full_run_requested()
    assert reconciler.pending() and reconciler.wakeup.is_set()
    assert asyncio.run(reconciler.reconcile(fingerprint)).rc == 0
    assert [c["argv"][0] for c in calls(tmp_path)] == ["full"]
    assert decisions(tmp_path)[-1]["reason"].startswith("a full run requested (SIGHUP)")
    assert not reconciler.pending()


def test_sighup_is_ignored_by_a_passive_manager(tmp_path):
    reconciler = make(tmp_path)
    reconciler.election.answered(reconciler.clock(), {
        "manager": "m1", "candidate": True, "term": 9, "leader": False, "lease_remaining": 0,
        "granted_by": [], "members": 5, "majority": 3, "highest_term": 11})
    reconciler.election.update("the lease went to another manager")
    reconciler.full_run_requested()
    assert reconciler.force_reason is None
    last = decisions(tmp_path)[-1]
    assert (last["event"], last["request"], last["why"]) == ("request", "full run", "ignored, this manager is passive")


def test_a_plan_file_that_cannot_be_written_after_a_move_makes_the_next_run_full(tmp_path, monkeypatch):
    reconciler = make(tmp_path)
    fingerprint = live(reconciler, profile("w1"), profile("w2", "pom"), profile("w3"), profile("w4"))

    def full_disk(_move: t.Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(reconciler.targeted, "commit", full_disk)
    assert asyncio.run(reconciler.reconcile(fingerprint)).rc == 0
    assert [c["argv"][0] for c in calls(tmp_path)] == ["move"]
    assert json.loads((tmp_path / "plan.json").read_text()) == PREVIOUS
    assert reconciler.last_full is None and reconciler.targeted_move("x") == "x"


def test_a_move_file_that_cannot_be_written_makes_a_full_run(tmp_path):
    reconciler = make(tmp_path)
    fingerprint = live(reconciler, profile("w1"), profile("w2", "pom"), profile("w3"), profile("w4"))
    reconciler.targeted.move_file = str(tmp_path / "missing" / "move.json")
    assert asyncio.run(reconciler.reconcile(fingerprint)).rc == 0
    assert [c["argv"][0] for c in calls(tmp_path)] == ["full"]
    assert "a full run: cannot write the move file" in decisions(tmp_path)[-1]["reason"]


def taken_over(reconciler: Reconciler) -> None:
    """The state right after this manager became active at a new term (no full run of its own yet)."""
    reconciler.force_reason, reconciler.takeover, reconciler.last_full = "became active: leader at term 9", True, None


def test_a_takeover_moves_what_must_move_first_then_runs_full(tmp_path):
    reconciler = make(tmp_path)
    taken_over(reconciler)
    fingerprint = live(reconciler, profile("w1"), profile("w2", "pom"), profile("w3"), profile("w4"))

    async def twice() -> None:
        assert (await reconciler.reconcile(fingerprint)).rc == 0
        assert [c["argv"][0] for c in calls(tmp_path)] == ["move"]
        assert reconciler.pending() and reconciler.force_reason == "became active: leader at term 9"
        assert (await reconciler.reconcile(fingerprint)).rc == 0

    asyncio.run(twice())
    assert [c["argv"][0] for c in calls(tmp_path)] == ["move", "full"]
    first, second = [d for d in decisions(tmp_path) if d["event"] == "run"]
    assert (first["targeted"], second["targeted"]) == (True, False)
    assert first["reason"].startswith("became active: leader at term 9")
    assert first["reason"].endswith("targeted: start on w2; rewire on w1; stop on w4")
    assert reconciler.force_reason is None and not reconciler.takeover and not reconciler.pending()
    assert reconciler.last_full == pytest.approx(reconciler.clock(), abs=5)


@pytest.mark.parametrize("setup", [
    lambda r, p: None,  # nothing moves: the full run at once
    lambda r, p: (p / "services.json").unlink(),  # nothing to plan from
    lambda r, p: setattr(r.runner, "failures", 1),
])
def test_a_takeover_runs_full_at_once_when_nothing_moves_or_no_re_plan(tmp_path, setup):
    reconciler = make(tmp_path)
    taken_over(reconciler)
    fingerprint = live(reconciler, profile("w1"), profile("w2"), profile("w3"), profile("w4", "pom", "temp"))
    setup(reconciler, tmp_path)
    reconciler.runner.next_retry = 0.0
    assert asyncio.run(reconciler.reconcile(fingerprint)).rc == 0
    assert [c["argv"][0] for c in calls(tmp_path)] == ["full"]
    assert reconciler.force_reason is None and not reconciler.pending()


def test_becoming_active_is_a_takeover_and_losing_the_lease_ends_it(tmp_path):
    reconciler = make(tmp_path)

    def answer(leader: bool, term: int) -> None:
        change = reconciler.election.answered(reconciler.clock(), {
            "manager": "m1", "candidate": True, "term": term, "leader": leader, "lease_remaining": 2.8 if leader else 0,
            "granted_by": ["w1", "w2", "w3"] if leader else [], "members": 5, "majority": 3, "highest_term": term})
        assert change is not None
        reconciler._role_changed(change)  # pylint: disable=protected-access

    answer(False, 11)
    answer(True, 13)
    assert reconciler.takeover and reconciler.force_reason.startswith("became active: leader at term 13")
    answer(False, 15)
    assert (reconciler.takeover, reconciler.force_reason) == (False, None)
