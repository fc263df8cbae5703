# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""nanoedge.core.sync_tree through real ansible-playbook runs (action plugin and module):
the copy, idempotence in one round trip, check mode, diff, repair, and its errors.
The comparison and replacement themselves are in tests/unit/plugins/module_utils/test_tree.py."""

from __future__ import annotations

import json
import re
import stat
import sys
import typing as t
from pathlib import Path

import pytest

INVENTORY = json.dumps({"all": {"hosts": {"localhost": {
    "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}})
RECAP_RE = re.compile(r"^localhost\s+:\s+(.*)$", re.M)


@pytest.fixture()
def src(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    (root / "lib").mkdir(parents=True)
    (root / "lib" / "__pycache__").mkdir()
    (root / "lib" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\x00")
    (root / "lib" / "x.py").write_text("X = 1\n")
    (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "run.sh").chmod(0o755)
    (root / "big.whl").write_bytes(bytes(range(256)) * 4096)
    return root


def sync(run_playbook: t.Callable[..., t.Tuple[int, str]], args: t.Dict[str, t.Any], *extra: str
         ) -> t.Tuple[int, t.Dict[str, t.Any], t.Dict[str, int], str]:
    """(rc, the task's result, the recap counters, the whole output)."""
    play = [{"hosts": "localhost", "gather_facts": False,
             "tasks": [{"name": "sync", "nanoedge.core.sync_tree": args}]}]
    rc, output = run_playbook(json.dumps(play), INVENTORY, "-vvv", *extra)
    try:
        task = output[output.index("TASK [sync]"):]
        start = task.index("=> ", task.index("[localhost]")) + 3
        result = json.JSONDecoder().raw_decode(task[start:])[0]
        recap = dict(item.split("=") for item in RECAP_RE.search(output).group(1).split())
    except (ValueError, AttributeError):
        raise AssertionError("unexpected ansible-playbook output (rc %d):\n%s" % (rc, output)) from None
    return rc, result, {k: int(v) for k, v in recap.items()}, task


def listing(root: Path) -> t.Dict[str, t.Tuple[int, bytes]]:
    return {str(p.relative_to(root)): (stat.S_IMODE(p.stat().st_mode), b"" if p.is_dir() else p.read_bytes())
            for p in sorted(root.rglob("*"))}


def test_copy_then_nothing_to_do_in_one_round_trip(src, tmp_path, run_playbook):
    dest = tmp_path / "node" / "opt" / "app"
    args = {"src": str(src) + "/", "dest": str(dest), "exclude": ["__pycache__"]}
    rc, result, recap, _output = sync(run_playbook, args)
    assert rc == 0, result
    assert (recap["changed"], result["changed"], result["files"]) == (1, True, 3)
    assert result["added"] == [".", "big.whl", "lib", "lib/x.py", "run.sh"]
    assert listing(dest) == {"big.whl": (0o644, bytes(range(256)) * 4096), "lib": (0o755, b""),
                             "lib/x.py": (0o644, b"X = 1\n"), "run.sh": (0o755, b"#!/bin/sh\necho hi\n")}

    rc, result, recap, task = sync(run_playbook, args)
    assert rc == 0, result
    assert (recap["changed"], result["changed"], result["added"], result["removed"], result["changed_paths"]) == (
        0, False, [], [], [])
    # one command on the node: the module run that compares (pipelining is on)
    assert task.count("EXEC ") == 1, task


def test_check_mode_and_diff_change_nothing(src, tmp_path, run_playbook):
    dest = tmp_path / "dest"
    args = {"src": str(src), "dest": str(dest), "exclude": ["__pycache__"]}
    rc, result, recap, _output = sync(run_playbook, args, "--check", "--diff")
    assert rc == 0, result
    assert (recap["changed"], result["changed"]) == (1, True)
    assert result["diff"]["after"] == "+ .\n+ big.whl\n+ lib\n+ lib/x.py\n+ run.sh\n"
    assert not dest.exists()


def test_a_folder_changed_on_the_node_is_put_right(src, tmp_path, run_playbook):
    dest = tmp_path / "dest"
    args = {"src": str(src), "dest": str(dest), "exclude": ["__pycache__"], "mode": "0640",
            "directory_mode": "0750"}
    assert sync(run_playbook, args)[0] == 0
    (dest / "lib" / "x.py").write_text("X = 2\n")
    (dest / "stray.txt").write_text("left by hand")
    (dest / "lib" / "__pycache__").mkdir()           # written by Python on the node: not a change
    (dest / "lib" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\x01")
    rc, result, recap, _output = sync(run_playbook, args, "--diff")
    assert rc == 0, result
    assert (result["added"], result["removed"], result["changed_paths"]) == ([], ["stray.txt"], ["lib/x.py"])
    assert result["diff"]["after"] == "- stray.txt\n~ lib/x.py\n"
    assert listing(dest) == {"big.whl": (0o640, bytes(range(256)) * 4096), "lib": (0o750, b""),
                             "lib/x.py": (0o640, b"X = 1\n"), "run.sh": (0o640, b"#!/bin/sh\necho hi\n")}
    assert stat.S_IMODE(dest.stat().st_mode) == 0o750
    assert sync(run_playbook, args)[2]["changed"] == 0


def test_picked_files_only(src, tmp_path, run_playbook):
    dest = tmp_path / "dest"
    rc, result, _recap, _output = sync(run_playbook, {"src": str(src), "dest": str(dest), "files": ["lib/x.py"]})
    assert rc == 0, result
    assert sorted(listing(dest)) == ["lib", "lib/x.py"]


@pytest.mark.parametrize("args, message", [
    ({"src": "{{ playbook_dir }}/nowhere"}, r"nanoedge.core.sync_tree: src .*/nowhere is not found: "),
    ({"files": ["missing.py"]}, r"nanoedge.core.sync_tree: files entry 'missing.py': .*/src/missing.py is not a file"),
    ({"mode": "rw-r--r--"}, r"nanoedge.core.sync_tree: mode must be an octal mode such as '0644', got 'rw-r--r--'"),
    ({"owner": "no-such-user-here"}, r"nanoedge.core.sync_tree: owner no-such-user-here is not a user on this node"),
    ({"_manifest": []}, r"nanoedge.core.sync_tree: _manifest is set by the action plugin, not by the task"),
    ({"exclude": "__pycache__"}, r"nanoedge.core.sync_tree: exclude must be a list of patterns"),
])
def test_errors_name_what_is_wrong(src, tmp_path, run_playbook, args, message):
    dest = tmp_path / "dest"
    rc, result, recap, _output = sync(run_playbook, dict({"src": str(src), "dest": str(dest)}, **args))
    assert (rc, recap["failed"]) == (2, 1), result
    assert re.search(message, result["msg"]), result["msg"]
    assert not dest.exists()


def test_dest_that_is_a_file_is_left_alone(src, tmp_path, run_playbook):
    dest = tmp_path / "dest"
    dest.write_text("a file")
    rc, result, _recap, _output = sync(run_playbook, {"src": str(src), "dest": str(dest)})
    assert rc == 2
    assert result["msg"] == "nanoedge.core.sync_tree: dest %s exists and is not a folder" % dest
    assert dest.read_text() == "a file"
