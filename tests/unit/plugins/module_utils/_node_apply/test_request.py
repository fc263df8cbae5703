# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The request of a node-side apply: each bad field refused (exit 3) with its name, before anything is done."""

from __future__ import annotations

import copy
import io
import json
import typing as t

import pytest

from ansible_collections.nanoedge.core.plugins.module_utils._node_apply import cli
from ansible_collections.nanoedge.core.plugins.module_utils._node_apply.request import (
    Docker,
    Fence,
    check_request,
    memory_bytes,
)
from ansible_collections.nanoedge.core.tests.unit.plugins.module_utils._node_apply.data import (
    FakeEngine,
    fake_stat,
    request,
)

PREFIX = "nanoedge.core node apply: "


def with_field(path: str, value: t.Any) -> t.Dict[str, t.Any]:
    """The valid request with the field at ``path`` (dots; a number indexes a list) set to ``value``,
    or deleted when ``value`` is ``DELETE``."""
    result = request()
    *parents, last = path.split(".")
    target = result  # type: t.Any
    for key in parents:
        target = target[int(key)] if key.isdigit() else target[key]
    key = int(last) if last.isdigit() else last
    if value is DELETE:
        del target[key]
    else:
        target[key] = value
    return result


DELETE = object()


def answer(data: bytes, engine: t.Optional[FakeEngine] = None) -> t.Tuple[int, t.Dict[str, t.Any], FakeEngine]:
    """The exit code and the result of ``data`` on a fake engine and a node with NODE_FILES (no folder is made)."""
    engine = engine or FakeEngine()
    out = io.StringIO()
    code = cli.run(io.BytesIO(data), out, engine_factory=lambda socket: engine, stat_path=fake_stat(),
                   create_folder=lambda path: None)
    assert out.getvalue().count("\n") == 1
    return code, json.loads(out.getvalue()), engine


@pytest.mark.parametrize("path, value, message", [
    ("version", 2, "version: must be 1, got 2"),
    ("version", True, "version: must be 1, got True"),
    ("node", "W 1", "node: must be a node name, got 'W 1'"),
    ("phase", "stop", "phase: must be make or break, got 'stop'"),
    ("extra", 1, "request: unknown key(s) 'extra'"),
    ("fence", [], "fence: must be an object or null"),
    ("fence.term", 0, "fence.term must be an integer from 1 to 9007199254740992, got 0"),
    ("fence.term", "7", "fence.term must be an integer from 1 to 9007199254740992, got '7'"),
    ("fence.manager", "m 1", "fence.manager must be a name (printable, no spaces), got 'm 1'"),
    ("fence.path", "fence.json", "fence.path: must be an absolute path, got 'fence.json'"),
    ("fence.witness_path", 3, "fence.witness_path: must be an absolute path, got 3"),
    ("fence.lease", 3, "fence: unknown key(s) 'lease'"),
    ("docker", None, "docker: must be an object"),
    ("docker.socket", "docker.sock", "docker.socket: must be an absolute path, got 'docker.sock'"),
    ("docker.pull", "sometimes", "docker.pull: must be one of missing, always, never, got 'sometimes'"),
    ("docker.restart_policy", "maybe",
     "docker.restart_policy: must be one of no, always, unless-stopped, on-failure, got 'maybe'"),
    ("docker.network_mode", "", "docker.network_mode: must be a network mode (host, bridge or a network's name), "
                                "got ''"),
    ("docker.name_prefix", "Svc-", "docker.name_prefix: must be lower-case letters, digits, '.', '_' or '-', "
                                   "got 'Svc-'"),
    ("docker.tls", True, "docker: unknown key(s) 'tls'"),
    ("deployments", {}, "deployments: must be a list"),
    ("deployments.0", "spo2", "deployments[0]: must be an object (a description of nanoedge.core.deployments)"),
    ("deployments.0.name", "Spo2", "deployments[0].name: must be a service name, got 'Spo2'"),
    ("deployments.0.backend", "baremetal",
     "deployments[0] (spo2).backend: must be container (the node runs only containers itself), got 'baremetal'"),
    ("deployments.0.node", "w2", "deployments[0] (spo2).node: must be the request's node 'w1', got 'w2'"),
    ("deployments.0.container_name", "spo2",
     "deployments[0] (spo2).container_name: must be 'nanoedge-svc-spo2' (docker.name_prefix and the name), "
     "got 'spo2'"),
    ("deployments.0.image", "", "deployments[0] (spo2).image: must be an image reference, got ''"),
    ("deployments.0.platform", "arm64", "deployments[0] (spo2).platform: must be null or linux/<arch>, got 'arm64'"),
    ("deployments.0.env", {"A": 1}, "deployments[0] (spo2).env: must be an object of variable name to string"),
    ("deployments.0.env", {"A-B": "1"}, "deployments[0] (spo2).env: must be an object of variable name to string"),
    ("deployments.0.labels", [], "deployments[0] (spo2).labels: must be an object of string to string"),
    ("deployments.0.labels", {"io.nanoedge.service": "hr"},
     "deployments[0] (spo2).labels: must name the service in io.nanoedge.service, got 'hr'"),
    ("deployments.0.cpus", -1, "deployments[0] (spo2).cpus: must be a positive number or null, got -1"),
    ("deployments.0.cpus", True, "deployments[0] (spo2).cpus: must be a positive number or null, got True"),
    ("deployments.0.memory", "64Q", "deployments[0] (spo2).memory: memory must be a size such as 64M, got '64Q'"),
    ("deployments.0.memory", 64, "deployments[0] (spo2).memory: memory must be a size such as 64M, got 64"),
    ("deployments.0.port", {"number": 0}, "deployments[0] (spo2).port: must be null or {number: 1-65535, "
                                          "protocol: udp|tcp}, got {'number': 0}"),
    ("deployments.0.io", DELETE, "deployments[0] (spo2).io: must be a list (descriptions of "
                                 "nanoedge.core.deployments)"),
    ("deployments.0.io.0", {"host_path": "/dev/x"},
     "deployments[0] (spo2).io[0]: must be an object with exactly host_path, container_path, mode, kind, env"),
    ("deployments.0.io.0.host_path", "dev/x", "deployments[0] (spo2).io[0].host_path: must be an absolute path"),
    ("deployments.0.io.1.container_path", "", "deployments[0] (spo2).io[1].container_path: must be an absolute path"),
    ("deployments.0.io.0.mode", "rwx", "deployments[0] (spo2).io[0].mode: must be ro or rw, got 'rwx'"),
    ("deployments.0.io.0.kind", None, "deployments[0] (spo2).io[0].kind: must be a string"),
    ("deployments.0.io.0.env", "1X", "deployments[0] (spo2).io[0].env: must be an environment variable name or null"),
    ("deployments.1.name", "spo2", "deployments[1] (spo2).container_name: must be 'nanoedge-svc-spo2' "
                                   "(docker.name_prefix and the name), got 'nanoedge-svc-bot'"),
])
def test_each_bad_field_is_named_and_nothing_is_done(path: str, value: t.Any, message: str) -> None:
    code, result, engine = answer(json.dumps(with_field(path, value)).encode())
    assert (code, result) == (3, {"error": PREFIX + message, "changed": False})
    assert engine.calls == []


