# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: standby_images
short_description: The images a node pulls ahead for the services it could take over
version_added: 0.1.0
author: nanoedge.core contributors (!UNKNOWN)
description:
  - A service that moves to a node without its image waits for the pull before it starts (1.5 s for the three
    pulse-oximeter services on the demo cluster, far longer over a slow uplink, never when the uplink is down).
    The role C(nanoedge.core.deploy) pulls these images ahead, so that a move starts at once.
  - Lists, among the services the plan places on other nodes or leaves unplaced, those O(node) could run, in the
    order of O(services), at most O(limit) of them. The node could run a service when its profile meets the
    service's requirements that no placement changes (capabilities, power, battery, network), as
    P(nanoedge.core.allocate#filter) reads them, and the service's demand fits the node's whole capacity (cores,
    total memory and storage), since what is free now may be taken by services that would leave with a failed node.
  - Nothing for the V(swarm) backend (Swarm pulls on its own), for bare-metal services (O(backends)) or for a node
    without a profile.
options:
  _input:
    description: The plan, the result of P(nanoedge.core.allocate#filter).
    type: dict
    required: true
  services:
    description: The service profiles, as P(nanoedge.core.service_profiles#lookup) returns them (C(name), C(image),
      C(digest), C(requires)).
    type: list
    elements: dict
    required: true
  node:
    description: The node that pulls.
    type: str
    required: true
  profile:
    description: The node's resource profile (P(nanoedge.core.resource_facts#module)); empty for none.
    type: dict
    default: {}
  pull_registry:
    description: The OCI registry as the node reaches it (host:port); empty pulls from the image's own registry.
    type: str
    default: ""
  backend:
    description: The deploy backend, V(container), V(baremetal) or V(swarm).
    type: str
    default: container
  backends:
    description: Service name to its backend, where it differs (V(baremetal) services are left out).
    type: dict
    default: {}
  limit:
    description: At most this many images (each costs the node storage).
    type: int
    default: 8
extends_documentation_fragment:
  - nanoedge.core.attributes.filter
seealso:
  - plugin: nanoedge.core.allocate
    plugin_type: filter
  - plugin: nanoedge.core.deployments
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Pull the images of the services this node could take over
  community.docker.docker_image_pull:
    name: "{{ item.image }}"
    pull: not_present
  loop: "{{ plan | nanoedge.core.standby_images(services, inventory_hostname, profile=profile,
                                                pull_registry='172.30.0.1:5000') }}"
  loop_control:
    label: "{{ item.service }}"
  # on w1 (it has the body-temperature probe and runs BoT), with the pulse oximeter's services on w4:
  # [] until the oximeter is plugged in; the alert and display need no capability: their images
"""

RETURN = r"""
_value:
  description: One item per image, C(service) and C(image) (pinned by digest, from O(pull_registry) when given).
  type: list
  elements: dict
  sample: [{"service": "alert", "image": "172.30.0.1:5000/nanoedge/alert@sha256:049ec956b1356807c54a8815"}]
"""

import typing as t  # noqa: E402

from ansible.errors import AnsibleFilterError  # noqa: E402

from ansible_collections.nanoedge.core.plugins.plugin_utils._standby import StandbyError, standby_images  # noqa: E402

FILTER = "nanoedge.core.standby_images"


def standby_images_filter(plan: t.Any, services: t.Any, node: t.Any, profile: t.Any = None, pull_registry: t.Any = "",
                          backend: t.Any = "container", backends: t.Any = None,
                          limit: t.Any = 8) -> t.List[t.Dict[str, str]]:
    try:
        return standby_images(plan, services, str(node), profile or {}, str(pull_registry or ""),
                              str(backend or "container"), backends or {}, limit)
    except StandbyError as exc:
        raise AnsibleFilterError("%s: %s" % (FILTER, exc)) from exc


class FilterModule:
    def filters(self) -> t.Dict[str, t.Callable[..., t.Any]]:
        return {"standby_images": standby_images_filter}
