# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node-side apply against the real Docker engine of this machine: what it creates is what the deploy
role's community.docker.docker_container task would (a run of that task afterwards changes nothing), a second
apply changes nothing, a changed value recreates only its container, and break removes only what is unwanted.

Names start with NANOEDGE_IT_PREFIX (default ``nanoedge-it``) and a unique part, so nothing else is touched.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import typing as t

import pytest

from ansible_collections.nanoedge.core.plugins.module_utils._deploy_layout import on_node
from ansible_collections.nanoedge.core.plugins.plugin_utils._deployment import deployments
from conftest import COLLECTIONS_PATH  # pylint: disable=import-error

PROGRAM = "ansible_collections.nanoedge.core.plugins.module_utils._node_apply"
PREFIX = os.environ.get("NANOEDGE_IT_PREFIX", "nanoedge-it")
# The platform of this machine's engine (the base image is built for it): the descriptions name it, as a node's do.
PLATFORM = "linux/" + {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())

CONTAINER_PLAYBOOK = """
- hosts: nodes
  gather_facts: false
  tasks:
    - name: The deploy role's own container task, over what the node applied
      ansible.builtin.include_role:
        name: nanoedge.core.deploy
        tasks_from: container.yml
      vars:
        _nanoedge_deploy_wanted: "{{ wanted }}"
        nanoedge_deploy_network_mode: "{{ network_mode }}"
"""

NODE_INVENTORY = "nodes: {{hosts: {{n1: {{ansible_connection: local, ansible_python_interpreter: {python}}}}}}}\n"


@pytest.fixture(scope="module")
def pushed(docker, registry, base_image) -> t.Iterator[t.Tuple[str, str]]:
    """(image, digest): the base image in the registry under a repository of this test's own."""
    repository = "%s/%s-node-apply/base" % (registry, PREFIX)
    docker("tag", base_image, repository + ":1")
    try:
        docker("push", "-q", repository + ":1")
        digests = json.loads(docker.out("image", "inspect", "--format", "{{json .RepoDigests}}", repository + ":1"))
        (digest,) = [d.split("@", 1)[1] for d in digests if d.startswith(repository + "@")]
    finally:
        # the node pulls it by digest, as a node that never had it would
        docker("rmi", repository + ":1", check=False)
    yield repository + ":1", digest
    docker("rmi", "%s@%s" % (repository, digest), check=False)


def services(image: str, digest: str, state: str, mode: str = "a") -> t.List[t.Dict[str, t.Any]]:
    """Two services as step 3 returns them: one with a sensor (a character device) and a state folder."""
    def service(name: str, port: int, io: t.List[t.Dict[str, t.Any]], environment: t.Dict[str, str]) -> t.Dict:
        requires = {"cpu": 0.5, "memory_mb": 64}
        return {"name": name, "image": image, "digest": digest, "requires": requires, "platforms": [PLATFORM],
                "description": {"name": name, "version": "1.0.0", "requirements": requires,
                                "port": {"number": port, "protocol": "udp"}, "provides": {"path": "/" + name},
                                "io": io, "environment": environment}}
    return [service("keep", 5791, [
        {"kind": "sensor", "host_path": "/dev/null", "container_path": "/dev/sensor", "env": "SENSOR", "mode": "ro"},
        {"kind": "state", "host_path": state, "container_path": "/state", "env": "NANOEDGE_STATE_DIR", "mode": "rw"},
    ], {"MODE": mode}), service("gone", 5792, [], {})]


class Node:
    """One node's apply requests, built by the deployments filter as the manager builds them."""

    def __init__(self, image: str, digest: str, tmp_path: t.Any, prefix: str, network_mode: str) -> None:
        self.image, self.digest, self.prefix, self.network_mode = image, digest, prefix, network_mode
        self.state = str(tmp_path / "state" / "keep")
        self.fence = {"term": 3, "manager": "m1", "path": str(tmp_path / "fence.json"),
                      "witness_path": str(tmp_path / "witness.json")}

    def describe(self, placed: t.List[str], mode: str = "a") -> t.List[t.Dict[str, t.Any]]:
        plan = {"by_node": {"n1": placed}, "placements": {name: "n1" for name in placed}}
        return deployments(plan, services(self.image, self.digest, self.state, mode), "n1",
                           addresses={"n1": "127.0.0.1"}, name_prefix=self.prefix, platform=PLATFORM[len("linux/"):])

    def apply(self, phase: str, placed: t.List[str], mode: str = "a",
              term: int = 3) -> t.Tuple[int, t.Dict[str, t.Any]]:
        request = {"version": 1, "node": "n1", "phase": phase, "fence": dict(self.fence, term=term),
                   "deployments": self.describe(placed, mode),
                   "docker": {"socket": "/var/run/docker.sock", "pull": "missing", "restart_policy": "unless-stopped",
                              "network_mode": self.network_mode, "name_prefix": self.prefix}}
        proc = subprocess.run([sys.executable, "-m", PROGRAM], input=json.dumps(request).encode(),
                              capture_output=True, timeout=300, check=False,
                              env=dict(os.environ, PYTHONPATH=str(COLLECTIONS_PATH)))
        assert proc.stderr == b"", proc.stderr.decode(errors="replace")
        return proc.returncode, json.loads(proc.stdout)

    def finished(self, placed: t.List[str]) -> t.List[t.Dict[str, t.Any]]:
        """The descriptions as the deploy role finishes them with the node's files."""
        types = {"/dev/null": "char", self.state: "dir"}
        return [on_node(d, d["io"], types) for d in self.describe(placed)]


