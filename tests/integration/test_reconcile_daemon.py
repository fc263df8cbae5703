# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The reconcile daemon (module_utils/_reconcile, run as ``python -m``) against
real registry servers: what triggers a run and what does not, debouncing,
the lock, backoff, the plan it reports, and manager failover. The command it
runs is a small recorder written by each test."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import typing as t
from pathlib import Path

import pytest
from aiocoap.numbers.codes import Code

from _registry_server import COLLECTION_ROOT, Client, RegistryServer, profile, run_client

# The daemon as the collection holds it, and the entry point the role installs next to its lib/ folder.
COLLECTIONS_PATH = COLLECTION_ROOT.parents[2]
DAEMON = [sys.executable, "-m", "ansible_collections.nanoedge.core.plugins.module_utils._reconcile"]
DAEMON_ENV = dict(os.environ, PYTHONPATH=str(COLLECTIONS_PATH))
ENTRY_POINT = COLLECTION_ROOT / "roles" / "reconcile" / "files" / "nanoedge_reconcile.py"

# Records one invocation per line: start and end time, pid, the reason and
# trigger from the environment. RECORDER_SLEEP, RECORDER_RC and RECORDER_PLAN
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
          "manager": os.environ["NANOEDGE_RECONCILE_MANAGER"]}
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
            "probe_interval": 0.3,
            "probe_timeout": 0.3,
            "probe_failures": 2,
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
    with RegistryServer(tmp_path / "registry.sqlite") as srv:
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
    assert first["reason"].startswith("started as the active manager; no successful run yet; live nodes: w1, w4, w7")
    assert first["trigger"]["event"] == "activated"
    assert first["trigger"]["nodes"] == ["w1", "w4", "w7"]
    daemon.wait_runs(1)
    assert daemon.state()["role"] == "active"
    assert daemon.state()["fingerprint_nodes"] == ["w1", "w4", "w7"]

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
    assert third["reason"] == "w7 lost networks bluetooth, ethernet; w7 power ac -> dc"
    daemon.settled(3, quiet=1.0)

    runs = daemon.wait_runs(3)
    assert [run["rc"] for run in runs] == [0, 0, 0]
    assert runs[1]["reason"] == "w1 gained capability oc"
    assert "reconcile: w1 gained capability oc; running python" in daemon.text()
    assert daemon.stop() == 0
    assert daemon.decisions()[-1]["event"] == "stop"


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
    daemon = launch(daemons, Daemon(tmp_path, "m1", server.url, flap_window=4))
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
    assert "started as the active manager" in first["reason"]


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
    # the lease, then the debounce
    assert left["start"] - leased_at >= 2.5, left["start"] - leased_at
    assert "reconcile: w4 left" in daemon.text()
    assert daemon.state()["fingerprint_nodes"] == ["w1"]


def test_observes_again_after_a_registry_restart(tmp_path, server, daemons):
    daemon = launch(daemons, Daemon(tmp_path, "m1", server.url, interval=1.5))
    daemon.wait_calls(1)
    server.stop()
    server.start()
    put(server.url, (worker("w4", ["pom"]), ""))
    call = daemon.wait_calls(2, timeout=10)[1]
    assert call["reason"] == "w4 joined (capabilities pom)"
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
    assert runs[1]["reason"].startswith("retry 1 after rc 3; started as the active manager")
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
    srv = RegistryServer(tmp_path / "late.sqlite", port=port)
    daemon = launch(daemons, Daemon(tmp_path, "m1", "coap://127.0.0.1:%d" % port, request_timeout=0.5))
    time.sleep(3.0)
    assert daemon.calls() == []
    assert daemon.text().count("cannot read /profiles") == 1, "an outage is logged once:\n" + daemon.text()
    assert daemon.state()["registry"]["reachable"] is False
    with srv:
        put(srv.url, (worker("w4", ["pom"]), ""))
        call = daemon.wait_calls(1, timeout=15)[0]
        assert "w4" in call["trigger"]["nodes"]
        assert "registry coap://127.0.0.1:%d answers again" % port in daemon.text()
        assert daemon.state()["registry"]["reachable"] is True


