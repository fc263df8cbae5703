# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fencing in the deploy and swarm roles, through real ansible-playbook runs on localhost: a run
without nanoedge_fence_term is not fenced; a run with one is fenced before anything else (changed
only when the term grows, nothing written in check mode), refused with both terms named when the
node has seen a higher one, and fenced again before a removal. The fence file is put under the
test's folder with module_defaults; the plans are empty, so nothing but the fence touches the node.
The decisions themselves: tests/unit/plugins/module_utils/test_fence.py."""

from __future__ import annotations

import json
import re
import sys
import typing as t
from pathlib import Path

import pytest

INVENTORY = json.dumps({"all": {"hosts": {"localhost": {
    "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}})
FENCE_TASK = "Refuse the change if this node has seen a newer manager's term"
SWARM_FENCE_TASK = "Refuse the change if this Swarm manager has seen a newer manager's term"
STATUS_RE = re.compile(r"^(ok|changed|skipping|fatal): \[localhost\]", re.M)


def play(fence_file: Path, role: str, tasks_from: str, role_vars: t.Dict[str, t.Any]) -> str:
    return json.dumps([{
        "hosts": "localhost", "gather_facts": False,
        "module_defaults": {"nanoedge.core.fence": {"path": str(fence_file)}},
        "tasks": [{"name": "the role", "ansible.builtin.include_role": {"name": role, "tasks_from": tasks_from},
                   "vars": role_vars}],
    }])


def fence_runs(output: str, task: str) -> t.List[t.Tuple[str, str]]:
    """Each run of the fence task: its status and, when it failed, its message."""
    runs = []
    for part in output.split("TASK [")[1:]:
        if not part.split("]", 1)[0].endswith(task):
            continue
        status = STATUS_RE.search(part)
        assert status, part
        message = ""
        if status.group(1) == "fatal":
            message = json.JSONDecoder().raw_decode(part[part.index("=> ", status.start()) + 3:])[0]["msg"]
        runs.append((status.group(1), message))
    return runs


@pytest.fixture()
def deploy(tmp_path: Path, run_playbook: t.Callable[..., t.Tuple[int, str]]):
    """Run the deploy role's main entry point with an empty plan: the fence, then the plan check fails."""
    fence_file = tmp_path / "node" / "fence.json"
    role_vars = {"nanoedge_deploy_plan": {}, "nanoedge_deploy_services": [],
                 "nanoedge_deploy_fence_witness_path": str(tmp_path / "agent" / "witness.json")}

    def _run(*extra: str) -> t.Tuple[t.List[t.Tuple[str, str]], str]:
        rc, output = run_playbook(play(fence_file, "nanoedge.core.deploy", "main", role_vars), INVENTORY, *extra)
        runs = fence_runs(output, FENCE_TASK)
        # the run goes on past the fence unless the fence failed
        assert rc != 0 and (("nanoedge_deploy_plan must be the result of nanoedge.core.allocate" in output)
                            != (runs[-1][0] == "fatal")), output
        return runs, output

    return fence_file, _run


def fenced(term: t.Any, manager: str) -> t.Tuple[str, str]:
    return "-e", json.dumps({"nanoedge_fence_term": term, "nanoedge_fence_manager": manager})


def test_a_run_without_a_term_is_not_fenced(deploy):
    fence_file, run = deploy
    assert run()[0] == [("skipping", "")]
    assert not fence_file.parent.exists()


def test_the_first_task_records_the_term_once_and_refuses_a_lower_one(deploy):
    fence_file, run = deploy
    assert run(*fenced(9, "m1"))[0] == [("changed", "")]
    recorded = json.loads(fence_file.read_text())
    assert (recorded["term"], recorded["manager"]) == (9, "m1")
    # idempotent: the same term again changes nothing
    assert run(*fenced(9, "m1"))[0] == [("ok", "")]
    # check mode reports the higher term and writes nothing
    runs, output = run(*fenced(11, "m1"), "--check", "--diff")
    assert runs == [("changed", "")]
    assert '-  "term": 9,\n+  "term": 11,' in output
    assert json.loads(fence_file.read_text()) == recorded
    # a term given as a string on the command line, lower: refused, the file left as it is
    runs, _output = run("-e", "nanoedge_fence_term=7", "-e", "nanoedge_fence_manager=m2")
    assert runs == [("fatal", "nanoedge.core.fence: refused the change from manager m2 at term 7: this node has "
                              "seen term 9 (manager m1)")]
    assert json.loads(fence_file.read_text()) == recorded


def test_a_term_without_a_manager_fails(deploy):
    _fence_file, run = deploy
    assert run("-e", "nanoedge_fence_term=3")[0] == [
        ("fatal", "nanoedge.core.fence: manager must be a name (printable, no spaces), got ''")]


@pytest.mark.parametrize("stale, term, expected", [
    # nothing to remove: no second fence
    ({}, 8, [("skipping", "")]),
    # something to remove, from a stale manager: refused before the removal
    ({"spo2": "nanoedge-svc-spo2"}, 8, [
        ("fatal", "nanoedge.core.fence: refused the change from manager m2 at term 8: this node has seen term 9 "
                  "(manager m1)")]),
])
def test_a_removal_is_fenced_again(tmp_path, run_playbook, stale, term, expected):
    fence_file = tmp_path / "fence.json"
    fence_file.write_text('{"term": 9, "manager": "m1", "updated": "2026-12-05T19:00:00Z"}\n')
    role_vars = {"nanoedge_deploy_running": {"containers": stale, "units": {}}, "_nanoedge_deploy_wanted": [],
                 "nanoedge_deploy_fence_witness_path": str(tmp_path / "witness.json")}
    rc, output = run_playbook(play(fence_file, "nanoedge.core.deploy", "reconcile", role_vars), INVENTORY,
                              *fenced(term, "m2"))
    assert fence_runs(output, FENCE_TASK) == expected, output
    refused = expected[0][0] == "fatal"
    assert (rc != 0, "Remove nanoedge containers the plan no longer puts here]" in output) == (refused, not refused)


def test_the_swarm_services_are_fenced_on_the_swarm_manager(tmp_path, run_playbook):
    fence_file = tmp_path / "fence.json"
    role_vars = {"nanoedge_swarm_plan": {}, "nanoedge_swarm_nodes": {}}
    outcomes = []
    for term, manager in ((10, "m1"), (6, "m2")):
        _rc, output = run_playbook(play(fence_file, "nanoedge.core.swarm", "services", role_vars), INVENTORY,
                                   *fenced(term, manager))
        outcomes.append(fence_runs(output, SWARM_FENCE_TASK))
    assert outcomes == [[("changed", "")], [("fatal", "nanoedge.core.fence: refused the change from manager m2 at "
                                                      "term 6: this node has seen term 10 (manager m1)")]]