def result(phase: str, changed: bool, **lists: t.List[str]) -> t.Dict[str, t.Any]:
    answer = {"node": "n1", "phase": phase, "changed": changed, "fence": {"term": 3, "changed": False},
              "unchanged": [], "started": [], "created": [], "removed": [], "folders": []}
    answer.update(lists)
    return answer


@pytest.mark.parametrize("network_mode", ["host", "bridge"])
def test_node_apply_on_the_real_engine(pushed, docker, run_playbook, unique, tmp_path, network_mode):
    image, digest = pushed
    prefix = "%s%s-" % (PREFIX, unique[:6])
    keep, gone = prefix + "keep", prefix + "gone"
    swarm_task, unlabelled = prefix + "oc.1.x1", prefix + "unlabelled"
    node = Node(image, digest, tmp_path, prefix, network_mode)
    try:
        code, answer = node.apply("make", ["keep", "gone"])
        assert code == 0, answer
        assert answer == dict(result("make", True, created=[keep, gone], folders=[node.state]),
                              fence={"term": 3, "changed": True})
        inspected = json.loads(docker.out("container", "inspect", keep))[0]
        wanted = node.finished(["keep"])[0]
        assert inspected["State"]["Running"] is True
        assert wanted["platform"] == PLATFORM
        assert inspected["Config"]["Image"] == "%s@%s" % (image.rsplit(":", 1)[0], digest)
        assert inspected["Config"]["Labels"] == wanted["labels"]
        assert {"MODE=a", "SENSOR=/dev/sensor", "NANOEDGE_STATE_DIR=/state", "NANOEDGE_PORT=5791"} <= set(
            inspected["Config"]["Env"])
        host = inspected["HostConfig"]
        assert host["Devices"] == [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/sensor",
                                    "CgroupPermissions": "r"}]
        assert host["Mounts"] == [{"Type": "bind", "Source": node.state, "Target": "/state"}]
        assert (host["NanoCpus"], host["Memory"]) == (500000000, 64 << 20)
        assert host["RestartPolicy"]["Name"] == "unless-stopped" and host["NetworkMode"] == network_mode
        bindings = {} if network_mode == "host" else {"5791/udp": [{"HostIp": "0.0.0.0", "HostPort": "5791"}]}
        assert (host["PortBindings"] or {}) == bindings
        assert oct(os.stat(node.state).st_mode & 0o7777) == "0o755"
        ids = {name: docker.out("container", "inspect", "--format", "{{.Id}}", name) for name in (keep, gone)}

        code, answer = node.apply("make", ["keep", "gone"])
        assert (code, answer) == (0, result("make", False, unchanged=[keep, gone]))

        extra = tmp_path / "wanted.json"
        extra.write_text(json.dumps({"wanted": node.finished(["keep", "gone"]), "network_mode": network_mode}))
        rc, output = run_playbook(CONTAINER_PLAYBOOK, NODE_INVENTORY.format(python=sys.executable), "-e",
                                  "@%s" % extra)
        assert rc == 0 and "changed=0" in output, output
        assert {name: docker.out("container", "inspect", "--format", "{{.Id}}", name) for name in ids} == ids

        code, answer = node.apply("make", ["keep", "gone"], mode="b")
        assert (code, answer) == (0, result("make", True, created=[keep], unchanged=[gone]))
        assert docker.out("container", "inspect", "--format", "{{.Id}}", keep) != ids[keep]
        assert "MODE=b" in json.loads(docker.out("container", "inspect", keep))[0]["Config"]["Env"]

        docker("run", "-d", "--name", swarm_task, "--label", "io.nanoedge.service=oc",
               "--label", "com.docker.swarm.task.id=x1", image.rsplit(":", 1)[0] + "@" + digest)
        docker("create", "--name", unlabelled, image.rsplit(":", 1)[0] + "@" + digest)
        code, answer = node.apply("break", ["keep"], mode="b", term=2)
        assert code == 2
        assert answer["error"] == ("nanoedge.core node apply on n1: fence: refused the change from manager m1 at "
                                   "term 2: this node has seen term 3 (manager m1); nothing was changed")
        assert docker("container", "inspect", gone, check=False).returncode == 0

        code, answer = node.apply("break", ["keep"], mode="b")
        assert (code, answer) == (0, result("break", True, unchanged=[keep], removed=[gone]))
        assert docker("container", "inspect", gone, check=False).returncode != 0
        for name in (keep, swarm_task, unlabelled):
            assert docker("container", "inspect", name, check=False).returncode == 0, name
    finally:
        for name in (keep, gone, swarm_task, unlabelled):
            docker("rm", "-f", name, check=False)
