# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The nanoedge.core.registry inventory plugin through real ansible-inventory
runs against the real registry server holding several profiles."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import typing as t

import pytest

from _registry_server import RegistryServer, profile
from ansible_collections.nanoedge.core.plugins.module_utils import _coap

BATTERY = {"source": "dc", "battery_percent": 15, "battery_health": 0.93, "charging": False}
TESTBED = [
    profile("w1", capabilities=["bot"], network=["bluetooth", "wifi"],
            devices=[{"capability": "bot", "kind": "sensor", "name": "DS18B20", "bus": "w1", "id": "28"}]),
    profile("w3", capabilities=["oc"], arch="aarch64", power=BATTERY, network=["wifi"],
            devices=[{"capability": "oc", "kind": "actuator", "name": "valve", "bus": "declared", "id": "oc"}]),
    profile("w4"),
    profile("w5", capabilities=[], devices=[], arch="aarch64", labels={"address": "10.0.0.15"}),
]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[RegistryServer]:
    with RegistryServer(tmp_path_factory.mktemp("registry") / "registry.sqlite") as server:
        for node_profile in TESTBED:
            (outcome,) = _coap.run_report(node_profile, [server.url], _coap.ReportSettings(lifetime=3600))
            assert outcome.stored, outcome
        yield server


def inventory(ansible_env: t.Dict[str, str], tmp_path: t.Any, config: t.Dict[str, t.Any], *args: str,
              name: str = "registry.nanoedge.yml") -> subprocess.CompletedProcess:
    path = tmp_path / name
    path.write_text(json.dumps(dict({"plugin": "nanoedge.core.registry"}, **config)))
    command = shutil.which("ansible-inventory", path=ansible_env["PATH"]) or "ansible-inventory"
    return subprocess.run([command, "-i", str(path), *args], env=ansible_env, capture_output=True, text=True,
                          timeout=120, cwd=str(tmp_path), check=False)


def dead_url() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return "coap://127.0.0.1:%d" % sock.getsockname()[1]


def unmarked(value: t.Any) -> t.Any:
    if isinstance(value, dict):
        if list(value) == ["__ansible_unsafe"]:
            return value["__ansible_unsafe"]
        return {key: unmarked(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unmarked(item) for item in value]
    return value


def test_graph(live, ansible_env, tmp_path):
    proc = inventory(ansible_env, tmp_path, {"url": live.url}, "--graph")
    assert proc.returncode == 0, proc.stderr
    graph = proc.stdout
    for expected in ("  |--@cap_bot:\n  |  |--w1\n", "  |--@cap_oc:\n  |  |--w3\n", "  |--@cap_pom:\n  |  |--w4\n",
                     "  |--@power_dc:\n  |  |--w3\n", "  |--@net_ethernet:\n  |  |--w4\n  |  |--w5\n",
                     # these profiles name the kernel's machine, as older versions made them: read as platforms
                     "  |--@arch_arm64:\n  |  |--w3\n  |  |--w5\n",
                     "  |--@arch_arm_v7:\n  |  |--w1\n  |  |--w4\n"):
        assert expected in graph, graph
    assert "  |--@power_ac:\n  |  |--w1\n  |  |--w4\n  |  |--w5\n" in graph


def test_hostvars_and_constructed(live, ansible_env, tmp_path):
    config = {
        "url": [dead_url(), live.url], "timeout": 1, "retries": 0, "strict": True,
        "compose": {"ansible_host": "nanoedge_profile.labels.address | default(inventory_hostname)"},
        "groups": {"battery_low": "nanoedge_profile.power.battery_percent is not none and "
                                  "nanoedge_profile.power.battery_percent < 20"},
        "keyed_groups": [{"key": "nanoedge_profile.cpu.cores | string", "prefix": "cores"}],
    }
    proc = inventory(ansible_env, tmp_path, config, "--list")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    hostvars = data["_meta"]["hostvars"]
    assert sorted(hostvars) == ["w1", "w3", "w4", "w5"]
    # ansible-inventory marks values that must never be templated
    assert hostvars["w4"]["nanoedge_profile"]["node"] == {"__ansible_unsafe": "w4"}
    assert unmarked(hostvars["w4"]["nanoedge_profile"]) == profile("w4")
    assert (unmarked(hostvars["w5"]["ansible_host"]), unmarked(hostvars["w1"]["ansible_host"])) == ("10.0.0.15", "w1")
    assert data["battery_low"]["hosts"] == ["w3"]
    assert sorted(data["cores_4"]["hosts"]) == ["w1", "w3", "w4", "w5"]


def test_profile_content_is_never_templated(live, ansible_env, tmp_path):
    sneaky = profile("sneaky", labels={"note": "{{ lookup('ansible.builtin.pipe', 'echo pwned') }}"})
    (outcome,) = _coap.run_report(sneaky, [live.url], _coap.ReportSettings(lifetime=3600))
    assert outcome.stored
    config = {"url": live.url, "compose": {"note": "nanoedge_profile.labels.note"}}
    proc = inventory(ansible_env, tmp_path, config, "--list")
    assert proc.returncode == 0, proc.stderr
    hostvars = json.loads(proc.stdout)["_meta"]["hostvars"]["sneaky"]
    expected = {"__ansible_unsafe": "{{ lookup('ansible.builtin.pipe', 'echo pwned') }}"}
    assert hostvars["nanoedge_profile"]["labels"]["note"] == expected
    assert hostvars["note"] == expected  # copied, still marked, not evaluated


def test_no_registry_answers(ansible_env, tmp_path):
    first, second = dead_url(), dead_url()
    proc = inventory(ansible_env, tmp_path, {"url": [first, second], "timeout": 1, "retries": 0}, "--list")
    assert "nanoedge.core.registry: no registry answered: %s: Connection refused" % first in proc.stderr
    assert "; %s: Connection refused" % second in proc.stderr


def test_file_name_must_match(live, ansible_env, tmp_path):
    proc = inventory(ansible_env, tmp_path, {"url": live.url}, "--list", name="inventory.yml")
    assert "w4" not in proc.stdout
