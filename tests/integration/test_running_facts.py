# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""nanoedge.core.running_facts against the real Docker engine of this machine:
labelled containers in any state, units under the prefix, nothing else."""

from __future__ import annotations

import json
import os
import sys

PLAYBOOK = """
- hosts: node
  gather_facts: false
  tasks:
    - nanoedge.core.running_facts:
        name_prefix: "{{ prefix }}"
        unit_dir: "{{ unit_dir }}"
      register: found
    - ansible.builtin.copy:
        content: "{{ nanoedge_deploy_running | to_json }}"
        dest: "{{ out }}"
        mode: "0644"
"""

INVENTORY = """
node:
  hosts:
    localhost:
      ansible_connection: local
      ansible_python_interpreter: {python}
"""


def test_labelled_containers_of_the_real_engine(docker, base_image, unique, run_playbook, ansible_env, tmp_path):
    prefix = "nanoedge-it%s-" % unique[:6]
    digest = "sha256:" + "5" * 64
    names = []
    try:
        for service, extra in (("spo2", ["--label", "io.nanoedge.digest=" + digest]), ("hrv", []), ("other", [])):
            name = prefix + service if service != "other" else "elsewhere-%s" % unique[:6]
            names.append(name)
            docker("run", "-d", "--name", name, "--label", "io.nanoedge.service=" + service, *extra,
                   base_image, "sleep", "300")
        docker("stop", "-t", "0", prefix + "hrv")
        units = tmp_path / "units"
        units.mkdir()
        (units / (prefix + "hr.service")).write_text("[Service]\nExecStart=/bin/true\n")
        out = tmp_path / "running.json"
        paths = [ansible_env["ANSIBLE_COLLECTIONS_PATH"]] + ([os.environ["ANSIBLE_COLLECTIONS_PATH"]]
                                                             if os.environ.get("ANSIBLE_COLLECTIONS_PATH") else [])
        rc, output = run_playbook(PLAYBOOK, INVENTORY.format(python=sys.executable),
                                  "-e", "prefix=%s unit_dir=%s out=%s" % (prefix, units, out),
                                  env={"ANSIBLE_COLLECTIONS_PATH": os.pathsep.join(paths)})
        assert rc == 0, output
        running = json.loads(out.read_text())
        assert running["engine"] is True
        assert running["containers"] == {"spo2": prefix + "spo2", "hrv": prefix + "hrv"}
        assert running["container_states"] == {"spo2": "running", "hrv": "exited"}
        assert running["container_digests"] == {"spo2": digest, "hrv": ""}
        assert running["units"] == {"hr": prefix + "hr.service"}
        assert running["services"] == ["hr", "hrv", "spo2"]
        assert running["swarm_tasks"] == {}
    finally:
        for name in names:
            docker("rm", "-f", name, check=False)
