# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: deployments
short_description: Describe what one node runs, for the container, bare-metal and Swarm backends
version_added: 0.1.0
author: nanoedge.core contributors
description:
  - Step 5 of the pipeline. Takes an allocation (the result of P(nanoedge.core.allocate#filter)) and the service
    profiles (P(nanoedge.core.service_profiles#lookup)) and returns, for every service the allocation places on
    O(node), one description that the role C(nanoedge.core.deploy)
    turns into a container or a systemd unit, and the role C(nanoedge.core.swarm) into a Docker Swarm service
    (see P(nanoedge.core.swarm_service#filter)).
  - The image is pinned by digest and pulled from O(pull_registry) when given (nodes often reach the registry
    under another address than the controller).
  - From the service description each profile holds (what the service_profiles lookup read from the image's
    C(io.nanoedge.description) label) come the port, the devices and paths it reads or drives (mounted into a
    container, or given as they are on bare metal), its fixed environment, the services it consumes and, for the
    bare-metal backend, where the image keeps its program and libraries. Each consumed service gets the address of
    the node the allocation put it on, as C(coap://ADDRESS:PORT/PATH), in the environment variable the consumer
    names.
  - With O(directory) (the node's service directory, served by its agent), a service whose description sets
    C(directory) to V(true) gets C(NANOEDGE_DIRECTORY_URI), its node's name as C(NANOEDGE_INSTANCE) (the instance in
    its readings' source) and, when it serves something, its own address as C(NANOEDGE_SELF_URI) (it registers
    there); as a consumer it gets the name, C(service:NAME), of each producer whose description says so too,
    instead of its address, so its environment does not change when such a producer moves and it is not
    recreated. A service without the key gets addresses, even when it ships the library C(nanoedge_ns).
  - CPU and memory limits come from the service's requirements.
  - Swarm services cannot be given devices. With the V(swarm) backend, a service that uses a character or block
    device on its node (as O(path_types) tells) is described for the V(container) backend instead, with the reason
    in C(backend_note), so it runs on its node's own engine with the device granted; paths that are not device nodes
    are bind-mounted into the Swarm task.
options:
  _input:
    description: The allocation, as returned by P(nanoedge.core.allocate#filter).
    type: dict
    required: true
  services:
    description:
      - The service profiles as P(nanoedge.core.service_profiles#lookup) returns them, each with C(name), C(image),
        C(digest), C(requires), C(description) (the service description) and C(registry).
      - A profile without C(description) runs with its image's defaults (container backend only).
    type: list
    elements: dict
    required: true
  node:
    description: The node whose services are described.
    type: str
    required: true
  specs:
    description:
      - Service name to a service description (the keys of C(service.json)) that replaces the one its profile holds,
        for images that carry none. Validated with the same schema; C(name) and C(requirements) may be left out.
    type: dict
    default: {}
  addresses:
    description: Node name to the address other nodes reach it at (for the consumers' environment).
    type: dict
    default: {}
  backend:
    description: The backend of every service not named in O(backends).
    type: str
    choices: [container, baremetal, swarm]
    default: container
  backends:
    description: Service name to its backend, overriding O(backend).
    type: dict
    default: {}
  pull_registry:
    description: The registry as the nodes reach it (V(172.30.0.1:5000)); empty keeps the image's own.
    type: str
    default: ""
  name_prefix:
    description: Prefix of container and systemd unit names; with it the role recognises what it manages.
    type: str
    default: nanoedge-svc-
  install_dir:
    description: Where bare-metal services are installed on the node.
    type: str
    default: /opt/nanoedge
  path_types:
    description:
      - Host path to what it is on the node, V(char), V(block), V(dir), V(file) or V(missing), or to the C(stat)
        result of M(ansible.builtin.stat) for it. A character or block device is passed to a container as a device,
        anything else is bind-mounted.
    type: dict
    default: {}
  platform:
    description:
      - The node's platform, the C(arch) of its profile (V(arm/v7), V(arm64), V(amd64)).
      - Each service then runs its image's platform for that node (a V(arm/v7) node also runs V(arm/v6) and
        V(arm/v5) images), and an image without one is an error. Empty leaves the choice to the node's engine.
    type: str
    default: ""
  directory:
    description:
      - The node's service directory as its services reach it, C(coap://127.0.0.1:PORT) with the agent's
        C(nanoedge_agent_directory_port); empty for none (a static deployment without agents, or services that do not
        run on the host's network).
    type: str
    default: ""
extends_documentation_fragment:
  - nanoedge.core.attributes.filter
seealso:
  - plugin: nanoedge.core.allocate
    plugin_type: filter
  - plugin: nanoedge.core.service_profiles
    plugin_type: lookup
"""

EXAMPLES = r"""
- name: What this worker runs
  ansible.builtin.set_fact:
    my_services: >-
      {{ plan | nanoedge.core.deployments(services, inventory_hostname,
                                          addresses={'w4': '10.0.0.24'},
                                          pull_registry='10.0.0.1:5000') }}
# my_services[0].image == "10.0.0.1:5000/nanoedge/spo2@sha256:d79e..."
# my_services[0].env == {"NANOEDGE_POM_DEVICE": "/dev/ttyUSB0", "NANOEDGE_PORT": "5701"}

- name: What this worker runs, its services finding each other at the node's directory
  ansible.builtin.set_fact:
    my_services: >-
      {{ plan | nanoedge.core.deployments(services, inventory_hostname, addresses=node_addresses,
                                          directory='coap://127.0.0.1:5690') }}
# on the alert's node: env == {"NANOEDGE_DIRECTORY_URI": "coap://127.0.0.1:5690", "NANOEDGE_INSTANCE": "w2",
#   "NANOEDGE_PORT": "5705",
#   "NANOEDGE_SELF_URI": "coap://172.30.0.22:5705/alert", "NANOEDGE_SPO2_URI": "service:spo2", ...}
"""

RETURN = r"""
_value:
  description: One description per service placed on O(node), in placement order.
  type: list
  elements: dict
  contains:
    name:
      description: The service name.
      type: str
      sample: spo2
    backend:
      description: V(container), V(baremetal) or V(swarm).
      type: str
      sample: container
    backend_note:
      description: Why the service runs under another backend than the one asked for, or empty.
      type: str
      sample: "runs on the node's engine: Swarm services cannot use the device(s) /dev/ttyUSB0"
    image:
      description: The image reference pinned by digest, as the node pulls it.
      type: str
      sample: 172.30.0.1:5000/nanoedge/spo2@sha256:d79e813a7b3113f8347966e041aaf8379106534e94027e82e556ae8ac7cbc937
    platform:
      description: The platform of the image the node runs (O(platform) chose it among the image's), or V(null).
      type: str
      sample: linux/arm/v7
    container_name:
      description: The container name (also the systemd unit name without C(.service)).
      type: str
      sample: nanoedge-svc-spo2
    unit_name:
      description: The systemd unit of the bare-metal backend.
      type: str
      sample: nanoedge-svc-spo2.service
    labels:
      description:
        - The C(io.nanoedge.*) labels of the container (service, node, digest, image, requirements, uri).
        - On a container description, C(io.nanoedge.spec) is a digest of what the container is created from; a node
          whose container carries the wanted digest leaves it as it is.
      type: dict
      sample: {"io.nanoedge.service": "spo2", "io.nanoedge.node": "w4", "io.nanoedge.spec": "sha256:..."}
    env:
      description: The environment of the service, with its devices and the addresses of what it consumes.
      type: dict
      sample: {"NANOEDGE_PORT": "5705", "NANOEDGE_SPO2_URI": "coap://172.30.0.24:5701/spo2"}
    mounts:
      description: Bind mounts for the container backend.
      type: list
      elements: dict
      sample: [{"type": "bind", "source": "/sys/bus/w1/devices", "target": "/run/nanoedge/w1", "read_only": true}]
    devices:
      description: Devices for the container backend, as C(HOST:CONTAINER:PERMISSIONS).
      type: list
      elements: str
      sample: ["/dev/ttyUSB0:/dev/ttyUSB0:r"]
    io:
      description:
        - The service's devices and paths as its description declares them, so that a node can finish the
          description with what each path is there (the node-side moves of the reconcile service).
      type: list
      elements: dict
      sample: [{"host_path": "/dev/ttyUSB0", "container_path": "/dev/ttyUSB0", "mode": "ro", "kind": "sensor",
                "env": "NANOEDGE_SPO2_DEVICE"}]
    paths:
      description: Every device or path the service uses, with C(mode) and what it is on the node (C(type)).
      type: list
      elements: dict
      sample: [{"path": "/dev/ttyUSB0", "mode": "ro", "kind": "sensor", "type": "char"}]
    cpus:
      description: CPU limit of the container (the required cores), or V(null) for none.
      type: float
      sample: 0.5
    memory:
      description: Memory limit of the container, or V(null) for none.
      type: str
      sample: 64M
    cpu_quota:
      description: The same CPU limit as systemd's C(CPUQuota=).
      type: str
      sample: 50%
    memory_max:
      description: The same memory limit as systemd's C(MemoryMax=).
      type: str
      sample: 64M
    program:
      description: Where the bare-metal backend installs the program on the node, or V(null) when the description names none.
      type: str
      sample: /opt/nanoedge/services/spo2/service/main.py
    pythonpath:
      description: The folders the bare-metal backend puts on C(PYTHONPATH) (the service's libraries), before its wheels.
      type: list
      elements: str
      sample: [/opt/nanoedge/services/spo2/lib]
    service_dir:
      description: The bare-metal service's folder on the node; it receives the image's C(image_home) folder.
      type: str
      sample: /opt/nanoedge/services/spo2
    image_home:
      description: The folder of the image that the bare-metal backend copies to C(service_dir).
      type: str
      sample: /opt/nanoedge
    image_paths:
      description: The folders of the image the bare-metal backend unpacks (the program's and each library's).
      type: list
      elements: str
      sample: [/opt/nanoedge/service, /opt/nanoedge/lib/nanoedge_ns]
    source_registry:
      description: The registry the controller reads the image from (the profile's C(registry)).
      type: str
      sample: http://127.0.0.1:5000
    source_repository:
      description: The image's repository in that registry.
      type: str
      sample: nanoedge/spo2
    libraries:
      description: The description's library folders (relative to C(nanoservices/) where the image was built).
      type: list
      elements: str
      sample: [common/nanoedge_ns]
    python_requirements:
      description: Pinned Python distributions the program needs.
      type: list
      elements: str
      sample: [aiocoap==0.4.17]
    writable_paths:
      description: Paths the service writes (mode V(rw)).
      type: list
      elements: str
      sample: [/run/nanoedge/oc]
"""

import typing as t

from ansible.errors import AnsibleFilterError

from ansible_collections.nanoedge.core.plugins.plugin_utils._deployment import DeploymentError, deployments

FILTER = "nanoedge.core.deployments"


def deployments_filter(plan: t.Any, services: t.Any, node: t.Any, specs: t.Any = None, addresses: t.Any = None,
                       backend: t.Any = "container", backends: t.Any = None, pull_registry: t.Any = "",
                       name_prefix: t.Any = "nanoedge-svc-", install_dir: t.Any = "/opt/nanoedge",
                       path_types: t.Any = None, platform: t.Any = "", directory: t.Any = "") -> t.List[t.Dict[str, t.Any]]:
    try:
        return deployments(plan, services, node, specs=specs, addresses=addresses, backend=backend,
                           backends=backends, pull_registry=pull_registry, name_prefix=name_prefix,
                           install_dir=install_dir, path_types=path_types, platform=platform, directory=directory)
    except DeploymentError as exc:
        raise AnsibleFilterError("%s: %s" % (FILTER, exc)) from exc


class FilterModule:
    def filters(self) -> t.Dict[str, t.Callable[..., t.Any]]:
        return {"deployments": deployments_filter}
