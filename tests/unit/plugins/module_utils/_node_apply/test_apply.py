# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The decisions of a node-side apply against a fake engine: what is left, started, created, removed."""

from __future__ import annotations

import typing as t

import pytest

from ansible_collections.nanoedge.core.plugins.module_utils._fence import FenceCorrupt, FenceRefused, FenceResult, Seen
from ansible_collections.nanoedge.core.plugins.module_utils._node_apply.apply import Apply, decide, stat_type
from ansible_collections.nanoedge.core.plugins.module_utils._node_apply.container import create_body
from ansible_collections.nanoedge.core.plugins.module_utils._node_apply.request import check_request
from ansible_collections.nanoedge.core.tests.unit.plugins.module_utils._node_apply.data import (
    IMAGE,
    FakeEngine,
    container,
    description,
    fake_stat,
    finished,
    request,
)

SPO2, BOT = "nanoedge-svc-spo2", "nanoedge-svc-bot"


class Fence:
    """Records each call; refuses from the ``refuse_at``-th call on (1 is the first)."""

    def __init__(self, refuse_at: int = 0, corrupt: bool = False) -> None:
        self.calls = []  # type: t.List[t.Tuple[t.Any, ...]]
        self.refuse_at, self.corrupt = refuse_at, corrupt

    def __call__(self, path: str, witness_path: str, term: int, manager: str) -> FenceResult:
        self.calls.append((path, witness_path, term, manager))
        if self.corrupt:
            raise FenceCorrupt("fence: the fence file %s is corrupt: it is not JSON" % path)
        if self.refuse_at and len(self.calls) >= self.refuse_at:
            raise FenceRefused("fence: refused the change from manager m1 at term 7: this node has seen term 8 "
                               "(manager m2)", 8)
        return FenceResult(len(self.calls) == 1, None, Seen(0, None), Seen(6, "m3"))


def wanted_labels(name: str) -> t.Dict[str, str]:
    """The labels of the container the node wants for ``name``."""
    desc = next(d for d in request()["deployments"] if d["name"] == name)
    return finished(desc)["labels"]


def run(engine: FakeEngine, phase: str = "make", fence: t.Optional[Fence] = None,
        **fields: t.Any) -> t.Tuple[int, t.Dict[str, t.Any], t.List[str]]:
    folders = []  # type: t.List[str]
    code, result = Apply(check_request(request(phase, **fields)), engine, fence=fence or Fence(),
                         stat_path=fake_stat(), create_folder=folders.append).run()
    return code, result, folders


def result_of(changed: bool, fence_changed: bool = True, phase: str = "make", **lists: t.List[str]) -> t.Dict[str, t.Any]:
    result = {"node": "w1", "phase": phase, "changed": changed, "fence": {"term": 7, "changed": fence_changed},
              "unchanged": [], "started": [], "created": [], "removed": [], "folders": []}
    result.update(lists)
    return result


def test_a_node_with_nothing_creates_both_and_the_state_folder() -> None:
    engine = FakeEngine()
    code, result, folders = run(engine)
    assert code == 0
    assert result == result_of(True, created=[SPO2, BOT], folders=["/var/lib/nanoedge/spo2"])
    assert folders == ["/var/lib/nanoedge/spo2"]
    assert engine.calls == [("pull", IMAGE % "spo2", "None"), ("pull", IMAGE % "bot", "None"),
                            ("create", SPO2), ("start", SPO2), ("create", BOT), ("start", BOT)]
    spo2 = finished(request()["deployments"][0])
    assert engine.created[SPO2] == create_body(spo2, check_request(request()).docker)
    assert engine.created[SPO2]["HostConfig"]["Devices"] == [
        {"PathOnHost": "/dev/ttyUSB0", "PathInContainer": "/dev/ttyUSB0", "CgroupPermissions": "r"}]


@pytest.mark.parametrize("spo2, bot, expected, calls", [
    (container(SPO2, wanted_labels("spo2")), container(BOT, wanted_labels("bot")),
     {"unchanged": [SPO2, BOT]}, []),
    (container(SPO2, wanted_labels("spo2"), running=False), container(BOT, wanted_labels("bot")),
     {"unchanged": [BOT], "started": [SPO2]}, [("start", SPO2)]),
    (container(SPO2, dict(wanted_labels("spo2"), **{"io.nanoedge.spec": "sha256:" + "0" * 64})),
     container(BOT, wanted_labels("bot")),
     {"unchanged": [BOT], "created": [SPO2]}, [("remove", SPO2), ("create", SPO2), ("start", SPO2)]),
    # a container started before the spec label existed is replaced once
    (container(SPO2, {"io.nanoedge.service": "spo2"}, running=False), container(BOT, wanted_labels("bot")),
     {"unchanged": [BOT], "created": [SPO2]}, [("remove", SPO2), ("create", SPO2), ("start", SPO2)]),
])
def test_decisions(spo2: t.Dict[str, t.Any], bot: t.Dict[str, t.Any], expected: t.Dict[str, t.List[str]],
                   calls: t.List[t.Tuple[str, str]]) -> None:
    # the state folder is there: only the containers are decided
    engine = FakeEngine([spo2, bot], images=[IMAGE % "spo2", IMAGE % "bot"])
    folders = []  # type: t.List[str]
    code, result = Apply(check_request(request()), engine, fence=Fence(), create_folder=folders.append,
                         stat_path=fake_stat({"/dev/ttyUSB0": 0o20660, "/var/lib/nanoedge/spo2": 0o40755})).run()
    assert code == 0
    assert result == result_of(bool(calls), **expected)
    assert engine.calls == calls and folders == []


