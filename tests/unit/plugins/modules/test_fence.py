# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fence module: what it returns, its diff and check mode, and its messages on a refusal and on
a corrupt file. The decisions themselves: tests/unit/plugins/module_utils/test_fence.py."""

from __future__ import annotations

import json
import pathlib
import typing as t

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.nanoedge.core.plugins.modules import fence

UPDATED = "2026-12-05T19:00:00Z"


def run_module(args: t.Dict[str, t.Any], capsys) -> t.Tuple[int, t.Dict[str, t.Any]]:
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exc:
            fence.main()
    return exc.value.code, json.loads(capsys.readouterr().out)


def paths(tmp_path: pathlib.Path, fence_file: t.Optional[str] = None,
          witness_file: t.Optional[str] = None) -> t.Dict[str, str]:
    found = {"path": str(tmp_path / "lib" / "fence.json"), "witness_path": str(tmp_path / "agent" / "witness.json")}
    for key, content in (("path", fence_file), ("witness_path", witness_file)):
        if content is not None:
            pathlib.Path(found[key]).parent.mkdir(parents=True, exist_ok=True)
            pathlib.Path(found[key]).write_text(content)
    return found


@pytest.mark.parametrize("fence_file, witness_file, term, expected", [
    (None, None, 9, dict(changed=True, previous_term=0, previous_manager=None, witness_term=0, highest_term=0)),
    ('{"term": 7, "manager": "m2", "updated": "%s"}' % UPDATED, None, 9,
     dict(changed=True, previous_term=7, previous_manager="m2", witness_term=0, highest_term=7)),
    ('{"term": 9, "manager": "m1", "updated": "%s"}' % UPDATED, '{"highest_term": 8, "holder": null, "term": 0}', 9,
     dict(changed=False, previous_term=9, previous_manager="m1", witness_term=8, highest_term=9)),
    (None, '{"highest_term": 9, "holder": "m1", "term": 9, "updated": "%s"}' % UPDATED, 9,
     dict(changed=True, previous_term=0, previous_manager=None, witness_term=9, highest_term=9)),
])
def test_accepted(tmp_path, capsys, fence_file, witness_file, term, expected):
    args = paths(tmp_path, fence_file, witness_file)
    rc, result = run_module(dict(args, term=term, manager="m1"), capsys)
    assert rc == 0
    assert {key: result[key] for key in expected} == expected
    assert (result["term"], result["manager"], result["fence_file"]) == (term, "m1", args["path"])
    assert "mode" not in result  # no file attributes: the fence file is not a file this task manages
    assert json.loads(pathlib.Path(args["path"]).read_text())["term"] == term


def test_diff_and_check_mode(tmp_path, capsys):
    args = paths(tmp_path, '{"term": 7, "manager": "m2", "updated": "%s"}' % UPDATED)
    before = pathlib.Path(args["path"]).read_text()
    rc, result = run_module(dict(args, term=9, manager="m1", _ansible_check_mode=True, _ansible_diff=True), capsys)
    assert (rc, result["changed"]) == (0, True)
    assert result["diff"] == {"before_header": args["path"], "after_header": args["path"],
                              "before": '{\n  "term": 7,\n  "manager": "m2"\n}\n',
                              "after": '{\n  "term": 9,\n  "manager": "m1"\n}\n'}
    assert pathlib.Path(args["path"]).read_text() == before
    assert sorted(p.name for p in pathlib.Path(args["path"]).parent.iterdir()) == ["fence.json"]


def test_a_new_fence_file_diffs_from_nothing_and_a_second_run_changes_nothing(tmp_path, capsys):
    args = dict(paths(tmp_path), term=3, manager="m1", _ansible_diff=True)
    rc, result = run_module(args, capsys)
    assert (rc, result["changed"], result["diff"]["before"], result["diff"]["after"]) == (
        0, True, "", '{\n  "term": 3,\n  "manager": "m1"\n}\n')
    rc, result = run_module(args, capsys)
    assert (rc, result["changed"], result["diff"]["before"] == result["diff"]["after"]) == (0, False, True)


@pytest.mark.parametrize("fence_file, witness_file, term, message, extra", [
    ('{"term": 9, "manager": "m2", "updated": "%s"}' % UPDATED, None, 7,
     "nanoedge.core.fence: refused the change from manager m1 at term 7: this node has seen term 9 (manager m2)",
     {"highest_term": 9}),
    (None, '{"highest_term": 9, "holder": "m2", "term": 9, "updated": "%s"}' % UPDATED, 8,
     "nanoedge.core.fence: refused the change from manager m1 at term 8: this node has seen term 9 (manager m2)",
     {"highest_term": 9}),
    ('{"term": 9, "manager": "m2"', None, 12,
     "nanoedge.core.fence: the fence file {path} is corrupt: it is not JSON (Expecting ',' delimiter: line 1 column "
     "28 (char 27)); this node accepts no change until it is repaired", {}),
    (None, '{"highest_term": true}', 12,
     "nanoedge.core.fence: the witness file {witness_path} is corrupt: highest_term is true, not an integer from 0 "
     "to 9007199254740992; this node accepts no change until it is repaired", {}),
    (None, None, 0, "nanoedge.core.fence: term must be an integer from 1 to 9007199254740992, got 0", {}),
])
def test_failures_name_both_terms_or_the_file(tmp_path, capsys, fence_file, witness_file, term, message, extra):
    args = paths(tmp_path, fence_file, witness_file)
    before = pathlib.Path(args["path"]).read_text() if fence_file is not None else None
    rc, result = run_module(dict(args, term=term, manager="m1"), capsys)
    assert (rc, result["failed"], result["msg"]) == (1, True, message.format(**args))
    assert result["fence_file"] == args["path"]
    assert {key: result[key] for key in extra} == extra
    assert (pathlib.Path(args["path"]).read_text() if pathlib.Path(args["path"]).exists() else None) == before


def test_the_defaults_are_the_documented_paths():
    doc = fence.DOCUMENTATION
    assert "default: /var/lib/nanoedge/fence.json" in doc
    assert "default: /var/lib/nanoedge-agent/witness.json" in doc
