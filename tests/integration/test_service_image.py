# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The role nanoedge.core.service_image against real Docker and the real registry, on the user guide's
example (docs/user-guide.md, "Your own nanoservice"; docs/examples/my-service/) copied into an empty folder."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import typing as t
import urllib.request
import uuid
from pathlib import Path

import pytest

from ansible_collections.nanoedge.core.plugins.plugin_utils._oci import RegistryClient
from ansible_collections.nanoedge.core.plugins.plugin_utils._service_description import description_label

from conftest import COLLECTION_ROOT  # pylint: disable=import-error

EXAMPLE = COLLECTION_ROOT / "docs" / "examples" / "my-service"
GUIDE = COLLECTION_ROOT / "docs" / "user-guide.md"
RECAP = re.compile(r"localhost\s+: ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=(\d+)")
# Reads /resp once from inside the container (the image has aiocoap).
GET_RESP = ("import asyncio, aiocoap\n"
            "async def get():\n"
            "    context = await aiocoap.Context.create_client_context()\n"
            "    answer = await context.request(aiocoap.Message(code=aiocoap.GET, uri='coap://127.0.0.1:5708/resp')).response\n"
            "    print(answer.payload.decode())\n"
            "asyncio.run(get())\n")


class Workspace:
    def __init__(self, folder: Path, namespace: str, env: t.Dict[str, str], registry: str) -> None:
        self.folder, self.namespace, self.env, self.registry = folder, namespace, env, registry
        self.image = "%s/%s/resp:1.0.0" % (registry, namespace)

    def play(self, *extra: str, folder: t.Optional[Path] = None) -> t.Tuple[int, int, str]:
        """ansible-playbook build.yml in the folder, as the guide runs it: (changed, failed, output)."""
        proc = subprocess.run(["ansible-playbook", "build.yml", "-e", "nanoedge_service_image_namespace=" + self.namespace,
                               *extra], cwd=str(folder or self.folder), env=self.env, capture_output=True, timeout=600,
                              check=False)
        output = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
        recap = RECAP.search(output)
        assert recap, output
        return int(recap.group(1)), int(recap.group(2)), output

    def remote(self, tag: str = "1.0.0") -> t.Tuple[str, t.Dict[str, str]]:
        metadata = RegistryClient("http://" + self.registry).inspect(self.namespace + "/resp", tag)
        (platform,) = metadata.content.platforms
        assert platform.platform == "linux/amd64"
        return metadata.digest, platform.labels


@pytest.fixture(scope="module")
def workspace(docker, registry, base_image, ansible_env, tmp_path_factory) -> t.Iterator[Workspace]:
    """An empty folder into which the guide's files are written, and a repository namespace of its own."""
    folder = tmp_path_factory.mktemp("empty") / "my-service"
    folder.mkdir()
    assert not list(folder.iterdir())
    (folder / "resp").mkdir()
    for name in ("build.yml", "resp/service.json", "resp/resp.py"):
        shutil.copy2(EXAMPLE / name, folder / name)
    namespace = "test-svcimg-%s" % uuid.uuid4().hex[:10]
    space = Workspace(folder, namespace, dict(ansible_env), registry)
    yield space
    client = RegistryClient("http://" + registry)
    for tag in ("1.0.0", "latest"):
        docker("image", "rm", "-f", "%s/%s/resp:%s" % (registry, namespace, tag), check=False)
    digest = client.manifest_digest(namespace + "/resp", "1.0.0", space.image)
    request = urllib.request.Request("http://%s/v2/%s/resp/manifests/%s" % (registry, namespace, digest), method="DELETE")
    urllib.request.urlopen(request, timeout=10).close()  # pylint: disable=consider-using-with


def test_the_guide_shows_the_example_files_as_they_are():
    guide = GUIDE.read_text()
    section = guide[guide.index("## 11. Your own nanoservice"):]
    blocks = re.findall(r"```(\w*)\n(.*?)```", section, re.S)
    assert ("json", (EXAMPLE / "resp" / "service.json").read_text()) in blocks
    assert ("yaml", (EXAMPLE / "build.yml").read_text()) in blocks
    assert ("", "ansible-playbook build.yml\n") in blocks
    producer = guide[guide.index("### A producer"):guide.index("### A consumer")]
    assert ("python", (EXAMPLE / "resp" / "resp.py").read_text()) in re.findall(r"```(\w*)\n(.*?)```", producer, re.S)