@pytest.mark.parametrize("current, action", [
    (None, "create"),
    ({"Config": {"Labels": {"io.nanoedge.spec": "sha256:1"}}, "State": {"Running": True}}, "unchanged"),
    ({"Config": {"Labels": {"io.nanoedge.spec": "sha256:1"}}, "State": {"Running": False}}, "start"),
    ({"Config": {"Labels": {"io.nanoedge.spec": "sha256:2"}}, "State": {"Running": True}}, "recreate"),
    ({"Config": {"Labels": None}, "State": {}}, "recreate"),
    ({}, "recreate"),
])
def test_decide(current: t.Any, action: str) -> None:
    assert decide({"labels": {"io.nanoedge.spec": "sha256:1"}}, current) == action


@pytest.mark.parametrize("pull, images, pulled", [
    ("missing", [IMAGE % "spo2"], [IMAGE % "bot"]),
    ("always", [IMAGE % "spo2", IMAGE % "bot"], [IMAGE % "spo2", IMAGE % "bot"]),
    ("never", [IMAGE % "spo2", IMAGE % "bot"], []),
])
def test_pull_policies(pull: str, images: t.List[str], pulled: t.List[str]) -> None:
    engine = FakeEngine(images=images)
    code, _result, _folders = run(engine, docker=dict(request()["docker"], pull=pull))
    assert code == 0
    assert [call[1] for call in engine.calls if call[0] == "pull"] == pulled


def test_pull_never_without_the_image_changes_no_container() -> None:
    engine = FakeEngine(images=[IMAGE % "spo2"])
    code, result, folders = run(engine, docker=dict(request()["docker"], pull="never"))
    assert (code, result["error"]) == (1, "image %s is not on node w1, and docker.pull is never" % (IMAGE % "bot"))
    assert engine.calls == [] and folders == [] and result["changed"] is False


def test_a_failed_pull_leaves_the_old_containers_running() -> None:
    old = container(SPO2, {"io.nanoedge.service": "spo2"})
    engine = FakeEngine([old])
    engine.fail["pull:" + IMAGE % "bot"] = "the Docker engine at /s, POST /images/create (x): manifest unknown"
    code, result, _folders = run(engine)
    assert code == 1
    assert result["error"] == ("pull image %s: the Docker engine at /s, POST /images/create (x): manifest unknown"
                               % (IMAGE % "bot"))
    assert engine.containers == {SPO2: old} and result["created"] == []


def test_a_failure_says_what_was_done_before() -> None:
    engine = FakeEngine(images=[IMAGE % "spo2", IMAGE % "bot"])
    engine.fail["create_container:" + BOT] = "the Docker engine at /s, POST /containers/create: 409 Conflict"
    code, result, _folders = run(engine)
    assert code == 1
    assert result == dict(result_of(True, created=[SPO2], folders=["/var/lib/nanoedge/spo2"]),
                          error="service bot: create container %s: the Docker engine at /s, POST /containers/create: "
                                "409 Conflict" % BOT)


def test_an_engine_that_cannot_be_asked_changes_nothing_not_even_the_fence() -> None:
    engine = FakeEngine()
    engine.fail["inspect_container"] = "the Docker engine at /s, GET /containers/x/json: no answer: refused"
    fence = Fence()
    code, result, folders = run(engine, fence=fence)
    assert code == 1
    assert result["error"] == ("service spo2: inspect container %s: the Docker engine at /s, GET /containers/x/json: "
                               "no answer: refused" % SPO2)
    assert fence.calls == [] and folders == [] and engine.calls == [] and result["fence"] is None


@pytest.mark.parametrize("fence, message", [
    (Fence(refuse_at=1), "fence: refused the change from manager m1 at term 7: this node has seen term 8 "
                         "(manager m2); nothing was changed"),
    (Fence(corrupt=True), "fence: the fence file /var/lib/nanoedge/fence.json is corrupt: it is not JSON"),
])
def test_a_fence_refusal_changes_nothing(fence: Fence, message: str) -> None:
    stale = container("nanoedge-svc-alert", {"io.nanoedge.service": "alert"})
    engine = FakeEngine([stale])
    code, result, folders = run(engine, phase="break", fence=fence)
    assert (code, result["error"]) == (2, message)
    assert engine.calls == [] and folders == [] and result["changed"] is False
    assert fence.calls == [("/var/lib/nanoedge/fence.json", "/var/lib/nanoedge-agent/witness.json", 7, "m1")]


