# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The execution environment meta/execution-environment.yml defines, built as `make ee` builds it
(tools/ee.py, ansible-builder, real Docker, the local base image, no Galaxy nor registry), then used:
ansible-doc and the allocate filter run inside it, from the collection installed there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import typing as t
import uuid

import pytest
import yaml

from conftest import COLLECTION_ROOT  # pylint: disable=import-error

# The allocate filter's documented example: the paper's algorithm on two workers.
PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.debug:
        msg: "PLAN {{ services | nanoedge.core.allocate(nodes) | to_json }}"
      vars:
        services:
          - {name: spo2, requires: {capabilities: [pom], cpu: 1, memory_mb: 64, storage_mb: 20}}
          - {name: bot, requires: {capabilities: [bot], cpu: 1, memory_mb: 32}}
          - {name: xray, requires: {capabilities: [xr], memory_mb: 2048}}
        nodes:
          - {node: w1, capabilities: [bot], cpu: {cores: 4}, memory_mb: {available: 900}, storage_mb: {free: 20000},
             power: {source: ac, battery_percent: null}, network: [wifi]}
          - {node: w4, capabilities: [pom], cpu: {cores: 4}, memory_mb: {available: 640}, storage_mb: {free: 21033},
             power: {source: dc, battery_percent: 80}, network: [wifi]}
"""


@pytest.fixture(scope="module")
def ee_image(docker, base_image, ansible_env, tmp_path_factory) -> t.Iterator[str]:
    tag = "nanoedge/ee:test-%s" % uuid.uuid4().hex[:10]
    collections = [p for p in ansible_env["ANSIBLE_COLLECTIONS_PATH"].split(os.pathsep) if p]
    command = [sys.executable, str(COLLECTION_ROOT / "tools" / "ee.py"), "--collection", str(COLLECTION_ROOT),
               "--work", str(tmp_path_factory.mktemp("ee")), "--tag", tag]
    for path in collections:
        command += ["--collections", path]
    started = time.monotonic()
    proc = subprocess.run(command, env=ansible_env, capture_output=True, timeout=1800, check=False)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    print("execution environment built in %.1f s, %s" % (time.monotonic() - started,
                                                         docker.out("image", "ls", "--format", "{{.Size}}", tag)))
    yield tag
    docker("image", "rm", "-f", tag, check=False)


def in_ee(docker, image: str, *command: str) -> str:
    return docker.out("run", "--rm", image, *command, timeout=120)


def test_the_definition_is_what_the_collection_declares():
    definition = yaml.safe_load((COLLECTION_ROOT / "meta" / "execution-environment.yml").read_text())
    assert definition["version"] == 3
    assert definition["images"]["base_image"]["name"] == "nanoedge/base:bookworm"
    assert {definition["dependencies"][key] for key in ("python", "system")} == {"requirements.txt", "bindep.txt"}
    # the ranges hold the versions the tests run with
    pinned = dict(line.split("==") for line in (COLLECTION_ROOT / "requirements-dev.txt").read_text().splitlines()
                  if "==" in line and not line.startswith("#"))
    from packaging.requirements import Requirement  # pylint: disable=import-outside-toplevel
    for line in (COLLECTION_ROOT / "requirements.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            requirement = Requirement(line)
            key = requirement.name + ("[%s]" % ",".join(sorted(requirement.extras)) if requirement.extras else "")
            assert requirement.specifier.contains(pinned[key]), (line, pinned[key])


def test_ansible_doc_of_allocate_from_the_installed_collection(ee_image, docker):
    doc = json.loads(in_ee(docker, ee_image, "ansible-doc", "--json", "-t", "filter", "nanoedge.core.allocate"))
    entry = doc["nanoedge.core.allocate"]
    assert entry["doc"]["filename"] == ("/usr/share/ansible/collections/ansible_collections/nanoedge/core/plugins/"
                                        "filter/allocate.py")
    assert entry["doc"]["name"] == "allocate"


def test_the_allocate_filter_runs_inside(ee_image, docker):
    output = in_ee(docker, ee_image, "bash", "-c", "cat > /tmp/play.yml <<'EOF'\n%s\nEOF\n"
                   "ANSIBLE_NOCOLOR=1 ansible-playbook /tmp/play.yml 2>&1" % PLAY)
    start = output.index('"msg": "PLAN ') + len('"msg": "PLAN ')
    plan = json.loads(json.loads('"' + output[start:output.index('"\n', start)] + '"'))
    assert plan["placements"] == {"spo2": "w4", "bot": "w1"}
    assert [(u["service"], u["reasons"]) for u in plan["unplaced"]] == [
        ("xray", {"w1": "missing capability xr", "w4": "missing capability xr"})]


def test_the_controller_libraries_import_inside(ee_image, docker):
    versions = json.loads(in_ee(docker, ee_image, "python3", "-c",
                                "import json, importlib.metadata as m; print(json.dumps({n: m.version(n) for n in "
                                "('aiocoap', 'cbor2', 'highspy', 'requests', 'ansible-core', 'docker')}))"))
    assert versions["aiocoap"] == "0.4.17" and versions["ansible-core"] == "2.19.14"
    assert "OpenSSH" in docker("run", "--rm", ee_image, "ssh", "-V").stderr.decode()
