# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""nanoedge.core.coap_report through real ansible-playbook runs against the
real registry server (one subprocess for the whole module)."""

from __future__ import annotations

import json
import re
import socket
import sys
import typing as t

import pytest

from _registry_server import RegistryServer, profile
from ansible_collections.nanoedge.core.plugins.module_utils import _coap
from ansible_collections.nanoedge.core.plugins.module_utils._canonical_json import canonical_json

INVENTORY = json.dumps({"all": {"hosts": {"localhost": {
    "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}})


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[RegistryServer]:
    with RegistryServer(tmp_path_factory.mktemp("registry") / "registry.sqlite") as server:
        yield server


@pytest.fixture(scope="module")
def dead_url() -> str:
    """A port nothing listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return "coap://127.0.0.1:%d" % sock.getsockname()[1]


def report_play(args: t.Dict[str, t.Any], vars_: t.Optional[t.Dict[str, t.Any]] = None,
                pre_tasks: t.Sequence[t.Dict[str, t.Any]] = ()) -> str:
    play = {"hosts": "localhost", "gather_facts": False, "vars": vars_ or {},
            "tasks": list(pre_tasks) + [{"name": "report", "nanoedge.core.coap_report": args}]}
    return json.dumps([play])


RECAP_RE = re.compile(r"^localhost\s+:\s+(.*)$", re.M)


def run_json(run_playbook: t.Callable[..., t.Tuple[int, str]], playbook: str, *extra: str
             ) -> t.Tuple[int, t.Dict[str, t.Any], t.Dict[str, int]]:
    """(rc, result of the task named 'report', recap counters of localhost)."""
    rc, output = run_playbook(playbook, INVENTORY, "-v", *extra)
    try:
        task_output = output[output.index("TASK [report]"):]
        start = task_output.index("[localhost]")
        start = task_output.index("=> ", start) + 3
        result = json.JSONDecoder().raw_decode(task_output[start:])[0]
        recap = dict(item.split("=") for item in RECAP_RE.search(output).group(1).split())
    except (ValueError, AttributeError):
        raise AssertionError("unexpected ansible-playbook output (rc %d):\n%s" % (rc, output)) from None
    return rc, result, {key: int(value) for key, value in recap.items()}


def stored(live: RegistryServer) -> t.Dict[str, t.Any]:
    return _coap.run_fetch_profiles(live.url, timeout=5)


def test_first_run_changed_second_run_unchanged(live, run_playbook):
    args = {"profile": "{{ p }}", "registries": [live.url], "lifetime": 600}
    rc, result, stats = run_json(run_playbook, report_play(args, {"p": profile("idem1")}))
    assert rc == 0, result
    assert (stats["changed"], result["changed"], result["node"], result["stored"]) == (1, True, "idem1", 1)
    (entry,) = result["registries"]
    assert (entry["action"], entry["code"], entry["error"]) == ("created", "2.01 Created", None)
    assert stored(live)["idem1"] == profile("idem1")

    # a new measurement only: renewed, not changed; the registry has the new figures
    fresh = profile("idem1", collected_at="2026-11-26T04:00:00Z", cpu={"cores": 4, "bogomips": 89.6, "load1": 2.5})
    rc, result, stats = run_json(run_playbook, report_play(args, {"p": fresh}))
    assert rc == 0, result
    assert (stats["changed"], stats["ok"], result["changed"]) == (0, 1, False)
    assert result["registries"][0]["action"] == "renewed"
    assert stored(live)["idem1"]["cpu"]["load1"] == 2.5


def test_check_mode_writes_nothing(live, run_playbook):
    rc, result, stats = run_json(run_playbook, report_play(
        {"profile": "{{ p }}", "registries": [live.url]}, {"p": profile("checked")}), "--check")
    assert rc == 0, result
    assert (stats["changed"], result["registries"][0]["action"], result["stored"]) == (1, "would_create", 1)
    assert "checked" not in stored(live)


def test_diff_shows_the_change(live, run_playbook):
    _coap.run_report(profile("diffed"), [live.url], _coap.ReportSettings())
    changed = profile("diffed", capabilities=["bot", "pom"])
    playbook = report_play({"profile": "{{ p }}", "registries": [live.url]}, {"p": changed})
    rc, output = run_playbook(playbook, INVENTORY, "--diff")
    assert rc == 0, output
    assert "--- before: %s/profiles/diffed (stored)" % live.url in output
    assert "+++ after: %s/profiles/diffed (reported)" % live.url in output
    added = [line for line in output.splitlines() if line.startswith("+") and "bot" in line]
    assert added, output
    assert "changed: [localhost]" in output
    assert stored(live)["diffed"]["capabilities"] == ["bot", "pom"]


