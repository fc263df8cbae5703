# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The reconcile daemon (module_utils/_reconcile, run as ``python -m``) against
real registry servers: what triggers a run and what does not, debouncing,
the lock, backoff, the plan it reports, the leadership lease it must hold to
act (docs/leadership.md), the term every run carries to the nodes, and
manager failover with workers that beat as witnesses. The command it runs is
a small recorder written by each test."""

from __future__ import annotations

import datetime
import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import typing as t
from pathlib import Path

import pytest
from aiocoap.numbers.codes import Code

from _beating import Beating
from _registry_server import COLLECTION_ROOT, Client, RegistryServer, profile, run_client

# The daemon as the collection holds it, and the entry point the role installs next to its lib/ folder.
COLLECTIONS_PATH = COLLECTION_ROOT.parents[2]
DAEMON = [sys.executable, "-m", "ansible_collections.nanoedge.core.plugins.module_utils._reconcile"]
DAEMON_ENV = dict(os.environ, PYTHONPATH=str(COLLECTIONS_PATH))
ENTRY_POINT = COLLECTION_ROOT / "roles" / "reconcile" / "files" / "nanoedge_reconcile.py"

# Records one invocation per line: start and end time, pid, the reason,
# trigger and term from the environment, and the arguments the daemon added
# (the fence's extra vars). RECORDER_SLEEP, RECORDER_RC and RECORDER_PLAN
# (a JSON document written to NANOEDGE_RECONCILE_PLAN_FILE) shape the run.
RECORDER = r'''
import json, os, sys, time
start = time.time()
print("recorder: reconciling")
sys.stdout.flush()
time.sleep(float(os.environ.get("RECORDER_SLEEP", "0")))
plan = os.environ.get("RECORDER_PLAN")
if plan:
    with open(os.environ["NANOEDGE_RECONCILE_PLAN_FILE"], "w") as handle:
        handle.write(plan)
record = {"start": start, "end": time.time(), "pid": os.getpid(),
          "reason": os.environ["NANOEDGE_RECONCILE_REASON"],
          "trigger": json.loads(os.environ["NANOEDGE_RECONCILE_TRIGGER"]),
          "manager": os.environ["NANOEDGE_RECONCILE_MANAGER"],
          "term": os.environ.get("NANOEDGE_RECONCILE_TERM"), "argv": sys.argv[2:]}
with open(sys.argv[1], "a") as handle:
    handle.write(json.dumps(record) + "\n")
rc = int(os.environ.get("RECORDER_RC", "0"))
if rc:
    print("recorder: failing with %d" % rc)
sys.exit(rc)
'''


def wait_until(condition: t.Callable[[], t.Any], timeout: float, what: t.Union[str, t.Callable[[], str]],
               interval: float = 0.05) -> t.Any:
    """The first true value of ``condition()``; ``what`` (or what it returns) explains a timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, what() if callable(what) else what))
        time.sleep(interval)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def put(url: str, *profiles: t.Tuple[t.Dict[str, t.Any], str]) -> None:
    """PUT each (profile, query) in order; every one must be stored."""

    async def scenario(client: Client) -> None:
        for body, query in profiles:
            response = await client.put(body["node"], body, query)
            assert response.code in (Code.CREATED, Code.CHANGED), response.payload

    run_client(url, scenario)


def worker(node: str, capabilities: t.Sequence[str] = (), **changes: t.Any) -> t.Dict[str, t.Any]:
    """A profile (docs/contracts.md, "The profile") with exactly these capabilities (a device for each)."""
    devices = [{"capability": cap, "kind": "sensor", "name": cap.upper(), "bus": "usb", "id": "0403:6001"}
               for cap in capabilities]
    return profile(node, capabilities=list(capabilities), devices=devices, **changes)


# What the registry of the only manager (``--name m1``) says when its daemon stands: it leads alone.
ALONE = "leader at term %d, granted by no other member (majority 1 of 1 members)"
# Two managers and five workers that beat to both: seven members, a majority of four.
MANAGERS = ("m1", "m2")
WORKERS = ("w1", "w2", "w3", "w4", "w5")
# why a manager whose registry stopped answering steps down
LEASE_RAN_OUT = "the lease ran out without a renewal (no leader answer since "


def fence_args(manager: str, term: int) -> t.List[str]:
    """The arguments a run gets after the command's own: the fence's extra vars, the term an integer."""
    return ["-e", json.dumps({"nanoedge_fence_manager": manager, "nanoedge_fence_term": term}, sort_keys=True)]


def without_time(record: t.Mapping[str, t.Any]) -> t.Dict[str, t.Any]:
    return {key: value for key, value in record.items() if key != "time"}


