# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The testbed pieces are real: Docker builds from the base image, the OCI
registry stores and serves the image, and libcoap's client is installed."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request


def test_build_push_pull_roundtrip(docker, registry, base_image, unique, tmp_path):
    requirements = {"capabilities": ["pom"], "cpu": 1, "memory_mb": 64}
    (tmp_path / "Dockerfile").write_text(
        "FROM %s\nLABEL io.nanoedge.requirements='%s'\nCMD [\"python3\", \"-c\", \"print('ok')\"]\n"
        % (base_image, json.dumps(requirements))
    )
    ref = "%s/nanoedge-smoke/spo2:%s" % (registry, unique)
    docker("build", "-q", "-t", ref, str(tmp_path))
    try:
        docker("push", ref)
        docker("image", "rm", ref)
        assert docker("image", "inspect", ref, check=False).returncode != 0
        docker("pull", ref)
        labels = json.loads(docker.out("image", "inspect", "-f", "{{json .Config.Labels}}", ref))
        assert json.loads(labels["io.nanoedge.requirements"]) == requirements
        assert docker.out("run", "--rm", ref) == "ok"
        # the registry itself lists the tag we pushed
        with urllib.request.urlopen("http://%s/v2/nanoedge-smoke/spo2/tags/list" % registry, timeout=10) as resp:
            assert unique in json.load(resp)["tags"]
    finally:
        docker("image", "rm", "-f", ref, check=False)


def test_libcoap_client_is_installed():
    client = shutil.which("coap-client-notls") or shutil.which("coap-client-openssl")
    assert client, "libcoap3-bin is not installed"
    proc = subprocess.run([client, "-h"], capture_output=True, timeout=10, check=False)
    assert b"coap-client" in proc.stdout + proc.stderr
