# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A service described once: images built by tools/nanoservices.py carry the
validated service.json as their label, the service_profiles lookup returns
it, and deployment needs nothing else, for images labelled that way and for
images labelled the older way (requirements and name only). Against the
real registry on 127.0.0.1:5000 and this machine's Docker engine.
"""

from __future__ import annotations

import filecmp
import json
import os
import subprocess
import sys
import typing as t
import uuid

import pytest

from ansible_collections.nanoedge.core.plugins.plugin_utils._service_description import normalize_description
from ansible_collections.nanoedge.core.plugins.plugin_utils._service_profiles import DiscoveryOptions, discover

from conftest import COLLECTION_ROOT, read_json_marker  # pylint: disable=import-error

NANOSERVICES = COLLECTION_ROOT / "nanoservices"
# An image as images were labelled before the description label: the program and libraries at the same
# places, one exposed port, the requirements and the name, nothing else.
OLDER_DOCKERFILE = """
FROM {described} AS files
FROM {base}
COPY --from=files /opt/nanoedge /opt/nanoedge
ENV PYTHONPATH=/opt/nanoedge/lib PYTHONUNBUFFERED=1
EXPOSE 5715/udp
LABEL io.nanoedge.service="alert-older" \\
      io.nanoedge.requirements='{{"cpu": 0.25, "memory_mb": 48}}' \\
      org.opencontainers.image.version="0.9.0"
ENTRYPOINT ["python3", "/opt/nanoedge/service/main.py"]
"""


def service_json(name: str) -> t.Dict[str, t.Any]:
    return json.loads((NANOSERVICES / name / "service.json").read_text())


@pytest.fixture(scope="module")
def images(docker, registry, base_image, tmp_path_factory):
    """alert and bot built by tools/nanoservices.py into a namespace of their own, and an older-style image."""
    namespace = "nanoedge-it-%s" % uuid.uuid4().hex[:10]
    proc = subprocess.run([sys.executable, str(COLLECTION_ROOT / "tools" / "nanoservices.py"), "--registry", registry,
                           "--namespace", namespace, "--base-image", base_image, "--json", "alert", "bot"],
                          capture_output=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    built = {result["name"]: result for result in json.loads(proc.stdout)}
    context = tmp_path_factory.mktemp("older")
    (context / "Dockerfile").write_text(OLDER_DOCKERFILE.format(described=built["alert"]["image"], base=base_image))
    older = "%s/%s/alert-older:0.9.0" % (registry, namespace)
    docker("build", "-q", "-t", older, str(context))
    docker("push", "-q", older)
    yield {"registry": registry, "namespace": namespace, "built": built, "older": older}
    for ref in [r["image"] for r in built.values()] + [older]:
        docker("image", "rm", "-f", ref, ref.rsplit(":", 1)[0] + ":latest", check=False)


def _discover(images, *names: str) -> t.Dict[str, t.Dict[str, t.Any]]:
    repositories = ["%s/%s" % (images["namespace"], name) for name in names]
    options = DiscoveryOptions(registry="http://" + images["registry"], repositories=repositories,
                               tag_policy="fixed", tag="latest" if "alert-older" not in names else "0.9.0")
    return {s["name"]: s for s in discover(options).services}


@pytest.mark.parametrize("name", ["alert", "bot"])
def test_service_profiles_label_of_a_built_image_is_the_validated_service_json(images, docker, name):
    expected = normalize_description(service_json(name))
    labels = json.loads(docker.out("image", "inspect", "-f", "{{json .Config.Labels}}", images["built"][name]["image"]))
    assert json.loads(labels["io.nanoedge.description"]) == expected
    assert images["built"][name]["description"] == expected
    # what the lookup returns is that description, and the requirements label agrees with it
    profile = _discover(images, name)[name]
    assert profile["description"] == expected
    assert profile["requires"] == expected["requirements"]
    assert profile["registry"] == "http://" + images["registry"]


def test_service_profiles_of_an_image_labelled_the_older_way(images):
    profile = _discover(images, "alert-older")["alert-older"]
    assert profile["description"] == normalize_description({
        "name": "alert-older", "version": "0.9.0", "requirements": {"cpu": 0.25, "memory_mb": 48},
        "port": {"number": 5715, "protocol": "udp"}})


DEPLOY_PLAYBOOK = """
- hosts: nodes
  gather_facts: false
  tasks:
    - name: Step 3
      ansible.builtin.set_fact:
        services: "{{ lookup('nanoedge.core.service_profiles', registry='http://' ~ registry, repositories=repositories,
                             tag_policy='fixed', tag=tag) }}"
    - name: Step 5, from what step 3 returned only
      ansible.builtin.include_role:
        name: nanoedge.core.deploy
      vars:
        nanoedge_deploy_plan: "{{ {'by_node': {'n1': [service]}, 'placements': {service: 'n1'}} }}"
        nanoedge_deploy_services: "{{ services }}"
        nanoedge_deploy_name_prefix: "{{ prefix }}"
        nanoedge_deploy_network_mode: bridge
        nanoedge_deploy_reconcile: false
        nanoedge_deploy_manage_packages: false
        nanoedge_deploy_addresses: {n1: 127.0.0.1}
    - name: Show
      ansible.builtin.debug:
        var: nanoedge_deploy_result
"""

NODE_INVENTORY = """
nodes:
  hosts:
    n1:
      ansible_connection: local
      ansible_python_interpreter: {python}
