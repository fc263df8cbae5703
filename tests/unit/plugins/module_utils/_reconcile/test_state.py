# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The daemon's state file and decision log."""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.state import (
    StateFiles, now_iso, write_json_atomically,
)


def test_state_is_replaced_atomically(tmp_path):
    path = tmp_path / "state.json"
    write_json_atomically(str(path), {"role": "passive"})
    write_json_atomically(str(path), {"role": "active"})
    assert json.loads(path.read_text()) == {"role": "active"}
    assert os.listdir(tmp_path) == ["state.json"]


FINGERPRINT = {"w1": {"capabilities": ["pom"], "power": "ac", "network": ["wifi"], "arch": "armv7l"}}


@pytest.mark.parametrize("content, loaded", [
    (None, (None, None)),
    ("{", (None, None)),
    ("[]", (None, None)),
    (json.dumps({"applied": FINGERPRINT, "last_run": {"rc": 0}}), (FINGERPRINT, {"rc": 0})),
    (json.dumps({"applied": {"w1": {"capabilities": "pom"}}, "last_run": "yesterday"}), (None, None)),
])
def test_state_file_gives_back_what_the_last_run_acted_on(tmp_path, content, loaded):
    if content is not None:
        (tmp_path / "state.json").write_text(content)
    assert StateFiles(str(tmp_path)).load() == loaded


def test_state_and_decisions_are_written(tmp_path):
    files = StateFiles(str(tmp_path))
    files.write({"role": "active"})
    files.append_decision({"event": "start", "time": "2026-11-26T02:30:00.000Z"})
    files.append_decision({"event": "stop"})
    assert json.loads((tmp_path / "state.json").read_text()) == {"role": "active"}
    assert (tmp_path / "decisions.jsonl").read_text() == (
        '{"event": "start", "time": "2026-11-26T02:30:00.000Z"}\n{"event": "stop"}\n')


@pytest.mark.parametrize("wall, text", [(0, "1970-01-01T00:00:00.000Z"), (1795660200.1239, "2026-11-26T02:30:00.123Z")])
def test_times_are_utc_with_milliseconds(wall, text):
    assert now_iso(wall) == text


def test_a_write_that_need_not_survive_a_power_cut_still_replaces_the_file_whole(tmp_path):
    path = tmp_path / "state.json"
    write_json_atomically(str(path), {"role": "passive"}, durable=False)
    write_json_atomically(str(path), {"role": "active"}, durable=False)
    assert json.loads(path.read_text()) == {"role": "active"}
    assert sorted(os.listdir(tmp_path)) == ["state.json"]
