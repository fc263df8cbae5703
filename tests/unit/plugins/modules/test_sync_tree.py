# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sync_tree module's two runs as the action plugin drives them: compare (and ask for the
archive), then replace. Through ansible-playbook: tests/integration/test_sync_tree.py."""

from __future__ import annotations

import json
import os
import typing as t
from pathlib import Path

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.nanoedge.core.plugins.module_utils._tree import build_manifest, pack
from ansible_collections.nanoedge.core.plugins.modules import sync_tree


def run_module(args: t.Dict[str, t.Any], capsys) -> t.Tuple[int, t.Dict[str, t.Any]]:
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exc:
            sync_tree.main()
    return exc.value.code, json.loads(capsys.readouterr().out)


@pytest.fixture()
def tree(tmp_path: Path) -> t.Tuple[Path, t.List[t.Dict[str, t.Any]], str]:
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "mod.py").write_text("VALUE = 1\n")
    (src / "main.py").write_text("import pkg\n")
    manifest = build_manifest(str(src))
    archive = str(tmp_path / "tree.tar.gz")
    pack(str(src), manifest, archive)
    return src, manifest, archive


def test_a_differing_folder_asks_for_the_archive_and_changes_nothing(tmp_path, tree, capsys):
    src, manifest, _archive = tree
    dest = tmp_path / "dest"
    rc, result = run_module({"src": str(src), "dest": str(dest), "_manifest": manifest}, capsys)
    assert rc == 0
    assert (result["changed"], result["needs_archive"], result["files"]) == (True, True, 2)
    assert result["added"] == [".", "main.py", "pkg", "pkg/mod.py"]
    assert not dest.exists()


def test_the_archive_is_put_in_place_and_then_nothing_differs(tmp_path, tree, capsys):
    src, manifest, archive = tree
    dest = tmp_path / "dest"
    args = {"src": str(src), "dest": str(dest), "_manifest": manifest, "owner": str(os.getuid()),
            "group": str(os.getgid()), "_ansible_diff": True}
    rc, result = run_module(dict(args, _archive=archive), capsys)
    assert rc == 0 and result["changed"] and "needs_archive" not in result
    assert result["diff"]["after"] == "+ .\n+ main.py\n+ pkg\n+ pkg/mod.py\n"
    assert (dest / "pkg" / "mod.py").read_text() == "VALUE = 1\n"
    rc, result = run_module(args, capsys)
    assert (rc, result["changed"], "needs_archive" in result, "diff" in result) == (0, False, False, False)


def test_check_mode_reports_the_change_without_asking_for_the_archive(tmp_path, tree, capsys):
    src, manifest, _archive = tree
    dest = tmp_path / "dest"
    rc, result = run_module({"src": str(src), "dest": str(dest), "_manifest": manifest, "_ansible_check_mode": True},
                            capsys)
    assert (rc, result["changed"], "needs_archive" in result) == (0, True, False)
    assert not dest.exists()


@pytest.mark.parametrize("extra, message", [
    ({"_manifest": None}, "nanoedge.core.sync_tree: run through the action plugin, which sends the manifest of src"),
    ({"group": "no-such-group-here"}, "nanoedge.core.sync_tree: group no-such-group-here is not a group on this node"),
    ({"directory_mode": "u=rwx"}, "nanoedge.core.sync_tree: directory_mode must be an octal mode such as '0644', "
                                  "got 'u=rwx'"),
    ({"_manifest": [{"path": "x", "type": "fifo"}]},
     "nanoedge.core.sync_tree: manifest entry 0 is not a file or folder entry: {'path': 'x', 'type': 'fifo'}"),
])
def test_errors_name_what_is_wrong(tmp_path, tree, capsys, extra, message):
    src, manifest, _archive = tree
    args = dict({"src": str(src), "dest": str(tmp_path / "dest"), "_manifest": manifest}, **extra)
    rc, result = run_module({k: v for k, v in args.items() if v is not None}, capsys)
    assert (rc, result["failed"], result["msg"]) == (1, True, message)
    assert not (tmp_path / "dest").exists()
