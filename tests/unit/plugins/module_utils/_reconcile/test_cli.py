# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``nanoedge-reconcile status``: the state file's role, term and lease, one line each."""

from __future__ import annotations

import json

import pytest

from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.cli import main, parse_args, status_lines

STATE = {"role": "active", "since": "2026-12-05T19:00:02.120Z", "manager": "coap://10.0.0.11:5683", "name": "m1",
         "term": 9, "leader": True, "lease_remaining": 2.81, "granted_by": ["w1", "w2", "w3"], "majority": 4,
         "members": 7, "candidate_term": 9, "lease_error": None, "updated": "2026-12-05T19:00:09.001Z",
         "last_run": {"rc": 0, "finished": "2026-12-05T19:00:08.500Z", "reason": "w4 left"}}


def test_status_prints_the_leadership_and_the_last_run():
    assert status_lines(STATE) == [
        "role: active", "since: 2026-12-05T19:00:02.120Z", "manager: coap://10.0.0.11:5683", "name: m1", "term: 9",
        "leader: yes", "lease remaining (s): 2.81", "granted by: w1, w2, w3", "majority: 4", "members: 7",
        "candidate term: 9", "lease error: -", "updated: 2026-12-05T19:00:09.001Z",
        "last run: rc 0, finished 2026-12-05T19:00:08.500Z: w4 left"]


def test_status_of_a_passive_manager_that_never_ran():
    lines = status_lines({"role": "passive", "leader": False, "granted_by": [], "last_run": None})
    assert lines[0] == "role: passive" and "leader: no" in lines and "granted by: -" in lines and "term: -" in lines
    assert lines[-1] == "last run: -"


def test_the_status_command_reads_the_state_file_of_the_configuration(tmp_path, capsys):
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    (state_dir / "state.json").write_text(json.dumps(STATE))
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"registry": "coap://m1", "command": ["true"], "state_dir": str(state_dir)}))
    assert main(["--config", str(config), "status"]) == 0
    assert capsys.readouterr().out.splitlines()[:5] == status_lines(STATE)[:5]
    (state_dir / "state.json").unlink()
    assert main(["--config", str(config), "status"]) == 3
    assert "cannot read the state file %s" % (state_dir / "state.json") in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["status", "--once"], ["status", "--check-config"]])
def test_status_goes_alone(argv, capsys):
    with pytest.raises(SystemExit):
        parse_args(argv)
    assert "status goes without --once and --check-config" in capsys.readouterr().err
