# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tasks that every host of a play runs against the same other hosts.

A task delegated to each item of a loop of other hosts runs on those hosts once
per host of the play, all at the same time. When it writes there (a key into
authorized_keys, say), two writes race and one is lost; the next run then adds
it again and is not idempotent. Such a task must run one host at a time
(``throttle: 1``), or only read (``check_mode: false`` with nothing written)."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
TASK_FILES = sorted(ROOT.glob("roles/*/tasks/*.yml")) + sorted(ROOT.glob("playbooks/*.yml"))

# Modules that only read, so parallel runs against one host cannot lose anything.
READ_ONLY = ("_info", ".stat", ".slurp", ".command", ".uri", ".wait_for", ".ping", ".setup")


def tasks_of(node: t.Any) -> t.Iterator[dict]:
    """Every task in a task file or playbook, blocks and plays included."""
    if isinstance(node, list):
        for item in node:
            yield from tasks_of(item)
    elif isinstance(node, dict):
        for key in ("tasks", "pre_tasks", "post_tasks", "handlers", "block", "rescue", "always"):
            if key in node:
                yield from tasks_of(node[key])
        if "hosts" not in node and not any(k in node for k in ("block", "tasks")):
            yield node


def module_of(task: dict) -> str:
    known = {"name", "when", "loop", "loop_control", "register", "delegate_to", "throttle", "run_once",
             "check_mode", "changed_when", "failed_when", "ignore_errors", "ignore_unreachable", "tags",
             "become", "become_user", "no_log", "vars", "notify", "until", "retries", "delay", "environment",
             "listen", "args", "delegate_facts", "diff", "any_errors_fatal"}
    names = [k for k in task if k not in known]
    return names[0] if names else ""


def shared_writes(path: Path, root: Path = ROOT) -> list[str]:
    found = []
    for task in tasks_of(yaml.safe_load(path.read_text())):
        delegate = str(task.get("delegate_to", ""))
        if "item" not in delegate or task.get("run_once") or task.get("throttle") == 1:
            continue
        if module_of(task).endswith(READ_ONLY):
            continue
        found.append("%s: %s" % (path.relative_to(root), task.get("name", module_of(task))))
    return found


def test_the_task_files_are_found():
    assert any(p.match("roles/reconcile/tasks/ssh.yml") for p in TASK_FILES)


@pytest.mark.parametrize("path", TASK_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_writes_to_shared_hosts_run_one_host_at_a_time(path):
    assert shared_writes(path) == []


def test_an_unthrottled_shared_write_is_found(tmp_path):
    tasks = [{"name": "Authorize", "ansible.posix.authorized_key": {"user": "root", "key": "k"},
              "delegate_to": "{{ item }}", "loop": ["w1", "w2"]},
             {"name": "Read", "community.docker.docker_swarm_info": {}, "delegate_to": "{{ item }}", "loop": ["m1"]},
             {"block": [{"name": "Also", "ansible.builtin.copy": {"dest": "/x"}, "delegate_to": "{{ item }}"}]}]
    path = tmp_path / "main.yml"
    path.write_text(yaml.safe_dump(tasks))
    assert shared_writes(path, tmp_path) == ["main.yml: Authorize", "main.yml: Also"]
    tasks[0]["throttle"] = 1
    path.write_text(yaml.safe_dump(tasks))
    assert shared_writes(path, tmp_path) == ["main.yml: Also"]
