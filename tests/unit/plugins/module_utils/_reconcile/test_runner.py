# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running the reconcile command: its log files, its lock, its end, and the decision log line of a run."""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import sys
import time
import typing as t

import pytest

from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.config import validate_config
from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.runner import (
    RUN_NICENESS, FileLock, RunResult, Runner, errors_in, fence_argv, prune_run_logs, tail,
)


def test_old_run_logs_are_pruned_and_the_tail_is_read(tmp_path):
    for index in range(5):
        (tmp_path / ("run-2026112%dT000000Z.log" % index)).write_text("".join("line %d\n" % n for n in range(30)))
    (tmp_path / "other.txt").write_text("kept")
    prune_run_logs(str(tmp_path), 2)
    assert sorted(os.listdir(tmp_path)) == ["other.txt", "run-20261123T000000Z.log", "run-20261124T000000Z.log"]
    assert tail(str(tmp_path / "run-20261124T000000Z.log"), 3) == ["line 27", "line 28", "line 29"]
    assert tail(str(tmp_path / "missing.log"), 3) == []


def test_file_lock_waits_for_another_holder(tmp_path):
    path = tmp_path / "reconcile.lock"
    holder = os.open(str(path), os.O_RDWR | os.O_CREAT)
    fcntl.flock(holder, fcntl.LOCK_EX)

    async def scenario() -> t.Tuple[bool, bool]:
        stopping = asyncio.Event()
        lock = FileLock(str(path))
        waiting = asyncio.ensure_future(lock.acquire(stopping))
        await asyncio.sleep(0.3)
        blocked = not waiting.done()
        fcntl.flock(holder, fcntl.LOCK_UN)
        acquired = await asyncio.wait_for(waiting, 5)
        lock.release()
        return blocked, acquired

    try:
        assert asyncio.run(scenario()) == (True, True)
    finally:
        os.close(holder)


def test_file_lock_gives_up_when_stopping(tmp_path):
    path = tmp_path / "reconcile.lock"
    holder = os.open(str(path), os.O_RDWR | os.O_CREAT)
    fcntl.flock(holder, fcntl.LOCK_EX)

    async def scenario() -> bool:
        stopping = asyncio.Event()
        stopping.set()
        return await FileLock(str(path)).acquire(stopping)

    try:
        assert asyncio.run(scenario()) is False
    finally:
        os.close(holder)


def make_runner(tmp_path: t.Any, command: t.Sequence[str] = ("true",), **settings: t.Any) -> Runner:
    config = validate_config(dict({"registry": "coap://m1", "command": list(command), "state_dir": str(tmp_path),
                                   "plan_file": str(tmp_path / "plan.json")}, **settings))
    os.makedirs(config["log_dir"], exist_ok=True)
    return Runner(config, "coap://m1:5683", asyncio.Event(), on_start=lambda: None)


PLAN = {"moves": [{"service": "bot", "from": "w2", "to": "w1", "why": "w2 left"}],
        "unplaced": [{"service": "spo2", "reasons": {"w1": "missing capability pom"},
                      "causes": [{"code": "capability", "missing": ["pom"], "nodes": ["w1"]}]},
                     {"service": "ecg", "reasons": {"w1": "missing capabilities a, b"},
                      "causes": [{"code": "capability", "missing": ["a", "b"], "nodes": ["w1"]}]}]}


