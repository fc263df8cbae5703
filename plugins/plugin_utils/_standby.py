# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Standby images: the images a node pulls ahead for the services it could take over.

A service that moves to a node without its image waits for the pull (1.5 s for the three pulse-oximeter
services on the demo cluster, far more over a slow uplink, and none at all when the uplink is down). Each node
therefore keeps the images of the services placed elsewhere that it could run: those whose requirements that
no placement changes (capabilities, power, battery, network) its profile meets, and whose demand fits its whole
capacity (cores, total memory and storage), as allocation reads them (``_allocate_model``).
"""

from __future__ import annotations

import typing as t
from collections.abc import Mapping

from ansible_collections.nanoedge.core.plugins.plugin_utils._allocate_model import (
    AllocationError, milli_down, parse_nodes, parse_services, statically_fits,
)
from ansible_collections.nanoedge.core.plugins.plugin_utils._deployment import image_reference


class StandbyError(ValueError):
    """The plan, the services or the node's profile cannot be read."""


def _whole_capacity(profile: t.Mapping[str, t.Any]) -> t.Tuple[int, int, int]:
    """Cores, total memory and total storage of a profile, in allocation's units (what is free now may be
    taken by services that would leave with a failed node)."""
    memory, storage = profile.get("memory_mb") or {}, profile.get("storage_mb") or {}
    return (milli_down(profile["cpu"]["cores"]), milli_down(memory.get("total", memory.get("available", 0))),
            milli_down(storage.get("total", storage.get("free", 0))))


def standby_images(plan: t.Any, services: t.Any, node: str, profile: t.Any, pull_registry: str = "",
                   backend: str = "container", backends: t.Any = None, limit: int = 8) -> t.List[t.Dict[str, str]]:
    """``[{"service", "image"}]``: the container images ``node`` (with ``profile``) could be asked to run,
    for the services ``plan`` places on other nodes (or leaves unplaced), in the order of ``services``, at most
    ``limit``. Nothing for the Swarm backend (Swarm pulls itself) nor for bare-metal services."""
    if not isinstance(plan, Mapping) or not isinstance(plan.get("by_node"), Mapping):
        raise StandbyError("the plan must be the result of nanoedge.core.allocate (a dict with by_node)")
    if not isinstance(services, (list, tuple)):
        raise StandbyError("services must be the list of service profiles, got %s" % type(services).__name__)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise StandbyError("limit must be a whole number from 0, got %r" % (limit,))
    if backend != "container" or not profile or not limit:
        return []
    backends = backends or {}
    try:
        parsed_node = parse_nodes({node: profile})[0]
        capacity = _whole_capacity(profile)
        wanted = [item for item in services if isinstance(item, Mapping) and item.get("image") and item.get("digest")
                  and backends.get(item.get("name"), "container") == "container"]
        parsed = parse_services([{"name": item.get("name"), "requires": item.get("requires")} for item in wanted])
    except AllocationError as exc:
        raise StandbyError(str(exc)) from exc
    except (KeyError, TypeError) as exc:
        raise StandbyError("node %s: its profile has no %s" % (node, exc)) from exc
    here = set(plan["by_node"].get(node) or ())
    result: t.List[t.Dict[str, str]] = []
    for item, service in zip(wanted, parsed):
        if service.name in here or not statically_fits(service.signature, parsed_node):
            continue
        if any(need > has for need, has in zip(service.demand, capacity)):
            continue
        result.append({"service": service.name,
                       "image": image_reference(str(item["image"]), str(item["digest"]), pull_registry)})
        if len(result) == limit:
            break
    return result
