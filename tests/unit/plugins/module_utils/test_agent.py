# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The agent program the nanoedge.core.agent role installs: configuration,
discovery on this machine, and the exit status of one report (--once) when
registries fail; and its entry point, which finds the collection's code. The
service's parts are tested in tests/unit/plugins/module_utils/_agent/; its
run inside a real node is in tests/integration/test_agent_role.py."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest

from ansible_collections.nanoedge.core.plugins.module_utils import _agent as package
from ansible_collections.nanoedge.core.plugins.module_utils._agent import config as agent
from ansible_collections.nanoedge.core.plugins.module_utils._profile import validate_profile

PROGRAM = Path(__file__).resolve().parents[4] / "roles" / "agent" / "files" / "nanoedge_agent.py"
LIB = str(Path(__file__).resolve().parents[7])  # the folder holding ansible_collections


def write_config(tmp_path: Path, **config: t.Any) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return str(path)


@pytest.mark.parametrize("config, message", [
    ({"lifetime": 900}, "registries is required"),
    ({"registries": [], "lifetime": 900}, "registries is empty"),
    ({"registries": ["coap://m1"], "lifetime": "900"}, "lifetime has the wrong type (str)"),
    ({"registries": ["coap://m1"], "lifetime": True}, "lifetime has the wrong type (bool)"),
    ({"registries": ["coap://m1"], "lifetime": 900, "colour": "red"}, "unknown key(s) colour"),
    ({"registries": ["coap://m1"], "lifetime": 0}, "lifetime must be at least 1, got 0"),
    ({"registries": ["coap://m1"], "lifetime": 900, "beat_interval": 0}, "beat_interval must be from 0.05 to 60, got 0"),
    ({"registries": ["coap://m1"], "lifetime": 900, "debounce": -1}, "debounce must be from 0 to 60, got -1"),
    ({"registries": ["coap://m1"], "lifetime": 900, "poll_interval": 0.01},
     "poll_interval must be from 0.05 to 3600, got 0.01"),
    ({"registries": ["coap://m1"], "lifetime": 900, "interval": 0.5},
     "interval must be 0 (a third of the lifetime) or at least 1, got 0.5"),
    ({"registries": ["coap://m1"], "lifetime": 900, "state_dir": 1}, "state_dir has the wrong type (int)"),
    ({"registries": ["coap://m1"], "lifetime": 900, "directory_port": 70000},
     "directory_port must be from 0 to 65535, got 70000"),
    ({"registries": ["coap://m1"], "lifetime": 900, "directory_renew": 0.5},
     "directory_renew must be from 1 to 3600, got 0.5"),
])
def test_config_errors(tmp_path, config, message):
    path = write_config(tmp_path, **config)
    with pytest.raises(agent.AgentError) as info:
        agent.load_config(path)
    assert str(info.value) == "configuration %s: %s" % (path, message)


def test_config_defaults(tmp_path):
    config = agent.load_config(write_config(tmp_path, registries=["coap://m1"], lifetime=900))
    assert config == {"registries": ["coap://m1"], "lifetime": 900, "format": "json", "timeout": 5, "retries": 4,
                      "min_acks": 1, "node": "", "root": "/", "storage_path": "/", "capabilities": [], "labels": {},
                      "device_catalog": [], "oscore_context": "", "oscore_credentials": "",
                      # a configuration written for the timer reports every third of the lease, as the timer ran
                      "interval": 300.0, "jitter": 0, "beat_interval": 1.0, "debounce": 0.5, "poll_interval": 1.0,
                      "state_dir": "/var/lib/nanoedge-agent", "directory_port": 0, "directory_renew": 5}


def test_config_of_the_service(tmp_path):
    config = agent.load_config(write_config(tmp_path, registries=["coap://m1"], lifetime=30, interval=10, jitter=2,
                                            beat_interval=0.5, debounce=0.2, poll_interval=2, state_dir="/srv/a"))
    assert [config[key] for key in ("interval", "jitter", "beat_interval", "debounce", "poll_interval", "state_dir")] \
        == [10, 2, 0.5, 0.2, 2, "/srv/a"]