def test_the_fence_is_asked_again_right_before_removals() -> None:
    stale = container("nanoedge-svc-alert", {"io.nanoedge.service": "alert"})
    engine = FakeEngine([stale, container(SPO2, wanted_labels("spo2")), container(BOT, wanted_labels("bot"))])
    fence = Fence(refuse_at=2)
    code, result, _folders = run(engine, phase="break", fence=fence)
    assert code == 2
    assert result["error"] == ("fence: refused the change from manager m1 at term 7: this node has seen term 8 "
                               "(manager m2)")
    assert "nanoedge-svc-alert" in engine.containers and result["removed"] == [] and len(fence.calls) == 2


def test_break_removes_only_unwanted_nanoedge_containers_and_never_swarm_tasks() -> None:
    others = [
        container("nanoedge-svc-alert", {"io.nanoedge.service": "alert"}, running=False),
        container("nanoedge-svc-hr", {"io.nanoedge.service": "hr"}),
        container("nanoedge-svc-oc.1.x1", {"io.nanoedge.service": "oc", "com.docker.swarm.task.id": "x1"}),
        container("someone-elses", {"io.nanoedge.service": "alert"}),
        container("nanoedge-svc-unlabelled", {"maintainer": "me"}),
        container("nanoedge-svc-blank", {"io.nanoedge.service": ""}),
    ]
    engine = FakeEngine(others + [container(SPO2, wanted_labels("spo2")), container(BOT, wanted_labels("bot"))])
    fence = Fence()
    code, result, _folders = run(engine, phase="break", fence=fence)
    assert code == 0
    assert result == result_of(True, phase="break", unchanged=[SPO2, BOT],
                               removed=["nanoedge-svc-alert", "nanoedge-svc-hr"], folders=["/var/lib/nanoedge/spo2"])
    assert engine.calls == [("remove", "nanoedge-svc-alert"), ("remove", "nanoedge-svc-hr")]
    assert len(fence.calls) == 2


def test_make_removes_nothing_it_does_not_replace() -> None:
    stale = container("nanoedge-svc-alert", {"io.nanoedge.service": "alert"})
    engine = FakeEngine([stale], images=[IMAGE % "spo2", IMAGE % "bot"])
    code, result, _folders = run(engine, phase="make")
    assert code == 0 and "nanoedge-svc-alert" in engine.containers and result["removed"] == []


def test_without_a_fence_nothing_is_fenced() -> None:
    engine = FakeEngine(images=[IMAGE % "spo2", IMAGE % "bot"])
    fence = Fence()
    code, result = Apply(check_request(request(fence=None)), engine, fence=fence, stat_path=fake_stat(),
                         create_folder=lambda path: None).run()
    assert code == 0 and result["fence"] is None and fence.calls == []


def test_a_second_fenced_run_records_nothing_new() -> None:
    engine = FakeEngine([container(SPO2, wanted_labels("spo2")), container(BOT, wanted_labels("bot"))])
    fence = Fence()
    fence.calls.append(("an earlier run",))
    code, result, _folders = run(engine, fence=fence)
    assert code == 0 and result["fence"] == {"term": 7, "changed": False}


def test_an_empty_break_removes_every_nanoedge_container() -> None:
    engine = FakeEngine([container(SPO2, wanted_labels("spo2"))])
    code, result, _folders = run(engine, phase="break", deployments=[])
    assert code == 0 and result["removed"] == [SPO2] and engine.containers == {}


@pytest.mark.parametrize("mode, expected", [
    (0o20660, "char"), (0o60660, "block"), (0o40755, "dir"), (0o100644, "file"), (None, "missing"),
])
def test_stat_type(mode: t.Optional[int], expected: str) -> None:
    assert stat_type("/p", fake_stat({"/p": mode} if mode is not None else {})) == expected


def test_a_regular_file_in_place_of_the_device_is_bind_mounted() -> None:
    desc = description("spo2", [{"host_path": "/dev/ttyUSB0", "container_path": "/dev/pom", "mode": "ro",
                                 "kind": "sensor", "env": None}])
    engine = FakeEngine(images=[IMAGE % "spo2"])
    Apply(check_request(request(deployments=[desc])), engine, fence=Fence(),
          stat_path=fake_stat({"/dev/ttyUSB0": 0o100644}), create_folder=lambda path: None).run()
    assert engine.created[SPO2]["HostConfig"]["Mounts"] == [
        {"Target": "/dev/pom", "Source": "/dev/ttyUSB0", "Type": "bind", "ReadOnly": True}]
    assert engine.created[SPO2]["HostConfig"]["Devices"] == []


def test_a_missing_sensor_is_found_before_anything_changes() -> None:
    engine = FakeEngine([container(SPO2, {"io.nanoedge.service": "spo2"})], images=[IMAGE % "spo2", IMAGE % "bot"])
    fence = Fence()
    code, result = Apply(check_request(request()), engine, fence=fence, stat_path=fake_stat({}),
                         create_folder=lambda path: None).run()
    assert (code, result["error"]) == (1, "service spo2: its sensor /dev/ttyUSB0 is not on node w1")
    assert engine.calls == [] and fence.calls == [] and result["changed"] is False