def decision_time(record: t.Mapping[str, t.Any]) -> float:
    """The wall clock time (epoch seconds) of a decision."""
    moment = datetime.datetime.strptime(record["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.replace(tzinfo=datetime.timezone.utc).timestamp()


def leadership_fields(state: t.Mapping[str, t.Any]) -> t.Dict[str, t.Any]:
    """The state file's leadership fields but the lease's remaining time (it counts down)."""
    keys = ("role", "term", "leader", "granted_by", "majority", "members", "candidate", "candidate_term",
            "highest_term", "name", "lease_error")
    return {key: state.get(key) for key in keys}


class Daemon:
    """nanoedge_reconcile.py as a subprocess with its own state folder and recorder."""

    def __init__(self, tmp_path: Path, name: str, registry: str, settings: t.Optional[t.Dict[str, t.Any]] = None,
                 **config: t.Any) -> None:
        self.dir = tmp_path / name
        self.dir.mkdir(parents=True)
        self.calls_file = self.dir / "calls.jsonl"
        recorder = tmp_path / "recorder.py"
        if not recorder.exists():
            recorder.write_text(RECORDER)
        self.config = {
            "registry": registry,
            "command": [sys.executable, str(recorder), str(self.calls_file)],
            "state_dir": str(self.dir / "state"),
            "plan_file": str(self.dir / "plan.json"),
            "interval": 5,
            "debounce": 0.5,
            "request_timeout": 2,
            "retry_backoff": 0.5,
            "retry_backoff_max": 4,
            "stop_grace": 10,
        }
        self.config.update(settings or {})
        self.config.update(config)
        self.config_file = self.dir / "config.json"
        self.config_file.write_text(json.dumps(self.config))
        self.log = self.dir / "daemon.log"
        self.proc: t.Optional[subprocess.Popen] = None

    def start(self, *args: str) -> "Daemon":
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([*DAEMON, "--config", str(self.config_file), *args],
                                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=DAEMON_ENV)
        return self

    def run_once(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*DAEMON, "--config", str(self.config_file), "--once", *args],
                              capture_output=True, text=True, timeout=60, check=False, env=DAEMON_ENV)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc is None:
            return 0
        if self.alive():
            self.proc.send_signal(signum)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
                raise AssertionError("the daemon ignored signal %d for %.0f s:\n%s"
                                     % (signum, timeout, self.text())) from None
        return int(self.proc.returncode)

    def kill(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(timeout=10)

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def calls(self) -> t.List[t.Dict[str, t.Any]]:
        if not self.calls_file.exists():
            return []
        return [json.loads(line) for line in self.calls_file.read_text().splitlines() if line]

    def decisions(self, event: t.Optional[str] = None) -> t.List[t.Dict[str, t.Any]]:
        path = Path(self.config["state_dir"]) / "decisions.jsonl"
        if not path.exists():
            return []
        records = [json.loads(line) for line in path.read_text().splitlines() if line]
        return [r for r in records if event is None or r["event"] == event]

    def state(self) -> t.Dict[str, t.Any]:
        path = Path(self.config["state_dir"]) / "state.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def _wait(self, read: t.Callable[[], t.List[t.Dict[str, t.Any]]], count: int, timeout: float,
              what: str) -> t.List[t.Dict[str, t.Any]]:
        def enough() -> t.List[t.Dict[str, t.Any]]:
            records = read()
            if len(records) >= count:
                return records
            if self.proc is not None and not self.alive():
                raise AssertionError("the daemon exited with %s:\n%s" % (self.proc.returncode, self.text()))
            return []

        return wait_until(enough, timeout, lambda: "%d %s; log:\n%s" % (count, what, self.text()))

    def wait_calls(self, count: int, timeout: float = 15) -> t.List[t.Dict[str, t.Any]]:
        return self._wait(self.calls, count, timeout, "run(s) of the command")

    def wait_runs(self, count: int, timeout: float = 15) -> t.List[t.Dict[str, t.Any]]:
        """The first ``count`` run decisions (the command finished and the daemon logged it)."""
        return self._wait(lambda: self.decisions("run"), count, timeout, "run decision(s)")

    def settled(self, count: int, quiet: float) -> None:
        """Exactly ``count`` runs, and no more for ``quiet`` seconds."""
        time.sleep(quiet)
        calls = self.calls()
        assert len(calls) == count, "expected %d run(s), got %d: %s\n%s" % (
            count, len(calls), [c["reason"] for c in calls], self.text())


@pytest.fixture()
def server(tmp_path):
    """The registry of the only manager, m1: it grants its daemon the lease whenever the daemon stands."""
    with RegistryServer(tmp_path / "registry.sqlite", "--name", "m1") as srv:
        yield srv


@pytest.fixture()
def daemons():
    started: t.List[Daemon] = []
    yield started
    for daemon in started:
        try:
            daemon.stop(timeout=20)
        finally:
            daemon.kill()


def launch(daemons: t.List[Daemon], daemon: Daemon, *args: str) -> Daemon:
    daemons.append(daemon)
    return daemon.start(*args)


def test_runs_when_capabilities_change_but_not_for_resources(tmp_path, server, daemons):
    put(server.url, (worker("w1", ["bot"]), ""), (worker("w4", ["pom"]), ""), (worker("w7"), ""))
    daemon = launch(daemons, Daemon(tmp_path, "m1", server.url))

    first = daemon.wait_calls(1)[0]
    assert first["reason"] == "became active: %s; no successful run yet; live nodes: w1, w4, w7" % (ALONE % 1)
    assert first["trigger"]["event"] == "activated"
    assert first["trigger"]["nodes"] == ["w1", "w4", "w7"]
    daemon.wait_runs(1)
    state = daemon.state()
    assert leadership_fields(state) == {
        "role": "active", "term": 1, "leader": True, "granted_by": [], "majority": 1, "members": 1,
        "candidate": True, "candidate_term": 1, "highest_term": 1, "name": "m1", "lease_error": None}
    # the lease is never taken longer than the candidacy's TTL (3 s), and it is renewed every second
    assert 0 < state["lease_remaining"] <= 3.0, state["lease_remaining"]
    assert state["fingerprint_nodes"] == ["w1", "w4", "w7"]
    # the probes of the other managers are gone
    assert "active_peer" not in state and "peers" not in state
    assert [without_time(d) for d in daemon.decisions("role")] == [{
        "event": "role", "manager": server.url, "role": "active", "previous": "passive", "term": 1,
        "granted_by": [], "majority": 1, "members": 1, "why": ALONE % 1}]

    # Free memory, load, storage and the collection time move on every report.
    put(server.url, (worker("w4", ["pom"], memory_mb={"total": 926, "available": 100},
                            cpu={"cores": 4, "bogomips": 89.6, "load1": 3.5},
                            storage_mb={"total": 29820, "free": 100},
                            collected_at="2026-11-26T03:00:00Z"), ""))
    daemon.settled(1, quiet=1.2)

    changed_at = time.time()
    put(server.url, (worker("w1", ["bot", "oc"]), ""))
    second = daemon.wait_calls(2)[1]
    assert second["start"] - changed_at >= 0.5, "ran before the debounce elapsed"
    # well before the next poll (interval 5 s): the observation delivered the change
    assert second["start"] - changed_at < 3.0, second["start"] - changed_at
    assert second["reason"] == "w1 gained capability oc"
    assert second["trigger"]["changed"] == {"w1": {"capabilities_added": ["oc"]}}
    assert second["trigger"]["added"] == [] and second["trigger"]["removed"] == []
    assert second["trigger"]["event"] == "change"
    daemon.settled(2, quiet=1.0)

    put(server.url, (worker("w7", power={"source": "dc", "battery_percent": 80, "battery_health": 95,
                                         "charging": False}, network=["wifi"]), ""))
    third = daemon.wait_calls(3)[2]
    # off mains, the battery's level counts too (in steps of 5 %)
    assert third["reason"] == "w7 lost networks bluetooth, ethernet; w7 power ac -> dc; w7 battery unknown -> 80%"
    daemon.settled(3, quiet=1.0)

    runs = daemon.wait_runs(3)
    assert [run["rc"] for run in runs] == [0, 0, 0]
    assert runs[1]["reason"] == "w1 gained capability oc"
    assert "reconcile: w1 gained capability oc; running python at term 1" in daemon.text()
    assert [run["term"] for run in runs] == [1, 1, 1]
    assert daemon.stop() == 0
    # a stopped daemon withdraws and says so: its state file never says active after it stopped
    role, stop = daemon.decisions()[-2:]
    assert without_time(role) == {
        "event": "role", "manager": server.url, "role": "passive", "previous": "active", "term": 1,
        "granted_by": [], "majority": 1, "members": 1, "why": "stopped: the candidacy withdrawn"}
    assert without_time(stop) == {"event": "stop", "manager": server.url, "role": "passive", "term": 1}
    state = daemon.state()
    assert (state["role"], state["leader"], state["lease_remaining"]) == ("passive", False, 0.0)


def test_a_burst_of_reports_gives_one_run(tmp_path, server, daemons):
    daemon = launch(daemons, Daemon(tmp_path, "m1", server.url, debounce=1.0))
    daemon.wait_calls(1)
    started = time.monotonic()
    put(server.url, *((worker("w%d" % index, ["bot"] if index % 2 else []), "") for index in range(10)))
    assert time.monotonic() - started < 1.0, "the burst took longer than the debounce; the test proves nothing"
    calls = daemon.wait_calls(2)
    assert calls[1]["trigger"]["added"] == ["w%d" % index for index in range(10)]
    assert "w0 joined (no capabilities)" in calls[1]["reason"]
    assert "w1 joined (capabilities bot)" in calls[1]["reason"]
    daemon.settled(2, quiet=1.5)


def test_a_flapping_node_is_held_after_two_runs(tmp_path, server, daemons):
    # A profile is self-reported: a node switching a capability on and off ten times, each time
    # after the debounce, once made ten runs. Damped (window shortened to keep the test short).
    put(server.url, (worker("w1", ["bot"]), ""), (worker("w9"), ""))
    daemon = launch(daemons, Daemon(tmp_path, "m1", server.url, flap_window=4, flap_limit=2))
    daemon.wait_calls(1)
    for flap in range(10):
        put(server.url, (worker("w9", ["pom"] if flap % 2 == 0 else []), ""))
        time.sleep(0.7)
    holds = daemon._wait(lambda: daemon.decisions("release"), 1, 10, "release decision")  # pylint: disable=protected-access
    assert [(r["node"], r["held"]) for r in holds] == [("w9", [])]
    calls = daemon.calls()
    assert [c["reason"] for c in calls[1:]] == ["w9 gained capability pom", "w9 lost capability pom"]
    assert [(r["node"], r["changes"]) for r in daemon.decisions("hold")] == [("w9", 3)]
    assert "w9 changed 3 times within 4 s: held as it was until it is stable for 4 s" in daemon.text()
    daemon.settled(3, quiet=1.0)


def test_no_run_before_the_registry_has_settled(tmp_path, server, daemons):
    put(server.url, (worker("w1", ["bot"]), "?lt=60"))
    started = time.time()
    daemon = launch(daemons, Daemon(tmp_path, "m1", server.url, settle=3))
    first = daemon.wait_calls(1, timeout=10)[0]
    assert first["start"] - started >= 3, first["start"] - started
    assert first["reason"] == "became active: %s; no successful run yet; live nodes: w1" % (ALONE % 1)


def test_lease_expiry_triggers_a_run(tmp_path, server, daemons):
    put(server.url, (worker("w1", ["bot"]), "?lt=60"))
    daemon = launch(daemons, Daemon(tmp_path, "m1", server.url))
    daemon.wait_calls(1)
    leased_at = time.time()
    put(server.url, (worker("w4", ["pom"]), "?lt=2"))
    joined = daemon.wait_calls(2)[1]
    assert joined["reason"] == "w4 joined (capabilities pom)"
    left = daemon.wait_calls(3, timeout=10)[2]
    assert left["reason"].startswith("w4 left")
    assert left["trigger"]["removed"] == ["w4"]
    # the lease; no debounce after it: a node that is only lost was confirmed by the registry already
    assert left["start"] - leased_at >= 2.0, left["start"] - leased_at
    assert "reconcile: w4 left" in daemon.text()
    assert daemon.state()["fingerprint_nodes"] == ["w1"]


def test_observes_again_after_a_registry_restart(tmp_path, server, daemons):
    # a candidacy (and so a lease) of 10 s outlasts the restart: the daemon stays active throughout
    daemon = launch(daemons, Daemon(tmp_path, "m1", server.url, interval=1.5, lease_ttl=10))
    assert daemon.wait_calls(1)[0]["argv"] == fence_args("m1", 1)
    server.stop()
    server.start()
    # the restarted registry takes a term above the one in its term file for the same daemon
    wait_until(lambda: daemon.state().get("term") == 2, 10, lambda: "term 2; log:\n" + daemon.text())
    assert daemon.state()["role"] == "active"
    put(server.url, (worker("w4", ["pom"]), ""))
    call = daemon.wait_calls(2, timeout=10)[1]
    assert call["reason"] == "w4 joined (capabilities pom)"
    assert (call["term"], call["argv"]) == ("2", fence_args("m1", 2))
    # the new term is a decision of its own, and forces no run
    assert [(d["previous"], d["role"], d["term"]) for d in daemon.decisions("role")] == [
        ("passive", "active", 1), ("active", "active", 2)]
    assert daemon.decisions("role")[1]["why"] == "leader at a new term 2 (was 1), granted by no other member"
    # the lost observation is replaced within an interval, then notifications flow again
    put(server.url, (worker("w4", ["pom", "bot"]), ""))
    changed_at = time.time()
    call = daemon.wait_calls(3, timeout=10)[2]
    assert call["reason"] == "w4 gained capability bot"
    assert call["start"] - changed_at < 1.4, call["start"] - changed_at


def test_changes_during_a_run_give_one_follow_up_run(tmp_path, server, daemons):
    daemon = launch(daemons, Daemon(tmp_path, "m1", server.url, environment={"RECORDER_SLEEP": "1.5"}))
    wait_until(lambda: daemon.state().get("running"), 10, "the first run to start")
    for index in range(3):
        put(server.url, (worker("w%d" % index, ["bot"]), ""))
        time.sleep(0.2)
    last_change = time.time()
    calls = daemon.wait_calls(2, timeout=20)
    assert last_change < calls[0]["end"], "the changes came after the first run; the test proves nothing"
    assert calls[1]["start"] >= calls[0]["end"]
    assert calls[1]["trigger"]["added"] == ["w0", "w1", "w2"]
    daemon.settled(2, quiet=2.0)


def test_two_daemons_sharing_a_lock_never_overlap(tmp_path, server, daemons):
    lock = str(tmp_path / "shared.lock")
    first = launch(daemons, Daemon(tmp_path, "a", server.url, lock_file=lock, environment={"RECORDER_SLEEP": "1"}))
    second = launch(daemons, Daemon(tmp_path, "b", server.url, lock_file=lock, environment={"RECORDER_SLEEP": "1"}))
    first.wait_calls(1)
    second.wait_calls(1)
    put(server.url, (worker("w4", ["pom"]), ""))
    first.wait_calls(2)
    second.wait_calls(2)
    intervals = sorted((call["start"], call["end"]) for call in first.calls() + second.calls())
    assert len(intervals) == 4
    for (_start, end), (next_start, _end) in zip(intervals, intervals[1:]):
        assert next_start >= end, "runs overlap: %s" % intervals
    assert "waiting for the lock %s (another run holds it)" % lock in first.text() + second.text()


def test_failing_command_is_retried_with_backoff(tmp_path, server, daemons):
    daemon = launch(daemons, Daemon(tmp_path, "m1", server.url, retry_backoff=0.4, retry_backoff_max=1.6,
                                    environment={"RECORDER_RC": "3"}))
    daemon.wait_calls(1)
    time.sleep(4.5)
    starts = [call["start"] for call in daemon.calls()]
    gaps = [later - earlier for earlier, later in zip(starts, starts[1:])]
    # at least 0.4, 0.8, 1.6, 1.6, ... seconds apart (plus the runs themselves): a handful of runs, not hundreds
    assert 4 <= len(starts) <= 5, gaps
    assert gaps[0] >= 0.4 and gaps[1] >= 0.8 and all(gap >= 1.6 for gap in gaps[2:]), gaps
    runs = daemon.decisions("run")
    assert runs and all(run["rc"] == 3 for run in runs)
    assert runs[1]["reason"] == "retry 1 after rc 3; became active: %s; no successful run yet; live nodes: none" % (
        ALONE % 1)
    assert runs[0]["output_tail"][-1] == "recorder: failing with 3"
    assert "run failed (rc=3)" in daemon.text()
    assert daemon.state()["failures"] >= 4
    assert daemon.state()["last_run"]["rc"] == 3


def test_missing_command_is_logged_and_the_daemon_keeps_running(tmp_path, server, daemons):
    daemon = launch(daemons, Daemon(tmp_path, "m1", server.url, command=["/nonexistent/ansible-playbook", "site.yml"]))
    run = daemon.wait_runs(1)[0]
    assert run["rc"] == 127
    assert run["error"] == "command not found: /nonexistent/ansible-playbook"
    assert "run failed (command not found: /nonexistent/ansible-playbook)" in daemon.text()
    time.sleep(1.0)
    assert daemon.alive(), daemon.text()
    assert len(daemon.decisions("run")) >= 2, "not retried"
    assert daemon.stop() == 0


def test_moves_and_unplaced_from_the_plan_are_logged(tmp_path, server, daemons):
    plan = {
        "strategy": "first_fit",
        "placements": {"alert": "w5"},
        "by_node": {"w5": ["alert"]},
        "unplaced": [{"service": "spo2", "reasons": {"w1": "missing capability pom", "w5": "missing capability pom"},
                      "causes": [{"code": "capability", "missing": ["pom"], "nodes": ["w1", "w5"]}]},
                     {"service": "hrv", "reasons": {"w1": "missing capability pom",
                                                    "w5": "needs 512 MB memory, has 100"},
                      "causes": [{"code": "capability", "missing": ["pom"], "nodes": ["w1"]},
                                 {"code": "memory", "needs": 512, "has": 100, "nodes": ["w5"]}]}],
        "remaining": {},
        "moves": [{"service": "alert", "from": "w2", "to": "w5", "why": "w2 left"},
                  {"service": "display", "from": "w4", "to": "w1"}],
        "why": {"display": "first node that fits"},
    }
    daemon = launch(daemons, Daemon(tmp_path, "m1", server.url, environment={"RECORDER_PLAN": json.dumps(plan)}))
    run = daemon.wait_runs(1)[0]
    assert run["moves"] == [{"service": "alert", "from": "w2", "to": "w5", "why": "w2 left"},
                            {"service": "display", "from": "w4", "to": "w1", "why": "first node that fits"}]
    assert run["unplaced"] == [{"service": "spo2", "why": "no live node has capability pom"},
                               {"service": "hrv", "why": "w1: missing capability pom; w5: needs 512 MB memory, has 100"}]
    assert run["plan_problem"] is None
    text = daemon.text()
    assert "reconcile: moved alert w2 -> w5 (w2 left)" in text
    assert "reconcile: moved display w4 -> w1 (first node that fits)" in text
    assert "reconcile: spo2 unplaced: no live node has capability pom" in text
    assert "run finished rc=0" in text and "2 moved, 2 unplaced" in text
    # the state file is replaced right after the decision is logged
    last_run = wait_until(lambda: daemon.state().get("last_run"), 10, "the run in state.json")
    assert last_run["moves"] == run["moves"]


def test_stale_plan_file_is_not_reported(tmp_path, server, daemons):
    daemon = Daemon(tmp_path, "m1", server.url)
    Path(daemon.config["plan_file"]).write_text(json.dumps({"moves": [{"service": "old", "from": "a", "to": "b"}],
                                                            "unplaced": []}))
    os.utime(daemon.config["plan_file"], (time.time() - 60, time.time() - 60))
    launch(daemons, daemon)
    run = daemon.wait_runs(1)[0]
    assert run["moves"] == []
    assert run["plan_problem"] == "the plan file %s is older than this run" % daemon.config["plan_file"]


def test_registry_down_at_start_then_up(tmp_path, daemons):
    port = free_udp_port()
    srv = RegistryServer(tmp_path / "late.sqlite", "--name", "m1", port=port)
    daemon = launch(daemons, Daemon(tmp_path, "m1", "coap://127.0.0.1:%d" % port, request_timeout=0.5))
    time.sleep(3.0)
    assert daemon.calls() == []
    text = daemon.text()
    assert text.count("cannot read /profiles") == 1, "an outage is logged once:\n" + text
    assert text.count("the lease is not renewed until the registry answers") == 1, text
    state = daemon.state()
    assert state["registry"]["reachable"] is False
    assert (state["role"], state["leader"], state["term"]) == ("passive", False, 0)
    assert state["lease_error"].startswith("/leadership: "), state["lease_error"]
    with srv:
        put(srv.url, (worker("w4", ["pom"]), ""))
        call = daemon.wait_calls(1, timeout=15)[0]
        assert call["trigger"]["nodes"] == ["w4"]
        assert call["reason"] == "became active: %s; no successful run yet; live nodes: w4" % (ALONE % 1)
        text = daemon.text()
        assert "registry coap://127.0.0.1:%d answers again" % port in text
        assert "leadership: the registry answers again" in text
        state = daemon.state()
        assert state["registry"]["reachable"] is True
        assert (state["role"], state["term"], state["lease_error"]) == ("active", 1, None)


class RoleSampler:
    """The role in each daemon's state file, read every ``period`` seconds in a thread (as an operator
    watching ``nanoedge-reconcile status`` on every manager would see it)."""

    def __init__(self, daemons: t.Sequence[Daemon], period: float = 0.1) -> None:
        self.daemons = list(daemons)
        self.period = period
        self.samples: t.List[t.Tuple[float, t.Tuple[t.Optional[str], ...]]] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="role-sampler", daemon=True)

    def _sample(self) -> None:
        while not self._done.wait(self.period):
            self.samples.append((time.time(), tuple(daemon.state().get("role") for daemon in self.daemons)))

    def start(self) -> "RoleSampler":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._done.set()
        self._thread.join(10)

    def both_active(self) -> t.List[t.Tuple[float, t.Tuple[t.Optional[str], ...]]]:
        return [sample for sample in self.samples if sample[1].count("active") > 1]

    def seen_active(self) -> t.List[bool]:
        """For each daemon, whether some sample showed it active."""
        return [any(roles[index] == "active" for _when, roles in self.samples) for index in range(len(self.daemons))]


