# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The service description schema: what service.json may say, normalised, and how it refuses the rest."""

from __future__ import annotations

import copy
import json
import pathlib
import re
import typing as t

import pytest

from ansible_collections.nanoedge.core.plugins.plugin_utils._service_description import (
    DESCRIPTION_KEYS,
    IMAGE_LIBRARIES,
    IMAGE_PROGRAM,
    DescriptionError,
    description_label,
    image_paths,
    minimal_description,
    normalize_description,
    parse_description_label,
)

ROOT = pathlib.Path(__file__).resolve().parents[4]
NONE = {"capabilities": [], "cpu": 0, "memory_mb": 0, "storage_mb": 0, "power": "", "network": "",
        "min_battery_percent": 0}
KNOWN = ("name, version, description, requirements, program, libraries, python_requirements, port, provides, "
         "consumes, directory, io, environment, critical, replicas, priority")


def bot() -> t.Dict[str, t.Any]:
    return json.loads((ROOT / "nanoservices" / "bot" / "service.json").read_text())


def test_a_full_description_is_normalised() -> None:
    assert normalize_description(bot()) == {
        "name": "bot",
        "version": "1.0.0",
        "description": "Body temperature from a DS18B20 1-Wire probe, over CoAP",
        "requirements": dict(NONE, capabilities=["bot"], cpu=0.25, memory_mb=32, storage_mb=10,
                             min_battery_percent=20),
        "program": "bot/bot.py",
        "libraries": ["common/nanoedge_ns"],
        "python_requirements": ["aiocoap==0.4.17"],
        "port": {"number": 5704, "protocol": "udp"},
        "provides": {"path": "/temperature"},
        "consumes": {},
        "directory": True,
        "io": [{"kind": "sensor", "host_path": "/sys/bus/w1/devices", "container_path": "/run/nanoedge/w1",
                "env": "NANOEDGE_W1_DEVICES", "mode": "ro"},
               {"kind": "state", "host_path": "/var/lib/nanoedge/bot", "container_path": "/var/lib/nanoedge/bot",
                "env": "NANOEDGE_STATE_DIR", "mode": "rw"}],
        "environment": {},
    }


def test_defaults_fill_every_key() -> None:
    assert normalize_description({"name": "x", "requirements": {}}) == {
        "name": "x", "version": "", "description": "", "requirements": NONE, "program": None, "libraries": [],
        "python_requirements": [], "port": None, "provides": None, "consumes": {}, "directory": False, "io": [],
        "environment": {}}
    assert tuple(normalize_description({"name": "x", "requirements": {}})) == DESCRIPTION_KEYS


def test_defaults_inside_entries() -> None:
    described = normalize_description({
        "name": "x", "requirements": None, "port": {"number": 80}, "consumes": {"y": {"env": "Y_URI"}},
        "io": [{"host_path": "/dev/a", "container_path": "/dev/a"}], "environment": {"N": 3, "F": 0.5}})
    assert described["port"] == {"number": 80, "protocol": "udp"}
    assert described["consumes"] == {"y": {"env": "Y_URI", "format": "uri"}}
    assert described["io"] == [{"kind": "sensor", "host_path": "/dev/a", "container_path": "/dev/a", "env": None,
                                "mode": "ro"}]
    assert described["environment"] == {"N": "3", "F": "0.5"}


@pytest.mark.parametrize("given, expected", [
    ({"directory": True}, True),
    ({"directory": False}, False),
    ({"directory": None}, False),
    # left out (a description written before the key existed): the service is given addresses
    ({}, False),
])
def test_the_directory_key(given: t.Dict[str, t.Any], expected: bool) -> None:
    assert normalize_description(dict({"name": "x", "requirements": {}}, **given))["directory"] is expected


@pytest.mark.parametrize("value, message", [
    ("yes", "directory must be true or false, got 'yes'"),
    ("true", "directory must be true or false, got 'true'"),
    (1, "directory must be true or false, got 1"),
    (0, "directory must be true or false, got 0"),
    ("coap://127.0.0.1:5690", "directory must be true or false, got 'coap://127.0.0.1:5690'"),
    ({"uri": "coap://127.0.0.1:5690"}, "directory must be true or false, got {'uri': 'coap://127.0.0.1:5690'}"),
    ([True], "directory must be true or false, got [True]"),
])
def test_a_directory_key_that_is_not_a_boolean_is_refused(value: t.Any, message: str) -> None:
    with pytest.raises(DescriptionError) as error:
        normalize_description(dict(bot(), directory=value))
    assert str(error.value) == message