def test_one_registry_down(live, dead_url, run_playbook):
    base = {"profile": "{{ p }}", "registries": [live.url, dead_url], "timeout": 0.5, "retries": 1}
    rc, result, _stats = run_json(run_playbook, report_play(base, {"p": profile("halfway")}))
    assert rc == 0, result
    live_entry, dead_entry = result["registries"]
    assert (live_entry["action"], dead_entry["action"], result["stored"]) == ("created", "failed", 1)
    # nothing listens there: the kernel answers ICMP port unreachable
    refused = "%s: Connection refused (gave up after 2 attempts)" % dead_url
    assert dead_entry["error"] == refused

    rc, result, stats = run_json(run_playbook, report_play(dict(base, min_acks=2), {"p": profile("halfway")}))
    assert rc != 0 and stats["failed"] == 1
    assert result["msg"] == (
        "nanoedge.core.coap_report: 1 of 2 registries stored the profile of halfway, fewer than min_acks=2: "
        "%s" % refused)
    assert [entry["action"] for entry in result["registries"]] == ["renewed", "failed"]


def test_cbor(live, run_playbook):
    rc, result, _stats = run_json(run_playbook, report_play(
        {"profile": "{{ p }}", "registries": [live.url], "format": "cbor"}, {"p": profile("cborish")}))
    assert rc == 0, result
    assert result["changed"] is True
    assert result["size"] == len(_coap.encode_cbor(profile("cborish"))) < len(canonical_json(profile("cborish")))
    assert stored(live)["cborish"] == profile("cborish")


def test_profile_defaults_to_the_fact(live, run_playbook):
    set_fact = {"name": "fact", "ansible.builtin.set_fact": {"ansible_facts": {"nanoedge_profile": "{{ p }}"}}}
    rc, result, _stats = run_json(run_playbook, report_play({"registries": [live.url]}, {"p": profile("factual")},
                                                            pre_tasks=[set_fact]))
    assert rc == 0, result
    assert (result["node"], result["changed"]) == ("factual", True)

    rc, result, _stats = run_json(run_playbook, report_play({"registries": [live.url]}))
    assert rc != 0
    assert result["msg"] == ("nanoedge.core.coap_report: no profile given and ansible_facts.nanoedge_profile is not "
                             "set; run nanoedge.core.resource_facts first or pass profile")


@pytest.mark.parametrize("args, message", [
    ({"profile": "{{ bad }}"}, "nanoedge.core.coap_report: invalid profile: cpu.cores: must be an integer >= 1, got 0"),
    ({"profile": "{{ p }}", "min_acks": 3},
     "nanoedge.core.coap_report: min_acks must be from 0 to the number of registries (1), got 3"),
    ({"profile": "{{ p }}", "registries": ["http://m1"]},
     "nanoedge.core.coap_report: registry 'http://m1': scheme must be coap://, got 'http://'"),
])
def test_errors(live, run_playbook, args, message):
    bad = profile("bad", cpu={"cores": 0, "bogomips": None, "load1": None})
    rc, result, _stats = run_json(run_playbook, report_play(dict({"registries": [live.url]}, **args),
                                                            {"p": profile("fine"), "bad": bad}))
    assert rc != 0
    assert result["msg"] == message
    assert "bad" not in stored(live) and "fine" not in stored(live)


def write_context(folder: t.Any, sender: str, recipient: str, secret: str) -> str:
    folder.mkdir(parents=True)
    (folder / "settings.json").write_text(json.dumps(
        {"sender-id_hex": sender, "recipient-id_hex": recipient, "secret_ascii": secret}))
    return str(folder)


def test_oscore(run_playbook, tmp_path):
    """Security on: the worker's own OSCORE context writes its own profile, nothing else does."""
    secret = "w-secure-%s" % tmp_path.name
    write_context(tmp_path / "server" / "w-secure", "01", "02", secret)
    client = write_context(tmp_path / "client", "02", "01", secret)
    with RegistryServer(tmp_path / "registry" / "registry.sqlite",
                        "--oscore-contexts", str(tmp_path / "server")) as secured:
        args = {"profile": "{{ p }}", "registries": [secured.url], "oscore_context": client, "retries": 0}
        rc, result, _stats = run_json(run_playbook, report_play(args, {"p": profile("w-secure")}))
        assert rc == 0, result
        assert (result["changed"], result["registries"][0]["action"]) == (True, "created")
        rc, result, stats = run_json(run_playbook, report_play(args, {"p": profile("w-secure")}))
        assert (rc, stats["changed"], result["registries"][0]["action"]) == (0, 0, "renewed")

        rc, result, _stats = run_json(run_playbook, report_play(args, {"p": profile("w-other")}))
        assert rc != 0
        assert result["registries"][0]["error"] == (
            "%s: PUT /profiles/w-other answered 4.01 Unauthorized: nanoedge.core.registry: OSCORE identity "
            "'w-secure' may not write /profiles/w-other" % secured.url)

        del args["oscore_context"]
        rc, result, _stats = run_json(run_playbook, report_play(args, {"p": profile("w-secure", labels={"x": "y"})}))
        assert rc != 0
        assert result["registries"][0]["error"] == (
            "%s: PUT /profiles/w-secure answered 4.01 Unauthorized: nanoedge.core.registry: writing "
            "/profiles/w-secure needs OSCORE as node 'w-secure'" % secured.url)
        assert sorted(_coap.run_fetch_profiles(secured.url)) == ["w-secure"]
        assert _coap.run_fetch_profiles(secured.url)["w-secure"]["labels"] == {}