def cluster_registry(tmp_path: Path, name: str) -> RegistryServer:
    """The registry of manager ``name`` of m1, m2, whose members are the two managers and five workers.
    Each in a folder of its own: the term file lies next to the database."""
    members = ",".join(MANAGERS + WORKERS)
    return RegistryServer(tmp_path / ("registry-%s" % name) / "registry.sqlite", "--name", name,
                          "--cluster-managers", ",".join(MANAGERS), "--members", members)


def check_role(record: t.Mapping[str, t.Any], manager: str, role: str, term: int) -> None:
    """A role decision between two managers: its term, and a majority of 4 of 7 (the manager and three or
    more of the workers) named in its why."""
    granted = record["granted_by"]
    assert (record["role"], record["term"], record["majority"], record["members"]) == (role, term, 4, 7), record
    assert len(granted) >= 3 and set(granted) <= set(WORKERS) and granted == sorted(granted), record
    if role == "active":
        assert record["why"] == "leader at term %d, granted by %s (majority 4 of 7 members)" % (
            term, ", ".join(granted)), record
        assert record["previous"] == "passive" and record["manager"] == manager


# what a manager that has not run yet skips while passive
STARTING_SKIP = "no successful run yet; live nodes: w2, w4"


def test_manager_failover(tmp_path, daemons):
    """m1 leads with the workers' grants; its registry dies; m1's daemon steps down by the clock, the
    workers' grants run out and go to m2, which acts at a higher term; m1 back does not take over.
    At no sampled moment do both state files say active."""
    r1 = cluster_registry(tmp_path, "m1").start()
    r2 = cluster_registry(tmp_path, "m2").start()
    beating = Beating(tmp_path / "workers", WORKERS, [r1.url, r2.url])
    sampler: t.Optional[RoleSampler] = None
    try:
        managers = [r1.url, r2.url]
        for url in managers:
            put(url, (worker("w2", ["bot"]), ""), (worker("w4", ["pom"]), ""))
        beating.start()
        m1 = launch(daemons, Daemon(tmp_path, "m1", r1.url, settings={"managers": managers, "self": 0}))
        m2 = launch(daemons, Daemon(tmp_path, "m2", r2.url, settings={"managers": managers, "self": 1}))
        sampler = RoleSampler([m1, m2]).start()

        # m1, preferred, leads at the first term of manager 0 of 2
        first = m1.wait_calls(1)[0]
        # (both daemons may log a skipped run before their first lease: passive until granted)
        assert [skip["reason"] for skip in m1.decisions("skip")] in ([], [STARTING_SKIP])
        role = m1.decisions("role")[0]
        check_role(role, r1.url, "active", 2)
        assert first["reason"] == "became active: %s; no successful run yet; live nodes: w2, w4" % role["why"]
        assert (first["manager"], first["term"], first["argv"]) == (r1.url, "2", fence_args("m1", 2))
        # every worker renews its grant to m1 at every beat
        wait_until(lambda: m1.state().get("granted_by") == list(WORKERS), 5,
                   lambda: "m1 granted by all: %s" % m1.state())
        assert leadership_fields(m1.state()) == {
            "role": "active", "term": 2, "leader": True, "granted_by": list(WORKERS), "majority": 4, "members": 7,
            "candidate": True, "candidate_term": 2, "highest_term": 2, "name": "m1", "lease_error": None}
        assert [beating.witness(node)["holder"] for node in WORKERS] == ["m1"] * 5
        # m2 stands too (one lease after its registry started), above the term the workers granted, and is refused
        wait_until(lambda: m2.state().get("candidate_term") == 3, 10, lambda: "m2 to stand at term 3: %s" % m2.state())
        skip = wait_until(lambda: m2.decisions("skip"), 5, "the backup to log a skipped run")
        assert [(d["why"], d["role"], d["reason"]) for d in skip] == [("passive", "passive", STARTING_SKIP)]
        assert "passive (another manager holds the lease), not running" in m2.text()
        assert leadership_fields(m2.state()) == {
            "role": "passive", "term": 0, "leader": False, "granted_by": [], "majority": 4, "members": 7,
            "candidate": True, "candidate_term": 3, "highest_term": 3, "name": "m2", "lease_error": None}
        assert m2.calls() == [] and m2.decisions("role") == [], "the backup acted while m1 led"

        # m1's registry dies; m1's daemon, still running, hears nothing more from it.
        r1.kill()
        killed = time.time()
        stepped_down = wait_until(lambda: m1.decisions("role")[1:], 5, "m1 to step down")[0]
        assert stepped_down["role"] == "passive" and stepped_down["previous"] == "active"
        assert stepped_down["why"].startswith(LEASE_RAN_OUT), stepped_down
        # within the lease it last renewed (3 s, the candidacy's TTL), and before any worker's grant ran out
        assert decision_time(stepped_down) - killed <= 3.5, decision_time(stepped_down) - killed

        took_over = m2.wait_calls(1, timeout=15)[0]
        role = m2.decisions("role")[0]
        check_role(role, r2.url, "active", 3)
        became_active = decision_time(role)
        # not before the workers' grants to m1 (renewed at most a beat before the kill) ran out, a lease of
        # 4 s after their last renewal; within the budget of 10 s
        assert 2.5 <= became_active - killed <= 10, became_active - killed
        assert became_active > decision_time(stepped_down)
        assert took_over["reason"] == "became active: %s; no successful run yet; live nodes: w2, w4" % role["why"]
        assert (took_over["manager"], took_over["term"], took_over["argv"]) == (r2.url, "3", fence_args("m2", 3))
        # the runs' terms, as the decision log has them: m2's above m1's
        assert [run["term"] for run in m1.decisions("run")] == [2]
        assert [run["term"] for run in m2.wait_runs(1)] == [3]
        wait_until(lambda: [beating.witness(node).get("holder") for node in WORKERS] == ["m2"] * 5, 5,
                   lambda: "every worker to grant m2: %s" % [beating.witness(node) for node in WORKERS])
        assert {beating.witness(node)["highest_term"] for node in WORKERS} == {3}
        state = m1.state()
        assert (state["role"], state["leader"], state["lease_remaining"], state["term"]) == ("passive", False, 0.0, 2)
        assert state["lease_error"] is not None

        # A worker's new capability, reported while m1 is down, is acted on through m2 at its term.
        put(r2.url, (worker("w2", ["bot", "pom"]), ""))
        changed = m2.wait_calls(2)[1]
        assert (changed["reason"], changed["term"]) == ("w2 gained capability pom", "3")

        # m1's registry is back (its term file and the workers' beats put its term above 3); the workers
        # renew their grants to m2 and refuse m1, so m2 stays the only active manager.
        r1.start()
        wait_until(lambda: m1.state().get("candidate_term") == 4 and m1.state().get("lease_error") is None, 10,
                   lambda: "m1 to stand again at term 4: %s" % m1.state())
        put(r1.url, (worker("w5", ["dd"]), ""))
        put(r2.url, (worker("w5", ["dd"]), ""))
        assert m2.wait_calls(3)[2]["reason"] == "w5 joined (capabilities dd)"
        skip = wait_until(lambda: [d for d in m1.decisions("skip") if d["reason"] != STARTING_SKIP], 5,
                          "m1 to leave the change to m2")
        assert [(d["why"], d["role"], d["reason"]) for d in skip] == [
            ("passive", "passive", "w5 joined (capabilities dd)")]
        time.sleep(2.0)  # two more beats: still no change of hands
        assert [d["role"] for d in m1.decisions("role")] == ["active", "passive"]
        assert [d["role"] for d in m2.decisions("role")] == ["active"]
        state = leadership_fields(m1.state())
        # (a worker whose grant to m2 lapsed, a few lost beats in a row, may grant m1 again: not a majority)
        granted = state.pop("granted_by")
        assert set(granted) <= set(WORKERS) and len(granted) < 3, granted
        assert state == {"role": "passive", "term": 2, "leader": False, "majority": 4, "members": 7,
                         "candidate": True, "candidate_term": 4, "highest_term": 4, "name": "m1", "lease_error": None}
        assert len(m1.calls()) == 1 and len(m2.calls()) == 3
        assert m1.stop() == 0 and m2.stop() == 0
        assert (m1.state()["role"], m2.state()["role"]) == ("passive", "passive")
    finally:
        if sampler is not None:
            sampler.stop()
        beating.stop()
        r1.stop()
        r2.stop()
    assert sampler is not None
    assert sampler.seen_active() == [True, True], "the sampling saw no leadership to compare"
    assert sampler.both_active() == [], "both managers active at once"


