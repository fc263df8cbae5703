# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The registry inventory plugin with the registry's answer stubbed: hosts,
groups, unsafe hostvars, constructed features, cache and fail-over. Real
ansible-inventory runs against the real registry are in
tests/integration/test_inventory_registry.py."""

from __future__ import annotations

import copy
import json
import typing as t

import pytest

from ansible.errors import AnsibleError, AnsibleParserError
from ansible.inventory.data import InventoryData
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import inventory_loader
from ansible.template import is_trusted_as_template, trust_as_template

from ansible_collections.nanoedge.core.plugins.inventory import registry as registry_plugin
from ansible_collections.nanoedge.core.plugins.module_utils import _coap
from ansible_collections.nanoedge.core.plugins.plugin_utils._registry_inventory import (
    group_name,
    groups_for,
    live_profiles,
)
from ansible_collections.nanoedge.core.tests.unit.ipv6_registry import ipv6_registry

BASE = {
    "schema": 1, "node": "w4", "collected_at": "2026-11-26T02:30:00Z", "arch": "armv7l", "model": "Pi 3",
    "cpu": {"cores": 4, "bogomips": 89.6, "load1": 0.31},
    "memory_mb": {"total": 926, "available": 640},
    "storage_mb": {"total": 29820, "free": 21033},
    "power": {"source": "ac", "battery_percent": None, "battery_health": None, "charging": None},
    "network": ["bluetooth", "wifi"], "capabilities": ["pom"],
    "devices": [{"capability": "pom", "kind": "sensor", "name": "BerryMed BM1000B", "bus": "usb", "id": "0403:6001"}],
    "labels": {},
}


def profile(node: str, **changes: t.Any) -> t.Dict[str, t.Any]:
    result = copy.deepcopy(BASE)
    result.update(changes, node=node)
    return result


W1 = profile("w1", capabilities=["bot", "spo2.v1"], devices=[], arch="aarch64",
             power={"source": "dc", "battery_percent": 80, "battery_health": 0.9, "charging": False})
W4 = profile("w4", labels={"address": "10.0.0.14"})
ANSWER = {"w1": W1, "w4": W4}


class Registry:
    """Stands in for the CoAP fetch: url -> answer (a dict) or error message."""

    def __init__(self, answers: t.Dict[str, t.Any]) -> None:
        self.answers = answers
        self.asked: t.List[str] = []

    def __call__(self, url: str, timeout: float = 10.0, retries: int = 2, **credentials: str) -> t.Dict[str, t.Any]:
        self.asked.append(url)
        self.credentials = credentials
        answer = self.answers[url]
        if isinstance(answer, str):
            raise _coap.CoapError(answer)
        return copy.deepcopy(answer)


def parse(tmp_path, monkeypatch, config: t.Dict[str, t.Any], answers: t.Dict[str, t.Any],
          cache: bool = True, name: str = "registry.nanoedge.yml") -> t.Tuple[InventoryData, Registry]:
    registry = Registry(answers)
    monkeypatch.setattr(_coap, "run_fetch_profiles", registry)
    path = tmp_path / name
    path.write_text(json.dumps(dict({"plugin": "nanoedge.core.registry"}, **config)))
    plugin = inventory_loader.get("nanoedge.core.registry")
    assert plugin.verify_file(str(path))
    inventory = InventoryData()
    plugin.parse(inventory, DataLoader(), str(path), cache=cache)
    if getattr(plugin, "_cache", None):
        plugin.update_cache_if_changed()  # as the inventory manager does after parse
    return inventory, registry


def members(inventory: InventoryData, group: str) -> t.List[str]:
    return sorted(host.name for host in inventory.groups[group].get_hosts())


def test_hosts_and_groups(tmp_path, monkeypatch):
    inventory, registry = parse(tmp_path, monkeypatch, {"url": "coap://m1"}, {"coap://m1": ANSWER})
    assert registry.asked == ["coap://m1"]
    assert sorted(inventory.hosts) == ["w1", "w4"]
    expected = {"cap_bot": ["w1"], "cap_spo2_v1": ["w1"], "cap_pom": ["w4"], "power_dc": ["w1"], "power_ac": ["w4"],
                "net_bluetooth": ["w1", "w4"], "net_wifi": ["w1", "w4"], "arch_arm64": ["w1"], "arch_arm_v7": ["w4"]}
    for group, hosts in expected.items():
        assert members(inventory, group) == hosts, group
    assert sorted(set(inventory.groups) - {"all", "ungrouped"}) == sorted(expected)


def test_profile_is_never_trusted_as_a_template(tmp_path, monkeypatch):
    sneaky = profile("w4", labels={"note": trust_as_template("{{ lookup('ansible.builtin.pipe', 'id') }}")})
    assert is_trusted_as_template(sneaky["labels"]["note"])
    inventory, _registry = parse(tmp_path, monkeypatch, {"url": "coap://m1"}, {"coap://m1": {"w4": sneaky}})
    hostvars = inventory.get_host("w4").get_vars()
    assert hostvars["nanoedge_profile"] == sneaky
    assert not is_trusted_as_template(hostvars["nanoedge_profile"]["labels"]["note"])


def test_first_registry_that_answers_wins(tmp_path, monkeypatch):
    answers = {"coap://m1": "coap://m1: no answer within 5s (gave up after 2 attempts)", "coap://m2": ANSWER,
               "coap://m3": {}}
    inventory, registry = parse(tmp_path, monkeypatch, {"url": ["coap://m1", "coap://m2", "coap://m3"]}, answers)
    assert registry.asked == ["coap://m1", "coap://m2"]
    assert sorted(inventory.hosts) == ["w1", "w4"]


def test_reads_with_oscore_credentials(tmp_path, monkeypatch):
    config = {"url": "coap://m1", "oscore_credentials": str(tmp_path / "controller.json")}
    _inventory, registry = parse(tmp_path, monkeypatch, config, {"coap://m1": ANSWER})
    assert registry.credentials == {"oscore_credentials": str(tmp_path / "controller.json")}
    _inventory, registry = parse(tmp_path, monkeypatch, {"url": "coap://m1"}, {"coap://m1": ANSWER})
    assert registry.credentials == {}


def test_oscore_without_its_library_names_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(registry_plugin._oscore, "oscore_missing", lambda: ["cbor2", "lakers"])
    config = {"url": "coap://m1", "oscore_credentials": str(tmp_path / "controller.json")}
    with pytest.raises(AnsibleParserError) as info:
        parse(tmp_path, monkeypatch, config, {"coap://m1": ANSWER})
    assert str(info.value) == ("nanoedge.core.registry: oscore_credentials needs aiocoap's oscore extra on the "
                               "controller, missing: cbor2, lakers (pip install 'aiocoap[oscore]')")


def test_no_registry_answers(tmp_path, monkeypatch):
    answers = {"coap://m1": "coap://m1: no answer within 5s (gave up after 2 attempts)",
               "coap://m2": "coap://m2: Connection refused (gave up after 2 attempts)"}
    with pytest.raises(AnsibleParserError) as info:
        parse(tmp_path, monkeypatch, {"url": ["coap://m1", "coap://m2"]}, answers)
    assert str(info.value) == ("nanoedge.core.registry: no registry answered: coap://m1: no answer within 5s "
                               "(gave up after 2 attempts); coap://m2: Connection refused (gave up after 2 attempts)")


def test_allow_unreachable_adds_nothing_and_warns(tmp_path, monkeypatch):
    answers = {"coap://m1": "coap://m1: no answer within 1s (gave up after 1 attempts)"}
    warnings = []
    monkeypatch.setattr(registry_plugin.display, "warning", warnings.append)
    inventory, registry = parse(tmp_path, monkeypatch, {"url": ["coap://m1"], "allow_unreachable": True}, answers)
    assert registry.asked == ["coap://m1"]
    assert list(inventory.hosts) == []
    assert warnings == ["nanoedge.core.registry: no registry answered: coap://m1: no answer within 1s "
                        "(gave up after 1 attempts) (no hosts or groups from it)"]


def test_ipv6_registry(tmp_path):
    path = tmp_path / "registry.nanoedge.yml"
    plugin = inventory_loader.get("nanoedge.core.registry")
    inventory = InventoryData()
    with ipv6_registry(copy.deepcopy(ANSWER)) as url:
        path.write_text(json.dumps({"plugin": "nanoedge.core.registry", "url": [url], "timeout": 2, "retries": 0}))
        plugin.parse(inventory, DataLoader(), str(path), cache=False)
    assert url.startswith("coap://[::1]:")
    assert sorted(inventory.hosts) == ["w1", "w4"]
    assert inventory.get_host("w4").vars["nanoedge_profile"] == W4


def test_bad_url(tmp_path, monkeypatch):
    monkeypatch.setattr(_coap, "run_fetch_profiles", lambda url, timeout, retries: _coap.parse_registry(url))
    path = tmp_path / "registry.nanoedge.yml"
    path.write_text(json.dumps({"plugin": "nanoedge.core.registry", "url": "http://m1"}))
    with pytest.raises(AnsibleParserError) as info:
        inventory_loader.get("nanoedge.core.registry").parse(InventoryData(), DataLoader(), str(path), cache=False)
    assert str(info.value) == "nanoedge.core.registry: registry 'http://m1': scheme must be coap://, got 'http://'"


def test_constructed(tmp_path, monkeypatch):
    config = {
        "url": "coap://m1", "strict": True,
        "compose": {"ansible_host": "nanoedge_profile.labels.address | default(inventory_hostname)",
                    "cores": "nanoedge_profile.cpu.cores"},
        "groups": {"on_battery": "nanoedge_profile.power.source == 'dc'"},
        "keyed_groups": [{"key": "nanoedge_profile.model", "prefix": "model"}],
    }
    inventory, _registry = parse(tmp_path, monkeypatch, config, {"coap://m1": ANSWER})
    assert inventory.get_host("w4").get_vars()["ansible_host"] == "10.0.0.14"
    assert inventory.get_host("w1").get_vars()["ansible_host"] == "w1"
    assert inventory.get_host("w1").get_vars()["cores"] == 4
    assert members(inventory, "on_battery") == ["w1"]
    assert members(inventory, "model_Pi_3") == ["w1", "w4"]


def test_strict_compose_error(tmp_path, monkeypatch):
    config = {"url": "coap://m1", "strict": True, "compose": {"x": "nanoedge_profile.no_such_key.deeper"}}
    with pytest.raises(AnsibleError, match=r"^Could not set x for host w1: "):
        parse(tmp_path, monkeypatch, config, {"coap://m1": ANSWER})
    inventory, _registry = parse(tmp_path, monkeypatch, dict(config, strict=False), {"coap://m1": ANSWER})
    assert "x" not in inventory.get_host("w1").get_vars()


def test_cache(tmp_path, monkeypatch):
    config = {"url": "coap://m1", "cache": True, "cache_plugin": "ansible.builtin.jsonfile",
              "cache_connection": str(tmp_path / "cache")}
    _inventory, first = parse(tmp_path, monkeypatch, config, {"coap://m1": ANSWER})
    assert first.asked == ["coap://m1"]
    inventory, second = parse(tmp_path, monkeypatch, config, {"coap://m1": {}})
    assert second.asked == [] and sorted(inventory.hosts) == ["w1", "w4"]  # served from the cache
    inventory, third = parse(tmp_path, monkeypatch, config, {"coap://m1": {"w4": W4}}, cache=False)
    assert third.asked == ["coap://m1"] and sorted(inventory.hosts) == ["w4"]  # refreshed


@pytest.mark.parametrize("name, accepted", [
    ("registry.nanoedge.yml", True), ("site.registry.nanoedge.yaml", True),
    ("registry.yml", False), ("inventory.yml", False), ("registry.nanoedge.json", False),
])
def test_verify_file(tmp_path, name, accepted):
    path = tmp_path / name
    path.write_text("plugin: nanoedge.core.registry\n")
    assert inventory_loader.get("nanoedge.core.registry").verify_file(str(path)) is accepted


# --- plugin_utils ---------------------------------------------------------------

def test_live_profiles_skips_what_it_cannot_trust():
    raw = {"w4": W4, "w1": W1, "w9": profile("w2"), "bad": dict(W4, cpu={"cores": 0, "bogomips": None, "load1": None}),
           "junk": "text", "w1\n": profile("w1\n"), "w5": profile("w5", capabilities=["pom\n"], devices=[])}
    profiles, problems = live_profiles(raw)
    assert sorted(profiles) == ["w1", "w4"]
    assert problems == [
        "profile 'bad': cpu.cores: must be an integer >= 1, got 0",
        "profile 'junk': profile: must be an object, got str",
        "profile 'w1\\n': node: must match ^[a-z0-9][a-z0-9._-]{0,62}$, got 'w1\\n'",
        "profile 'w5': capabilities[0]: 'pom\\n' is not a valid name",
        "profile 'w9': it describes node 'w2'",
    ]


def test_live_profiles_rejects_non_object():
    assert live_profiles(["w4"]) == ({}, ["the registry's answer: a JSON list, not an object of profiles"])


@pytest.mark.parametrize("prefix, value, expected", [
    ("cap", "pom", "cap_pom"), ("cap", "spo2.v1-x", "cap_spo2_v1_x"), ("arch", "x86_64", "arch_x86_64"),
])
def test_group_name(prefix, value, expected):
    assert group_name(prefix, value) == expected


def test_groups_for_order():
    assert groups_for(W1) == ["cap_bot", "cap_spo2_v1", "power_dc", "net_bluetooth", "net_wifi", "arch_arm64"]