"""


@pytest.mark.parametrize("repository, tag, service, port", [
    ("alert", "latest", "alert", 5705),
    ("alert-older", "0.9.0", "alert-older", 5715),
])
def test_deploy_runs_a_container_from_what_the_image_says(images, docker, run_playbook, unique, repository, tag,
                                                          service, port):
    prefix = "nanoedge-it%s-" % unique[:6]
    container = prefix + service
    extra = {"registry": images["registry"], "repositories": ["%s/%s" % (images["namespace"], repository)],
             "tag": tag, "service": service, "prefix": prefix}
    try:
        rc, output = run_playbook(DEPLOY_PLAYBOOK, NODE_INVENTORY.format(python=sys.executable),
                                  "-e", json.dumps(extra))
        assert rc == 0, output
        (described,) = read_json_marker(output, '"nanoedge_deploy_result": ')
        inspected = json.loads(docker.out("container", "inspect", container))[0]
        assert inspected["Config"]["Labels"]["io.nanoedge.service"] == service
        assert inspected["Config"]["Labels"]["io.nanoedge.digest"] == described["digest"]
        assert "NANOEDGE_PORT=%d" % port in inspected["Config"]["Env"]
        assert list(inspected["HostConfig"]["PortBindings"]) == ["%d/udp" % port]
        assert inspected["HostConfig"]["NanoCpus"] == 250000000
        rc, output = run_playbook(DEPLOY_PLAYBOOK, NODE_INVENTORY.format(python=sys.executable),
                                  "-e", json.dumps(extra))
        assert rc == 0 and "changed=0" in output, output
    finally:
        docker("rm", "-f", container, check=False)


BAREMETAL_PLAYBOOK = """
- hosts: nodes
  gather_facts: false
  tasks:
    - name: Step 3
      ansible.builtin.set_fact:
        services: "{{ lookup('nanoedge.core.service_profiles', registry='http://' ~ registry,
                             repositories=[namespace ~ '/bot'], tag_policy='fixed', tag='latest') }}"
    - name: Describe bot for the bare-metal backend, from what step 3 returned
      ansible.builtin.set_fact:
        described: >-
          {{ {'by_node': {'n1': ['bot']}, 'placements': {'bot': 'n1'}}
             | nanoedge.core.deployments(services, 'n1', backend='baremetal', install_dir=install_dir) }}
    # the deploy role's two steps: unpack on the controller, send to the node
    - name: Unpack the program and libraries from the image
      ansible.builtin.set_fact:
        tree: >-
          {{ lookup('nanoedge.core.image_files', *described[0].image_paths, registry=described[0].source_registry,
                    repository=described[0].source_repository, digest=described[0].digest, cache_dir=cache_dir) }}
    - name: Install them
      nanoedge.core.sync_tree:
        src: "{{ tree }}{{ described[0].image_home }}"
        dest: "{{ described[0].service_dir }}"
        exclude: [__pycache__, "*.pyc", ".*", "*~"]
        mode: "0644"
    - name: Show
      ansible.builtin.debug:
        var: described
"""


def test_baremetal_program_and_libraries_come_from_the_image(images, run_playbook, tmp_path):
    install_dir = tmp_path / "install"
    extra = {"registry": images["registry"], "namespace": images["namespace"], "install_dir": str(install_dir),
             "cache_dir": str(tmp_path / "cache")}
    rc, output = run_playbook(BAREMETAL_PLAYBOOK, NODE_INVENTORY.format(python=sys.executable), "-e", json.dumps(extra))
    assert rc == 0, output
    (bot,) = read_json_marker(output, '"described": ')
    service_dir = install_dir / "services" / "bot"
    assert bot["program"] == str(service_dir / "service" / "main.py")
    assert bot["pythonpath"] == [str(service_dir / "lib")]
    assert bot["env"] == {"NANOEDGE_PORT": "5704", "NANOEDGE_W1_DEVICES": "/sys/bus/w1/devices",
                          "NANOEDGE_STATE_DIR": "/var/lib/nanoedge/bot"}
    assert bot["writable_paths"] == ["/var/lib/nanoedge/bot"]
    # the very files of nanoservices/: the program and its library, and nothing else of the image
    assert (service_dir / "service" / "main.py").read_bytes() == (NANOSERVICES / "bot" / "bot.py").read_bytes()
    assert sorted(os.listdir(service_dir)) == ["lib", "service"]
    assert sorted(os.listdir(service_dir / "lib")) == ["nanoedge_ns"]
    source = NANOSERVICES / "common" / "nanoedge_ns"
    names = sorted(p.name for p in source.iterdir() if p.suffix == ".py")
    assert sorted(os.listdir(service_dir / "lib" / "nanoedge_ns")) == names
    assert filecmp.cmpfiles(source, service_dir / "lib" / "nanoedge_ns", names, shallow=False)[0] == names
    # one folder for the image's digest; a second run finds it and changes nothing
    unpacked = [p.name for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".") and p.is_dir()]
    assert [name.rsplit(".", 1)[0] for name in unpacked if name != "layers"] == [bot["digest"].replace(":", "-")]
    rc, output = run_playbook(BAREMETAL_PLAYBOOK, NODE_INVENTORY.format(python=sys.executable), "-e", json.dumps(extra))
    assert rc == 0 and "changed=0" in output, output