def test_each_run_carries_its_term_as_fence_extra_vars(tmp_path, server, daemons):
    put(server.url, (worker("w4", ["pom"]), ""))
    daemon = launch(daemons, Daemon(tmp_path, "m1", server.url))
    first = daemon.wait_calls(1)[0]
    # last on the command line, so they win; a JSON object, so the term stays an integer
    assert first["argv"] == ["-e", '{"nanoedge_fence_manager": "m1", "nanoedge_fence_term": 1}']
    assert json.loads(first["argv"][1])["nanoedge_fence_term"] == 1
    assert isinstance(json.loads(first["argv"][1])["nanoedge_fence_term"], int)
    assert first["term"] == "1"
    run = daemon.wait_runs(1)[0]
    assert run["term"] == 1
    argv = daemon.config["command"] + fence_args("m1", 1)
    assert Path(run["log"]).read_text().splitlines()[0].endswith(" " + shlex.join(argv))

    # nanoedge-reconcile status: the role, the term and the lease from the state file
    status = subprocess.run([*DAEMON, "--config", str(daemon.config_file), "status"], capture_output=True, text=True,
                            timeout=30, check=False, env=DAEMON_ENV)
    assert status.returncode == 0, status.stderr
    lines = dict(line.split(": ", 1) for line in status.stdout.splitlines())
    assert {key: lines[key] for key in ("role", "manager", "name", "term", "leader", "granted by", "majority",
                                        "members", "candidate term", "lease error")} == {
        "role": "active", "manager": server.url, "name": "m1", "term": "1", "leader": "yes", "granted by": "-",
        "majority": "1", "members": "1", "candidate term": "1", "lease error": "-"}
    assert 0 < float(lines["lease remaining (s)"]) <= 3.0, lines
    assert lines["last run"].startswith("rc 0, finished "), lines

    # The registry dies: the daemon steps down when its lease runs out. Restarted, the registry stands
    # the daemon at the next term (its term file keeps terms growing) and the forced run carries it.
    server.kill()
    stepped_down = wait_until(lambda: daemon.decisions("role")[1:], 10, lambda: "the step-down:\n" + daemon.text())[0]
    assert (stepped_down["role"], stepped_down["term"]) == ("passive", 1)
    assert stepped_down["why"].startswith(LEASE_RAN_OUT), stepped_down
    server.start()
    again = daemon.wait_calls(2, timeout=10)[1]
    assert again["reason"] == "became active: %s" % (ALONE % 2)
    assert (again["term"], again["argv"]) == ("2", fence_args("m1", 2))
    assert [run["term"] for run in daemon.wait_runs(2)] == [1, 2]
    assert [(d["role"], d["term"]) for d in daemon.decisions("role")] == [("active", 1), ("passive", 1), ("active", 2)]


