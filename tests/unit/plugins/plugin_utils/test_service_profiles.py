# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import json

import pytest

from ansible_collections.nanoedge.core.plugins.plugin_utils._oci_cache import DigestCache
from ansible_collections.nanoedge.core.plugins.plugin_utils._service_description import normalize_description
from ansible_collections.nanoedge.core.plugins.plugin_utils._service_profiles import (
    DiscoveryError,
    DiscoveryOptions,
    discover,
)
from ansible_collections.nanoedge.core.tests.unit.plugins.plugin_utils.oci_fake import FakeRegistry
from ansible_collections.nanoedge.core.tests.unit.plugins.plugin_utils.profile_data import (
    LABEL,
    NONE,
    SPO2,
    SPO2_NORMALIZED,
)


def opts(**kwargs):
    return DiscoveryOptions(registry="http://r:5000", **kwargs)


@pytest.fixture
def fake():
    registry = FakeRegistry()
    yield registry
    registry.close()


@pytest.mark.parametrize("options, message", [
    ({"source": "file"}, "source='file': must be one of label, annotation, hub"),
    ({"on_error": "ignore"}, "on_error='ignore': must be one of fail, warn, skip"),
    ({"tag_policy": "newest"}, "tag_policy='newest': must be one of latest, fixed, semver"),
    ({"timeout": 0}, "timeout=0: must be > 0"),
    ({"concurrency": 0}, "concurrency=0: must be >= 1"),
    ({"password": "x"}, "password given without username"),
    ({"tag_policy": "fixed", "tag": "bad tag"}, "'bad tag' is not a valid tag"),
    ({"requirements_label": ""}, "requirements_label must not be empty"),
])
def test_option_errors(options, message):
    with pytest.raises(DiscoveryError) as exc:
        discover(opts(**options))
    assert str(exc.value) == message


def _populate(fake):
    fake.add_image("n/spo2", "latest", {LABEL: json.dumps(SPO2)})
    fake.add_image("n/hrv", "latest", {LABEL: '{"capabilities": ["pom"]}', "io.nanoedge.service": "heart-rate-var"})
    fake.add_image("n/nolabel", "latest", {})
    fake.add_image("n/badjson", "latest", {LABEL: "{oops"})


def test_discover_sorted_and_on_error(fake):
    _populate(fake)
    options = DiscoveryOptions(registry=fake.url, repositories=["n/*"], on_error="fail")
    with pytest.raises(DiscoveryError) as exc:
        discover(options)
    assert str(exc.value) == (
        "image {h}/n/badjson:latest: label io.nanoedge.requirements is not valid JSON (Expecting property name "
        "enclosed in double quotes: line 1 column 2 (char 1)); image {h}/n/nolabel:latest: label "
        "io.nanoedge.requirements is missing").format(h=fake.host)

    warnings = []
    options.on_error = "warn"
    result = discover(options, warn=warnings.append)
    assert [s["name"] for s in result.services] == ["heart-rate-var", "spo2"]
    assert result.services[1]["requires"] == SPO2_NORMALIZED
    assert result.services[1]["image"] == "%s/n/spo2:latest" % fake.host
    assert warnings == ["%s (left out)" % p for p in result.problems]
    assert len(warnings) == 2

    warnings.clear()
    options.on_error = "skip"
    assert [s["name"] for s in discover(options, warn=warnings.append).services] == ["heart-rate-var", "spo2"]
    assert warnings == []


def test_new_and_old_images_side_by_side(fake):
    """An image with the description label and one labelled the older way, as users' registries hold both."""
    described = {"name": "spo2", "version": "1.0.0", "requirements": SPO2, "program": "spo2/spo2.py",
                 "port": {"number": 5701}, "provides": {"path": "/spo2"}}
    fake.add_image("n/spo2", "latest", {"io.nanoedge.service": "spo2", LABEL: json.dumps(SPO2),
                                        "io.nanoedge.description": json.dumps(described)})
    fake.add_image("n/hr", "latest", {"io.nanoedge.service": "hr", LABEL: '{"cpu": 0.25}',
                                      "org.opencontainers.image.version": "0.9.0"}, exposed=["5702/udp"])
    hr, spo2 = discover(DiscoveryOptions(registry=fake.url, repositories=["n/spo2", "n/hr"])).services
    assert spo2["description"] == normalize_description(described)
    assert spo2["registry"] == hr["registry"] == fake.url
    assert hr["description"] == normalize_description({"name": "hr", "version": "0.9.0", "requirements": {"cpu": 0.25},
                                                       "port": {"number": 5702, "protocol": "udp"}})