def test_first_run_builds_and_pushes_with_the_labels(workspace):
    started = time.monotonic()
    changed, failed, output = workspace.play()
    print("first run: %.1f s" % (time.monotonic() - started))
    assert (changed, failed) == (1, 0), output
    digest, labels = workspace.remote()
    written = json.loads((workspace.folder / "resp" / "service.json").read_text())
    assert labels["io.nanoedge.service"] == "resp"
    assert labels["io.nanoedge.requirements"] == json.dumps(written["requirements"])
    assert labels["io.nanoedge.description"] == description_label(written)
    assert {key: labels[key] for key in labels if key.startswith("org.opencontainers.")} == {
        "org.opencontainers.image.title": "nanoedge resp",
        "org.opencontainers.image.description": "Respiration rate from a chest band, over CoAP",
        "org.opencontainers.image.version": "1.0.0",
        "org.opencontainers.image.licenses": "GPL-3.0-or-later",
    }
    assert re.fullmatch(r"[0-9a-f]{16}", labels["io.nanoedge.build.inputs"])
    assert sorted(labels) == sorted(["io.nanoedge.service", "io.nanoedge.requirements", "io.nanoedge.description",
                                     "io.nanoedge.build.inputs", "org.opencontainers.image.title",
                                     "org.opencontainers.image.description", "org.opencontainers.image.version",
                                     "org.opencontainers.image.licenses"])
    assert workspace.remote("latest")[0] == digest


def test_second_run_changes_nothing(workspace):
    before = workspace.remote()[0]
    started = time.monotonic()
    changed, failed, output = workspace.play()
    print("second run: %.1f s" % (time.monotonic() - started))
    assert (changed, failed) == (0, 0), output
    assert workspace.remote()[0] == before


def test_check_mode_reports_a_change_and_does_nothing(workspace, docker):
    digest, labels = workspace.remote()
    local = docker.out("image", "inspect", "-f", "{{.Id}}", workspace.image)
    assert workspace.play("--check")[:2] == (0, 0)
    program = workspace.folder / "resp" / "resp.py"
    original = program.read_text()
    try:
        program.write_text(original + "# a change\n")
        changed, failed, output = workspace.play("--check", "--diff")
    finally:
        program.write_text(original)
    assert (changed, failed) == (1, 0), output
    assert '-        "io.nanoedge.build.inputs": "%s",' % labels["io.nanoedge.build.inputs"] in output
    assert workspace.remote() == (digest, labels)
    assert docker.out("image", "inspect", "-f", "{{.Id}}", workspace.image) == local


@pytest.mark.parametrize("key, value, message", [
    ("requirements", {"memory_mb": -5},
     "nanoedge.core.service_image: service 'resp': service.json: requirements: memory_mb=-5: must be >= 0"),
    ("port", {"number": 70000},
     "nanoedge.core.service_image: service 'resp': service.json: port must be {number: 1-65535, protocol: udp|tcp}, "
     "got {'number': 70000}"),
    ("program", "resp/missing.py",
     "nanoedge.core.service_image: service 'resp': service.json: program {folder}/resp/missing.py is not a file"),
])
def test_a_broken_description_fails_naming_the_key(workspace, tmp_path, key, value, message):
    folder = tmp_path / "my-service"
    shutil.copytree(workspace.folder, folder)
    description = json.loads((folder / "resp" / "service.json").read_text())
    description[key] = value
    (folder / "resp" / "service.json").write_text(json.dumps(description))
    changed, failed, output = workspace.play(folder=folder)
    assert (changed, failed) == (0, 1), output
    assert '"msg": %s' % json.dumps(message.replace("{folder}", str(folder))) in output


def test_an_unsupported_platform_is_refused(workspace):
    changed, failed, output = workspace.play("-e", '{"nanoedge_service_image_platforms": ["linux/arm/v7"]}')
    assert (changed, failed) == (0, 1), output
    assert ("nanoedge.core.service_image: platform linux/arm/v7 is not supported: only the Docker engine's own "
            "platform, linux/amd64, is built; other platforms need docker buildx with QEMU emulation, which is not "
            "used here") in output


def test_the_built_service_runs_and_serves_readings(workspace, docker):
    name = "%s-resp" % workspace.namespace
    docker("run", "-d", "--name", name, workspace.image)
    try:
        deadline = time.monotonic() + 30
        while True:
            proc = docker("exec", name, "python3", "-c", GET_RESP, check=False, timeout=30)
            if proc.returncode == 0 and proc.stdout.strip():
                break
            assert time.monotonic() < deadline, proc.stderr.decode(errors="replace")
            time.sleep(0.5)
        reading = json.loads(proc.stdout)
        assert reading["source"] == "resp/main" and reading["breaths_per_min"] is None
        assert "/run/band/rate" in reading["error"]
    finally:
        docker("rm", "-f", name, check=False)