def test_the_probe_keys_of_the_old_election_are_ignored_with_one_warning(tmp_path, server, daemons):
    probes = {"probe_interval": 0.3, "probe_timeout": 0.3, "probe_failures": 2}
    daemon = Daemon(tmp_path, "m1", server.url, **probes)
    checked = subprocess.run([*DAEMON, "--config", str(daemon.config_file), "--check-config"], capture_output=True,
                             text=True, timeout=30, check=False, env=DAEMON_ENV)
    assert (checked.returncode, checked.stderr) == (0, "")
    launch(daemons, daemon)
    assert daemon.wait_calls(1)[0]["argv"] == fence_args("m1", 1)
    daemon.settled(1, quiet=1.0)
    assert daemon.text().count("configuration key(s)") == 1
    assert ("reconcile: configuration key(s) probe_failures, probe_interval, probe_timeout are no longer used (the"
            " leadership lease replaced the probes of the other managers); ignored\n") in daemon.text()


def test_stop_lets_the_running_command_finish(tmp_path, server, daemons):
    daemon = launch(daemons, Daemon(tmp_path, "m1", server.url, environment={"RECORDER_SLEEP": "1.5"}))
    wait_until(lambda: daemon.state().get("running"), 10, "the run to start")
    assert daemon.stop() == 0
    call = daemon.calls()[0]
    assert daemon.decisions("run")[0]["rc"] == 0
    assert daemon.decisions()[-1]["event"] == "stop"
    assert daemon.state()["running"] is False
    assert call["end"] - call["start"] >= 1.5


