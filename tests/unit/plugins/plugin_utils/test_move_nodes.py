# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import asyncio
import io
import json
import pathlib
import sys
import typing as t

import pytest

from ansible_collections.nanoedge.core.plugins.plugin_utils import _move_nodes as mn
from ansible_collections.nanoedge.core.tests.unit.plugins.plugin_utils.test_deployment import ADDRESSES, services

PLAN = {"strategy": "first_fit",
        "placements": {"alert": "w2", "bot": "w1", "display": "w5", "hr": "w1", "hrv": "w1", "oc": "w3", "spo2": "w1"},
        "by_node": {"w1": ["bot", "hr", "hrv", "spo2"], "w2": ["alert"], "w3": ["oc"], "w5": ["display"]},
        "unplaced": [], "remaining": {}}
MOVE = {"plan": PLAN, "services": services(), "platforms": {"w1": "arm/v7"},
        "start": ["w1"], "rewire": [], "stop": ["w4"]}
HOSTS = dict(ADDRESSES)

# A stand-in for ssh: argv[1] is the host, argv[2] the remote command; it answers for the node as the
# node-side program would, from the behaviour the test names in the environment of the process.
FAKE_SSH = r'''
import json, os, sys
host, command = sys.argv[1], sys.argv[2]
request = json.load(sys.stdin)
log = os.environ["FAKE_SSH_LOG"]
with open(log, "a") as handle:
    handle.write(json.dumps({"host": host, "phase": request["phase"], "command": command,
                             "services": [d["name"] for d in request["deployments"]],
                             "fence": request["fence"]}) + "\n")
if host in os.environ.get("FAKE_SSH_FAIL", "").split(","):
    print(json.dumps({"error": "container nanoedge-svc-spo2: the engine refused it"}))
    sys.exit(1)
if host in os.environ.get("FAKE_SSH_GARBAGE", "").split(","):
    print("Connection refused")
    sys.exit(255)
print(json.dumps({"node": request["node"], "phase": request["phase"], "changed": True,
                  "created": [d["name"] for d in request["deployments"]], "removed": ["spo2"] if request["phase"] == "break" else []}))
'''


def settings(tmp_path: pathlib.Path, **changes: t.Any) -> t.Dict[str, t.Any]:
    fake = tmp_path / "fake_ssh.py"
    fake.write_text(FAKE_SSH)
    value = {"fallback": ["/bin/false"], "ssh": [sys.executable, str(fake)], "hosts": dict(HOSTS),
             "node": {"python": "/usr/bin/python3", "pythonpath": "/opt/nanoedge-agent/lib", "timeout": 30},
             "deploy": {"backend": "container", "backends": {}, "specs": {}, "addresses": ADDRESSES,
                        "pull_registry": "172.30.0.1:5000", "name_prefix": "nanoedge-svc-",
                        "install_dir": "/opt/nanoedge", "directory": "coap://127.0.0.1:5690"},
             "docker": {"socket": "/var/run/docker.sock", "pull": "missing", "restart_policy": "unless-stopped",
                        "network_mode": "host"},
             "fence": {"path": "/var/lib/nanoedge/fence.json", "witness_path": "/var/lib/nanoedge-agent/witness.json"}}
    value.update(changes)
    return value


def test_arguments_as_the_playbook_takes_them(tmp_path: pathlib.Path) -> None:
    move_file = tmp_path / "move.json"
    move_file.write_text(json.dumps({"nanoedge_move": MOVE}))
    site_vars = tmp_path / "site-vars.yml"
    site_vars.write_text("nanoedge_security: true\nnanoedge_fence_term: 1\n")
    path, extra = mn.parse_arguments(["s.json", "--extra-vars", "@%s" % site_vars, "--extra-vars", "@%s" % move_file,
                                      "-e", '{"nanoedge_fence_term": 7, "nanoedge_fence_manager": "m1"}'])
    assert path == "s.json"
    assert extra["nanoedge_fence_term"] == 7  # the last one wins
    assert extra["nanoedge_security"] is True
    assert extra["nanoedge_move"]["stop"] == ["w4"]


