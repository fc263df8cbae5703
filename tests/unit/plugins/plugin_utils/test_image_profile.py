# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One image's metadata -> one service profile: requirements, name, and the service description."""

from __future__ import annotations

import json

import pytest

from ansible_collections.nanoedge.core.plugins.module_utils._requirements import RequirementError
from ansible_collections.nanoedge.core.plugins.plugin_utils._image_profile import (
    PROFILE_ERRORS,
    parse_requirements_text,
    profile_from_image,
    requirements_from_description,
)
from ansible_collections.nanoedge.core.plugins.plugin_utils._oci_cache import (
    ImageContent,
    ImageMetadata,
    PlatformImage,
)
from ansible_collections.nanoedge.core.plugins.plugin_utils._service_profiles import DiscoveryOptions
from ansible_collections.nanoedge.core.tests.unit.plugins.plugin_utils.profile_data import (
    LABEL,
    NONE,
    SPO2,
    SPO2_NORMALIZED,
)

# what the description of an image without one holds besides its name and requirements
BARE = {"version": "", "description": "", "program": None, "libraries": [], "python_requirements": [], "port": None,
        "provides": None, "consumes": {}, "directory": False, "io": [], "environment": {}}
DESCRIPTION = "io.nanoedge.description"
DESCRIBED = {
    "name": "spo2", "version": "1.0.0", "description": "SpO2 over CoAP", "requirements": SPO2,
    "program": "spo2/spo2.py", "libraries": ["common/nanoedge_ns"], "python_requirements": ["aiocoap==0.4.17"],
    "port": {"number": 5701, "protocol": "udp"}, "provides": {"path": "/spo2"}, "consumes": {},
    "io": [{"kind": "sensor", "host_path": "/dev/ttyUSB0", "container_path": "/dev/ttyUSB0",
            "env": "NANOEDGE_POM_DEVICE", "mode": "ro"}], "environment": {}}


def meta(labels_by_platform, repository="nanoedge/spo2", annotations=None, platform_annotations=None, exposed=()):
    platforms = tuple(
        PlatformImage(platform=name, manifest_digest="sha256:" + "0" * 64, labels=labels,
                      annotations=(platform_annotations or {}).get(name, {}), exposed_ports=tuple(exposed))
        for name, labels in labels_by_platform.items())
    return ImageMetadata("r:5000", repository, "1.0", "sha256:" + "a" * 64,
                         ImageContent("application/vnd.oci.image.index.v1+json", annotations or {}, platforms))


def opts(**kwargs):
    return DiscoveryOptions(registry="http://r:5000", **kwargs)


def test_profile_shape():
    image = meta({"linux/arm64": {LABEL: json.dumps(SPO2)}, "linux/arm/v7": {LABEL: json.dumps(SPO2)}})
    assert profile_from_image(image, opts()) == {
        "name": "spo2", "image": "r:5000/nanoedge/spo2:1.0", "digest": "sha256:" + "a" * 64,
        "requires": SPO2_NORMALIZED, "platforms": ["linux/arm/v7", "linux/arm64"], "registry": "http://r:5000",
        "description": dict(BARE, name="spo2", requirements=SPO2_NORMALIZED)}


@pytest.mark.parametrize("labels, options, name", [
    ({LABEL: "{}"}, {}, "spo2"),
    ({LABEL: "{}", "io.nanoedge.service": "pulse-ox"}, {}, "pulse-ox"),
    ({LABEL: "{}", "io.nanoedge.service": ""}, {}, "spo2"),
    ({LABEL: "{}", "io.nanoedge.service": "pulse-ox"}, {"service_label": ""}, "spo2"),
    ({LABEL: "{}", "svc": "x1"}, {"service_label": "svc"}, "x1"),
])
def test_service_name(labels, options, name):
    assert profile_from_image(meta({"linux/amd64": labels}), opts(**options))["name"] == name


def test_formatting_differences_between_platforms_are_not_a_mismatch():
    image = meta({"linux/arm64": {LABEL: '{"cpu": 1, "memory_mb": 64}'},
                  "linux/arm/v7": {LABEL: '{"memory_mb":64,"cpu":1.0}'}})
    assert profile_from_image(image, opts())["requires"] == dict(NONE, cpu=1, memory_mb=64)