def test_stop_terminates_a_command_after_the_grace_period(tmp_path, server, daemons):
    daemon = launch(daemons, Daemon(tmp_path, "m1", server.url, stop_grace=0.5,
                                    environment={"RECORDER_SLEEP": "60"}))
    wait_until(lambda: daemon.state().get("running"), 10, "the run to start")
    began = time.monotonic()
    assert daemon.stop(timeout=15) == 0
    assert time.monotonic() - began < 10
    run = daemon.decisions("run")[0]
    assert run["rc"] == -signal.SIGTERM
    assert run["error"] == "terminated: still running 0.5 s after the stop"
    assert daemon.calls() == []


def test_command_timeout(tmp_path, server, daemons):
    daemon = launch(daemons, Daemon(tmp_path, "m1", server.url, command_timeout=0.5, retry_backoff=30, retry_backoff_max=60,
                                    environment={"RECORDER_SLEEP": "60"}))
    run = daemon.wait_runs(1)[0]
    assert run["rc"] == -signal.SIGTERM
    assert run["error"] == "timed out after 0.5 s (command_timeout)"
    assert run["output_tail"][-1] == "recorder: reconciling"


def test_once(tmp_path, server):
    put(server.url, (worker("w4", ["pom"]), ""))
    daemon = Daemon(tmp_path, "m1", server.url)
    first = daemon.run_once()
    assert first.returncode == 0, first.stderr
    assert len(daemon.calls()) == 1
    assert daemon.calls()[0]["reason"] == "became active: %s; no successful run yet; live nodes: w4" % (ALONE % 1)
    again = daemon.run_once()
    assert again.returncode == 0, again.stderr
    assert "nothing changed since the last successful run" in again.stderr
    assert len(daemon.calls()) == 1
    put(server.url, (worker("w4", ["pom", "bot"]), ""))
    changed = daemon.run_once()
    assert changed.returncode == 0, changed.stderr
    assert daemon.calls()[-1]["reason"] == "w4 gained capability bot"
    forced = daemon.run_once("--force")
    assert forced.returncode == 0 and len(daemon.calls()) == 3
    assert daemon.calls()[-1]["reason"] == "run requested (--once --force)"
    # each run stood for the lease first; a later candidacy may take a new term, never a lower one
    terms = [run["term"] for run in daemon.decisions("run")]
    assert terms == sorted(terms) and terms[0] == 1, terms
    assert [call["argv"] for call in daemon.calls()] == [fence_args("m1", term) for term in terms]