def test_a_service_given_twice() -> None:
    value = request()
    value["deployments"].append(copy.deepcopy(value["deployments"][0]))
    code, result, _engine = answer(json.dumps(value).encode())
    assert (code, result["error"]) == (3, PREFIX + "deployments: service(s) spo2 given more than once")


@pytest.mark.parametrize("data, message", [
    (b"", "request: not JSON (Expecting value: line 1 column 1 (char 0))"),
    (b"{", "request: not JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"),
    (b"\xff", "request: not UTF-8 text"),
    (b"[]", "request: must be a JSON object"),
    (b" " * cli.MAX_REQUEST + b"{}", "request: more than 1048576 bytes"),
])
def test_bounded_and_well_formed_input(data: bytes, message: str) -> None:
    code, result, _engine = answer(data)
    assert (code, result) == (3, {"error": PREFIX + message, "changed": False})


def test_just_under_the_bound_is_read() -> None:
    data = json.dumps(request(fence=None)).encode()
    code, result, _engine = answer(data + b" " * (cli.MAX_REQUEST - len(data)))
    assert (code, result["created"]) == (0, ["nanoedge-svc-spo2", "nanoedge-svc-bot"])


def test_defaults() -> None:
    value = request(fence={"term": 3, "manager": "m2"}, docker={})
    checked = check_request(value)
    assert checked.fence == Fence(3, "m2", "/var/lib/nanoedge/fence.json", "/var/lib/nanoedge-agent/witness.json")
    assert checked.docker == Docker("/var/run/docker.sock", "missing", "unless-stopped", "host", "nanoedge-svc-")


@pytest.mark.parametrize("pull, expected", [(True, "always"), (False, "missing"), ("never", "never")])
def test_pull_as_docker_container_takes_it(pull: t.Any, expected: str) -> None:
    assert check_request(request(docker={"pull": pull})).docker.pull == expected


@pytest.mark.parametrize("value, expected", [
    (None, None), ("64M", 64 << 20), ("64m", 64 << 20), ("64MB", 64 << 20), ("1G", 1 << 30), ("512K", 512 << 10),
    ("1000", 1000),
])
def test_memory_bytes(value: t.Any, expected: t.Optional[int]) -> None:
    assert memory_bytes(value) == expected


def test_the_answer_of_an_applied_request() -> None:
    engine = FakeEngine(images=["10.0.0.1:5000/nanoedge/spo2@sha256:" + "ab" * 32,
                                "10.0.0.1:5000/nanoedge/bot@sha256:" + "ab" * 32])
    code, result, _engine = answer(json.dumps(request(fence=None)).encode(), engine)
    assert (code, result["created"]) == (0, ["nanoedge-svc-spo2", "nanoedge-svc-bot"])
    assert engine.calls == [("create", "nanoedge-svc-spo2"), ("start", "nanoedge-svc-spo2"),
                            ("create", "nanoedge-svc-bot"), ("start", "nanoedge-svc-bot")]


def test_a_failure_names_the_program_and_the_node() -> None:
    code, result, _engine = answer(json.dumps(request(fence=None, docker={"pull": "never"})).encode())
    assert code == 1
    assert result["error"] == (PREFIX[:-2] + " on w1: image 10.0.0.1:5000/nanoedge/spo2@sha256:%s is not on node w1, "
                               "and docker.pull is never" % ("ab" * 32))


def test_an_unexpected_fault_still_answers_json() -> None:
    engine = FakeEngine()
    engine.inspect_container = None  # type: ignore[assignment,method-assign]
    code, result, _engine = answer(json.dumps(request(fence=None)).encode(), engine)
    assert (code, result["error"], result["changed"]) == (
        1, PREFIX[:-2] + " on w1: unexpected TypeError: 'NoneType' object is not callable", False)