def test_a_successful_run_is_one_line_with_what_the_plan_did(tmp_path, caplog):
    runner = make_runner(tmp_path)
    runner.failures, runner.next_retry = 2, 99.0
    (tmp_path / "plan.json").write_text(json.dumps(PLAN))
    started = time.time()
    report = runner.finish(RunResult(0, "", ""), "w2 left", started, started + 12.34, 12.34)
    assert report.line == "run finished rc=0 in 12.3 s: 1 moved, 2 unplaced"
    assert (runner.failures, runner.next_retry) == (0, 0.0)
    assert report.fields["moves"] == [{"service": "bot", "from": "w2", "to": "w1", "why": "w2 left"}]
    assert report.fields["unplaced"] == [{"service": "spo2", "why": "no live node has capability pom"},
                                         {"service": "ecg", "why": "no live node has capabilities a, b"}]
    assert report.fields["plan_problem"] is None
    assert runner.last_run["rc"] == 0 and runner.last_run["reason"] == "w2 left"
    with caplog.at_level(logging.INFO, logger="nanoedge.reconcile"):
        runner.log_details(report)
    assert [record.getMessage() for record in caplog.records] == [
        "moved bot w2 -> w1 (w2 left)", "spo2 unplaced: no live node has capability pom",
        "ecg unplaced: no live node has capabilities a, b"]


@pytest.mark.parametrize("failures, result, line", [
    (0, RunResult(4, "", ""), "run failed (rc=4) after 1.5 s; retrying in 30 s at the earliest"),
    (1, RunResult(4, "", ""), "run failed (rc=4) after 1.5 s; retrying in 60 s at the earliest"),
    (4, RunResult(None, "timed out after 600 s (command_timeout)", ""),
     "run failed (timed out after 600 s (command_timeout)) after 1.5 s; retrying in 480 s at the earliest"),
    (9, RunResult(127, "command not found: ansible-playbook", ""),
     "run failed (command not found: ansible-playbook) after 1.5 s; retrying in 600 s at the earliest"),
])
def test_a_failed_run_is_retried_with_a_doubling_backoff(tmp_path, failures, result, line):
    runner = make_runner(tmp_path)
    runner.failures = failures
    started = time.time()
    report = runner.finish(result, "w4 joined", started, started + 1.5, 1.5)
    assert report.line == line
    assert runner.failures == failures + 1
    assert report.fields["plan_problem"] == "the command wrote no plan file %s" % (tmp_path / "plan.json")


# What ansible-playbook prints when tasks fail (the default callback of ansible-core 2.19), among the rest.
FAILED_RUN = """PLAY [Deploy] ****
TASK [Fence this node] ****
ok: [w2]
fatal: [w3]: FAILED! => {"changed": false, "fence_file": "/var/lib/nanoedge/fence.json", "highest_term": 11,
  "msg": "term 10 is lower than term 11 this node has seen"}

failed: [w1] (item=spo2) => {"ansible_loop_var": "item", "msg": "no such image"}
[ERROR]: Task failed: Module failed: the registry answered 503
Origin: /playbooks/site.yml:12:7

fatal: [w4]: UNREACHABLE! => {"changed": false, "msg": "ssh: connect to host w4 port 22: No route to host"}
PLAY RECAP ****
Fence this node --- 0.31s
"""


def test_a_failed_run_records_its_error_messages(tmp_path, caplog):
    runner = make_runner(tmp_path)
    log = tmp_path / "run.log"
    log.write_text(FAILED_RUN)
    report = runner.finish(RunResult(2, "", str(log)), "w4 joined", time.time(), time.time(), 1.0)
    assert report.fields["errors"] == [
        'fatal: [w3]: FAILED! => {"changed": false, "fence_file": "/var/lib/nanoedge/fence.json", "highest_term": 11, '
        '"msg": "term 10 is lower than term 11 this node has seen"}',
        'failed: [w1] (item=spo2) => {"ansible_loop_var": "item", "msg": "no such image"}',
        "[ERROR]: Task failed: Module failed: the registry answered 503 Origin: /playbooks/site.yml:12:7",
        'fatal: [w4]: UNREACHABLE! => {"changed": false, "msg": "ssh: connect to host w4 port 22: No route to host"}'
        " PLAY RECAP **** Fence this node --- 0.31s",
    ]
    with caplog.at_level(logging.INFO, logger="nanoedge.reconcile"):
        runner.log_details(report)
    assert [record.getMessage() for record in caplog.records] == ["  | " + e for e in report.fields["errors"]]


