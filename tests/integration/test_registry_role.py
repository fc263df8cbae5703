# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Role nanoedge.core.registry through real ansible-playbook runs: the
bare-metal install inside a container from the base image (no systemd as
PID 1 there, so the unit is checked and the server started by hand), and the
container backend on this host. Second runs and check mode change nothing."""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import time
import typing as t

import pytest
from aiocoap.numbers.codes import Code

from _registry_server import COLLECTION_ROOT, Client, profile, run_client

SCHEMA = COLLECTION_ROOT / "plugins" / "module_utils" / "_profile.py"

RECAP_RE = re.compile(r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unr>\d+)"
                      r"\s+failed=(?P<failed>\d+)", re.M)


def recap(output: str) -> t.Dict[str, t.Dict[str, int]]:
    return {m.group("host"): {k: int(m.group(k)) for k in ("ok", "changed", "unr", "failed")}
            for m in RECAP_RE.finditer(output)}


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pip_ca_bundle() -> t.Optional[str]:
    """The CA bundle pip trusts here when egress goes through a TLS-inspecting
    proxy (PIP_CERT); managed hosts need it too to reach PyPI."""
    bundle = os.environ.get("PIP_CERT") or os.environ.get("REQUESTS_CA_BUNDLE")
    return bundle if bundle and os.path.isfile(bundle) else None


def wait_for_registry(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    last: t.Any = None
    while time.monotonic() < deadline:
        try:
            response = run_client(url, lambda c: c.request(Code.GET, "/.well-known/core", timeout=2))
            # with reads restricted, an unprotected discovery gets 4.01: the registry is up all the same
            if response.code in (Code.CONTENT, Code.UNAUTHORIZED):
                return
            last = response
        except Exception as exc:  # not up yet
            last = exc
        time.sleep(0.5)
    raise AssertionError("registry at %s did not answer: %r" % (url, last))


BAREMETAL_PLAY = """
- name: Registry, bare-metal
  hosts: managers
  gather_facts: false
  roles:
    - role: nanoedge.core.registry
      vars:
        nanoedge_registry_backend: baremetal
        nanoedge_registry_manage_service: false
        nanoedge_registry_manage_sysctl: false
        nanoedge_registry_security: true
        nanoedge_registry_managers: [m1]
        nanoedge_registry_oscore_peers:
          - {name: wa, id: "01", secret: "%(secret_a)s", salt: "%(salt)s"}
          - {name: m1, id: "10", secret: "%(secret_m)s"}
        nanoedge_registry_pip_ca_bundle: "%(ca)s"