def test_once_reports_an_unreachable_registry_and_a_failed_run(tmp_path, server):
    down = Daemon(tmp_path, "down", "coap://127.0.0.1:%d" % free_udp_port(), request_timeout=0.5)
    result = down.run_once()
    assert result.returncode == 3
    assert "error: cannot read coap://127.0.0.1:" in result.stderr
    failing = Daemon(tmp_path, "failing", server.url, environment={"RECORDER_RC": "4"})
    result = failing.run_once()
    assert result.returncode == 1
    assert failing.decisions("run")[0]["rc"] == 4


def test_once_as_backup_does_not_run(tmp_path):
    # m2's registry, with m1 as the other manager and no workers: a majority of the two managers needs
    # m1, which never grants, so m2 never leads
    with RegistryServer(tmp_path / "m2.sqlite", "--name", "m2", "--cluster-managers", "m1,m2") as srv:
        backup = Daemon(tmp_path, "m2", srv.url,
                        settings={"managers": ["coap://127.0.0.1:%d" % free_udp_port(), srv.url], "self": 1})
        result = backup.run_once()
    assert result.returncode == 0, result.stderr
    assert backup.calls() == []
    skip = backup.decisions("skip")[0]
    assert (skip["why"], skip["role"]) == ("passive", "passive")
    assert backup.decisions("run") == [] and backup.decisions("role") == []
    state = backup.state()
    assert {key: state[key] for key in ("role", "term", "leader", "lease_remaining", "granted_by", "majority",
                                        "members", "name", "lease_error")} == {
        "role": "passive", "term": 0, "leader": False, "lease_remaining": 0.0, "granted_by": [], "majority": 2,
        "members": 2, "name": "m2", "lease_error": None}


# A registry that serves whatever the test puts in a file, not observable:
# the daemon must fall back to polling and survive what it gets. It grants
# the leadership lease to whoever stands.
FAKE_REGISTRY = r'''
import asyncio, json, sys
import aiocoap, aiocoap.resource

STATUS = {"manager": "m1", "candidate": True, "term": 1, "leader": True, "lease_remaining": 3600.0,
          "granted_by": [], "members": 1, "majority": 1, "highest_term": 1}

class Profiles(aiocoap.resource.Resource):
    async def render_get(self, request):
        with open(sys.argv[2], "rb") as handle:
            return aiocoap.Message(payload=handle.read(), content_format=50)

class Leadership(aiocoap.resource.Resource):
    async def render_put(self, request):
        return aiocoap.Message(code=aiocoap.CHANGED, payload=json.dumps(STATUS).encode(), content_format=50)

async def main():
    site = aiocoap.resource.Site()
    site.add_resource(["profiles"], Profiles())
    site.add_resource(["leadership"], Leadership())
    await aiocoap.Context.create_server_context(site, bind=("127.0.0.1", int(sys.argv[1])))
    print("ready", flush=True)
    await asyncio.get_running_loop().create_future()

asyncio.run(main())
'''