def test_placement_hints_only_when_given() -> None:
    described = normalize_description({"name": "x", "requirements": {}, "critical": True, "replicas": 2,
                                       "priority": 1.5, "provides": None})
    assert (described["critical"], described["replicas"], described["priority"]) == (True, 2, 1.5)
    assert "critical" not in normalize_description({"name": "x", "requirements": {}, "critical": None})


def test_normalising_twice_changes_nothing() -> None:
    once = normalize_description(bot())
    assert normalize_description(copy.deepcopy(once)) == once


@pytest.mark.parametrize("change, message", [
    ({"gpu": 1, "cmd": "x"}, "unknown key(s) 'cmd', 'gpu' (known: %s)" % KNOWN),
    ({"name": "Bad Name"}, "name must be a service name (letters, digits, '.', '_', '-'), got 'Bad Name'"),
    ({"name": None}, "name must be a service name (letters, digits, '.', '_', '-'), got None"),
    ({"name": "spo2\n"}, "name must be a service name (letters, digits, '.', '_', '-'), got 'spo2\\n'"),
    ({"version": 1}, "version must be a string, got 1"),
    ({"requirements": {"memory_mb": -5}}, "requirements: memory_mb=-5: must be >= 0"),
    ({"requirements": {"gpu": 1}}, "requirements: unknown requirement key(s) 'gpu' (known: capabilities, cpu, "
                                   "memory_mb, storage_mb, power, network, min_battery_percent)"),
    ({"program": "../../etc/passwd"}, "program must be a relative path without '..', got '../../etc/passwd'"),
    ({"program": "/usr/bin/x"}, "program must be a relative path without '..', got '/usr/bin/x'"),
    ({"libraries": ["common/a", "other/a"]},
     "libraries must have distinct folder names, got ['common/a', 'other/a']"),
    ({"libraries": ["../lib"]}, "libraries must be a list of relative folders without '..', got ['../lib']"),
    ({"libraries": "common/nanoedge_ns"},
     "libraries must be a list of relative folders without '..', got 'common/nanoedge_ns'"),
    ({"python_requirements": ["aiocoap"]}, "python_requirements must be pinned (name==version), got ['aiocoap']"),
    ({"python_requirements": ["a==1*"]}, "python_requirements must be pinned (name==version), got ['a==1*']"),
    ({"python_requirements": ["a==1\n"]}, "python_requirements must be pinned (name==version), got ['a==1\\n']"),
    ({"port": {"number": 70000}}, "port must be {number: 1-65535, protocol: udp|tcp}, got {'number': 70000}"),
    ({"port": {"number": True}}, "port must be {number: 1-65535, protocol: udp|tcp}, got {'number': True}"),
    ({"port": {"number": 1, "protocol": "sctp"}},
     "port must be {number: 1-65535, protocol: udp|tcp}, got {'number': 1, 'protocol': 'sctp'}"),
    ({"provides": {"path": "temperature"}}, "provides must be {path: /...}, got {'path': 'temperature'}"),
    ({"consumes": []}, "consumes must be an object of service name to {env, format}"),
    ({"consumes": {"spo2": {"env": "1BAD"}}}, "consumes 'spo2': env must be an environment variable name"),
    ({"consumes": {"spo2": {"env": "A\n"}}}, "consumes 'spo2': env must be an environment variable name"),
    ({"consumes": {"spo2\n": {"env": "A"}}}, "consumes: 'spo2\\n' is not a service name"),
    ({"consumes": {"spo2": {"env": "A", "format": "csv"}}}, "consumes 'spo2': format must be uri or name=uri, got 'csv'"),
    ({"consumes": {"bad name": {"env": "A"}}}, "consumes: 'bad name' is not a service name"),
    ({"io": {}}, "io must be a list"),
    ({"io": ["x"]}, "io[0] must be an object"),
    ({"io": [{"host_path": "dev/x", "container_path": "/x"}]},
     "io[0].host_path must be an absolute path without '..', got 'dev/x'"),
    ({"io": [{"host_path": "/x", "container_path": "/a/../b"}]},
     "io[0].container_path must be an absolute path without '..', got '/a/../b'"),
    ({"io": [{"host_path": "/x", "container_path": "/x", "mode": "wo"}]}, "io[0].mode must be ro or rw, got 'wo'"),
    ({"io": [{"host_path": "/x", "container_path": "/x", "kind": "probe"}]},
     "io[0].kind must be sensor, actuator or state, got 'probe'"),
    ({"io": [{"host_path": "/var/lib/nanoedge/x", "container_path": "/var/lib/nanoedge/x", "kind": "state"}]},
     "io[0]: a state folder is written: its mode must be rw, got 'ro'"),
    ({"io": [{"host_path": "/x", "container_path": "/x", "env": "a-b"}]},
     "io[0].env must be an environment variable name or null, got 'a-b'"),
    ({"io": [{"host_path": "/x", "container_path": "/x", "device": True}]}, "io[0]: unknown key(s) 'device'"),
    ({"environment": {"A": True}}, "environment must be an object of variable name to string or number"),
    ({"environment": {"A-B": "x"}}, "environment must be an object of variable name to string or number"),
    ({"environment": {"A\n": "x"}}, "environment must be an object of variable name to string or number"),
    ({"critical": "yes"}, "critical must be true or false, got 'yes'"),
    ({"replicas": 0}, "replicas must be an integer >= 1, got 0"),
    ({"priority": "high"}, "priority must be a number, got 'high'"),
])
def test_errors_name_the_key(change: t.Dict[str, t.Any], message: str) -> None:
    raw = dict(bot(), **change)
    with pytest.raises(DescriptionError) as error:
        normalize_description(raw)
    assert str(error.value) == message


