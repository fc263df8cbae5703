# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_service_image: what the one Dockerfile is fed from each service.json, how a service.json that breaks the
schema is refused, where libraries come from, and what the build inputs digest covers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ansible_collections.nanoedge.core.plugins.plugin_utils import _service_image
from ansible_collections.nanoedge.core.plugins.plugin_utils._service_description import (
    description_label,
    normalize_description,
)
from ansible_collections.nanoedge.core.plugins.plugin_utils._service_image import BuildError

ROOT = Path(__file__).resolve().parents[4]
NANOSERVICES = ROOT / "nanoservices"
EXAMPLE = ROOT / "docs" / "examples" / "my-service"
WHEEL = Path("/wheels/aiocoap-0.4.17-py3-none-any.whl")


@pytest.fixture()
def spo2():
    return json.loads((NANOSERVICES / "spo2" / "service.json").read_text())


@pytest.fixture()
def resp(tmp_path) -> Path:
    """The user guide's example in a folder of its own: my-service/resp/{service.json,resp.py}."""
    folder = tmp_path / "my-service"
    shutil.copytree(EXAMPLE, folder)
    return folder / "resp" / "service.json"


def rewrite(path: Path, **changes) -> Path:
    description = json.loads(path.read_text())
    description.update(changes)
    path.write_text(json.dumps(description))
    return path


def test_the_collection_ships_the_dockerfile_and_the_library():
    assert _service_image.DOCKERFILE == NANOSERVICES / "Dockerfile"
    assert (_service_image.NANOSERVICES / "common" / "nanoedge_ns" / "service.py").is_file()


def test_build_args_come_from_service_json(spo2):
    assert _service_image.build_args(spo2, "nanoedge/base:bookworm", WHEEL) == {
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
    assert json.loads(_service_image.build_args(spo2, "b", WHEEL)["SERVICE_DESCRIPTION"]) == normalize_description(spo2)


def test_every_dockerfile_argument_is_passed(spo2):
    dockerfile = (NANOSERVICES / "Dockerfile").read_text()
    declared = {line.split()[1].split("=")[0] for line in dockerfile.splitlines() if line.startswith("ARG ")}
    assert set(_service_image.build_args(spo2, "b", WHEEL)) == declared


def test_the_labels_compared_are_those_the_dockerfile_sets(spo2):
    arguments = _service_image.build_args(spo2, "b", WHEEL)
    assert _service_image.nanoedge_labels(arguments, "0123456789abcdef") == {
        "io.nanoedge.service": "spo2",
        "io.nanoedge.requirements": arguments["REQUIREMENTS"],
        "io.nanoedge.description": arguments["SERVICE_DESCRIPTION"],
        "io.nanoedge.build.inputs": "0123456789abcdef",
    }
    dockerfile = (NANOSERVICES / "Dockerfile").read_text()
    for label, argument in (("io.nanoedge.service", "SERVICE"), ("io.nanoedge.requirements", "REQUIREMENTS"),
                            ("io.nanoedge.description", "SERVICE_DESCRIPTION")):
        assert '%s="${%s}"' % (label, argument) in dockerfile


@pytest.mark.parametrize("requirements, message", [
    ({"gpu": 1}, "service 'spo2': service.json: requirements: unknown requirement key(s) 'gpu' (known: "
                 "capabilities, cpu, memory_mb, storage_mb, power, network, min_battery_percent)"),
    ({"memory_mb": -5}, "service 'spo2': service.json: requirements: memory_mb=-5: must be >= 0"),
    ([], "service 'spo2': service.json: requirements: requirements must be a JSON object, got list"),
])
def test_invalid_requirements_name_the_service_and_key(spo2, requirements, message):
    spo2["requirements"] = requirements
    with pytest.raises(BuildError) as error:
        _service_image.build_args(spo2, "b", WHEEL)
    assert str(error.value) == message


def test_missing_requirements(spo2):
    del spo2["requirements"]
    with pytest.raises(BuildError) as error:
        _service_image.check_description(spo2)
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
                    "requirements, program, libraries, python_requirements, port, provides, consumes, directory, "
                    "io, environment, critical, replicas, priority)"),
])
def test_invalid_image_facts(spo2, key, value, message):
    spo2[key] = value
    with pytest.raises(BuildError) as error:
        _service_image.build_args(spo2, "b", WHEEL)
    assert str(error.value) == message


def test_load_service_of_the_example(resp):
    service = _service_image.load_service(resp)
    assert (service.name, service.version) == ("resp", "1.0.0")
    assert service.source == resp.parent.parent and service.folder == resp.parent
    assert service.raw == json.loads(resp.read_text())
    assert service.description == normalize_description(service.raw)


