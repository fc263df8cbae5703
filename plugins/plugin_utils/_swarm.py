# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Docker Swarm backend: node labels, service specifications, placements. Controller only.

nanoedge decides where each service runs; Swarm only keeps it running there.
A node's profile (docs/contracts.md, "The profile") becomes labels on its Swarm node, each placed
service a single-replica Swarm service pinned to its planned node by the
constraint ``node.labels.nanoedge.node == <node>``, and that constraint is
what the next plan reads back as the service's current node. The service
itself is the deployment description of ``_deployment.py`` (the one
description every backend reads), translated to the options of
``community.docker.docker_swarm_service``.
"""

from __future__ import annotations

import hashlib
import re
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._canonical_json import canonical_json

from ansible_collections.nanoedge.core.plugins.module_utils._labels import (
    NETWORK_LABEL,
    SERVICE_LABEL,
    SPEC_LABEL,
    SWARM_ARCH_LABEL,
    SWARM_CAPABILITY_PREFIX,
    SWARM_NETWORK_PREFIX,
    SWARM_NODE_LABEL,
    SWARM_NODE_PREFIX,
    SWARM_POWER_LABEL,
)
from ansible_collections.nanoedge.core.plugins.module_utils._profile import (
    NODE_NAME_RE,
    ProfileError,
    placement_facets,
)
# Docker's restart policies of the container backend, as Swarm's restart conditions.
RESTART_CONDITIONS = {"always": "any", "unless-stopped": "any", "on-failure": "on-failure", "no": "none"}
_CONSTRAINT = re.compile(r"^node\.labels\.%s\s*==\s*(\S+)$" % re.escape(SWARM_NODE_LABEL))
_ARCH = re.compile(r"^[A-Za-z0-9_./-]{1,64}$")  # an OCI platform: arm/v7, arm64, amd64


class SwarmError(ValueError):
    """Something cannot be expressed for Swarm; the message names the node or service and the field at fault."""


def constraint(node: str) -> str:
    """The placement constraint that pins a service to ``node``."""
    if not isinstance(node, str) or not NODE_NAME_RE.fullmatch(node):
        raise SwarmError("node %r is not a valid node name" % (node,))
    return "node.labels.%s == %s" % (SWARM_NODE_LABEL, node)


def node_labels(profile: t.Any, node: t.Any = None) -> t.Dict[str, str]:
    """The Swarm node labels a profile's placement facets give its node (all under the ``nanoedge.`` prefix)."""
    if not isinstance(profile, dict):
        raise SwarmError("the profile must be a dict (a node profile), got %s" % type(profile).__name__)
    name = node if node is not None else profile.get("node")
    where = "node %r" % (name,)
    if not isinstance(name, str) or not NODE_NAME_RE.fullmatch(name):
        raise SwarmError("%s: the node name must match %s" % (where, NODE_NAME_RE.pattern))
    try:
        facets = placement_facets(profile)
    except ProfileError as exc:
        raise SwarmError("%s: %s" % (where, exc)) from exc
    labels = {SWARM_NODE_LABEL: name}
    for capability in facets["capabilities"]:
        labels[SWARM_CAPABILITY_PREFIX + capability] = "true"
    if facets["power"] is not None:
        labels[SWARM_POWER_LABEL] = facets["power"]
    for network in facets["network"]:
        labels[SWARM_NETWORK_PREFIX + network] = "true"
    arch = facets["arch"]
    if arch:
        if not _ARCH.fullmatch(arch):
            raise SwarmError("%s: arch %r is not a platform" % (where, arch))
        labels[SWARM_ARCH_LABEL] = arch
    return dict(sorted(labels.items()))


def stale_labels(current: t.Any, wanted: t.Mapping[str, str]) -> t.List[str]:
    """The ``nanoedge.`` labels a node carries that ``wanted`` no longer has; other labels are not ours."""
    if current is None:
        return []
    if not isinstance(current, dict):
        raise SwarmError("the node's current labels must be a dict, got %s" % type(current).__name__)
    return sorted(key for key in current if key.startswith(SWARM_NODE_PREFIX) and key not in wanted)


def _duration(seconds: t.Any, what: str) -> str:
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds < 0:
        raise SwarmError("%s must be a number of seconds >= 0, got %r" % (what, seconds))
    return "%gs" % seconds