@pytest.mark.parametrize("raw, message", [
    ([], "the description must be a JSON object, got list"),
    ({"name": "x"}, "requirements is missing ({} for none)"),
])
def test_shape_errors(raw: t.Any, message: str) -> None:
    with pytest.raises(DescriptionError) as error:
        normalize_description(raw)
    assert str(error.value) == message


def test_the_label_round_trips() -> None:
    label = description_label(bot())
    assert label == json.dumps(normalize_description(bot()), sort_keys=True, separators=(",", ":"))
    assert parse_description_label(label, "label io.nanoedge.description") == normalize_description(bot())


@pytest.mark.parametrize("text, message", [
    ("{name: x}", "label L is not valid JSON (Expecting property name enclosed in double quotes: line 1 column 2 "
                  "(char 1))"),
    ('{"name": "x", "requirements": {"cpu": -1}}', "label L: requirements: cpu=-1: must be >= 0"),
])
def test_label_errors_name_the_label(text: str, message: str) -> None:
    with pytest.raises(DescriptionError) as error:
        parse_description_label(text, "label L")
    assert str(error.value) == message


def test_minimal_description_of_an_image_without_one() -> None:
    assert minimal_description("spo2", {"cpu": 1}, version="1.0", port={"number": 5701}) == dict(
        normalize_description({"name": "spo2", "requirements": {}}), version="1.0", requirements=dict(NONE, cpu=1),
        port={"number": 5701, "protocol": "udp"})


def test_image_paths() -> None:
    assert image_paths(normalize_description(bot())) == ["/opt/nanoedge/service", "/opt/nanoedge/lib/nanoedge_ns"]
    assert image_paths({"libraries": []}) == ["/opt/nanoedge/service"]


def test_the_dockerfile_puts_program_and_libraries_where_the_schema_says() -> None:
    dockerfile = (ROOT / "nanoservices" / "Dockerfile").read_text()
    assert re.search(r"^COPY \$\{PROGRAM\} %s$" % re.escape(IMAGE_PROGRAM), dockerfile, re.M)
    assert re.search(r"^COPY common/ %s/$" % re.escape(IMAGE_LIBRARIES), dockerfile, re.M)
    assert re.search(r'^ENTRYPOINT \["python3", "%s"\]$' % re.escape(IMAGE_PROGRAM), dockerfile, re.M)


@pytest.mark.parametrize("path", sorted((ROOT / "nanoservices").glob("*/service.json")), ids=lambda p: p.parent.name)
def test_every_example_service_is_valid(path: pathlib.Path) -> None:
    assert normalize_description(json.loads(path.read_text()))["name"] == path.parent.name


@pytest.mark.parametrize("path", sorted((ROOT / "nanoservices").glob("*/service.json"))
                         + [ROOT / "docs" / "examples" / "my-service" / "resp" / "service.json"],
                         ids=lambda p: p.parent.name)
def test_the_example_services_say_they_use_the_directory(path: pathlib.Path) -> None:
    # each registers itself through nanoedge_ns' service.run; alert and display find their producers there
    assert json.loads(path.read_text())["directory"] is True