def test_malformed_answers_are_logged_once_and_ignored(tmp_path, daemons):
    script, body = tmp_path / "fake_registry.py", tmp_path / "profiles.json"
    script.write_text(FAKE_REGISTRY)
    body.write_text("{not json")
    port = free_udp_port()
    fake = subprocess.Popen([sys.executable, str(script), str(port), str(body)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
    try:
        assert fake.stdout is not None and fake.stdout.readline().strip() == "ready"
        daemon = launch(daemons, Daemon(tmp_path, "m1", "coap://127.0.0.1:%d" % port, interval=0.3))
        wait_until(lambda: "malformed /profiles answer ignored" in daemon.text(), 10,
                   lambda: "the malformed answer to be logged:\n" + daemon.text())
        body.write_text("[1, 2]")
        wait_until(lambda: "expected a JSON object node -> profile, got list" in daemon.text(), 10,
                   lambda: "the list to be refused:\n" + daemon.text())
        time.sleep(1.0)  # several more polls of the same bad answer
        assert daemon.text().count("expected a JSON object") == 1, daemon.text()
        assert daemon.calls() == [] and daemon.alive()

        # a profile without capabilities (or anything else) still counts as a live node
        body.write_text(json.dumps({"w4": worker("w4", ["pom"]), "w5": "junk", "w6": {"node": "w6"}}))
        call = daemon.wait_calls(1)[0]
        assert call["trigger"]["nodes"] == ["w4", "w6"]
        assert call["argv"] == fence_args("m1", 1)
        assert "skipping a malformed profile: profile of w5 is str, not an object" in daemon.text()
        body.write_text(json.dumps({"w4": worker("w4", ["pom"]), "w6": {"node": "w6", "capabilities": ["bot"]}}))
        assert daemon.wait_calls(2)[1]["reason"] == "w6 gained capability bot"
        daemon.settled(2, quiet=1.0)
    finally:
        fake.kill()
        fake.wait(timeout=10)


# --------------------------------------------------------------------------- OSCORE

def write_context(directory: Path, sender_id: bytes, recipient_id: bytes, secret: bytes, salt: bytes) -> Path:
    directory.mkdir(parents=True)
    settings = {"sender-id_hex": sender_id.hex(), "recipient-id_hex": recipient_id.hex(), "secret_hex": secret.hex(),
                "salt_hex": salt.hex(), "id-context_hex": b"m1".hex()}
    (directory / "settings.json").write_text(json.dumps(settings))
    os.chmod(directory / "settings.json", 0o600)
    return directory


def test_reads_a_secured_registry_as_its_manager_identity(tmp_path, daemons):
    secret, salt = secrets.token_bytes(16), secrets.token_bytes(8)
    server_contexts = tmp_path / "server-contexts"
    write_context(server_contexts / "m1", b"", b"\x10", secret, salt)
    client_context = write_context(tmp_path / "client" / "m1", b"\x10", b"", secret, salt)
    with RegistryServer(tmp_path / "secure.sqlite", "--security", "on", "--oscore-contexts", str(server_contexts),
                        "--managers", "m1", "--name", "m1") as srv:
        anonymous = launch(daemons, Daemon(tmp_path, "anonymous", srv.url, request_timeout=1))
        manager = launch(daemons, Daemon(tmp_path, "m1", srv.url, oscore_context=str(client_context)))
        call = manager.wait_calls(1)[0]
        assert call["trigger"]["nodes"] == []
        assert call["argv"] == fence_args("m1", 1)
        assert manager.state()["registry"]["reachable"] is True
        wait_until(lambda: "answered 4.01 Unauthorized" in anonymous.text(), 10,
                   lambda: "the unauthenticated daemon to be refused:\n" + anonymous.text())
        assert anonymous.calls() == []
        state = anonymous.state()
        assert state["registry"]["reachable"] is False
        # only the manager itself may stand with its registry
        assert (state["role"], state["term"]) == ("passive", 0)
        assert state["lease_error"].startswith("/leadership answered 4.01 Unauthorized"), state["lease_error"]


# --------------------------------------------------------------------------- configuration

@pytest.mark.parametrize("config, message", [
    ({"command": ["true"]}, "registry is required"),
    ({"registry": "coap://127.0.0.1"}, "command is required"),
    ({"registry": "http://127.0.0.1", "command": ["true"]}, "registry 'http://127.0.0.1': scheme must be coap://, got 'http://'"),
    ({"registry": "coap://127.0.0.1", "command": []}, "command must be a non-empty list of strings (the argv of the reconcile command)"),
    ({"registry": "coap://127.0.0.1", "command": "ansible-playbook"}, 'command must be a list, got "ansible-playbook"'),
    ({"registry": "coap://127.0.0.1", "command": ["true"], "debounce": -1}, "debounce must be > 0, got -1"),
    ({"registry": "coap://127.0.0.1", "command": ["true"], "interval": "30"}, 'interval must be a number, got "30"'),
    ({"registry": "coap://127.0.0.1", "command": ["true"], "lease_ttl": 1},
     "lease_ttl must be greater than lease_poll (1.0) and at most 60, got 1"),
    ({"registry": "coap://127.0.0.1", "command": ["true"], "lease_ttl": 61},
     "lease_ttl must be greater than lease_poll (1.0) and at most 60, got 61"),
    ({"registry": "coap://127.0.0.1", "command": ["true"], "lease_poll": 0}, "lease_poll must be > 0, got 0"),
    ({"registry": "coap://127.0.0.1", "command": ["true"], "managers": ["coap://a", "coap://b"]},
     "self is required: registry coap://127.0.0.1:5683 is not one of managers"),
    ({"registry": "coap://127.0.0.1", "command": ["true"], "managers": ["coap://a", "coap://b"], "self": 2},
     "self must be an index into managers (0 to 1), got 2"),
    ({"registry": "coap://127.0.0.1", "command": ["true"], "managers": ["coap://a", "ftp://b"], "self": 0},
     "managers[1]: registry 'ftp://b': scheme must be coap://, got 'ftp://'"),
    ({"registry": "coap://127.0.0.1", "command": ["true"], "state_dir": "relative"},
     "state_dir must be an absolute path, got 'relative'"),
    ({"registry": "coap://127.0.0.1", "command": ["true"], "retries": 3}, "unknown key(s) retries (known: command, command_timeout, debounce, directory,"
     " environment, flap_limit, flap_window, full_every, interval, keep_runs, lease_poll, lease_ttl, lock_file, log_dir, managers,"
     " move_command, oscore_context, oscore_credentials, plan_file, registry, request_timeout, retry_backoff,"
     " retry_backoff_max, self, services_file, settle, state_dir, stop_grace, tail_lines, workers)"),
    ({"registry": "coap://127.0.0.1", "command": ["true"], "settle": -1}, "settle must be >= 0, got -1"),
    ({"registry": "coap://127.0.0.1", "command": ["true"], "retry_backoff": 10, "retry_backoff_max": 5},
     "retry_backoff_max must be >= retry_backoff (10), got 5"),
])
def test_bad_configuration_exits_2_naming_the_key(tmp_path, config, message):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    for extra in ((), ("--check-config",)):
        result = subprocess.run([*DAEMON, "--config", str(path), *extra],
                                capture_output=True, text=True, timeout=30, check=False, env=DAEMON_ENV)
        assert result.returncode == 2
        assert result.stderr == "nanoedge-reconcile: configuration %s: %s\n" % (path, message)


def test_check_config_accepts_a_valid_configuration(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"registry": "coap://[::1]", "command": ["ansible-playbook", "site.yml"],
                                "managers": ["coap://192.0.2.1", "coap://192.0.2.2:5683"],
                                "self": "coap://192.0.2.2", "state_dir": str(tmp_path / "state")}))
    result = subprocess.run([*DAEMON, "--config", str(path), "--check-config"],
                            capture_output=True, text=True, timeout=30, check=False, env=DAEMON_ENV)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "nanoedge-reconcile: configuration %s is valid\n" % path
    assert not (tmp_path / "state").exists()


def test_entry_point_runs_the_code_in_its_lib_folder(tmp_path):
    """The program as the role installs it: the entry point, and the collection's code in lib/ next to it."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"registry": "coap://[::1]", "command": ["true"]}))
    home = tmp_path / "home"
    (home / "lib").mkdir(parents=True)
    program = home / "nanoedge_reconcile.py"
    program.write_bytes(ENTRY_POINT.read_bytes())
    command = [sys.executable, str(program), "--config", str(path), "--check-config"]
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    missing = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False, env=environment)
    assert missing.returncode == 2
    assert missing.stderr.startswith("nanoedge-reconcile: cannot import the daemon's code from %s (" % (home / "lib"))
    assert missing.stderr.endswith("); install it with the nanoedge.core.reconcile role\n")
    (home / "lib" / "ansible_collections").symlink_to(COLLECTIONS_PATH / "ansible_collections")
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False, env=environment)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "nanoedge-reconcile: configuration %s is valid\n" % path
