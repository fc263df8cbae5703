# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import json

import pytest

from ansible.errors import AnsibleLookupError
from ansible.plugins.loader import lookup_loader

from ansible_collections.nanoedge.core.plugins.plugin_utils._service_description import normalize_description
from ansible_collections.nanoedge.core.plugins.plugin_utils._service_profiles import DiscoveryError
from ansible_collections.nanoedge.core.tests.unit.plugins.plugin_utils.oci_fake import FakeRegistry

LABEL = "io.nanoedge.requirements"
NONE = {"capabilities": [], "cpu": 0, "memory_mb": 0, "storage_mb": 0, "power": "", "network": "",
        "min_battery_percent": 0}
OC = {"name": "oc", "version": "1.0.0", "requirements": {"capabilities": ["oc"], "power": "ac"},
      "port": {"number": 5706, "protocol": "udp"}, "provides": {"path": "/valve"},
      "io": [{"kind": "actuator", "host_path": "/run/nanoedge/oc", "container_path": "/run/nanoedge/oc",
              "mode": "rw"}], "critical": True}


@pytest.fixture
def fake():
    registry = FakeRegistry()
    registry.add_image("nanoedge/spo2", "latest", {LABEL: json.dumps({"capabilities": ["pom"], "cpu": 1})})
    registry.add_index("nanoedge/hrv", "latest", [(("linux", "arm", "v7"), {LABEL: '{"memory_mb": 32}'}),
                                                  (("linux", "arm64", None), {LABEL: '{"memory_mb": 32}'})])
    registry.add_image("nanoedge/broken", "latest", {LABEL: '{"gpu": 1}'})
    registry.add_image("other/x", "latest", {LABEL: "{}"})
    registry.add_image("described/oc", "latest", {"io.nanoedge.description": json.dumps(OC)})
    yield registry
    registry.close()


@pytest.fixture
def lookup():
    return lookup_loader.get("nanoedge.core.service_profiles")


def test_returns_one_list_sorted_by_name(fake, lookup):
    result = lookup.run([], {}, registry=fake.url, repositories=["nanoedge/spo2", "nanoedge/hrv"])
    assert len(result) == 1
    services = result[0]
    assert [s["name"] for s in services] == ["hrv", "spo2"]
    assert services[0]["platforms"] == ["linux/arm/v7", "linux/arm64"]
    assert services[0]["requires"] == dict(NONE, memory_mb=32)
    assert services[1] == {"name": "spo2", "image": "%s/nanoedge/spo2:latest" % fake.host,
                           "digest": services[1]["digest"], "requires": dict(NONE, capabilities=["pom"], cpu=1),
                           "platforms": ["linux/amd64"], "registry": fake.url,
                           "description": normalize_description({"name": "spo2", "requirements": {
                               "capabilities": ["pom"], "cpu": 1}})}
    assert services[1]["digest"].startswith("sha256:")


def test_returns_the_whole_description(fake, lookup):
    (oc,) = lookup.run(["described/oc"], {}, registry=fake.url)[0]
    assert oc["description"] == normalize_description(OC)
    assert oc["requires"] == dict(NONE, capabilities=["oc"], power="ac")
    assert oc["critical"] is True
    assert [oc["name"], oc["registry"]] == ["oc", fake.url]


def test_terms_add_repositories(fake, lookup):
    services = lookup.run(["nanoedge/spo2"], {}, registry=fake.url, repositories=["other/*"])[0]
    assert [s["image"] for s in services] == ["%s/nanoedge/spo2:latest" % fake.host, "%s/other/x:latest" % fake.host]


def test_errors_name_the_plugin_and_the_image(fake, lookup):
    with pytest.raises(AnsibleLookupError) as exc:
        lookup.run([], {}, registry=fake.url, repositories=["nanoedge/*"])
    assert str(exc.value) == (
        "nanoedge.core.service_profiles: image %s/nanoedge/broken:latest: label io.nanoedge.requirements: "
        "unknown requirement key(s) 'gpu' (known: capabilities, cpu, memory_mb, storage_mb, power, network, "
        "min_battery_percent)" % fake.host)
    assert isinstance(exc.value.__cause__, DiscoveryError)


def test_on_error_warn(fake, lookup, monkeypatch):
    from ansible_collections.nanoedge.core.plugins.lookup import service_profiles

    warnings = []
    monkeypatch.setattr(service_profiles.display, "warning", warnings.append)
    services = lookup.run([], {}, registry=fake.url, repositories=["nanoedge/*"], on_error="warn")[0]
    assert [s["name"] for s in services] == ["hrv", "spo2"]
    assert warnings == [
        "nanoedge.core.service_profiles: image %s/nanoedge/broken:latest: label io.nanoedge.requirements: "
        "unknown requirement key(s) 'gpu' (known: capabilities, cpu, memory_mb, storage_mb, power, network, "
        "min_battery_percent) (left out)" % fake.host]


def test_options_are_typed_and_checked(fake, lookup):
    services = lookup.run([], {}, registry=fake.url, repositories=["nanoedge/spo2"], timeout="5", concurrency="2")[0]
    assert len(services) == 1
    with pytest.raises(Exception) as exc:
        lookup.run([], {}, registry=fake.url, on_error="explode")
    assert "on_error" in str(exc.value) and "explode" in str(exc.value)


def test_credentials_from_environment(lookup, monkeypatch):
    fake = FakeRegistry(auth="basic", users={"edge": "pa55"})
    try:
        fake.add_image("n/svc", "latest", {LABEL: "{}"})
        with pytest.raises(AnsibleLookupError) as exc:
            lookup.run(["n/svc"], {}, registry=fake.url, username="edge", password="wrong")
        assert "rejected the credentials of user 'edge'" in str(exc.value)
        assert "wrong" not in str(exc.value)
        monkeypatch.setenv("NANOEDGE_REGISTRY_USERNAME", "edge")
        monkeypatch.setenv("NANOEDGE_REGISTRY_PASSWORD", "pa55")
        assert [s["name"] for s in lookup.run(["n/svc"], {}, registry=fake.url)[0]] == ["svc"]
    finally:
        fake.close()


def test_results_are_not_trusted_as_templates(fake, lookup):
    from ansible._internal._datatag._tags import TrustedAsTemplate

    services = lookup.run([], {}, registry=fake.url, repositories=["nanoedge/spo2"])[0]
    strings = ([services[0]["name"], services[0]["image"], services[0]["digest"], services[0]["description"]["name"]]
               + services[0]["requires"]["capabilities"])
    assert strings and not any(TrustedAsTemplate.is_tagged_on(s) for s in strings)
