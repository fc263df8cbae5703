# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""nanoedge.core.resource_facts through ansible-playbook against a real container.

The container gets Docker's CPU and memory limits (cgroup v1 or v2, whichever
the engine uses), a Pi's /proc/cpuinfo, a Pi device tree with a Sense HAT
EEPROM on /sys/firmware and a UPS HAT battery on /sys/class/power_supply: the
profile must show the limits, the HAT's capabilities and the battery.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "unit" / "fixtures" / "hw"

PLAYBOOK = """
- name: Discover resources on the fake Pi
  hosts: pis
  gather_facts: false
  tasks:
    - name: Discover in check mode first; nothing may change
      nanoedge.core.resource_facts:
        node: "{{ inventory_hostname }}"
      check_mode: true
      register: checked

    - name: Discover (node and declared capabilities default from the inventory)
      nanoedge.core.resource_facts:
        labels:
          site: ci
      register: discovered

    - name: Hand the result to the test
      ansible.builtin.copy:
        content: "{{ {'profile': nanoedge_profile, 'warnings': nanoedge_profile_warnings,
                      'changed': [checked.changed, discovered.changed],
                      'checked_cores': checked.ansible_facts.nanoedge_profile.cpu.cores} | to_json }}"
        dest: "{{ out_dir }}/{{ inventory_hostname }}.json"
        mode: "0644"
      delegate_to: localhost
"""

INVENTORY = """
all:
  hosts:
    localhost:
      ansible_connection: local
      ansible_python_interpreter: {controller_python}
  children:
    pis:
      hosts:
        {node}:
          ansible_connection: community.docker.docker
          ansible_host: {container}
          ansible_python_interpreter: /usr/bin/python3
          nanoedge_capabilities: [dd]
"""


@pytest.fixture()
def fake_pi(docker, base_image, unique, tmp_path):
    """A container limited like a small Pi, with fake Pi hardware mounted in."""
    firmware = tmp_path / "firmware"
    shutil.copytree(FIXTURES / "container-cgroup-v1" / "sys" / "firmware", firmware)
    power_supply = tmp_path / "power_supply"
    shutil.copytree(FIXTURES / "power" / "ups-discharging" / "sys" / "class" / "power_supply", power_supply)
    cpuinfo = tmp_path / "cpuinfo"
    shutil.copyfile(FIXTURES / "pi-3b-plus" / "proc" / "cpuinfo", cpuinfo)
    for path in [firmware, power_supply, *firmware.rglob("*"), *power_supply.rglob("*"), cpuinfo]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    tmp_path.chmod(0o755)

    name = "nanoedge-rf-%s" % unique
    docker(
        "run", "-d", "--name", name, "--cpus", "1.5", "--memory", "512m",
        "--security-opt", "systempaths=unconfined",
        "-v", "%s:/sys/firmware:ro" % firmware,
        "-v", "%s:/sys/class/power_supply:ro" % power_supply,
        "-v", "%s:/proc/cpuinfo:ro" % cpuinfo,
        base_image, "sleep", "infinity",
    )
    try:
        yield name
    finally:
        docker("rm", "-f", name, check=False)


def collections_path(ansible_env) -> str:
    """This collection's layout first, then where make put community.docker
    (the same folder unless the layout is a private COLL_DEST)."""
    paths = [ansible_env["ANSIBLE_COLLECTIONS_PATH"]]
    inherited = os.environ.get("ANSIBLE_COLLECTIONS_PATH")
    if inherited:
        paths.append(inherited)
    return os.pathsep.join(paths)


def test_profile_of_a_limited_container_with_fake_pi_hardware(fake_pi, run_playbook, ansible_env, unique, tmp_path):
    node = "pi-%s" % unique
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    rc, output = run_playbook(
        PLAYBOOK,
        INVENTORY.format(controller_python=sys.executable, node=node, container=fake_pi),
        "-e", "out_dir=%s" % out_dir,
        env={"ANSIBLE_COLLECTIONS_PATH": collections_path(ansible_env)},
    )
    assert rc == 0, output
    result = json.loads((out_dir / ("%s.json" % node)).read_text())
    profile = result["profile"]

    assert result["changed"] == [False, False]
    assert result["warnings"] == []
    assert result["checked_cores"] == 1
    assert profile["node"] == node
    # --cpus 1.5 -> floor(150000 / 100000); --memory 512m
    assert profile["cpu"]["cores"] == 1
    assert profile["memory_mb"]["total"] == 512
    assert 0 < profile["memory_mb"]["available"] <= 512
    # the Pi's cpuinfo and device tree, read where a container sees them
    assert profile["cpu"]["bogomips"] == 89.6
    assert profile["model"] == "Raspberry Pi 3 Model B Plus Rev 1.3"
    # the Sense HAT's EEPROM gives env and imu; dd is declared in the inventory
    assert profile["capabilities"] == ["dd", "env", "imu"]
    assert [(d["capability"], d["bus"], d["id"], d.get("serial")) for d in profile["devices"]] == [
        ("env", "hat", "Sense HAT", "8f4ad0b5-0ac1-4a6a-9b1b-0d3f7b6e5c21"),
        ("imu", "hat", "Sense HAT", "8f4ad0b5-0ac1-4a6a-9b1b-0d3f7b6e5c21"),
    ]
    # the UPS HAT battery, discharging
    assert profile["power"] == {"source": "dc", "battery_percent": 41, "battery_health": 0.93, "charging": False}
    # the container's eth0 is its end of a veth pair: not hardware
    assert profile["network"] == []
    assert profile["labels"] == {"site": "ci"}
    assert len(json.dumps(profile, separators=(",", ":"))) < 2048
