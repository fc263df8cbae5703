# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: swarm_placements
short_description: Where the nanoedge Swarm services are pinned now
version_added: 0.1.0
author: nanoedge.core contributors (!UNKNOWN)
description:
  - Reads the Docker Swarm services, as M(community.docker.docker_swarm_info) lists them with
    O(community.docker.docker_swarm_info#module:verbose_output=true), and returns service name (the C(io.nanoedge.service)
    label) to the node its C(node.labels.nanoedge.node == <node>) constraint pins it to.
  - The site playbook passes this as the C(current) placement of P(nanoedge.core.allocate#filter), so a Swarm service
    stays on its node while the node still fits it.
  - Services without the label, or not pinned by exactly one such constraint, are left out.
options:
  _input:
    description: The services (each with C(Spec)), or their specifications.
    type: list
    elements: dict
    required: true
  label:
    description: The service label whose value is the nanoedge service's name.
    type: str
    default: io.nanoedge.service
extends_documentation_fragment:
  - nanoedge.core.attributes.filter
seealso:
  - plugin: nanoedge.core.swarm_service
    plugin_type: filter
  - module: community.docker.docker_swarm_info
"""

EXAMPLES = r"""
- name: List the nanoedge Swarm services (on a Swarm manager)
  community.docker.docker_swarm_info:
    services: true
    services_filters:
      label: io.nanoedge.service
    verbose_output: true
  register: swarm

- name: Where each runs
  ansible.builtin.debug:
    msg: "{{ swarm.services | nanoedge.core.swarm_placements }}"
# {"alert": "w2", "spo2": "w4"}
"""

RETURN = r"""
_value:
  description: Service name to node name, sorted by service.
  type: dict
  sample: {"alert": "w2", "spo2": "w4"}
"""


import typing as t  # noqa: E402

from ansible.errors import AnsibleFilterError  # noqa: E402

from ansible_collections.nanoedge.core.plugins.module_utils._labels import SERVICE_LABEL  # noqa: E402
from ansible_collections.nanoedge.core.plugins.plugin_utils._swarm import SwarmError, placements  # noqa: E402

FILTER = "nanoedge.core.swarm_placements"


def swarm_placements(services: t.Any, label: t.Any = SERVICE_LABEL) -> t.Dict[str, str]:
    if not isinstance(label, str) or not label:
        raise AnsibleFilterError("%s: label must be a non-empty string, got %r" % (FILTER, label))
    try:
        return placements(services, label)
    except SwarmError as exc:
        raise AnsibleFilterError("%s: %s" % (FILTER, exc)) from exc


class FilterModule:
    def filters(self) -> t.Dict[str, t.Callable[..., t.Any]]:
        return {"swarm_placements": swarm_placements}