"""


@pytest.fixture()
def manager_container(docker, base_image, unique):
    name = "nanoedge-registry-role-%s" % unique
    docker("run", "-d", "--name", name, base_image, "sleep", "infinity")
    try:
        yield name
    finally:
        docker("rm", "-f", name, check=False)


def test_baremetal_install(docker, manager_container, run_playbook):
    keys = {"secret_a": secrets.token_hex(16), "secret_m": secrets.token_hex(16), "salt": secrets.token_hex(8)}
    ca = pip_ca_bundle()
    if ca:
        docker("cp", ca, "%s:/usr/local/share/pip-ca.crt" % manager_container)
    playbook = BAREMETAL_PLAY % dict(keys, ca="/usr/local/share/pip-ca.crt" if ca else "")
    inventory = json.dumps({"managers": {"hosts": {manager_container: {
        "ansible_connection": "community.docker.docker",
        "ansible_python_interpreter": "/usr/bin/python3",
    }}}})

    # check mode on a fresh host reports the work to do and does none of it
    # (ansible.builtin.apt needs python3-apt for check mode; a normal run installs it itself)
    docker("exec", manager_container, "sh", "-c", "apt-get update -qq && apt-get install -y -qq python3-apt",
           timeout=600)
    rc, out = run_playbook(playbook, inventory, "--check", timeout=900)
    assert rc == 0, out
    assert recap(out)[manager_container]["changed"] > 0
    assert docker("exec", manager_container, "test", "-e", "/opt/nanoedge-registry", check=False).returncode == 1

    rc, out = run_playbook(playbook, inventory, timeout=900)
    assert rc == 0, out
    assert recap(out)[manager_container]["changed"] > 0
    for secret in keys.values():
        assert secret not in out, "key material leaked into the output"

    def sh(command: str) -> str:
        return docker.out("exec", manager_container, "sh", "-c", command)

    unit = sh("cat /etc/systemd/system/nanoedge-registry.service")
    assert "User=nanoedge-registry" in unit
    assert "Type=notify\nNotifyAccess=main\nWatchdogSec=30\n" in unit
    assert ("ExecStart=/opt/nanoedge-registry/venv/bin/python /opt/nanoedge-registry/nanoedge_registry.py"
            " @/etc/nanoedge-registry/registry.args") in unit
    assert sh("/opt/nanoedge-registry/venv/bin/python -c 'import aiocoap.meta, cbor2; print(aiocoap.meta.version)'") \
        == "0.4.17"
    args = sh("cat /etc/nanoedge-registry/registry.args")
    assert "--oscore-contexts\n/var/lib/nanoedge-registry/oscore" in args and "--managers\nm1" in args
    assert "--watchdog\n30\n" in args
    assert sh("stat -c '%U %a' /var/lib/nanoedge-registry/oscore/wa/settings.json") == "nanoedge-registry 600"
    settings = json.loads(sh("cat /var/lib/nanoedge-registry/oscore/wa/settings.json"))
    assert settings == {"sender-id_hex": "", "recipient-id_hex": "01", "secret_hex": keys["secret_a"],
                        "salt_hex": keys["salt"], "id-context_ascii": manager_container}
    # the one schema, installed with the collection's code rather than re-described
    assert sh("cat /opt/nanoedge-registry/lib/ansible_collections/nanoedge/core/plugins/module_utils/_profile.py") \
        == SCHEMA.read_text().strip()

    # idempotence, then check mode: nothing to change
    rc, out = run_playbook(playbook, inventory, timeout=600)
    assert rc == 0, out
    assert recap(out)[manager_container]["changed"] == 0, out
    rc, out = run_playbook(playbook, inventory, "--check", "--diff", timeout=600)
    assert rc == 0, out
    assert recap(out)[manager_container]["changed"] == 0, out

    # start it by hand as the unit would, and talk to it from here
    exec_start = re.search(r"^ExecStart=(.*)$", unit, re.M).group(1)
    docker("exec", "-d", "-u", "nanoedge-registry", manager_container, "sh", "-c",
           exec_start + " >/var/lib/nanoedge-registry/server.log 2>&1")
    address = docker.out("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                         manager_container)
    url = "coap://%s:5683" % address
    try:
        wait_for_registry(url)
    except AssertionError as exc:
        raise AssertionError("%s\nserver log:\n%s" % (exc, sh("cat /var/lib/nanoedge-registry/server.log"))) from None

    async def unprotected(client: Client) -> None:
        denied = await client.put("wa", profile("wa"))
        assert denied.code == Code.UNAUTHORIZED, denied.payload

    run_client(url, unprotected)
    log = sh("cat /var/lib/nanoedge-registry/server.log")
    assert "OSCORE on: 2 security context(s) (m1, wa); GETs restricted to m1" in log
    assert "SO_RCVBUF" in log


CONTAINER_PLAY = """
- name: Registry, container backend
  hosts: managers
  gather_facts: false
  roles:
    - role: nanoedge.core.registry
      vars:
        nanoedge_registry_backend: container
        nanoedge_registry_port: %(port)d
        nanoedge_registry_image: nanoedge-test/registry
        nanoedge_registry_image_tag: "%(unique)s"
        nanoedge_registry_container_name: "%(container)s"
        nanoedge_registry_data_dir: "%(data)s"
        nanoedge_registry_config_dir: "%(config)s"
        nanoedge_registry_default_lifetime: 600
        nanoedge_registry_pip_ca_bundle: "%(ca)s"
        nanoedge_registry_security: false
"""


def test_container_backend(docker, base_image, unique, tmp_path, run_playbook, ansible_env):
    port = free_udp_port()
    container = "nanoedge-registry-%s" % unique
    values = {"port": port, "unique": unique, "container": container,
              "data": str(tmp_path / "data"), "config": str(tmp_path / "config"), "ca": pip_ca_bundle() or ""}
    playbook = CONTAINER_PLAY % values
    python = ansible_env["PATH"].split(":")[0] + "/python"
    inventory = json.dumps({"managers": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": python}}}})
    try:
        rc, out = run_playbook(playbook, inventory, timeout=900)
        assert rc == 0, out
        assert recap(out)["localhost"]["changed"] > 0
        image = "nanoedge-test/registry:%s" % unique
        assert docker.out("inspect", "-f", "{{.State.Running}}", container) == "true"
        history = docker.out("image", "history", "--no-trunc", "--format", "{{.ID}}", image).split()
        base_id = docker.out("image", "inspect", "-f", "{{.Id}}", base_image)
        assert base_id in history, "the registry image is not built from %s" % base_image

        url = "coap://127.0.0.1:%d" % port
        wait_for_registry(url)

        async def report(client: Client) -> None:
            assert (await client.put("w4", profile("w4"))).code == Code.CREATED
            assert await client.stored() == {"w4": profile("w4")}

        run_client(url, report)
        assert (tmp_path / "data" / "registry.sqlite").exists()

        rc, out = run_playbook(playbook, inventory, timeout=600)
        assert rc == 0, out
        assert recap(out)["localhost"]["changed"] == 0, out
        rc, out = run_playbook(playbook, inventory, "--check", timeout=600)
        assert rc == 0, out
        assert recap(out)["localhost"]["changed"] == 0, out

        # the database is on the host: a new container still has the profile
        docker("restart", container)
        wait_for_registry(url)
        assert run_client(url, lambda c: c.stored()) == {"w4": profile("w4")}
    finally:
        docker("rm", "-f", container, check=False)
        docker("image", "rm", "-f", "nanoedge-test/registry:%s" % unique, check=False)