@pytest.mark.parametrize("argv, message", [
    ([], "usage"),
    (["s.json", "--limit", "w1"], "unexpected argument '--limit'"),
    (["s.json", "-e"], "unexpected argument '-e'"),
    (["s.json", "-e", "[1, 2]"], "not a mapping"),
])
def test_bad_arguments(argv: t.List[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        mn.parse_arguments(argv)


def test_settings_name_the_missing_key(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "settings.json"
    broken = settings(tmp_path)
    del broken["hosts"]
    path.write_text(json.dumps(broken))
    with pytest.raises(ValueError, match="hosts must be dict"):
        mn.load_settings(str(path))


def test_requests_for_the_nodes_the_move_touches(tmp_path: pathlib.Path) -> None:
    fence = mn.fence_of({"nanoedge_fence_term": 7, "nanoedge_fence_manager": "m1"}, settings(tmp_path))
    make, breaks = mn.plan_requests(MOVE, settings(tmp_path), fence)
    assert sorted(make) == ["w1"] and sorted(breaks) == ["w4"]
    w1 = make["w1"]
    assert (w1["version"], w1["node"], w1["phase"]) == (1, "w1", "make")
    assert [d["name"] for d in w1["deployments"]] == ["bot", "hr", "hrv", "spo2"]
    assert {d["backend"] for d in w1["deployments"]} == {"container"}
    assert w1["deployments"][3]["image"].startswith("172.30.0.1:5000/nanoedge/spo2@sha256:")
    assert w1["docker"]["name_prefix"] == "nanoedge-svc-"
    assert w1["fence"] == {"term": 7, "manager": "m1", "path": "/var/lib/nanoedge/fence.json",
                           "witness_path": "/var/lib/nanoedge-agent/witness.json"}
    # w4 keeps nothing: its break request wants nothing, so it removes what it runs
    assert breaks["w4"]["phase"] == "break" and breaks["w4"]["deployments"] == []


def test_no_fence_without_a_term(tmp_path: pathlib.Path) -> None:
    assert mn.fence_of({}, settings(tmp_path)) is None
    assert mn.fence_of({"nanoedge_fence_term": 0}, settings(tmp_path)) is None


@pytest.mark.parametrize("deploy, hosts, message", [
    ({"backend": "swarm"}, HOSTS, "the deploy backend is swarm"),
    ({"backends": {"bot": "baremetal", "oc": "container"}}, HOSTS, r"service\(s\) bot run bare-metal"),
    ({}, {"w1": "172.30.0.21"}, "no SSH address for w4"),
])
def test_what_the_nodes_leave_to_the_playbook(tmp_path: pathlib.Path, deploy: t.Dict[str, t.Any],
                                              hosts: t.Dict[str, str], message: str) -> None:
    base = settings(tmp_path, hosts=hosts)
    base["deploy"].update(deploy)
    with pytest.raises(mn.MoveError, match=message):
        mn.plan_requests(MOVE, base, None)


def test_a_plan_without_the_service_is_left_to_the_playbook(tmp_path: pathlib.Path) -> None:
    move = dict(MOVE, services=[s for s in MOVE["services"] if s["name"] != "hr"])
    with pytest.raises(mn.MoveError, match="cannot describe what w1 runs"):
        mn.plan_requests(move, settings(tmp_path), None)


def run_apply(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, move: t.Mapping[str, t.Any],
              **env: str) -> t.Tuple[int, str, t.List[t.Dict[str, t.Any]]]:
    log = tmp_path / "ssh.log"
    monkeypatch.setenv("FAKE_SSH_LOG", str(log))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    current = settings(tmp_path)
    make, breaks = mn.plan_requests(move, current, None)
    out = io.StringIO()
    rc = asyncio.run(mn.apply(make, breaks, current, out))
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return rc, out.getvalue(), calls


def test_make_everywhere_then_break(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    move = dict(MOVE, start=["w1", "w5"], stop=["w4", "w3"])
    rc, output, calls = run_apply(tmp_path, monkeypatch, move)
    assert rc == 0
    assert [c["phase"] for c in calls] == ["make", "make", "break", "break"]
    assert sorted(c["host"] for c in calls[:2]) == ["172.30.0.21", "172.30.0.25"]
    assert calls[0]["command"] == ("PYTHONPATH=/opt/nanoedge-agent/lib exec /usr/bin/python3 -m "
                                   "ansible_collections.nanoedge.core.plugins.module_utils._node_apply")
    assert "w1 make: created bot, hr, hrv, spo2" in output
    assert "w4 break: removed spo2" in output


def test_the_ssh_control_folder_is_created_when_missing(tmp_path: pathlib.Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The backup manager never ran a playbook, which would have created it: its first move must not fail."""
    folder = tmp_path / "state" / "cp"
    current = settings(tmp_path)
    current["ssh"] = current["ssh"] + ["-o", "ControlPath=%s/node-%%C" % folder]
    mn.ensure_control_dir(current["ssh"])
    assert folder.is_dir() and folder.stat().st_mode & 0o777 == 0o700
    mn.ensure_control_dir(current["ssh"])  # already there: nothing to do
    mn.ensure_control_dir(["ssh", "-o", "ControlPath=%d/cp-%C"])  # a folder named by tokens: left to ssh
    assert not (pathlib.Path("%d")).exists()


def test_a_failed_start_removes_nothing(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rc, output, calls = run_apply(tmp_path, monkeypatch, MOVE, FAKE_SSH_FAIL="172.30.0.21")
    assert rc == mn.EXIT_FAILED
    assert [c["phase"] for c in calls] == ["make"]
    assert "[ERROR]: w1 make: exit 1: container nanoedge-svc-spo2: the engine refused it" in output
    assert "[ERROR]: nothing was removed" in output


def test_a_node_that_does_not_answer(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rc, output, _calls = run_apply(tmp_path, monkeypatch, MOVE, FAKE_SSH_GARBAGE="172.30.0.24")
    assert rc == mn.EXIT_FAILED
    assert "[ERROR]: w4 break: exit 255: exit 255" in output


def test_main_falls_back_to_the_playbook_and_says_why(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "settings.json"
    current = settings(tmp_path, fallback=["ansible-playbook", "nanoedge.core.move"])
    current["deploy"]["backend"] = "swarm"
    path.write_text(json.dumps(current))
    move_file = tmp_path / "move.json"
    move_file.write_text(json.dumps({"nanoedge_move": MOVE}))
    executed: t.List[t.List[str]] = []
    monkeypatch.setattr(mn.os, "execvp", lambda program, argv: executed.append(argv))
    mn.main([str(path), "--extra-vars", "@%s" % move_file, "-e", '{"nanoedge_fence_term": 3}'])
    assert executed == [["ansible-playbook", "nanoedge.core.move", "--extra-vars", "@%s" % move_file,
                         "-e", '{"nanoedge_fence_term": 3}']]
    assert "the deploy backend is swarm: the playbook moves it" in capsys.readouterr().out


def test_main_without_a_move(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(settings(tmp_path)))
    assert mn.main([str(path), "-e", "{}"]) == mn.EXIT_USAGE
    assert "[ERROR]: no nanoedge_move in the extra variables" in capsys.readouterr().out
