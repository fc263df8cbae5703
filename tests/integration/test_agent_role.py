# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The nanoedge.core.agent role through real ansible-playbook runs against a
container from the base image (community.docker.docker connection), and the
installed program reporting to the real registry on the docker bridge."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import typing as t

import pytest

from _registry_server import COLLECTION_ROOT, RegistryServer
from ansible_collections.nanoedge.core.plugins.module_utils import _coap
from ansible_collections.nanoedge.core.plugins.module_utils._profile import validate_profile

MODULE_UTILS = COLLECTION_ROOT / "plugins" / "module_utils"

AIOCOAP_VERSION = "0.4.17"
PLAYBOOK = """
- hosts: all
  gather_facts: false
  roles:
    - role: nanoedge.core.agent
      nanoedge_agent_registries: ["{url}"]
      nanoedge_agent_interval: 60
      nanoedge_agent_labels: {{room: "3"}}
      nanoedge_agent_capabilities: [dd]
      nanoedge_agent_systemd: false
      nanoedge_agent_pip_wheels_dir: "{wheels}"
      nanoedge_agent_security: false
"""
RECAP_RE = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> str:
    """aiocoap (no dependencies without extras) as a wheel, installed on the node without an index."""
    folder = tmp_path_factory.mktemp("wheels")
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:",
                    "-d", str(folder), "aiocoap==%s" % AIOCOAP_VERSION], check=True, timeout=300)
    return str(folder)


def recap(output: str, host: str) -> t.Tuple[int, int, int, int]:
    for match in RECAP_RE.finditer(output):
        if match.group(1) == host:
            ok, changed, unreachable, failed = (int(g) for g in match.groups()[1:])
            return ok, changed, unreachable, failed
    raise AssertionError("no recap for %s:\n%s" % (host, output))


def bridge_gateway(docker: t.Any) -> str:
    """The host's address on the default bridge, where containers reach it."""
    gateway = docker.out("network", "inspect", "bridge", "-f", "{{range .IPAM.Config}}{{.Gateway}}{{end}}")
    if gateway:
        return gateway
    # docker 20.10 may leave IPAM.Config without a gateway: ask the bridge interface itself
    interface = docker.out("network", "inspect", "bridge", "-f", '{{index .Options "com.docker.network.bridge.name"}}')
    listing = subprocess.run(["ip", "-o", "-4", "addr", "show", "dev", interface or "docker0"],
                             capture_output=True, text=True, check=True, timeout=10).stdout
    match = re.search(r"inet (\d+\.\d+\.\d+\.\d+)/", listing)
    assert match, "no IPv4 address on the docker bridge: %r" % listing
    return match.group(1)