@pytest.mark.parametrize("labels_by_platform, message", [
    ({"linux/amd64": {}}, "label io.nanoedge.requirements is missing"),
    ({"linux/amd64": {LABEL: "{cpu: 1}"}},
     "label io.nanoedge.requirements is not valid JSON (Expecting property name enclosed in double quotes: "
     "line 1 column 2 (char 1))"),
    ({"linux/amd64": {LABEL: "[1, 2]"}}, "label io.nanoedge.requirements must be a JSON object, got an array"),
    ({"linux/amd64": {LABEL: '"pom"'}}, "label io.nanoedge.requirements must be a JSON object, got a string"),
    ({"linux/amd64": {LABEL: '{"gpu": 1}'}},
     "label io.nanoedge.requirements: unknown requirement key(s) 'gpu' (known: capabilities, cpu, memory_mb, "
     "storage_mb, power, network, min_battery_percent)"),
    ({"linux/amd64": {LABEL: '{"memory_mb": -5}'}}, "label io.nanoedge.requirements: memory_mb=-5: must be >= 0"),
    ({"linux/arm64": {LABEL: '{"cpu": 1}'}, "linux/arm/v7": {LABEL: '{"cpu": 2}'}},
     'label io.nanoedge.requirements differs between platforms (linux/arm/v7: {"cpu": 2}; linux/arm64: {"cpu": 1})'),
    ({"linux/arm64": {LABEL: '{"cpu": 1}'}, "linux/arm/v7": {}},
     'label io.nanoedge.requirements differs between platforms (linux/arm/v7: (missing); linux/arm64: {"cpu": 1})'),
    ({"linux/arm64": {LABEL: "{}", "io.nanoedge.service": "a"}, "linux/arm/v7": {LABEL: "{}", "io.nanoedge.service": "b"}},
     "label io.nanoedge.service differs between platforms (linux/arm/v7: b; linux/arm64: a)"),
    ({"linux/amd64": {LABEL: "{}", "io.nanoedge.service": "no spaces"}},
     "label io.nanoedge.service='no spaces' is not a valid service name (letters, digits, '.', '_', '-')"),
])
def test_profile_errors(labels_by_platform, message):
    with pytest.raises(RequirementError) as exc:
        profile_from_image(meta(labels_by_platform), opts())
    assert str(exc.value) == message


@pytest.mark.parametrize("annotations, platform_annotations, labels, expected", [
    ({"org.opencontainers.image.description": json.dumps(SPO2)}, {}, {}, SPO2_NORMALIZED),
    ({}, {"linux/amd64": {"org.opencontainers.image.description": '{"cpu": 2}'}}, {}, dict(NONE, cpu=2)),
    ({}, {}, {"org.opencontainers.image.description": 'SpO2 service. Needs: {"cpu": 3} on any node.'},
     dict(NONE, cpu=3)),
])
def test_annotation_source(annotations, platform_annotations, labels, expected):
    image = meta({"linux/amd64": labels}, annotations=annotations, platform_annotations=platform_annotations)
    assert profile_from_image(image, opts(source="annotation"))["requires"] == expected


def test_annotation_source_missing():
    with pytest.raises(RequirementError) as exc:
        profile_from_image(meta({"linux/amd64": {LABEL: "{}"}}), opts(source="annotation"))
    assert str(exc.value) == "annotation org.opencontainers.image.description is missing"


@pytest.mark.parametrize("text, expected", [
    ('{"cpu": 1}', dict(NONE, cpu=1)),
    ('# SpO2\n\nRequirements:\n\n```json\n{"capabilities": ["pom"], "cpu": 0}\n```\n', dict(NONE, capabilities=["pom"])),
    ('Uses {braces} in prose, then {"memory_mb": 5}', dict(NONE, memory_mb=5)),
])
def test_requirements_from_description(text, expected):
    assert requirements_from_description(text, "d") == expected


@pytest.mark.parametrize("text, message", [
    ("", "d is empty"),
    ("plain prose", "d is not valid JSON (Expecting value: line 1 column 1 (char 0))"),
    ("prose {not json", "d contains no JSON object"),
    ('{"cpu": -1}', "d: cpu=-1: must be >= 0"),
    ('About: {"gpu": 1}', "d: unknown requirement key(s) 'gpu' (known: capabilities, cpu, memory_mb, storage_mb, "
                          "power, network, min_battery_percent)"),
])
def test_requirements_from_description_errors(text, message):
    with pytest.raises(RequirementError) as exc:
        requirements_from_description(text, "d")
    assert str(exc.value) == message


def test_parse_requirements_text_null_is_not_an_object():
    with pytest.raises(RequirementError) as exc:
        parse_requirements_text("null", "label x")
    assert str(exc.value) == "label x must be a JSON object, got null"


# --------------------------------------------------------------------------- the service description


def labelled(**labels):
    """The labels tools/nanoservices.py writes: service, requirements and the whole description."""
    base = {"io.nanoedge.service": "spo2", LABEL: json.dumps(SPO2), DESCRIPTION: json.dumps(DESCRIBED)}
    base.update(labels)
    return {k: v for k, v in base.items() if v is not None}


def test_an_image_with_a_description_label():
    profile = profile_from_image(meta({"linux/amd64": labelled()}), opts())
    # labelled before the directory key existed: it does not use the directory (addresses)
    assert profile["description"] == dict(DESCRIBED, requirements=SPO2_NORMALIZED, directory=False)
    assert profile["requires"] == SPO2_NORMALIZED and profile["name"] == "spo2"


