# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import pytest
from ansible.errors import AnsibleLookupError
from ansible.plugins.loader import lookup_loader


def test_one_entry_per_peer_in_order(tmp_path):
    lookup = lookup_loader.get("nanoedge.core.oscore_material")
    result = lookup.run(["w1", "controller"], variables={}, manager="m1", directory=str(tmp_path))
    assert [(entry["manager"], entry["name"], entry["id"]) for entry in result] == [
        ("m1", "w1", "60c5590f72ee"), ("m1", "controller", result[1]["id"])]
    assert result[0]["client"]["secret_hex"] == (tmp_path / "m1" / "w1.secret").read_text().strip()


def test_errors_name_the_plugin(tmp_path):
    lookup = lookup_loader.get("nanoedge.core.oscore_material")
    with pytest.raises(AnsibleLookupError) as info:
        lookup.run(["w1 "], variables={}, manager="m1", directory=str(tmp_path))
    assert str(info.value).startswith("nanoedge.core.oscore_material: peer 'w1 ': must be a node name")
