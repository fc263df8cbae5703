# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared fixtures for the integration tests: real Docker, the real OCI
registry and Ansible from the project's venv. ``make integration`` runs
``tools/prereqs.sh`` first, so a missing component is a failure, not a skip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import typing as t
import urllib.request
import uuid
from pathlib import Path

import pytest

COLLECTION_ROOT = Path(__file__).resolve().parents[2]
# .../ansible_collections/nanoedge/core -> the folder holding ansible_collections
COLLECTIONS_PATH = COLLECTION_ROOT.parents[2]
REGISTRY = os.environ.get("NANOEDGE_REGISTRY_ADDR", "127.0.0.1:5000")
BASE_IMAGE = os.environ.get("NANOEDGE_BASE_IMAGE", "nanoedge/base:bookworm")

if str(COLLECTIONS_PATH) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS_PATH))


def _check_layout() -> None:
    if COLLECTION_ROOT.parent.parent.name != "ansible_collections":
        raise RuntimeError(
            "integration tests run from the ansible_collections/nanoedge/core layout; use `make integration`"
        )


class Docker:
    """The docker CLI, failing loudly with its stderr."""

    def __call__(self, *args: str, check: bool = True, input: t.Optional[bytes] = None,
                 timeout: float = 300) -> subprocess.CompletedProcess:
        proc = subprocess.run(["docker", *args], input=input, capture_output=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise AssertionError("docker %s failed (%d): %s" % (" ".join(args), proc.returncode,
                                                                proc.stderr.decode(errors="replace")))
        return proc

    def out(self, *args: str, **kwargs: t.Any) -> str:
        return self(*args, **kwargs).stdout.decode().strip()


@pytest.fixture(scope="session")
def docker() -> Docker:
    cli = Docker()
    cli("info", timeout=30)
    return cli


@pytest.fixture(scope="session")
def registry() -> str:
    """host:port of the real OCI registry (CNCF distribution) started by tools/prereqs.sh."""
    with urllib.request.urlopen("http://%s/v2/" % REGISTRY, timeout=10) as response:
        assert response.status == 200
    return REGISTRY


@pytest.fixture(scope="session")
def base_image(docker: Docker) -> str:
    docker("image", "inspect", BASE_IMAGE)
    return BASE_IMAGE


@pytest.fixture()
def unique() -> str:
    """A short unique suffix for names of containers, images and repositories."""
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def ansible_env() -> t.Dict[str, str]:
    """Environment for ansible-playbook / ansible runs against this collection."""
    _check_layout()
    env = dict(os.environ)
    env.update(
        # the collection under test first, then any other collection roots (community.docker, ...)
        ANSIBLE_COLLECTIONS_PATH=os.pathsep.join(
            [str(COLLECTIONS_PATH)] + [p for p in os.environ.get("ANSIBLE_COLLECTIONS_PATH", "").split(os.pathsep) if p]),
        ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
        ANSIBLE_PIPELINING="1",
        ANSIBLE_HOST_KEY_CHECKING="false",
        ANSIBLE_RETRY_FILES_ENABLED="false",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default",
        ANSIBLE_LOCAL_TEMP=str(Path(os.environ.get("TMPDIR", "/tmp")) / "nanoedge-ansible-local"),
    )
    env["PATH"] = "%s%s%s" % (Path(sys.executable).parent, os.pathsep, env.get("PATH", ""))
    return env


@pytest.fixture(scope="session")
def run_playbook(ansible_env: t.Dict[str, str], tmp_path_factory: pytest.TempPathFactory):
    """Run a playbook (text) against an inventory (text); return (rc, stdout+stderr)."""
    workdir = tmp_path_factory.mktemp("playbooks")

    def _run(playbook: str, inventory: str, *extra: str, env: t.Optional[t.Dict[str, str]] = None,
             timeout: float = 600) -> t.Tuple[int, str]:
        name = uuid.uuid4().hex[:8]
        play_path = workdir / ("play-%s.yml" % name)
        inv_path = workdir / ("inventory-%s.yml" % name)
        play_path.write_text(playbook)
        inv_path.write_text(inventory)
        proc = subprocess.run(
            [shutil.which("ansible-playbook", path=ansible_env["PATH"]) or "ansible-playbook",
             "-i", str(inv_path), str(play_path), *extra],
            env=dict(ansible_env, **(env or {})), capture_output=True, timeout=timeout, cwd=str(workdir), check=False,
        )
        return proc.returncode, proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")

    return _run


def read_json_marker(output: str, marker: str) -> t.Any:
    """Pull one JSON document printed after ``marker`` out of Ansible output."""
    start = output.index(marker) + len(marker)
    return json.JSONDecoder().raw_decode(output[start:].lstrip())[0]