def test_a_bad_description_follows_on_error(fake):
    fake.add_image("n/spo2", "latest", {LABEL: "{}", "io.nanoedge.description": '{"name": "spo2"}'})
    with pytest.raises(DiscoveryError) as exc:
        discover(DiscoveryOptions(registry=fake.url, repositories=["n/spo2"]))
    assert str(exc.value) == ("image %s/n/spo2:latest: label io.nanoedge.description: requirements is missing "
                              "({} for none)" % fake.host)
    assert discover(DiscoveryOptions(registry=fake.url, repositories=["n/spo2"], on_error="skip")).services == []


def test_missing_manifest_follows_on_error(fake):
    _populate(fake)
    with pytest.raises(DiscoveryError) as exc:
        discover(DiscoveryOptions(registry=fake.url, repositories=["n/spo2", "n/gone"]))
    assert str(exc.value) == ("image %s/n/gone:latest: manifest 'latest' not found (HTTP 404 Not Found, "
                              "MANIFEST_UNKNOWN: manifest unknown)" % fake.host)
    result = discover(DiscoveryOptions(registry=fake.url, repositories=["n/spo2", "n/gone"], on_error="skip"))
    assert [s["name"] for s in result.services] == ["spo2"]


def test_registry_errors_fail_even_with_skip():
    fake = FakeRegistry(auth="basic", users={"u": "p"})
    try:
        fake.add_image("n/spo2", "latest", {LABEL: "{}"})
        with pytest.raises(DiscoveryError) as exc:
            discover(DiscoveryOptions(registry=fake.url, repositories=["n/spo2"], on_error="skip"))
        assert str(exc.value) == ("registry %s, repository n/spo2: GET manifest 'latest': 401 Unauthorized: the registry "
                                  "asks for Basic credentials and none were given (username, password)" % fake.host)
        result = discover(DiscoveryOptions(registry=fake.url, repositories=["n/spo2"], username="u", password="p"))
        assert [s["name"] for s in result.services] == ["spo2"]
    finally:
        fake.close()


def test_duplicate_service_names(fake):
    fake.add_image("a/spo2", "latest", {LABEL: "{}"})
    fake.add_image("b/spo2", "latest", {LABEL: "{}"})
    with pytest.raises(DiscoveryError) as exc:
        discover(DiscoveryOptions(registry=fake.url, repositories=["*/spo2"]))
    assert str(exc.value) == ("service name 'spo2' is used by images {h}/a/spo2:latest and {h}/b/spo2:latest; "
                              "set label io.nanoedge.service on one of them").format(h=fake.host)


def test_multi_arch_mismatch_names_the_image(fake):
    fake.add_index("n/oc", "2.0.0", [(("linux", "arm", "v7"), {LABEL: '{"cpu": 1}'}),
                                     (("linux", "arm64", None), {LABEL: '{"cpu": 2}'})])
    with pytest.raises(DiscoveryError) as exc:
        discover(DiscoveryOptions(registry=fake.url, repositories=["n/oc"], tag_policy="semver"))
    assert str(exc.value) == ('image %s/n/oc:2.0.0: label io.nanoedge.requirements differs between platforms '
                              '(linux/arm/v7: {"cpu": 1}; linux/arm64: {"cpu": 2})' % fake.host)


def test_disk_cache_second_run_reads_only_digests(fake, tmp_path):
    _populate(fake)
    path = str(tmp_path / "sp.json")
    options = DiscoveryOptions(registry=fake.url, repositories=["n/spo2", "n/hrv"], cache_path=path)
    first = discover(options).services
    fake.requests.clear()
    assert discover(options).services == first
    assert sorted(fake.requests) == [("HEAD", "/v2/n/hrv/manifests/latest"), ("HEAD", "/v2/n/spo2/manifests/latest")]


def test_shared_cache_object(fake):
    _populate(fake)
    cache = DigestCache()
    options = DiscoveryOptions(registry=fake.url, repositories=["n/spo2"])
    discover(options, cache=cache)
    fake.requests.clear()
    discover(options, cache=cache)
    assert fake.requests == [("HEAD", "/v2/n/spo2/manifests/latest")]


def test_unwritable_cache_warns(fake, tmp_path):
    _populate(fake)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    warnings = []
    options = DiscoveryOptions(registry=fake.url, repositories=["n/spo2"], cache_path=str(blocker / "c.json"))
    assert len(discover(options, warn=warnings.append).services) == 1
    assert len(warnings) == 1 and warnings[0].startswith("cannot write the cache %s/c.json: " % blocker)


# --------------------------------------------------------------------------- Docker Hub-style API