def test_the_directory_key_of_a_description_label_reaches_the_profile():
    image = meta({"linux/amd64": labelled(**{DESCRIPTION: json.dumps(dict(DESCRIBED, directory=True))})})
    assert profile_from_image(image, opts())["description"]["directory"] is True


def test_the_description_label_alone_is_enough():
    image = meta({"linux/amd64": labelled(**{LABEL: None, "io.nanoedge.service": None})}, repository="x/other")
    profile = profile_from_image(image, opts())
    assert (profile["name"], profile["requires"]) == ("spo2", SPO2_NORMALIZED)


def test_placement_hints_of_the_description_reach_the_profile():
    described = dict(DESCRIBED, critical=True, replicas=2)
    profile = profile_from_image(meta({"linux/amd64": labelled(**{DESCRIPTION: json.dumps(described)})}), opts())
    assert (profile["critical"], profile["replicas"]) == (True, 2)
    assert "priority" not in profile


def test_without_service_label_the_repository_names_the_service_and_its_description():
    profile = profile_from_image(meta({"linux/amd64": labelled()}, repository="lab/pulse"), opts(service_label=""))
    assert profile["name"] == profile["description"]["name"] == "pulse"


def test_an_empty_description_label_is_no_description():
    image = meta({"linux/amd64": labelled(**{DESCRIPTION: ""})})
    assert profile_from_image(image, opts())["description"] == dict(BARE, name="spo2", requirements=SPO2_NORMALIZED)


def test_without_description_label_the_label_is_not_read():
    image = meta({"linux/amd64": labelled(**{DESCRIPTION: "not even json"})})
    assert profile_from_image(image, opts(description_label=""))["description"]["program"] is None


@pytest.mark.parametrize("labels, message", [
    ({LABEL: '{"cpu": 2}'}, 'label io.nanoedge.requirements and label io.nanoedge.description disagree on the '
                            'requirements ({"capabilities": [], "cpu": 2, "memory_mb": 0, "min_battery_percent": 0, '
                            '"network": "", "power": "", "storage_mb": 0}; {"capabilities": ["pom"], "cpu": 1, '
                            '"memory_mb": 64, "min_battery_percent": 0, "network": "wifi", "power": "ac", '
                            '"storage_mb": 20})'),
    ({"io.nanoedge.service": "pulse"},
     "label io.nanoedge.service='pulse' and label io.nanoedge.description (name 'spo2') disagree on the service name"),
    ({DESCRIPTION: "{"}, "label io.nanoedge.description is not valid JSON (Expecting property name enclosed in "
                         "double quotes: line 1 column 2 (char 1))"),
    ({DESCRIPTION: json.dumps(dict(DESCRIBED, port={"number": 0}))},
     "label io.nanoedge.description: port must be {number: 1-65535, protocol: udp|tcp}, got {'number': 0}"),
    ({DESCRIPTION: json.dumps(dict(DESCRIBED, command="rm"))},
     "label io.nanoedge.description: unknown key(s) 'command' (known: name, version, description, requirements, "
     "program, libraries, python_requirements, port, provides, consumes, directory, io, environment, critical, "
     "replicas, priority)"),
])
def test_description_errors(labels, message):
    with pytest.raises(PROFILE_ERRORS) as exc:
        profile_from_image(meta({"linux/amd64": labelled(**labels)}), opts())
    assert str(exc.value) == message


def test_the_description_must_be_the_same_on_every_platform():
    other = json.dumps(dict(DESCRIBED, version="1.0.1"))
    image = meta({"linux/arm64": labelled(), "linux/amd64": labelled(**{DESCRIPTION: other})})
    with pytest.raises(PROFILE_ERRORS) as exc:
        profile_from_image(image, opts())
    assert str(exc.value).startswith("label io.nanoedge.description differs between platforms (linux/amd64: ")


@pytest.mark.parametrize("labels, exposed, expected", [
    # an image labelled before descriptions were: what its labels and config say, and defaults
    ({"org.opencontainers.image.version": "1.0.0", "org.opencontainers.image.description": "SpO2 over CoAP"},
     ["5701/udp"], {"version": "1.0.0", "description": "SpO2 over CoAP", "port": {"number": 5701, "protocol": "udp"}}),
    ({}, ["8080"], {"port": {"number": 8080, "protocol": "tcp"}}),
    ({}, ["5701/udp", "5702/udp"], {}),
    ({}, ["53/sctp"], {}),
    ({}, [], {}),
])
def test_an_image_without_a_description(labels, exposed, expected):
    image = meta({"linux/amd64": dict(labels, **{LABEL: json.dumps(SPO2), "io.nanoedge.service": "spo2"})},
                 exposed=exposed)
    expected = dict(BARE, name="spo2", requirements=SPO2_NORMALIZED, **expected)
    assert profile_from_image(image, opts())["description"] == expected
