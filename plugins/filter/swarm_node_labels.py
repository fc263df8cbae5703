# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: swarm_node_labels
short_description: The Docker Swarm node labels a node's resource profile gives it
version_added: 0.1.0
author: nanoedge.core contributors (!UNKNOWN)
description:
  - Turns a resource profile (the live profile the plan used) into the labels of the node's Docker Swarm node, all
    under the C(nanoedge.) prefix, so Swarm constraints and C(docker node ls) show what nanoedge knows about the node.
  - C(nanoedge.node) is the node's name (Swarm services are pinned to it), C(nanoedge.cap.<capability>=true) for
    each capability, C(nanoedge.power=ac) or V(dc), C(nanoedge.net.<type>=true) for each network type and
    C(nanoedge.arch) the machine architecture.
  - With O(current), returns instead the names of the C(nanoedge.) labels in O(current) that the profile no longer
    gives (labels without the prefix are never listed), for the C(labels_to_remove) option of
    M(community.docker.docker_node).
options:
  _input:
    description: The node's resource profile.
    type: dict
    required: true
  node:
    description: The node's name; defaults to the profile's C(node).
    type: str
  current:
    description: The labels the Swarm node carries now (its C(Spec.Labels)).
    type: dict
extends_documentation_fragment:
  - nanoedge.core.attributes.filter
seealso:
  - plugin: nanoedge.core.swarm_service
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Label w4's Swarm node from its profile
  community.docker.docker_node:
    hostname: "{{ w4_node_id }}"
    labels: "{{ profile | nanoedge.core.swarm_node_labels('w4') }}"
    labels_state: merge
    labels_to_remove: "{{ profile | nanoedge.core.swarm_node_labels('w4', current=w4_labels_now) }}"
  vars:
    profile:
      node: w4
      arch: armv7l
      capabilities: [pom]
      power: {source: ac}
      network: [bluetooth, wifi]
# labels: {"nanoedge.arch": "armv7l", "nanoedge.cap.pom": "true", "nanoedge.net.bluetooth": "true",
#          "nanoedge.net.wifi": "true", "nanoedge.node": "w4", "nanoedge.power": "ac"}
"""

RETURN = r"""
_value:
  description:
    - The labels (label name to value), or with O(current) the names of the labels to remove, sorted.
  type: raw
  sample: {"nanoedge.node": "w4", "nanoedge.cap.pom": "true", "nanoedge.power": "ac"}
"""


import typing as t  # noqa: E402

from ansible.errors import AnsibleFilterError  # noqa: E402

from ansible_collections.nanoedge.core.plugins.plugin_utils._swarm import SwarmError, node_labels, stale_labels  # noqa: E402

FILTER = "nanoedge.core.swarm_node_labels"


def swarm_node_labels(profile: t.Any, node: t.Any = None, current: t.Any = None) -> t.Any:
    try:
        wanted = node_labels(profile, node)
        return wanted if current is None else stale_labels(current, wanted)
    except SwarmError as exc:
        raise AnsibleFilterError("%s: %s" % (FILTER, exc)) from exc


class FilterModule:
    def filters(self) -> t.Dict[str, t.Callable[..., t.Any]]:
        return {"swarm_node_labels": swarm_node_labels}
