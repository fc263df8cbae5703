# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import typing as t

import pytest
from ansible.errors import AnsibleLookupError
from ansible.plugins.loader import lookup_loader

from ansible_collections.nanoedge.core.plugins.lookup import registry_profiles
from ansible_collections.nanoedge.core.plugins.module_utils import _coap
from ansible_collections.nanoedge.core.tests.unit import healthcare
from ansible_collections.nanoedge.core.tests.unit.ipv6_registry import ipv6_registry

M1 = "coap://172.30.0.11:5683"
M2 = "coap://172.30.0.12:5683"


def registry(answers: t.Dict[str, t.Any]) -> t.Tuple[t.Callable[..., t.Any], t.List[str]]:
    """A fetch that answers per URL: a dict is the registry's answer, an exception is raised."""
    asked = []

    def fetch(url: str, timeout: float, retries: int) -> t.Any:
        asked.append(url)
        answer = answers[url]
        if isinstance(answer, Exception):
            raise answer
        return answer
    return fetch, asked


def live() -> t.Dict[str, t.Any]:
    return {profile["node"]: profile for profile in healthcare.workers()}


def test_first_registry_that_answers():
    fetch, asked = registry({M1: live(), M2: {}})
    result = registry_profiles.first_answer([M1, M2], 5, 1, fetch)
    assert asked == [M1]
    assert result["registry"] == M1
    assert list(result["profiles"]) == ["w1", "w2", "w3", "w4", "w5"]
    assert result["skipped"] == [] and result["failed"] == []


def test_backup_answers_when_the_active_manager_is_down():
    fetch, asked = registry({M1: _coap.CoapError(M1 + ": no answer within 5s (gave up after 2 attempts)"),
                             M2: live()})
    result = registry_profiles.first_answer([M1, M2], 5, 1, fetch)
    assert asked == [M1, M2]
    assert result["registry"] == M2
    assert result["failed"] == [M1 + ": no answer within 5s (gave up after 2 attempts)"]


def test_invalid_entries_are_skipped():
    profiles = live()
    profiles["w9"] = dict(profiles["w1"])
    profiles["w8"] = {"node": "w8"}
    fetch = registry({M1: profiles})[0]
    result = registry_profiles.first_answer([M1], 5, 1, fetch)
    assert sorted(result["profiles"]) == ["w1", "w2", "w3", "w4", "w5"]
    assert result["skipped"][1] == "profile 'w9': it describes node 'w1'"
    assert result["skipped"][0].startswith("profile 'w8': ")


def test_no_registry_answers():
    fetch = registry({M1: _coap.CoapError("m1 down"), M2: _coap.CoapError("m2 down")})[0]
    with pytest.raises(AnsibleLookupError) as error:
        registry_profiles.first_answer([M1, M2], 5, 1, fetch)
    assert error.value.message == "nanoedge.core.registry_profiles: no registry answered: m1 down; m2 down"


def test_a_malformed_url_is_not_an_outage():
    fetch = registry({"http://x": ValueError("registry URL 'http://x' must use the coap scheme")})[0]
    with pytest.raises(AnsibleLookupError) as error:
        registry_profiles.first_answer(["http://x", M2], 5, 1, fetch)
    assert error.value.message == ("nanoedge.core.registry_profiles: registry URL 'http://x' must use the coap "
                                   "scheme")


def test_lookup_options(monkeypatch):
    seen = {}

    def fake(registries, timeout, retries, fetch):
        seen.update(registries=registries, timeout=timeout, retries=retries, fetch=fetch)
        return {"registry": registries[0], "profiles": {}, "skipped": [], "failed": []}

    monkeypatch.setattr(registry_profiles, "first_answer", fake)
    monkeypatch.setattr(registry_profiles._coap, "HAS_AIOCOAP", True)
    lookup = lookup_loader.get("nanoedge.core.registry_profiles")
    result = lookup.run([M1], variables={}, registries=[M2], timeout=2.5, retries=0)
    assert result == [{"registry": M1, "profiles": {}, "skipped": [], "failed": []}]
    assert seen == {"registries": [M1, M2], "timeout": 2.5, "retries": 0, "fetch": registry_profiles._coap.run_fetch_profiles}
    lookup.run([M1], variables={}, oscore_credentials="/etc/creds.json")
    assert seen["fetch"].func is registry_profiles._coap.run_fetch_profiles
    assert seen["fetch"].keywords == {"oscore_credentials": "/etc/creds.json"}


def test_lookup_without_the_oscore_library_names_what_is_missing(monkeypatch):
    monkeypatch.setattr(registry_profiles._coap, "HAS_AIOCOAP", True)
    monkeypatch.setattr(registry_profiles._oscore, "oscore_missing", lambda: ["cryptography"])
    lookup = lookup_loader.get("nanoedge.core.registry_profiles")
    with pytest.raises(AnsibleLookupError) as error:
        lookup.run([M1], variables={}, oscore_credentials="/etc/creds.json")
    assert error.value.message == ("nanoedge.core.registry_profiles: oscore_credentials needs aiocoap's oscore extra on "
                                   "the controller, missing: cryptography (pip install 'aiocoap[oscore]')")


@pytest.mark.parametrize("terms, options, message", [
    ([], {}, "nanoedge.core.registry_profiles: no registries given: name at least one coap://host[:port]"),
    ([M1], {"timeout": 0}, "nanoedge.core.registry_profiles: timeout must be > 0 and retries >= 0, got 0.0 and 1"),
])
def test_lookup_errors(terms, options, message, monkeypatch):
    monkeypatch.setattr(registry_profiles._coap, "HAS_AIOCOAP", True)
    lookup = lookup_loader.get("nanoedge.core.registry_profiles")
    with pytest.raises(AnsibleLookupError) as error:
        lookup.run(terms, variables={}, **options)
    assert error.value.message == message


def test_ipv6_registry():
    lookup = lookup_loader.get("nanoedge.core.registry_profiles")
    with ipv6_registry(live()) as url:
        result, = lookup.run([], variables={}, registries=["coap://[::1]:9", url], timeout=0.5, retries=0)
    assert url.startswith("coap://[::1]:")
    assert result["registry"] == url
    assert list(result["profiles"]) == ["w1", "w2", "w3", "w4", "w5"]
    assert [failure.split(": ")[0] for failure in result["failed"]] == ["coap://[::1]:9"]
