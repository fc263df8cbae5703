# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""tools/nanoservices.py: a thin caller of the service_image code (plugins/plugin_utils/_service_image*.py,
tested in tests/unit/plugins/plugin_utils/): which services it finds, how it refuses a bad service.json, what it
prints."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from ansible_collections.nanoedge.core.plugins.plugin_utils import _service_image
from ansible_collections.nanoedge.core.tools import nanoservices

ROOT = Path(__file__).resolve().parents[3]


# tools/ is a folder of scripts, importable as part of the collection like any other module
assert Path(nanoservices.__file__) == ROOT / "tools" / "nanoservices.py", nanoservices


@pytest.fixture()
def spo2():
    return json.loads((ROOT / "nanoservices" / "spo2" / "service.json").read_text())


def test_every_service_is_loaded_with_its_requirements():
    specs = nanoservices.services()
    assert [s.name for s in specs] == ["alert", "bot", "display", "hr", "hrv", "oc", "spo2"]
    assert all(s.description["requirements"]["memory_mb"] > 0 for s in specs)
    assert {s.source for s in specs} == {ROOT / "nanoservices"}


def test_some_services_by_name():
    assert [s.name for s in nanoservices.services(["spo2", "alert"])] == ["spo2", "alert"]
    with pytest.raises(nanoservices.BuildError) as error:
        nanoservices.services(["spo2", "resp"])
    assert str(error.value) == "no such nanoservice(s): resp (have: alert, bot, display, hr, hrv, oc, spo2)"


def test_the_tool_uses_the_collections_code():
    assert nanoservices.BuildError is _service_image.BuildError


def test_services_refuses_a_bad_service_json(tmp_path, monkeypatch, spo2):
    bad = copy.deepcopy(spo2)
    bad["requirements"]["cpu"] = "lots"
    (tmp_path / "spo2").mkdir()
    (tmp_path / "spo2" / "service.json").write_text(json.dumps(bad))
    monkeypatch.setattr(nanoservices, "SERVICES_DIR", tmp_path)
    with pytest.raises(nanoservices.BuildError) as error:
        nanoservices.services()
    assert str(error.value) == "service 'spo2': service.json: requirements: cpu must be a number, got 'lots'"


def test_list(capsys):
    assert nanoservices.main(["--list", "spo2"]) == 0
    assert capsys.readouterr().out == (
        "spo2     1.0.0    SpO2 and pulse rate from the BerryMed BM1000B pulse oximeter, over CoAP\n"
        '                  requires {"capabilities": ["pom"], "cpu": 0.5, "memory_mb": 64, "storage_mb": 20}\n')


def test_a_bad_service_json_fails_the_run_with_a_message(tmp_path, monkeypatch, spo2, capsys):
    spo2["port"] = None
    (tmp_path / "spo2").mkdir()
    (tmp_path / "spo2" / "service.json").write_text(json.dumps(spo2))
    monkeypatch.setattr(nanoservices, "SERVICES_DIR", tmp_path)
    assert nanoservices.main([]) == 1
    assert capsys.readouterr().err == (
        "nanoservices: error: service 'spo2': service.json: port is required (the image exposes it)\n")
