# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""tools/nanoservices.py: what it feeds the one Dockerfile from each
service.json, and how it refuses a service.json that breaks Contract 2."""

from __future__ import annotations

import copy
import importlib
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
WHEEL = Path("/wheels/aiocoap-0.4.17-py3-none-any.whl")


# tools/ is a folder of scripts, not a package
if str(ROOT / "tools") not in sys.path:
    sys.path.insert(0, str(ROOT / "tools"))
nanoservices = importlib.import_module("nanoservices")
assert Path(nanoservices.__file__) == ROOT / "tools" / "nanoservices.py", nanoservices


@pytest.fixture()
def spo2():
    return json.loads((ROOT / "nanoservices" / "spo2" / "service.json").read_text())


def test_build_args_come_from_service_json(spo2):
    assert nanoservices.build_args(spo2, "nanoedge/base:bookworm", WHEEL) == {
        "BASE_IMAGE": "nanoedge/base:bookworm",
        "SERVICE": "spo2",
        "PROGRAM": "spo2/spo2.py",
        "PORT": "5701/udp",
        "DESCRIPTION": "SpO2 and pulse rate from the BerryMed BM1000B pulse oximeter, over CoAP",
        "VERSION": "1.0.0",
        # the label's value as it has always read: author's key order, json.dumps spacing
        "REQUIREMENTS": '{"capabilities": ["pom"], "cpu": 0.5, "memory_mb": 64, "storage_mb": 20}',
        "AIOCOAP_WHEEL": "aiocoap-0.4.17-py3-none-any.whl",
    }


def test_every_dockerfile_argument_is_passed(spo2):
    dockerfile = (ROOT / "nanoservices" / "Dockerfile").read_text()
    declared = {line.split()[1].split("=")[0] for line in dockerfile.splitlines() if line.startswith("ARG ")}
    assert set(nanoservices.build_args(spo2, "b", WHEEL)) == declared


def test_every_service_is_loaded_with_its_requirements():
    specs = nanoservices.services()
    assert [s["name"] for s in specs] == ["alert", "bot", "display", "hr", "hrv", "oc", "spo2"]
    assert all(nanoservices.check_requirements(s)["memory_mb"] > 0 for s in specs)


@pytest.mark.parametrize("requirements, message", [
    ({"gpu": 1}, "service 'spo2': service.json key 'requirements': unknown requirement key(s) 'gpu' (known: "
                 "capabilities, cpu, memory_mb, storage_mb, power, network, min_battery_percent)"),
    ({"memory_mb": -5}, "service 'spo2': service.json key 'requirements': memory_mb=-5: must be >= 0"),
    ([], "service 'spo2': service.json key 'requirements': requirements must be a JSON object, got list"),
])
def test_invalid_requirements_name_the_service_and_key(spo2, requirements, message):
    spo2["requirements"] = requirements
    with pytest.raises(nanoservices.BuildError) as error:
        nanoservices.build_args(spo2, "b", WHEEL)
    assert str(error.value) == message


def test_missing_requirements(spo2):
    del spo2["requirements"]
    with pytest.raises(nanoservices.BuildError) as error:
        nanoservices.check_requirements(spo2)
    assert str(error.value) == "service 'spo2': service.json has no key 'requirements' (Contract 2; {} for none)"


@pytest.mark.parametrize("key, value, message", [
    ("port", {"number": 0, "protocol": "udp"},
     "service 'spo2': service.json key 'port' must be {number: 1-65535, protocol: udp|tcp}, got "
     "{'number': 0, 'protocol': 'udp'}"),
    ("port", None, "service 'spo2': service.json key 'port' must be {number: 1-65535, protocol: udp|tcp}, got None"),
    ("program", "common/nanoedge_ns/service.py",
     "service 'spo2': service.json key 'program' must be a file in its folder (spo2/...), got "
     "'common/nanoedge_ns/service.py'"),
    ("program", "spo2/../hr/hr.py",
     "service 'spo2': service.json key 'program' must be a file in its folder (spo2/...), got 'spo2/../hr/hr.py'"),
])
def test_invalid_image_facts(spo2, key, value, message):
    spo2[key] = value
    with pytest.raises(nanoservices.BuildError) as error:
        nanoservices.build_args(spo2, "b", WHEEL)
    assert str(error.value) == message


def test_services_refuses_a_bad_service_json(tmp_path, monkeypatch, spo2):
    bad = copy.deepcopy(spo2)
    bad["requirements"]["cpu"] = "lots"
    (tmp_path / "spo2").mkdir()
    (tmp_path / "spo2" / "service.json").write_text(json.dumps(bad))
    monkeypatch.setattr(nanoservices, "SERVICES_DIR", tmp_path)
    with pytest.raises(nanoservices.BuildError) as error:
        nanoservices.services()
    assert str(error.value) == "service 'spo2': service.json key 'requirements': cpu must be a number, got 'lots'"


def test_context_holds_the_dockerfile_and_the_program(tmp_path, spo2):
    wheel = tmp_path / WHEEL.name
    wheel.write_bytes(b"wheel")
    spo2["_dir"] = ROOT / "nanoservices" / "spo2"
    context = tmp_path / "context"
    digest = nanoservices.assemble_context(spo2, wheel, context)
    assert (context / "Dockerfile").read_text() == (ROOT / "nanoservices" / "Dockerfile").read_text()
    assert (context / spo2["program"]).is_file() and (context / "wheels" / WHEEL.name).is_file()
    assert (context / "common" / "nanoedge_ns" / "service.py").is_file()
    again = nanoservices.assemble_context(spo2, wheel, tmp_path / "again")
    assert digest == again