def test_manager_failover(tmp_path, daemons):
    r1 = RegistryServer(tmp_path / "m1.sqlite").start()
    r2 = RegistryServer(tmp_path / "m2.sqlite").start()
    try:
        managers = [r1.url, r2.url]
        for url in managers:
            put(url, (worker("w2", ["bot"]), ""), (worker("w4", ["pom"]), ""))
        m1 = launch(daemons, Daemon(tmp_path, "m1", r1.url, settings={"managers": managers, "self": 0}))
        m2 = launch(daemons, Daemon(tmp_path, "m2", r2.url, settings={"managers": managers, "self": 1}))
        m1.wait_calls(1)
        time.sleep(1.5)
        assert m2.calls() == [], "the backup ran while the active manager answered"
        assert m1.state()["role"] == "active" and m2.state()["role"] == "passive"
        assert m2.state()["active_peer"] == r1.url
        skip = wait_until(lambda: m2.decisions("skip"), 5, "the backup to log a skipped run")[0]
        assert skip["why"] == "passive" and skip["active_peer"] == r1.url

        # m1 goes away as a whole: its registry and its daemon.
        killed = time.time()
        r1.kill()
        m1.kill()
        config = m2.config
        bound = config["probe_interval"] * config["probe_failures"] + config["debounce"]
        took_over = m2.wait_calls(1, timeout=15)[0]
        # process start and probe timeouts on top of the bound
        assert took_over["start"] - killed <= bound + config["probe_timeout"] + 1.5, took_over["start"] - killed
        assert took_over["reason"].startswith("became active: %s stopped answering" % r1.url)
        assert took_over["manager"] == r2.url
        state = m2.state()
        assert state["role"] == "active" and state["active_peer"] == r2.url and state["peers"] == {r1.url: "down"}
        role = m2.decisions("role")[-1]
        assert role["role"] == "active" and role["previous"] == "passive"

        # A worker's new capability, reported while m1 is down, is acted on through m2.
        put(r2.url, (worker("w2", ["bot", "pom"]), ""))
        assert m2.wait_calls(2)[1]["reason"] == "w2 gained capability pom"

        r1.start()
        put(r1.url, (worker("w2", ["bot", "pom"]), ""), (worker("w4", ["pom"]), ""))
        m1_again = Daemon(tmp_path, "m1-again", r1.url, settings={"managers": managers, "self": r1.url})
        launch(daemons, m1_again)
        wait_until(lambda: m2.state().get("role") == "passive", 10, lambda: "m2 to go passive; log:\n" + m2.text())
        m1_again.wait_calls(1)
        assert m1_again.state()["role"] == "active"
        assert m2.state()["active_peer"] == r1.url
        assert m2.decisions("role")[-1]["role"] == "passive"
        assert "this manager %s goes PASSIVE" % r2.url in m2.text()
        roles = [d.state()["role"] for d in (m1_again, m2)]
        assert roles.count("active") == 1
        # passive again: a change is not acted on by m2
        put(r2.url, (worker("w5", ["dd"]), ""))
        m2.settled(2, quiet=1.0)
    finally:
        r1.stop()
        r2.stop()


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


def test_once_reports_an_unreachable_registry_and_a_failed_run(tmp_path, server):
    down = Daemon(tmp_path, "down", "coap://127.0.0.1:%d" % free_udp_port(), request_timeout=0.5)
    result = down.run_once()
    assert result.returncode == 3
    assert "error: cannot read coap://127.0.0.1:" in result.stderr
    failing = Daemon(tmp_path, "failing", server.url, environment={"RECORDER_RC": "4"})
    result = failing.run_once()
    assert result.returncode == 1
    assert failing.decisions("run")[0]["rc"] == 4


