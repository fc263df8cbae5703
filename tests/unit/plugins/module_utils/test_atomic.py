# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Replacing a file whole: content, mode, and nothing left behind when it fails."""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.nanoedge.core.plugins.module_utils._atomic import write_atomically


@pytest.mark.parametrize("content, mode, durable, expected, expected_mode", [
    ("text é\n", None, True, "text é\n".encode(), 0o600),
    (b"\x00bytes", 0o644, True, b"\x00bytes", 0o644),
    ("{}", 0o640, False, b"{}", 0o640),
])
def test_writes_the_content_with_its_mode(tmp_path, content, mode, durable, expected, expected_mode):
    path = tmp_path / "state.json"
    path.write_text("old")
    write_atomically(str(path), content, mode=mode, durable=durable)
    assert path.read_bytes() == expected
    assert stat.S_IMODE(path.stat().st_mode) == expected_mode
    assert sorted(os.listdir(tmp_path)) == ["state.json"]


def test_a_failed_rename_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "state.json"
    path.mkdir()  # a folder where the file should be: the rename fails
    (path / "inside").write_text("x")
    with pytest.raises(OSError):
        write_atomically(str(path), "new")
    assert sorted(os.listdir(tmp_path)) == ["state.json"]
    assert path.is_dir()


def test_a_missing_folder_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        write_atomically(str(tmp_path / "nowhere" / "state.json"), "new")