def test_agent_role(docker, base_image, unique, wheels, run_playbook, tmp_path):
    gateway = bridge_gateway(docker)
    container = "nanoedge-agent-%s" % unique
    node = "agent-%s" % unique
    inventory = json.dumps({"all": {"hosts": {node: {
        "ansible_connection": "community.docker.docker", "ansible_host": container,
        "ansible_python_interpreter": "/usr/bin/python3"}}}})
    with RegistryServer(tmp_path / "registry" / "registry.sqlite", bind=gateway) as server:
        playbook = PLAYBOOK.format(url=server.url, wheels=wheels)
        docker("run", "-d", "--name", container, base_image)
        try:
            # an earlier version's timer, which the service replaces
            docker("exec", container, "sh", "-c", "mkdir -p /etc/systemd/system && "
                   "printf '[Timer]\\nOnUnitActiveSec=60s\\n' > /etc/systemd/system/nanoedge-agent.timer")
            rc, output = run_playbook(playbook, inventory)
            assert rc == 0, output
            assert recap(output, node)[1] > 0

            version = docker.out("exec", container, "/opt/nanoedge-agent/venv/bin/python", "-c",
                                 "import aiocoap.meta; print(aiocoap.meta.version)")
            assert version == AIOCOAP_VERSION
            assert docker("exec", container, "test", "-e", "/etc/systemd/system/nanoedge-agent.timer",
                          check=False).returncode == 1
            service = docker.out("exec", container, "cat", "/etc/systemd/system/nanoedge-agent.service")
            assert "Type=simple" in service and "Restart=always" in service and "WantedBy=multi-user.target" in service
            assert ("ExecStart=/opt/nanoedge-agent/venv/bin/python /opt/nanoedge-agent/nanoedge_agent.py "
                    "--config /etc/nanoedge-agent/config.json") in service
            config = json.loads(docker.out("exec", container, "cat", "/etc/nanoedge-agent/config.json"))
            assert (config["lifetime"], config["registries"], config["node"]) == (180, [server.url], node)
            assert (config["interval"], config["beat_interval"], config["debounce"], config["poll_interval"]) \
                == (60, 1.0, 0.5, 1.0)
            assert (config["directory_port"], config["directory_renew"]) == (5690, 5.0)
            # the collection's module_utils, whole (nanoedge.core.code), byte-code caches left out
            installed = docker.out("exec", container, "sh", "-c", "cd /opt/nanoedge-agent/lib/ansible_collections/"
                                   "nanoedge/core/plugins/module_utils && find . -type f | sort")
            expected = sorted("./%s" % path.relative_to(MODULE_UTILS) for path in MODULE_UTILS.rglob("*")
                              if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc")
            assert installed.split() == expected
            assert "./_agent/cli.py" in expected and "./_discovery.py" in expected

            # the program, run once by hand, reports the discovered profile
            run = docker("exec", container, "/opt/nanoedge-agent/venv/bin/python", "/opt/nanoedge-agent/nanoedge_agent.py",
                         "--once")
            assert "%s: created %s (2.01 Created, 1 attempt)" % (server.url, node) in run.stdout.decode()
            stored = _coap.run_fetch_profiles(server.url)[node]
            validate_profile(stored)
            assert (stored["labels"], stored["capabilities"]) == ({"room": "3"}, ["dd"])
            again = docker("exec", container, "/opt/nanoedge-agent/venv/bin/python", "/opt/nanoedge-agent/nanoedge_agent.py",
                           "--once")
            assert "%s: renewed %s" % (server.url, node) in again.stdout.decode()

            # idempotent
            rc, output = run_playbook(playbook, inventory)
            assert rc == 0, output
            assert recap(output, node)[1:] == (0, 0, 0), output

            # check mode predicts a new interval and writes nothing
            rc, output = run_playbook(playbook.replace("interval: 60", "interval: 120"), inventory, "--check", "--diff")
            assert rc == 0, output
            # config.json, and aiocoap: with extra arguments (the wheels) pip cannot tell in check mode
            assert recap(output, node)[1] == 2, output
            assert '+    "interval": 120,' in output and "+    \"lifetime\": 360," in output
            assert json.loads(docker.out("exec", container, "cat", "/etc/nanoedge-agent/config.json"))["lifetime"] == 180
        finally:
            docker("rm", "-f", container, check=False)


def test_agent_reports_broken_installation(docker, base_image, unique, tmp_path):
    """Without the collection's code beside it, the program says what is missing and where."""
    container = "nanoedge-agent-bare-%s" % unique
    docker("run", "-d", "--name", container, base_image)
    try:
        program = (tmp_path / "nanoedge_agent.py")
        program.write_bytes((COLLECTION_ROOT / "roles" / "agent" / "files" / "nanoedge_agent.py").read_bytes())
        docker("cp", str(program), "%s:/tmp/nanoedge_agent.py" % container)
        proc = docker("exec", container, "python3", "/tmp/nanoedge_agent.py", check=False)
        assert proc.returncode == 2
        assert proc.stderr.decode().startswith(
            "nanoedge-agent: cannot import the discovery and reporting code from "
            "/tmp/lib/ansible_collections/nanoedge/core/plugins/module_utils (No module named 'ansible_collections'); "
            "install it with the nanoedge.core.agent role")
    finally:
        docker("rm", "-f", container, check=False)
