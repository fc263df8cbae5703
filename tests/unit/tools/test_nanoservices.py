# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""tools/nanoservices.py: what it feeds the one Dockerfile from each
service.json, and how it refuses a service.json that breaks the service description schema."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from ansible_collections.nanoedge.core.plugins.plugin_utils._service_description import (
    description_label,
    normalize_description,
)
from ansible_collections.nanoedge.core.tools import nanoservices

ROOT = Path(__file__).resolve().parents[3]
WHEEL = Path("/wheels/aiocoap-0.4.17-py3-none-any.whl")


# tools/ is a folder of scripts, importable as part of the collection like any other module
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
        # the whole description, validated and normalised, as the label the deploy role reads
        "SERVICE_DESCRIPTION": description_label(spo2),
        "AIOCOAP_WHEEL": "aiocoap-0.4.17-py3-none-any.whl",
    }
    assert json.loads(nanoservices.build_args(spo2, "b", WHEEL)["SERVICE_DESCRIPTION"]) == normalize_description(spo2)


def test_every_dockerfile_argument_is_passed(spo2):
    dockerfile = (ROOT / "nanoservices" / "Dockerfile").read_text()
    declared = {line.split()[1].split("=")[0] for line in dockerfile.splitlines() if line.startswith("ARG ")}
    assert set(nanoservices.build_args(spo2, "b", WHEEL)) == declared


def test_every_service_is_loaded_with_its_requirements():
    specs = nanoservices.services()
    assert [s["name"] for s in specs] == ["alert", "bot", "display", "hr", "hrv", "oc", "spo2"]
    assert all(nanoservices.check_description(s)["requirements"]["memory_mb"] > 0 for s in specs)


@pytest.mark.parametrize("requirements, message", [
    ({"gpu": 1}, "service 'spo2': service.json: requirements: unknown requirement key(s) 'gpu' (known: "
                 "capabilities, cpu, memory_mb, storage_mb, power, network, min_battery_percent)"),
    ({"memory_mb": -5}, "service 'spo2': service.json: requirements: memory_mb=-5: must be >= 0"),
    ([], "service 'spo2': service.json: requirements: requirements must be a JSON object, got list"),
])
def test_invalid_requirements_name_the_service_and_key(spo2, requirements, message):
    spo2["requirements"] = requirements
    with pytest.raises(nanoservices.BuildError) as error:
        nanoservices.build_args(spo2, "b", WHEEL)
    assert str(error.value) == message


def test_missing_requirements(spo2):
    del spo2["requirements"]
    with pytest.raises(nanoservices.BuildError) as error:
        nanoservices.check_description(spo2)
    assert str(error.value) == "service 'spo2': service.json: requirements is missing ({} for none)"


@pytest.mark.parametrize("key, value, message", [
    ("port", {"number": 0, "protocol": "udp"},
     "service 'spo2': service.json: port must be {number: 1-65535, protocol: udp|tcp}, got "
     "{'number': 0, 'protocol': 'udp'}"),
    ("port", None, "service 'spo2': service.json: port is required (the image exposes it)"),
    ("version", "", "service 'spo2': service.json: version is required (it tags the image)"),
    ("program", "common/nanoedge_ns/service.py",
     "service 'spo2': service.json: program must be a file in its folder (spo2/...), got "
     "'common/nanoedge_ns/service.py'"),
    ("program", "spo2/../hr/hr.py",
     "service 'spo2': service.json: program must be a relative path without '..', got 'spo2/../hr/hr.py'"),
    ("program", None, "service 'spo2': service.json: program must be a file in its folder (spo2/...), got None"),
    ("libraries", ["nanoedge_ns"], "service 'spo2': service.json: libraries must be folders of nanoservices/common "
                                   "(common/<folder>), got 'nanoedge_ns'"),
    ("io", [{"host_path": "dev", "container_path": "/dev"}],
     "service 'spo2': service.json: io[0].host_path must be an absolute path without '..', got 'dev'"),
    ("debug", True, "service 'spo2': service.json: unknown key(s) 'debug' (known: name, version, description, "
                    "requirements, program, libraries, python_requirements, port, provides, consumes, io, "
                    "environment, critical, replicas, priority)"),
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
    assert str(error.value) == "service 'spo2': service.json: requirements: cpu must be a number, got 'lots'"


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