@pytest.fixture
def hub(fake):
    fake.add_hub_repo("lab", "spo2", description="SpO2", full_description="# SpO2\n" + json.dumps(SPO2),
                      tags={"latest": [("linux", "arm", "v7"), ("linux", "arm64", None), ("unknown", "unknown", None)],
                            "1.2.0": [("linux", "arm64", None)], "1.10.0": [("linux", "arm64", None)]})
    fake.add_hub_repo("lab", "hrv", description='{"capabilities": ["pom"]}')
    fake.add_hub_repo("lab", "empty")
    fake.add_hub_repo("lab", "bad", description='{"cpu": "two"}')
    return fake


def hub_options(fake, **kwargs):
    return DiscoveryOptions(registry=fake.url + "/hub", source="hub", **kwargs)


def test_hub_source(hub):
    result = discover(hub_options(hub, repositories=["lab/spo2", "lab/hrv"]))
    assert [{k: v for k, v in s.items() if k != "description"} for s in result.services] == [
        {"name": "hrv", "image": "docker.io/lab/hrv:latest", "digest": hub.hub_tags[("lab/hrv", "latest")]["digest"],
         "requires": dict(NONE, capabilities=["pom"]), "platforms": ["linux/amd64"], "registry": ""},
        {"name": "spo2", "image": "docker.io/lab/spo2:latest", "digest": hub.hub_tags[("lab/spo2", "latest")]["digest"],
         "requires": SPO2_NORMALIZED, "platforms": ["linux/arm/v7", "linux/arm64"], "registry": ""},
    ]
    # the Hub says nothing of a service but its requirements
    assert result.services[0]["description"] == normalize_description({"name": "hrv", "requirements": {
        "capabilities": ["pom"]}})


def test_hub_glob_semver_and_errors(hub):
    with pytest.raises(DiscoveryError) as exc:
        discover(hub_options(hub, repositories=["lab/*"]))
    assert str(exc.value) == (
        "image docker.io/lab/bad:latest: repository description: cpu must be a number, got 'two'; "
        "image docker.io/lab/empty:latest: repository description (full_description, description) is empty")
    result = discover(hub_options(hub, repositories=["lab/*"], on_error="skip", tag_policy="semver",
                                  hub_image_registry="registry.example"))
    assert [s["image"] for s in result.services] == ["registry.example/lab/spo2:1.10.0"]


def test_hub_missing_repository_and_tag(hub):
    with pytest.raises(DiscoveryError) as exc:
        discover(hub_options(hub, repositories=["lab/nothere", "lab/hrv:9"]))
    assert str(exc.value) == ("image docker.io/lab/hrv:9: tag '9' not found (HTTP 404); "
                              "image docker.io/lab/nothere:latest: repository not found (HTTP 404)")


@pytest.mark.parametrize("repositories, message", [
    ([], "source=hub needs repositories (namespace/name or namespace/glob)"),
    (["*/spo2"], "hub repositories are namespace/name (the namespace cannot be a glob), got '*/spo2'"),
    (["spo2"], "hub repositories are namespace/name (the namespace cannot be a glob), got 'spo2'"),
])
def test_hub_repository_errors(hub, repositories, message):
    with pytest.raises(DiscoveryError) as exc:
        discover(hub_options(hub, repositories=repositories))
    assert str(exc.value) == message


def test_catalog_failure_is_a_discovery_error(fake):
    _populate(fake)
    fake.catalog_enabled = False
    with pytest.raises(DiscoveryError) as exc:
        discover(DiscoveryOptions(registry=fake.url, repositories=["n/*"], on_error="skip"))
    assert str(exc.value) == ("registry %s: the catalog API is not available (HTTP 404); name the repositories "
                              "explicitly instead of with globs" % fake.host)
    assert [s["name"] for s in discover(DiscoveryOptions(registry=fake.url, repositories=["n/spo2"])).services] == [
        "spo2"]


def test_invalid_repository_name_is_a_discovery_error(fake):
    with pytest.raises(DiscoveryError) as exc:
        discover(DiscoveryOptions(registry=fake.url, repositories=["Upper/Case"]))
    assert str(exc.value) == "'Upper/Case' is not a valid repository name"


def test_cache_is_kept_when_the_lookup_fails(fake, tmp_path):
    _populate(fake)
    path = tmp_path / "sp.json"
    with pytest.raises(DiscoveryError):
        discover(DiscoveryOptions(registry=fake.url, repositories=["n/spo2", "n/nolabel"], cache_path=str(path)))
    assert len(json.loads(path.read_text())["entries"]) == 2