@pytest.mark.parametrize("changes, message", [
    ({"requirements": {"memory_mb": -5}}, "service 'resp': service.json: requirements: memory_mb=-5: must be >= 0"),
    ({"name": "breath"}, "service 'breath': service.json: name must equal its folder 'resp'"),
    ({"program": "resp/missing.py"}, "service 'resp': service.json: program {source}/resp/missing.py is not a file"),
    ({"libraries": ["common/nowhere"]},
     "service 'resp': service.json: library common/nowhere is not a folder (looked in {source} and %s)" % NANOSERVICES),
])
def test_load_service_names_what_is_wrong(resp, changes, message):
    with pytest.raises(BuildError) as error:
        _service_image.load_service(rewrite(resp, **changes))
    assert str(error.value) == message.replace("{source}", str(resp.parent.parent))


@pytest.mark.parametrize("text, message", [
    ("{", "{path}: not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
    ("[]", "{path}: the description must be a JSON object, got list"),
])
def test_load_service_refuses_what_is_not_a_description(resp, text, message):
    resp.write_text(text)
    with pytest.raises(BuildError) as error:
        _service_image.load_service(resp)
    assert str(error.value) == message.replace("{path}", str(resp))


def test_load_service_of_a_missing_file(tmp_path):
    with pytest.raises(BuildError) as error:
        _service_image.load_service(tmp_path / "resp" / "service.json")
    assert str(error.value) == "%s: cannot read it: No such file or directory" % (tmp_path / "resp" / "service.json")


def test_a_library_of_the_source_comes_before_the_collections(resp):
    service = _service_image.load_service(resp)
    assert _service_image.library_folder(service, "common/nanoedge_ns") == NANOSERVICES / "common" / "nanoedge_ns"
    own = resp.parent.parent / "common" / "nanoedge_ns"
    own.mkdir(parents=True)
    assert _service_image.library_folder(service, "common/nanoedge_ns") == own


def test_context_holds_the_dockerfile_the_program_and_the_libraries(tmp_path, resp):
    wheel = tmp_path / WHEEL.name
    wheel.write_bytes(b"wheel")
    service = _service_image.load_service(resp)
    context = tmp_path / "context"
    digest = _service_image.assemble_context(service, wheel, context)
    assert (context / "Dockerfile").read_text() == (NANOSERVICES / "Dockerfile").read_text()
    assert (context / "resp" / "resp.py").read_bytes() == (resp.parent / "resp.py").read_bytes()
    assert (context / "wheels" / WHEEL.name).read_bytes() == b"wheel"
    assert (context / "common" / "nanoedge_ns" / "service.py").is_file()
    assert digest == _service_image.assemble_context(service, wheel, tmp_path / "again")
    (resp.parent / "resp.py").write_text("changed")
    assert digest != _service_image.assemble_context(service, wheel, tmp_path / "changed")


def test_a_service_without_libraries_gets_an_empty_common(tmp_path, resp):
    wheel = tmp_path / WHEEL.name
    wheel.write_bytes(b"wheel")
    service = _service_image.load_service(rewrite(resp, libraries=[]))
    _service_image.assemble_context(service, wheel, tmp_path / "context")
    assert list((tmp_path / "context" / "common").iterdir()) == []


BASE = dict(context="c" * 16, base_id="sha256:1", image="r/n/resp:1.0.0", arguments={"A": "1"}, platform="linux/amd64")


@pytest.mark.parametrize("changed", [
    dict(context="d" * 16), dict(base_id="sha256:2"), dict(image="r/n/resp:1.0.1"), dict(arguments={"A": "2"}),
    dict(platform="linux/arm64"),
])
def test_the_inputs_digest_covers_every_input(changed):
    digest = _service_image.inputs_digest(**BASE)
    assert len(digest) == 16 and digest == _service_image.inputs_digest(**BASE)
    assert _service_image.inputs_digest(**dict(BASE, **changed)) != digest


def test_find_wheel(tmp_path):
    assert _service_image.find_wheel(tmp_path) is None
    (tmp_path / "aiocoap-0.4.16-py3-none-any.whl").write_bytes(b"")
    assert _service_image.find_wheel(tmp_path) is None
    (tmp_path / WHEEL.name).write_bytes(b"")
    assert _service_image.find_wheel(tmp_path) == tmp_path / WHEEL.name
    assert _service_image.ensure_wheel(tmp_path) == tmp_path / WHEEL.name
