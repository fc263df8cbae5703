# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: swarm_service
short_description: The Docker Swarm service that runs one deployment description on its planned node
version_added: 0.1.0
author: nanoedge.core contributors (!UNKNOWN)
description:
  - Turns one description of P(nanoedge.core.deployments#filter) (backend V(swarm)) into the options of
    M(community.docker.docker_swarm_service), so a Swarm service runs exactly what the container backend would run.
  - One replica, pinned to the planned node by the constraint C(node.labels.nanoedge.node == <node>) (see
    P(nanoedge.core.swarm_node_labels#filter)); moving the service to another node changes only that constraint, which
    M(community.docker.docker_swarm_service) applies as an update of the existing service.
  - The image by digest, the C(io.nanoedge.*) labels on the service and on its task containers, the environment, the
    bind mounts, and CPU and memory from the requirements as both limits and reservations.
  - The service also carries the label C(io.nanoedge.network) with O(network_mode), because Swarm reports a service's
    network by an ID of its own; so this label is how a change of network is told apart from none.
  - Swarm restarts a task that stops (O(restart_policy) as Swarm's restart condition) on the same node.
  - Swarm services cannot be given devices; a description with devices is an error (the deployments filter describes a
    service that needs a device node for its node's engine instead).
options:
  _input:
    description: One deployment description, as returned by P(nanoedge.core.deployments#filter).
    type: dict
    required: true
  restart_policy:
    description:
      - The container backend's restart policy; V(always) and V(unless-stopped) become Swarm's V(any),
        V(on-failure) stays, V(no) becomes V(none).
    type: str
    choices: ["no", on-failure, always, unless-stopped]
    default: unless-stopped
  network_mode:
    description:
      - The network of the task; V(host) (the default) lets services reach each other at the nodes' addresses, as
        with the other backends. With another network the service's port is published in host mode on its node.
    type: str
    default: host
  restart_delay:
    description: Seconds Swarm waits before it restarts a stopped task.
    type: float
    default: 5
  stop_grace_period:
    description: Seconds a task gets to stop before it is killed.
    type: float
    default: 10
extends_documentation_fragment:
  - nanoedge.core.attributes.filter
seealso:
  - plugin: nanoedge.core.deployments
    plugin_type: filter
  - plugin: nanoedge.core.swarm_placements
    plugin_type: filter
  - module: community.docker.docker_swarm_service
"""

EXAMPLES = r"""
- name: Run w4's services as Swarm services pinned to w4 (on a Swarm manager)
  community.docker.docker_swarm_service: "{{ item | nanoedge.core.swarm_service }}"
  loop: "{{ plan | nanoedge.core.deployments(services, 'w4', backend='swarm', pull_registry='10.0.0.1:5000') }}"
  loop_control:
    label: "{{ item.name }}"
"""

RETURN = r"""
_value:
  description: Options of M(community.docker.docker_swarm_service).
  type: dict
  sample:
    name: nanoedge-svc-spo2
    image: 172.30.0.1:5000/nanoedge/spo2@sha256:d79e813a7b3113f8347966e041aaf8379106534e94027e82e556ae8ac7cbc937
    resolve_image: false
    mode: replicated
    replicas: 1
    labels: {"io.nanoedge.service": "spo2", "io.nanoedge.node": "w4", "io.nanoedge.network": "host"}
    container_labels: {"io.nanoedge.service": "spo2", "io.nanoedge.node": "w4"}
    env: {"NANOEDGE_PORT": "5701", "NANOEDGE_POM_DEVICE": "/dev/ttyUSB0"}
    mounts: [{"type": "bind", "source": "/dev/ttyUSB0", "target": "/dev/ttyUSB0", "readonly": true}]
    placement: {"constraints": ["node.labels.nanoedge.node == w4"]}
    restart_config: {"condition": "any", "delay": "5s"}
    update_config: {"order": "stop-first"}
    stop_grace_period: 10s
    limits: {"cpus": 0.5, "memory": "64M"}
    reservations: {"cpus": 0.5, "memory": "64M"}
    networks: [host]
    publish: []
"""


import typing as t  # noqa: E402

from ansible.errors import AnsibleFilterError  # noqa: E402

from ansible_collections.nanoedge.core.plugins.plugin_utils._swarm import SwarmError, service_spec  # noqa: E402

FILTER = "nanoedge.core.swarm_service"


def swarm_service(description: t.Any, restart_policy: t.Any = "unless-stopped", network_mode: t.Any = "host",
                  restart_delay: t.Any = 5, stop_grace_period: t.Any = 10) -> t.Dict[str, t.Any]:
    try:
        return service_spec(description, str(restart_policy), str(network_mode), restart_delay, stop_grace_period)
    except SwarmError as exc:
        raise AnsibleFilterError("%s: %s" % (FILTER, exc)) from exc


class FilterModule:
    def filters(self) -> t.Dict[str, t.Callable[..., t.Any]]:
        return {"swarm_service": swarm_service}
