# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The coap_report module as an adapter: parameters, result, diff, min_acks.
The CoAP exchanges themselves are tested in tests/unit/plugins/module_utils/test_coap.py
and, through ansible-playbook, in tests/integration/test_coap_report.py."""

from __future__ import annotations

import json
import typing as t

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.nanoedge.core.plugins.module_utils import _coap
from ansible_collections.nanoedge.core.plugins.modules import coap_report
from ansible_collections.nanoedge.core.tests.unit.ipv6_registry import ipv6_registry

PROFILE = {
    "schema": 1, "node": "w4", "collected_at": "2026-11-26T02:30:00Z", "arch": "armv7l", "model": "Pi",
    "cpu": {"cores": 4, "bogomips": 89.6, "load1": 0.31},
    "memory_mb": {"total": 926, "available": 640},
    "storage_mb": {"total": 29820, "free": 21033},
    "power": {"source": "ac", "battery_percent": None, "battery_health": None, "charging": None},
    "network": ["wifi"], "capabilities": [], "devices": [], "labels": {},
}
M1, M2 = "coap://10.0.0.1", "coap://10.0.0.2:5684"


def outcome(registry: str, action: str, before: t.Any = None, error: t.Optional[str] = None) -> _coap.Outcome:
    stored = action in ("created", "updated", "renewed", "unchanged")
    changed = action in ("created", "updated", "would_create", "would_update")
    code = {"created": "2.01 Created", "updated": "2.04 Changed", "renewed": "2.04 Changed"}.get(action)
    return _coap.Outcome(registry, stored, changed, action, code, "abcd" if code else None, 1, error, before)


def run_module(args: t.Dict[str, t.Any], capsys, monkeypatch, outcomes: t.Sequence[_coap.Outcome] = (),
               seen: t.Optional[t.List[t.Any]] = None) -> t.Tuple[int, t.Dict[str, t.Any]]:
    def fake_run_report(profile, registries, settings):
        if seen is not None:
            seen.append((profile, list(registries), settings))
        return list(outcomes)

    monkeypatch.setattr(_coap, "run_report", fake_run_report)
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exc:
            coap_report.main()
    return exc.value.code, json.loads(capsys.readouterr().out)


def test_settings_reach_the_client(capsys, monkeypatch):
    seen: t.List[t.Any] = []
    args = {"profile": PROFILE, "registries": [M1, M2], "format": "cbor", "lifetime": 900, "timeout": 2,
            "retries": 7, "renew": False, "ignore_changes": ["collected_at"], "oscore_context": "/var/lib/x"}
    rc, result = run_module(args, capsys, monkeypatch, [outcome(M1, "created"), outcome(M2, "created")], seen)
    assert rc == 0
    (profile, registries, settings), = seen
    assert (profile, registries) == (PROFILE, [M1, M2])
    assert settings == _coap.ReportSettings(fmt="cbor", lifetime=900, timeout=2.0, retries=7, renew=False,
                                            check_mode=False, ignore=("collected_at",), oscore_context="/var/lib/x")
    assert result["size"] == len(_coap.encode_cbor(PROFILE))


def test_oscore_credentials_reach_the_client(capsys, monkeypatch):
    seen: t.List[t.Any] = []
    args = {"profile": PROFILE, "registries": [M1], "oscore_credentials": "/etc/nanoedge/w4.json"}
    run_module(args, capsys, monkeypatch, [outcome(M1, "renewed")], seen)
    assert seen[0][2] == _coap.ReportSettings(oscore_credentials="/etc/nanoedge/w4.json")


@pytest.mark.parametrize("option", ["oscore_context", "oscore_credentials"])
def test_oscore_without_its_library_fails_naming_it(capsys, monkeypatch, option):
    monkeypatch.setattr(coap_report._oscore, "oscore_missing", lambda: ["cryptography", "filelock"])
    seen: t.List[t.Any] = []
    rc, result = run_module({"profile": PROFILE, "registries": [M1], option: "/etc/x"}, capsys, monkeypatch, seen=seen)
    assert (rc, seen) == (1, [])
    assert result["msg"].startswith("nanoedge.core.coap_report: Failed to import the required Python library "
                                    "(aiocoap[oscore] (missing: cryptography, filelock)) on ")
    assert " This is required to protect the reports with OSCORE. " in result["msg"]


def test_defaults(capsys, monkeypatch):
    seen: t.List[t.Any] = []
    run_module({"profile": PROFILE, "registries": [M1]}, capsys, monkeypatch, [outcome(M1, "renewed")], seen)
    assert seen[0][2] == _coap.ReportSettings()


def test_result_lists_each_registry(capsys, monkeypatch):
    rc, result = run_module({"profile": PROFILE, "registries": [M1, M2]}, capsys, monkeypatch,
                            [outcome(M1, "renewed", before=PROFILE), outcome(M2, "updated", before={})])
    assert rc == 0
    assert (result["changed"], result["stored"], result["node"]) == (True, 2, "w4")
    assert result["registries"] == [
        {"registry": M1, "stored": True, "changed": False, "action": "renewed", "code": "2.04 Changed",
         "etag": "abcd", "attempts": 1, "error": None},
        {"registry": M2, "stored": True, "changed": True, "action": "updated", "code": "2.04 Changed",
         "etag": "abcd", "attempts": 1, "error": None},
    ]
    assert "diff" not in result


def test_unchanged_everywhere_is_not_a_change(capsys, monkeypatch):
    rc, result = run_module({"profile": PROFILE, "registries": [M1, M2], "_ansible_diff": True}, capsys, monkeypatch,
                            [outcome(M1, "renewed", PROFILE), outcome(M2, "unchanged", PROFILE)])
    assert (rc, result["changed"], result["diff"]) == (0, False, [])


def test_diff_per_differing_registry(capsys, monkeypatch):
    old = dict(PROFILE, capabilities=["pom"])
    rc, result = run_module({"profile": PROFILE, "registries": [M1, M2], "_ansible_diff": True}, capsys, monkeypatch,
                            [outcome(M1, "updated", old), outcome(M2, "created", None)])
    assert rc == 0
    assert result["diff"] == [
        {"before": old, "after": PROFILE, "before_header": M1 + "/profiles/w4 (stored)",
         "after_header": M1 + "/profiles/w4 (reported)"},
        {"before": {}, "after": PROFILE, "before_header": M2 + "/profiles/w4 (stored)",
         "after_header": M2 + "/profiles/w4 (reported)"},
    ]


def test_check_mode(capsys, monkeypatch):
    seen: t.List[t.Any] = []
    rc, result = run_module({"profile": PROFILE, "registries": [M1, M2], "min_acks": 2, "_ansible_check_mode": True},
                            capsys, monkeypatch, [outcome(M1, "would_create"), outcome(M2, "unchanged", PROFILE)], seen)
    assert seen[0][2].check_mode is True
    assert (rc, result["changed"], result["stored"]) == (0, True, 2)


def test_min_acks_failure_names_each_error(capsys, monkeypatch):
    error = M2 + ": no answer within 5s (gave up after 5 attempts)"
    rc, result = run_module({"profile": PROFILE, "registries": [M1, M2], "min_acks": 2}, capsys, monkeypatch,
                            [outcome(M1, "created"), outcome(M2, "failed", error=error)])
    assert rc == 1 and result["failed"] is True
    assert result["msg"] == ("nanoedge.core.coap_report: 1 of 2 registries stored the profile of w4, "
                             "fewer than min_acks=2: " + error)
    assert result["stored"] == 1 and result["changed"] is True  # M1 did store it


def test_min_acks_zero_never_fails(capsys, monkeypatch):
    rc, result = run_module({"profile": PROFILE, "registries": [M1], "min_acks": 0}, capsys, monkeypatch,
                            [outcome(M1, "failed", error="x")])
    assert (rc, result["stored"]) == (0, 0)


@pytest.mark.parametrize("args, message", [
    ({"profile": None, "registries": [M1]}, "no profile: pass profile, or run nanoedge.core.resource_facts first"),
    ({"registries": []}, "registries is empty: give at least one coap://host[:port]"),
    ({"registries": [M1, M1]}, "registries lists the same registry twice"),
    ({"registries": ["coap://m1/x"]},
     "registry 'coap://m1/x': give only coap://host[:port]; the paths are fixed (/profiles/{node})"),
    ({"registries": ["coap://fd00::1:5683"]},
     "registry 'coap://fd00::1:5683': Port could not be cast to integer value as ':1:5683'"),
    ({"registries": [M1], "timeout": 0}, "timeout must be > 0, got 0.0"),
    ({"registries": [M1], "retries": -1}, "retries must be >= 0, got -1"),
    ({"registries": [M1], "min_acks": 2}, "min_acks must be from 0 to the number of registries (1), got 2"),
    ({"registries": [M1], "lifetime": 0}, "lifetime must be from 1 to 4294967295 seconds, got 0"),
])
def test_parameter_errors(capsys, monkeypatch, args, message):
    rc, result = run_module(dict({"profile": PROFILE}, **args), capsys, monkeypatch)
    assert rc == 1
    assert result["msg"] == "nanoedge.core.coap_report: " + message


def test_reports_to_an_ipv6_registry(capsys):
    stored: t.Dict[str, t.Any] = {}
    with ipv6_registry(stored) as url:
        with patch_module_args({"profile": PROFILE, "registries": [url, "coap://[::1]:9"], "min_acks": 1,
                                "timeout": 0.5, "retries": 0}):
            with pytest.raises(SystemExit) as exc:
                coap_report.main()
    result = json.loads(capsys.readouterr().out)
    assert exc.value.code == 0
    assert [(r["registry"], r["action"], r["code"]) for r in result["registries"]] == [
        (url, "created", "2.01 Created"), ("coap://[::1]:9", "failed", None)]
    assert stored == {"w4": PROFILE}


def test_invalid_profile(capsys, monkeypatch):
    def raise_profile_error(profile, registries, settings):
        return _coap.validate_profile(profile)

    monkeypatch.setattr(_coap, "run_report", raise_profile_error)
    with patch_module_args({"profile": dict(PROFILE, network=["carrier-pigeon"]), "registries": [M1]}):
        with pytest.raises(SystemExit):
            coap_report.main()
    result = json.loads(capsys.readouterr().out)
    assert result["msg"] == ("nanoedge.core.coap_report: invalid profile: network[0]: must be one of bluetooth, "
                             "cellular, ethernet, lora, thread, wban, wifi, zigbee, got 'carrier-pigeon'")


def test_missing_aiocoap(capsys, monkeypatch):
    monkeypatch.setattr(_coap, "HAS_AIOCOAP", False)
    monkeypatch.setattr(_coap, "AIOCOAP_IMPORT_ERROR", "ModuleNotFoundError: No module named 'aiocoap'")
    rc, result = run_module({"profile": PROFILE, "registries": [M1]}, capsys, monkeypatch)
    assert rc == 1
    assert result["msg"].startswith("nanoedge.core.coap_report: Failed to import the required Python library "
                                    "(aiocoap) on ")
    assert " This is required to speak CoAP to the registries. " in result["msg"]
