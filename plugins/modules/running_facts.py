#!/usr/bin/python
# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: running_facts
short_description: Find the nanoedge services a node runs
version_added: 0.1.0
description:
  - Lists the containers labelled O(label) (in any state) and the systemd units named C(<name_prefix><service>.service)
    on the node, and returns them as the fact C(nanoedge_deploy_running).
  - The site playbook gathers it before planning and passes what runs as the C(current) placement of
    P(nanoedge.core.allocate#filter), so services stay where they are while their node still fits them; the
    R(nanoedge.core.deploy,ansible_collections.nanoedge.core.deploy_role) role removes what the plan no longer puts
    on the node.
  - The Docker engine is asked over its Unix socket with the Python standard library, so the node needs neither the
    Docker SDK nor C(requests) for this; one task answers every question the deploy role asks before it changes
    anything.
  - Containers that belong to a Docker Swarm task are listed apart, in C(swarm_tasks), since Swarm places and removes them.
author:
  - nanoedge.core contributors (!UNKNOWN)
extends_documentation_fragment:
  - nanoedge.core.attributes
  - nanoedge.core.attributes.facts
  - nanoedge.core.attributes.facts_module
options:
  docker_socket:
    description:
      - The Docker engine's Unix socket. When it does not exist the node has no engine and no containers are listed.
    type: path
    default: /var/run/docker.sock
  unit_dir:
    description: Where the bare-metal backend writes its systemd units.
    type: path
    default: /etc/systemd/system
  name_prefix:
    description: Containers and units are named C(<name_prefix><service>); only names with this prefix are the node's own.
    type: str
    default: nanoedge-svc-
  label:
    description: The container label whose value is the service's name.
    type: str
    default: io.nanoedge.service
  timeout:
    description: Seconds to wait for the Docker engine.
    type: float
    default: 10
notes:
  - Fails with a message naming the socket when the socket exists but the engine does not answer, since what runs on
    the node cannot then be known.
seealso:
  - module: nanoedge.core.resource_facts
"""

EXAMPLES = r"""
- name: Find what runs here
  nanoedge.core.running_facts:

- name: Show it
  ansible.builtin.debug:
    msg: "{{ inventory_hostname }} runs {{ nanoedge_deploy_running.services | join(', ') or 'nothing' }}"

- name: An engine on another socket, and units under another prefix
  nanoedge.core.running_facts:
    docker_socket: /run/user/1000/docker.sock
    name_prefix: ward3-
"""

RETURN = r"""
ansible_facts:
  description: Facts set on the host.
  returned: always
  type: dict
  contains:
    nanoedge_deploy_running:
      description: What nanoedge runs on the node.
      returned: always
      type: dict
      contains:
        services:
          description: Every service the node runs itself, in a container or a unit, sorted.
          returned: always
          type: list
          elements: str
          sample: [hrv, spo2]
        containers:
          description: Service to container name, for containers named with O(name_prefix) (any state).
          returned: always
          type: dict
          sample: {"spo2": "nanoedge-svc-spo2"}
        container_states:
          description: Service to the container's state as the engine reports it (V(running), V(exited), ...).
          returned: always
          type: dict
          sample: {"spo2": "running"}
        container_digests:
          description: Service to the image digest its container was deployed from (its label C(io.nanoedge.digest)).
          returned: always
          type: dict
          sample: {"spo2": "sha256:50dcc2cde9bda45795312558eff573761579d9cdba855eadfb3898a99bdf4d5f"}
        units:
          description: Service to systemd unit name.
          returned: always
          type: dict
          sample: {"hrv": "nanoedge-svc-hrv.service"}
        swarm_tasks:
          description: Service to the names of the containers of its Docker Swarm tasks on this node.
          returned: always
          type: dict
          sample: {"alert": ["nanoedge-svc-alert.1.xvf0b6tq1n0s2l1bq2d2cw3tj"]}
        engine:
          description: Whether the node has a Docker engine (O(docker_socket) exists).
          returned: always
          type: bool
        requests:
          description: Whether the Python library C(requests), which the Docker modules need, is importable here.
          returned: always
          type: bool
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.nanoedge.core.plugins.module_utils._labels import SERVICE_LABEL  # noqa: E402
from ansible_collections.nanoedge.core.plugins.module_utils._running import RunningError, running  # noqa: E402

PREFIX = "nanoedge.core.running_facts: "


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            docker_socket=dict(type="path", default="/var/run/docker.sock"),
            unit_dir=dict(type="path", default="/etc/systemd/system"),
            name_prefix=dict(type="str", default="nanoedge-svc-"),
            label=dict(type="str", default=SERVICE_LABEL),
            timeout=dict(type="float", default=10),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        result = running(
            socket_path=params["docker_socket"],
            unit_dir=params["unit_dir"],
            name_prefix=params["name_prefix"],
            label=params["label"],
            timeout=params["timeout"],
        )
    except RunningError as exc:
        module.fail_json(msg=PREFIX + str(exc))
    module.exit_json(changed=False, ansible_facts={"nanoedge_deploy_running": result})


if __name__ == "__main__":
    main()