def test_once_as_backup_does_not_run(tmp_path, server):
    backup = Daemon(tmp_path, "m2", server.url,
                    settings={"managers": [server.url, "coap://127.0.0.1:%d" % free_udp_port()], "self": 1})
    result = backup.run_once()
    assert result.returncode == 0, result.stderr
    assert backup.calls() == []
    assert backup.decisions("skip")[0]["why"] == "passive"
    assert backup.state()["role"] == "passive"


# A registry that serves whatever the test puts in a file, not observable:
# the daemon must fall back to polling and survive what it gets.
FAKE_REGISTRY = r'''
import asyncio, sys
import aiocoap, aiocoap.resource

class Profiles(aiocoap.resource.Resource):
    async def render_get(self, request):
        with open(sys.argv[2], "rb") as handle:
            return aiocoap.Message(payload=handle.read(), content_format=50)

async def main():
    site = aiocoap.resource.Site()
    site.add_resource(["profiles"], Profiles())
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
                        "--managers", "m1") as srv:
        anonymous = launch(daemons, Daemon(tmp_path, "anonymous", srv.url, request_timeout=1))
        manager = launch(daemons, Daemon(tmp_path, "m1", srv.url, oscore_context=str(client_context)))
        call = manager.wait_calls(1)[0]
        assert call["trigger"]["nodes"] == []
        assert manager.state()["registry"]["reachable"] is True
        wait_until(lambda: "answered 4.01 Unauthorized" in anonymous.text(), 10,
                   lambda: "the unauthenticated daemon to be refused:\n" + anonymous.text())
        assert anonymous.calls() == []
        assert anonymous.state()["registry"]["reachable"] is False


# --------------------------------------------------------------------------- configuration

@pytest.mark.parametrize("config, message", [
    ({"command": ["true"]}, "registry is required"),
    ({"registry": "coap://127.0.0.1"}, "command is required"),
    ({"registry": "http://127.0.0.1", "command": ["true"]}, "registry 'http://127.0.0.1': scheme must be coap://, got 'http://'"),
    ({"registry": "coap://127.0.0.1", "command": []}, "command must be a non-empty list of strings (the argv of the reconcile command)"),
    ({"registry": "coap://127.0.0.1", "command": "ansible-playbook"}, 'command must be a list, got "ansible-playbook"'),
    ({"registry": "coap://127.0.0.1", "command": ["true"], "debounce": -1}, "debounce must be > 0, got -1"),
    ({"registry": "coap://127.0.0.1", "command": ["true"], "interval": "30"}, 'interval must be a number, got "30"'),
    ({"registry": "coap://127.0.0.1", "command": ["true"], "probe_failures": 0}, "probe_failures must be >= 1, got 0"),
    ({"registry": "coap://127.0.0.1", "command": ["true"], "managers": ["coap://a", "coap://b"]},
     "self is required: registry coap://127.0.0.1:5683 is not one of managers"),
    ({"registry": "coap://127.0.0.1", "command": ["true"], "managers": ["coap://a", "coap://b"], "self": 2},
     "self must be an index into managers (0 to 1), got 2"),
    ({"registry": "coap://127.0.0.1", "command": ["true"], "managers": ["coap://a", "ftp://b"], "self": 0},
     "managers[1]: registry 'ftp://b': scheme must be coap://, got 'ftp://'"),
    ({"registry": "coap://127.0.0.1", "command": ["true"], "state_dir": "relative"},
     "state_dir must be an absolute path, got 'relative'"),
    ({"registry": "coap://127.0.0.1", "command": ["true"], "retries": 3}, "unknown key(s) retries (known: command, command_timeout, debounce, environment,"
     " flap_limit, flap_window, interval, keep_runs, lock_file, log_dir, managers, oscore_context, oscore_credentials,"
     " plan_file, probe_failures, probe_interval, probe_timeout, registry, request_timeout, retry_backoff,"
     " retry_backoff_max, self, settle, state_dir, stop_grace, tail_lines)"),
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
