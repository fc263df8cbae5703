# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The daemon's state file."""

from __future__ import annotations

import json
import os

from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.state import write_json_atomically


def test_state_is_replaced_atomically(tmp_path):
    path = tmp_path / "state.json"
    write_json_atomically(str(path), {"role": "passive"})
    write_json_atomically(str(path), {"role": "active"})
    assert json.loads(path.read_text()) == {"role": "active"}
    assert os.listdir(tmp_path) == ["state.json"]
