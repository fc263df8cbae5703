# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Targeted re-placement: which nodes a change of plan touches, and the new plan itself.

A plan that differs from the one running touches three kinds of node:

- ``start``: a node that gains a service (a replica): it starts it;
- ``rewire``: a node that keeps a consumer of a service whose nodes changed: the consumer is started
  again with its producers' new addresses (docs/contracts.md, "Service description"). A consumer given
  a producer by name, to find it at its node's service directory (``directory``; both descriptions say
  ``"directory": true``), needs no rewiring for that producer;
- ``stop``: a node that loses a service, or that comes back after the last plan left it out (it may
  still run what was moved away from it): it removes what no longer runs there.

Only live nodes are listed (a lost one cannot be reached; it is cleaned up when it comes back).
Deploying ``start`` and ``rewire`` first and ``stop`` after is make-before-break: a service runs on
its new node before it stops on its old one. Everything else keeps running untouched.

Controller side (the reconcile service has the collection's plugin_utils next to its own code)."""

from __future__ import annotations

import collections.abc as c
import typing as t

from ansible_collections.nanoedge.core.plugins.plugin_utils._allocate import allocate
from ansible_collections.nanoedge.core.plugins.plugin_utils._deployment import (
    DeploymentError, by_name, description_of,
)
from ansible_collections.nanoedge.core.plugins.plugin_utils._site_report import plan_report

Placement = t.Dict[str, t.List[str]]
KINDS = ("start", "rewire", "stop")


class MoveError(ValueError):
    """The input to a targeted re-placement has the wrong shape; the message names it."""


def replica_nodes(placement: t.Any, what: str) -> Placement:
    """Service -> its nodes, from a placement (service -> node or nodes) or an allocation result."""
    if isinstance(placement, c.Mapping) and isinstance(placement.get("replica_nodes"), c.Mapping):
        placement = placement["replica_nodes"]
    if not isinstance(placement, c.Mapping):
        raise MoveError("%s must be a dict service -> node(s) or an allocation result, got %s"
                        % (what, type(placement).__name__))
    result: Placement = {}
    for service, nodes in placement.items():
        listed = [nodes] if isinstance(nodes, str) else nodes
        if not isinstance(service, str) or not isinstance(listed, list) or \
                not all(isinstance(node, str) for node in listed):
            raise MoveError("%s[%r] must be a node name or a list of node names, got %r" % (what, service, nodes))
        result[service] = list(listed)
    return result


def consumers(services: t.Any, directory: str = "") -> t.Dict[str, t.List[str]]:
    """Producer -> the services that consume it by address, from the services' descriptions; with a
    ``directory``, a consumer given that producer by name (``by_name``, as the deployment decides) is left out
    for it (its move does not touch the consumer)."""
    if not isinstance(services, list) or not all(isinstance(s, c.Mapping) and isinstance(s.get("name"), str)
                                                 for s in services):
        raise MoveError("services must be a list of service profiles, each with a name")
    try:
        described = {service["name"]: description_of(service, {}) for service in services}
    except DeploymentError as exc:
        raise MoveError(str(exc)) from exc
    result: t.Dict[str, t.List[str]] = {}
    for service in services:
        spec = described[service["name"]]
        for producer in spec["consumes"]:
            if not by_name(spec, described.get(producer), directory):
                result.setdefault(producer, []).append(service["name"])
    return result


def _on(placement: Placement, node: str) -> t.Set[str]:
    return {service for service, nodes in placement.items() if node in nodes}


def hosts_to_deploy(services: t.Any, before: t.Any, after: t.Any, nodes: t.Any,
                    returning: t.Iterable[str] = (), directory: str = "") -> t.Dict[str, t.List[str]]:
    """``{"start", "rewire", "stop"}``: the live ``nodes`` (in their order) a change from the placement
    ``before`` to ``after`` touches; ``returning``: live nodes the last plan was not made for;
    ``directory``: the nodes' service directory, if any (see ``consumers``)."""
    if not isinstance(nodes, list) or not all(isinstance(node, str) for node in nodes):
        raise MoveError("nodes must be a list of node names")
    old, new = replica_nodes(before, "current"), replica_nodes(after, "plan")
    moved = {service for service in set(old) | set(new) if sorted(old.get(service, [])) != sorted(new.get(service, []))}
    fed_by = consumers(services, directory)
    rewired = {consumer for producer in moved for consumer in fed_by.get(producer, [])}
    back = set(returning)
    hosts: t.Dict[str, t.List[str]] = {kind: [] for kind in KINDS}
    for node in nodes:
        had, has = _on(old, node), _on(new, node)
        if has - had:
            hosts["start"].append(node)
        elif has & rewired:
            hosts["rewire"].append(node)
        if had - has or node in back:
            hosts["stop"].append(node)
    return hosts


class Replan(t.NamedTuple):
    """A targeted re-placement: the allocation result, the plan document and the nodes it touches."""

    plan: t.Dict[str, t.Any]
    document: t.Dict[str, t.Any]
    hosts: t.Dict[str, t.List[str]]


def replan(services: t.Any, profiles: t.Mapping[str, t.Any], workers: t.Sequence[str],
           previous: t.Mapping[str, t.Any], registry: t.Optional[str] = None, directory: str = "") -> Replan:
    """The plan for the live ``profiles`` of the inventory's ``workers`` (in their order), keeping every
    service where the ``previous`` plan document put it while its node still satisfies it, with that
    document's strategy and critical services."""
    if not isinstance(previous, c.Mapping) or not isinstance(previous.get("strategy"), str):
        raise MoveError("the previous plan must be a plan document with its strategy")
    nodes = {worker: profiles[worker] for worker in workers if worker in profiles}
    before = replica_nodes(previous.get("replica_nodes") or {}, "previous.replica_nodes")
    plan = allocate(services, nodes, strategy=previous["strategy"], current=before)
    # the plan file says what ran before as the site playbook does: service -> node, or nodes for replicas
    running = {service: on[0] if len(on) == 1 else on for service, on in before.items() if on}
    document = plan_report(plan, services, nodes, current=running, registry=registry,
                           critical=previous.get("critical") or [])
    planned_before = previous.get("nodes") if isinstance(previous.get("nodes"), c.Mapping) else {}
    returning = [node for node in nodes if node not in planned_before]
    return Replan(plan, document, hosts_to_deploy(services, before, plan, list(nodes), returning, directory))
