# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The oscore_contexts module: its result, diff and check mode, key material censored, and its errors.
The folder logic itself: tests/unit/plugins/module_utils/test_oscore_store.py."""

from __future__ import annotations

import json
import pathlib
import typing as t

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.nanoedge.core.plugins.modules import oscore_contexts

SECRET = "5e" * 32


def run_module(args: t.Dict[str, t.Any], capsys) -> t.Tuple[int, t.Dict[str, t.Any], str]:
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exc:
            oscore_contexts.main()
    out = capsys.readouterr().out
    return exc.value.code, json.loads(out), out


def contexts(secret: str = SECRET) -> t.List[t.Dict[str, t.Any]]:
    return [{"path": "m1", "settings": {"sender-id_hex": "00", "recipient-id_hex": "01", "secret_hex": secret,
                                        "salt_hex": "", "id-context_ascii": "m1"}}]


def test_writes_then_changes_nothing(tmp_path, capsys):
    args = {"path": str(tmp_path / "oscore"), "contexts": contexts(),
            "credentials": [{"path": "credentials.json", "content": {"coap://m1/*": {"oscore": {"basedir": "m1/"}}}}]}
    rc, result, out = run_module(args, capsys)
    assert rc == 0
    assert (result["changed"], result["written"], result["credentials"], result["removed"]) == (
        True, ["m1"], ["credentials.json"], [])
    assert SECRET not in out  # censored in the result, though written to the file
    assert json.loads((tmp_path / "oscore" / "m1" / "settings.json").read_text())["secret_hex"] == SECRET
    rc, result, out = run_module(args, capsys)
    assert (rc, result["changed"], result["written"]) == (0, False, [])


def test_check_mode_and_diff(tmp_path, capsys):
    args = {"path": str(tmp_path / "oscore"), "contexts": contexts(), "_ansible_check_mode": True,
            "_ansible_diff": True}
    rc, result, out = run_module(args, capsys)
    assert (rc, result["changed"], result["written"]) == (0, True, ["m1"])
    assert result["diff"]["prepared"].startswith("write m1/settings.json\n")
    assert SECRET not in out
    assert not (tmp_path / "oscore").exists()


def test_a_bad_entry_fails_naming_it(tmp_path, capsys):
    rc, result, out = run_module({"path": str(tmp_path / "oscore"),
                                  "contexts": [{"path": "../m1", "settings": {"secret_hex": SECRET}}]}, capsys)
    assert rc == 1
    assert result["msg"] == ("nanoedge.core.oscore_contexts: contexts[0].path: '../m1' must not contain empty, "
                             "'.' or '..' parts")
    assert not pathlib.Path(tmp_path / "oscore").exists()
    assert SECRET not in out
