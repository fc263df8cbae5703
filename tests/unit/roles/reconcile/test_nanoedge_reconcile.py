# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pure parts of the reconcile daemon the nanoedge.core.reconcile role
installs: configuration, fingerprints and their differences, the plan it
reports, and its files. The daemon against real registries is in
tests/integration/test_reconcile_daemon.py."""

from __future__ import annotations

import asyncio
import copy
import fcntl
import importlib.util
import json
import os
import time
import typing as t
from pathlib import Path

import pytest

PROGRAM = Path(__file__).resolve().parents[4] / "roles" / "reconcile" / "files" / "nanoedge_reconcile.py"


def load_reconcile() -> t.Any:
    spec = importlib.util.spec_from_file_location("nanoedge_reconcile", str(PROGRAM))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


reconcile = load_reconcile()

PROFILE = {
    "schema": 1, "node": "w4", "collected_at": "2026-11-26T02:30:00Z", "arch": "armv7l",
    "model": "Raspberry Pi 3 Model B Plus Rev 1.3", "cpu": {"cores": 4, "bogomips": 89.6, "load1": 0.31},
    "memory_mb": {"total": 926, "available": 640}, "storage_mb": {"total": 29820, "free": 21033},
    "power": {"source": "ac", "battery_percent": None, "battery_health": None, "charging": None},
    "network": ["wifi", "bluetooth", "ethernet"], "capabilities": ["pom"],
    "devices": [{"capability": "pom", "kind": "sensor", "name": "BerryMed BM1000B", "bus": "usb", "id": "0403:6001"}],
    "labels": {},
}


def test_minimal_configuration_gets_every_default():
    config = reconcile.validate_config({"registry": "coap://[::1]", "command": ["ansible-playbook", "site.yml"]})
    assert config == {
        "registry": "coap://[::1]:5683", "command": ["ansible-playbook", "site.yml"], "managers": [], "self": None,
        "state_dir": "/var/lib/nanoedge-reconcile", "lock_file": "/var/lib/nanoedge-reconcile/reconcile.lock",
        "plan_file": "", "log_dir": "/var/lib/nanoedge-reconcile/runs", "keep_runs": 20, "tail_lines": 20,
        "interval": 30, "debounce": 2, "settle": 0, "probe_interval": 5, "probe_timeout": 2, "probe_failures": 2,
        "request_timeout": 10, "command_timeout": 600, "stop_grace": 30, "retry_backoff": 30,
        "retry_backoff_max": 600, "oscore_context": "", "environment": {},
    }


@pytest.mark.parametrize("managers, self_value, registry, expected", [
    (["coap://m1", "coap://m2"], None, "coap://m2", 1),
    (["coap://m1", "coap://m2"], 0, "coap://[::1]", 0),
    (["coap://m1:5683", "coap://m2"], "coap://m2:5683", "coap://[::1]", 1),
    (["coap://[fd00::1]", "coap://[fd00::2]:5684"], "coap://[fd00::2]:5684", "coap://[::1]", 1),
])
def test_self_is_found_by_index_uri_or_registry(managers, self_value, registry, expected):
    raw = {"registry": registry, "command": ["true"], "managers": managers}
    if self_value is not None:
        raw["self"] = self_value
    assert reconcile.validate_config(raw)["self"] == expected


@pytest.mark.parametrize("raw, message", [
    ([], "must be a JSON object"),
    ({"registry": "coap://a", "command": ["true"], "self": 0}, "self is set but managers is empty"),
    ({"registry": "coap://a", "command": ["true"], "managers": ["coap://a", "coap://a:5683"]},
     "managers lists a URI twice"),
    ({"registry": "coap://a", "command": ["true"], "managers": ["coap://a"], "self": "coap://b"},
     "self coap://b:5683 is not one of managers (coap://a:5683)"),
    ({"registry": "coap://a/profiles", "command": ["true"]},
     "registry 'coap://a/profiles': give only coap://host[:port]; the registry's paths are fixed"),
    ({"registry": "coap://a", "command": ["true", 3]},
     "command must be a non-empty list of strings (the argv of the reconcile command)"),
    ({"registry": "coap://a", "command": ["true"], "stop_grace": -1}, "stop_grace must be >= 0, got -1"),
    ({"registry": "coap://a", "command": ["true"], "keep_runs": True}, "keep_runs must be an integer, got true"),
    ({"registry": "coap://a", "command": ["true"], "environment": {"A": 1}}, "environment must map names to strings"),
])
def test_bad_configuration_names_the_key(raw, message):
    with pytest.raises(reconcile.ConfigError) as caught:
        reconcile.validate_config(raw)
    assert str(caught.value) == message


def test_fingerprint_leaves_out_what_moves_on_every_report():
    drifted = copy.deepcopy(PROFILE)
    drifted.update(collected_at="2026-11-26T09:00:00Z", cpu={"cores": 4, "bogomips": 89.6, "load1": 3.9},
                   memory_mb={"total": 926, "available": 12}, storage_mb={"total": 29820, "free": 1},
                   labels={"room": "ambulance"})
    assert reconcile.node_fingerprint(PROFILE) == reconcile.node_fingerprint(drifted) == {
        "capabilities": ["pom"], "power": "ac", "network": ["bluetooth", "ethernet", "wifi"], "arch": "armv7l"}


def test_fingerprint_of_a_profile_without_capabilities_or_power():
    assert reconcile.node_fingerprint({"node": "w9"}) == {"capabilities": [], "power": None, "network": [],
                                                          "arch": None}


def test_fingerprint_of_skips_malformed_profiles_and_refuses_non_objects():
    fingerprint, problems = reconcile.fingerprint_of({"w4": PROFILE, "w5": "garbage", "w6": None})
    assert list(fingerprint) == ["w4"]
    assert problems == ["profile of w5 is str, not an object", "profile of w6 is NoneType, not an object"]
    with pytest.raises(ValueError, match="expected a JSON object node -> profile, got list"):
        reconcile.fingerprint_of([PROFILE])


def fp(capabilities: t.Sequence[str] = (), power: str = "ac", network: t.Sequence[str] = ("wifi",),
       arch: str = "armv7l") -> t.Dict[str, t.Any]:
    return {"capabilities": sorted(capabilities), "power": power, "network": sorted(network), "arch": arch}


@pytest.mark.parametrize("before, after, diff, text", [
    ({"w1": fp()}, {"w1": fp(), "w4": fp(["pom", "bot"])},
     {"added": ["w4"], "removed": [], "changed": {}}, ["w4 joined (capabilities bot, pom)"]),
    ({"w1": fp(), "w4": fp(["pom"])}, {"w1": fp()},
     {"added": [], "removed": ["w4"], "changed": {}}, ["w4 left (no live profile: lease expired or deleted)"]),
    ({"w2": fp(["bot"])}, {"w2": fp(["pom"])},
     {"added": [], "removed": [], "changed": {"w2": {"capabilities_added": ["pom"], "capabilities_removed": ["bot"]}}},
     ["w2 gained capability pom", "w2 lost capability bot"]),
    ({"w3": fp(power="ac", network=["wifi"])}, {"w3": fp(power="dc", network=["bluetooth", "ethernet", "wifi"])},
     {"added": [], "removed": [], "changed": {"w3": {"network_added": ["bluetooth", "ethernet"],
                                                     "power": ["ac", "dc"]}}},
     ["w3 gained networks bluetooth, ethernet", "w3 power ac -> dc"]),
    ({"w5": fp(arch="armv7l")}, {"w5": fp(arch="aarch64")},
     {"added": [], "removed": [], "changed": {"w5": {"arch": ["armv7l", "aarch64"]}}}, ["w5 arch armv7l -> aarch64"]),
    (None, {"w0": fp()}, {"added": ["w0"], "removed": [], "changed": {}}, ["w0 joined (no capabilities)"]),
    ({"w1": fp(["bot"])}, {"w1": fp(["bot"])}, {"added": [], "removed": [], "changed": {}}, []),
])
def test_diff_and_its_description(before, after, diff, text):
    assert reconcile.diff_fingerprints(before, after) == diff
    assert reconcile.describe_diff(diff, after) == text


def test_fingerprint_digest_is_stable_and_sensitive():
    one = {"w1": fp(["bot"]), "w4": fp(["pom"])}
    assert reconcile.fingerprint_digest(one) == reconcile.fingerprint_digest(json.loads(json.dumps(one)))
    assert reconcile.fingerprint_digest(one) != reconcile.fingerprint_digest({"w1": fp(["bot"]), "w4": fp()})
    assert reconcile.fingerprint_digest(None) is None


@pytest.mark.parametrize("entry, valid", [
    (fp(["pom"]), True),
    ({"capabilities": [], "power": None, "network": [], "arch": None}, True),
    ({"capabilities": "pom", "power": "ac", "network": [], "arch": None}, False),
    ({"capabilities": [], "power": {"source": "ac"}, "network": [], "arch": None}, False),
    ({"capabilities": [], "power": "ac", "network": []}, False),
])
def test_fingerprint_entries_read_back_from_the_state_file(entry, valid):
    assert reconcile.valid_fingerprint_entry(entry) is valid


@pytest.mark.parametrize("entry, text", [
    ({"service": "spo2", "reasons": {"w1": "missing capability pom", "w2": "missing capability pom"}},
     "no live node has capability pom"),
    ({"service": "spo2", "reason": "no live node has capability pom", "reasons": {"w1": "x"}},
     "no live node has capability pom"),
    ({"service": "big", "reasons": {"w1": "needs 2048 MB memory, has 512"}}, "every node: needs 2048 MB memory, has 512"),
    ({"service": "hrv", "reasons": {"w2": "needs 512 MB memory, has 100", "w1": "missing capability pom"}},
     "w1: missing capability pom; w2: needs 512 MB memory, has 100"),
    ({"service": "x", "reasons": {}}, "no live node"),
    ({"service": "x"}, "no live node"),
])
def test_unplaced_reasons_in_one_line(entry, text):
    assert reconcile.summarize_reasons(entry) == text


def test_plan_outcome_takes_why_from_the_move_or_the_plan_and_skips_junk():
    plan = {"moves": [{"service": "alert", "from": "w2", "to": "w5", "why": "w2 left"},
                      {"service": "display", "from": "w4", "to": "w1"},
                      {"service": "bot", "from": None, "to": "w1"},
                      "junk", {"from": "w1"}],
            "unplaced": [{"service": "spo2", "reasons": {"w1": "missing capability pom"}}, 7],
            "why": {"display": "first node that fits"}}
    moves, unplaced = reconcile.plan_outcome(plan)
    assert moves == [{"service": "alert", "from": "w2", "to": "w5", "why": "w2 left"},
                     {"service": "display", "from": "w4", "to": "w1", "why": "first node that fits"},
                     {"service": "bot", "from": None, "to": "w1", "why": ""}]
    assert unplaced == [{"service": "spo2", "why": "no live node has capability pom"}]
    assert [reconcile.move_line(move) for move in moves] == [
        "moved alert w2 -> w5 (w2 left)", "moved display w4 -> w1 (first node that fits)", "moved bot (nowhere) -> w1"]
    assert reconcile.plan_outcome({}) == ([], [])


def test_read_plan(tmp_path):
    path = tmp_path / "plan.json"
    since = time.time()
    assert reconcile.read_plan(str(path), since) == (None, "the command wrote no plan file %s" % path)
    path.write_text('{"moves": []}')
    assert reconcile.read_plan(str(path), since) == ({"moves": []}, None)
    os.utime(path, (since - 10, since - 10))
    assert reconcile.read_plan(str(path), since) == (None, "the plan file %s is older than this run" % path)
    path.write_text("[1]")
    assert reconcile.read_plan(str(path), since) == (None, "the plan file %s holds no JSON object" % path)
    path.write_text("{")
    plan, problem = reconcile.read_plan(str(path), since)
    assert plan is None and problem.startswith("cannot read the plan file %s: " % path)


def test_state_is_replaced_atomically(tmp_path):
    path = tmp_path / "state.json"
    reconcile.write_json_atomically(str(path), {"role": "passive"})
    reconcile.write_json_atomically(str(path), {"role": "active"})
    assert json.loads(path.read_text()) == {"role": "active"}
    assert os.listdir(tmp_path) == ["state.json"]


def test_old_run_logs_are_pruned_and_the_tail_is_read(tmp_path):
    for index in range(5):
        (tmp_path / ("run-2026112%dT000000Z.log" % index)).write_text("".join("line %d\n" % n for n in range(30)))
    (tmp_path / "other.txt").write_text("kept")
    reconcile.prune_run_logs(str(tmp_path), 2)
    assert sorted(os.listdir(tmp_path)) == ["other.txt", "run-20261123T000000Z.log", "run-20261124T000000Z.log"]
    assert reconcile.tail(str(tmp_path / "run-20261124T000000Z.log"), 3) == ["line 27", "line 28", "line 29"]
    assert reconcile.tail(str(tmp_path / "missing.log"), 3) == []


def test_file_lock_waits_for_another_holder(tmp_path):
    path = tmp_path / "reconcile.lock"
    holder = os.open(str(path), os.O_RDWR | os.O_CREAT)
    fcntl.flock(holder, fcntl.LOCK_EX)

    async def scenario() -> t.Tuple[bool, bool]:
        stopping = asyncio.Event()
        lock = reconcile.FileLock(str(path))
        waiting = asyncio.ensure_future(lock.acquire(stopping))
        await asyncio.sleep(0.3)
        blocked = not waiting.done()
        fcntl.flock(holder, fcntl.LOCK_UN)
        acquired = await asyncio.wait_for(waiting, 5)
        lock.release()
        return blocked, acquired

    try:
        assert asyncio.run(scenario()) == (True, True)
    finally:
        os.close(holder)


def test_file_lock_gives_up_when_stopping(tmp_path):
    path = tmp_path / "reconcile.lock"
    holder = os.open(str(path), os.O_RDWR | os.O_CREAT)
    fcntl.flock(holder, fcntl.LOCK_EX)

    async def scenario() -> bool:
        stopping = asyncio.Event()
        stopping.set()
        return await reconcile.FileLock(str(path)).acquire(stopping)

    try:
        assert asyncio.run(scenario()) is False
    finally:
        os.close(holder)