def service_spec(description: t.Any, restart_policy: str = "unless-stopped", network_mode: str = "host",
                 restart_delay: t.Any = 5, stop_grace_period: t.Any = 10) -> t.Dict[str, t.Any]:
    """The options of ``community.docker.docker_swarm_service`` that run one deployment description.

    One replica, pinned to the planned node by constraint; the io.nanoedge.*
    labels go on the service and on its task containers, so the node's own
    engine (``running_facts``) tells Swarm tasks apart from its containers.
    CPU and memory from the requirements are both the limit and the
    reservation: Swarm then never starts a task on a node that it cannot hold.
    """
    if not isinstance(description, dict):
        raise SwarmError("a deployment description (nanoedge.core.deployments) must be a dict, got %s"
                         % type(description).__name__)
    name = description.get("name")
    if not isinstance(name, str) or not name:
        raise SwarmError("the deployment description has no service name")
    where = "service %r" % name
    for key in ("node", "image", "container_name", "labels", "env", "mounts"):
        if key not in description:
            raise SwarmError("%s: the deployment description has no %r (use nanoedge.core.deployments)" % (where, key))
    if description.get("devices"):
        raise SwarmError("%s: Swarm services cannot be given devices (%s); the deployments filter runs a service "
                         "that needs a device node on its node's engine instead"
                         % (where, ", ".join(description["devices"])))
    if restart_policy not in RESTART_CONDITIONS:
        raise SwarmError("%s: restart_policy must be one of %s, got %r"
                         % (where, ", ".join(sorted(RESTART_CONDITIONS)), restart_policy))
    if not isinstance(network_mode, str) or not network_mode:
        raise SwarmError("%s: network_mode must be a network name, got %r" % (where, network_mode))
    resources = {}  # type: t.Dict[str, t.Any]
    if description.get("cpus"):
        resources["cpus"] = float(description["cpus"])
    if description.get("memory"):
        resources["memory"] = str(description["memory"])
    spec = {
        "name": description["container_name"],
        "image": description["image"],
        # Pinned by digest already: asking the registry again would only cost time.
        "resolve_image": False,
        "mode": "replicated",
        "replicas": 1,
        "labels": dict(description["labels"], **{NETWORK_LABEL: network_mode}),
        "container_labels": dict(description["labels"]),
        "env": dict(description["env"]),
        "mounts": [{"type": m["type"], "source": m["source"], "target": m["target"],
                    "readonly": bool(m.get("read_only"))} for m in description["mounts"]],
        "placement": {"constraints": [constraint(description["node"])]},
        "restart_config": {"condition": RESTART_CONDITIONS[restart_policy],
                           "delay": _duration(restart_delay, "restart_delay")},
        # One replica bound to host ports: the old task must stop before the new one starts.
        "update_config": {"order": "stop-first"},
        "stop_grace_period": _duration(stop_grace_period, "stop_grace_period"),
        "limits": dict(resources),
        "reservations": dict(resources),
        "networks": [network_mode],
        "publish": [],
    }
    port = description.get("port")
    if port and network_mode != "host":
        # Host-mode publishing binds the port on the task's node only: the plan chose that node.
        spec["publish"] = [{"published_port": port["number"], "target_port": port["number"],
                            "protocol": port.get("protocol", "udp"), "mode": "host"}]
    spec["labels"][SPEC_LABEL] = hashlib.sha256(canonical_json(spec)).hexdigest()[:16]
    return spec


def placements(services: t.Any, label: str = SERVICE_LABEL) -> t.Dict[str, str]:
    """Service name to the node its Swarm service is pinned to, from the services as Docker inspects them.

    Services without the service label, or not pinned by exactly one
    ``nanoedge.node`` constraint, are not placed by nanoedge and are left out.
    """
    if services is None:
        return {}
    if not isinstance(services, list):
        raise SwarmError("the services must be a list (docker_swarm_info with verbose_output), got %s"
                         % type(services).__name__)
    result = {}
    for item in services:
        if not isinstance(item, dict):
            continue
        spec = item.get("Spec") if isinstance(item.get("Spec"), dict) else item
        service = (spec.get("Labels") or {}).get(label)
        if not isinstance(service, str) or not service:
            continue
        placement = ((spec.get("TaskTemplate") or {}).get("Placement") or {})
        nodes = [m.group(1) for m in (_CONSTRAINT.fullmatch(c.strip()) for c in placement.get("Constraints") or []
                                      if isinstance(c, str)) if m]
        if len(nodes) == 1 and NODE_NAME_RE.fullmatch(nodes[0]):
            result[service] = nodes[0]
    return dict(sorted(result.items()))