def test_unreadable_config(tmp_path, capsys):
    assert package.main(["--config", str(tmp_path / "missing.json"), "--lib", LIB]) == 2
    assert capsys.readouterr().err.startswith("nanoedge-agent: configuration %s: [Errno 2] No such file" % (
        tmp_path / "missing.json"))


def test_print_discovers_this_machine(tmp_path, capsys):
    path = write_config(tmp_path, registries=["coap://m1"], lifetime=900, node="n1", labels={"room": "3"},
                        capabilities=["dd"])
    assert package.main(["--config", path, "--lib", LIB, "--print"]) == 0
    profile = json.loads(capsys.readouterr().out)
    validate_profile(profile)
    assert (profile["node"], profile["labels"], "dd" in profile["capabilities"]) == ("n1", {"room": "3"}, True)


def test_bad_discovery_input(tmp_path, capsys):
    path = write_config(tmp_path, registries=["coap://m1"], lifetime=900, node="Not A Node")
    assert package.main(["--config", path, "--lib", LIB, "--once"]) == 2
    assert capsys.readouterr().err.startswith("nanoedge-agent: discovery: ")


def test_exit_status_when_no_registry_stores(tmp_path, capsys):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        dead = "coap://127.0.0.1:%d" % sock.getsockname()[1]
    path = write_config(tmp_path, registries=[dead], lifetime=900, node="n1", retries=0, timeout=1)
    assert package.main(["--config", path, "--lib", LIB, "--once"]) == 1
    err = capsys.readouterr().err
    assert "nanoedge-agent: %s: failed: %s: Connection refused" % (dead, dead) in err
    assert err.endswith("nanoedge-agent: 0 of 1 registries stored the profile of n1, fewer than min_acks=1\n")


def run_entry_point(*args: str) -> subprocess.CompletedProcess:
    # Only --lib may tell the program where the code is: not the test runner's PYTHONPATH.
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    return subprocess.run([sys.executable, str(PROGRAM)] + list(args), capture_output=True, text=True, check=False,
                          timeout=60, env=env)


def test_entry_point_runs_the_package(tmp_path):
    path = write_config(tmp_path, registries=["coap://m1"], lifetime=900, node="n1")
    proc = run_entry_point("--config", path, "--lib", LIB, "--print")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["node"] == "n1"


@pytest.mark.parametrize("form", ["separate", "joined"])
def test_entry_point_without_the_code(tmp_path, form):
    empty = tmp_path / "lib"
    empty.mkdir()
    lib_args = ["--lib", str(empty)] if form == "separate" else ["--lib=%s" % empty]
    proc = run_entry_point("--print", *lib_args)
    assert proc.returncode == 2
    assert proc.stderr == (
        "nanoedge-agent: cannot import the discovery and reporting code from %s/ansible_collections/nanoedge/core/"
        "plugins/module_utils (No module named 'ansible_collections'); install it with the nanoedge.core.agent role\n"
        % empty)


def test_entry_point_runs_the_service_until_stopped(tmp_path):
    """Without --once the program is the service: it starts, beats (here to nobody) and stops cleanly on SIGTERM."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        dead = "coap://127.0.0.1:%d" % sock.getsockname()[1]
    (tmp_path / "state").mkdir()
    path = write_config(tmp_path, registries=[dead], lifetime=900, node="n1", retries=0, timeout=1,
                        root=str(tmp_path), state_dir=str(tmp_path / "state"))
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    proc = subprocess.Popen([sys.executable, str(PROGRAM), "--config", path, "--lib", LIB],  # pylint: disable=consider-using-with
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines = [proc.stderr.readline()]
        while lines[-1] and "watching" not in lines[-1]:  # the fixture root's missing files come first
            lines.append(proc.stderr.readline())
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert lines[0] == "nanoedge-agent: warning: /proc/cpuinfo: missing\n"
    assert lines[-1] == ("nanoedge-agent: n1: watching inotify on 0 folder(s), a look every 1s; beats every 1s,"
                         " a full report every 300s\n")
    assert proc.returncode == 0, err