@pytest.mark.parametrize("text, expected", [
    ("", []),
    ("ok: [w1]\nPLAY RECAP\n", []),
    ("fatal: [w1]: FAILED! => " + "x" * 1000, ["fatal: [w1]: FAILED! => " + "x" * 573 + "..."]),
    ("\n".join("fatal: [w%d]: FAILED!" % n for n in range(9)), ["fatal: [w%d]: FAILED!" % n for n in range(5)]),
])
def test_error_messages_are_bounded(tmp_path, text, expected):
    log = tmp_path / "run.log"
    log.write_text(text)
    assert errors_in(str(log)) == expected
    assert errors_in(str(tmp_path / "missing.log")) == []


def test_a_successful_run_records_no_errors(tmp_path):
    log = tmp_path / "run.log"
    log.write_text(FAILED_RUN)
    report = make_runner(tmp_path).finish(RunResult(0, "", str(log)), "w4 joined", time.time(), time.time(), 1.0)
    assert report.fields["errors"] == []


def test_the_command_gets_its_reason_and_its_log_file(tmp_path):
    script = "import os; print(os.environ['NANOEDGE_RECONCILE_REASON'], os.environ['NANOEDGE_RECONCILE_MANAGER'])"
    runner = make_runner(tmp_path, [sys.executable, "-c", script], environment={"EXTRA": "1"})
    result = asyncio.run(runner.run_command("w4   joined\n(pom)", {"event": "change"}, time.time()))
    assert (result.rc, result.error) == (0, "")
    assert os.path.dirname(result.log) == str(tmp_path / "runs")
    assert tail(result.log, 1) == ["w4 joined (pom) coap://m1:5683"]


@pytest.mark.parametrize("command, rc, error", [
    (["/nonexistent/ansible-playbook"], 127, "command not found: /nonexistent/ansible-playbook"),
    (["/"], 126, "command not executable: /"),
    ([sys.executable, "-c", "import time; time.sleep(30)"], -15, "timed out after 0.2 s (command_timeout)"),
])
def test_a_command_that_cannot_start_or_does_not_end(tmp_path, command, rc, error):
    runner = make_runner(tmp_path, command, command_timeout=0.2)
    result = asyncio.run(runner.run_command("forced", {}, time.time()))
    assert (result.rc, result.error) == (rc, error)
    assert tail(result.log, 1) == ([error] if rc != -15 else ["# reason: forced"])


@pytest.mark.parametrize("fence, argv", [
    (None, ["ansible-playbook", "nanoedge.core.site"]),
    ((9, "m1"), ["ansible-playbook", "nanoedge.core.site", "-e",
                 '{"nanoedge_fence_manager": "m1", "nanoedge_fence_term": 9}']),
])
def test_a_run_carries_its_term_and_manager_as_extra_variables(fence, argv):
    assert fence_argv(["ansible-playbook", "nanoedge.core.site"], fence) == argv


def test_the_command_gets_the_term_as_an_integer_and_in_its_environment(tmp_path):
    script = ("import json, os, sys; extra = json.loads(sys.argv[2]);"
              " print(sys.argv[1], extra['nanoedge_fence_term'] + 1, extra['nanoedge_fence_manager'],"
              " os.environ['NANOEDGE_RECONCILE_TERM'])")
    runner = make_runner(tmp_path, [sys.executable, "-c", script])
    result = asyncio.run(runner.run_command("w4 joined", {}, time.time(), (12, "m2")))
    assert (result.rc, tail(result.log, 1)) == (0, ["-e 13 m2 12"])
    report = runner.finish(result, "w4 joined", time.time(), time.time(), 0.1, (12, "m2"))
    assert report.fields["term"] == 12


def test_the_command_runs_with_a_lower_priority(tmp_path):
    script = "import os; print(os.nice(0))"
    runner = make_runner(tmp_path, [sys.executable, "-c", script])
    result = asyncio.run(runner.run_command("why", {"event": "change"}, time.time()))
    assert result.rc == 0
    assert tail(result.log, 1) == [str(os.nice(0) + RUN_NICENESS)]
