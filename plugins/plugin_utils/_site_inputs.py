# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the playbook nanoedge.core.site plans with, taken from the inventory: the
managers' registry URIs, the workers to plan for with their profiles, and the
placement running now. Controller only; the filters registry_uris, plan_nodes
and current_placement are the adapters.

The hosts come as their variables (``hostvars[name]``), so the playbook passes
``groups[...] | map('extract', hostvars)`` and the rules stay here, tested."""

from __future__ import annotations

import collections.abc as c
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._coap import DEFAULT_PORT, registry_uri

# The result step 1 of nanoedge.core.site registers: it marks the workers reached in this run.
DISCOVERED = "nanoedge_site_discovered"
NODES_FROM = ("discovery", "registry")


class SiteInputError(ValueError):
    """The inventory or a result does not have the shape the plan needs; the message names it."""


def _sequence(value: t.Any, what: str) -> t.List[t.Any]:
    # Jinja's map() hands over a generator, a list comes from a variable: both are fine
    if isinstance(value, (str, bytes, c.Mapping)) or not isinstance(value, c.Iterable):
        raise SiteInputError("%s must be a list, got %s" % (what, type(value).__name__))
    return list(value)


def _mapping(value: t.Any, what: str) -> t.Mapping[str, t.Any]:
    if not isinstance(value, c.Mapping):
        raise SiteInputError("%s must be a dict, got %s" % (what, type(value).__name__))
    return value


def _host_name(host_vars: t.Any, what: str, index: int) -> str:
    if not isinstance(host_vars, c.Mapping) or not isinstance(host_vars.get("inventory_hostname"), str):
        raise SiteInputError("%s #%d must be a host's variables (hostvars[name]), got %s"
                             % (what, index, type(host_vars).__name__))
    return host_vars["inventory_hostname"]


def _hosts(hosts: t.Any, what: str) -> t.List[t.Tuple[str, t.Mapping[str, t.Any]]]:
    """(name, variables) of each host, in the order given."""
    return [(_host_name(host_vars, what, index), host_vars)
            for index, host_vars in enumerate(_sequence(hosts, "the %ss" % what))]


def manager_address(manager: t.Any, index: int) -> t.Tuple[str, t.Any]:
    """(the manager's name for messages, the address its registry is reached at): its
    ``nanoedge_address``, else its inventory name; a string is the address itself."""
    if isinstance(manager, str):
        return manager, manager
    name = _host_name(manager, "manager", index)
    return name, manager.get("nanoedge_address") or name


def registry_uris(managers: t.Any, port: t.Any = None) -> t.List[str]:
    """``coap://host:port`` of each manager's registry, in the order given."""
    uris = []
    for index, manager in enumerate(_sequence(managers, "the managers")):
        name, address = manager_address(manager, index)
        try:
            uris.append(registry_uri(address, DEFAULT_PORT if port is None else port))
        except ValueError as exc:
            raise SiteInputError("manager %r: %s" % (name, exc)) from None
    return uris


def _reached(host_vars: t.Mapping[str, t.Any]) -> bool:
    result = host_vars.get(DISCOVERED)
    return isinstance(result, c.Mapping) and "ansible_facts" in result


def plan_nodes(workers: t.Any, live: t.Any, nodes_from: t.Any = "discovery") -> t.Dict[str, t.Any]:
    """Worker name -> profile for every worker to plan for, in the order given.

    With discovery: the workers this run reached, each with its live profile when
    the registry has one, else this run's discovery (in check mode nothing was
    reported). With registry: the workers with a live profile, and that profile."""
    if nodes_from not in NODES_FROM:
        raise SiteInputError("nodes_from must be %s, got %r" % (" or ".join(NODES_FROM), nodes_from))
    live = _mapping(live, "live (the profiles of nanoedge.core.registry_profiles)")
    nodes = {}  # type: t.Dict[str, t.Any]
    for name, host_vars in _hosts(workers, "worker"):
        if not (name in live if nodes_from == "registry" else _reached(host_vars)):
            continue
        if name in live:
            nodes[name] = live[name]
        elif "nanoedge_profile" in host_vars:
            nodes[name] = host_vars["nanoedge_profile"]
        else:
            raise SiteInputError("worker %r: reached in this run but has no nanoedge_profile" % name)
    return nodes


def _running_services(name: str, host_vars: t.Mapping[str, t.Any]) -> t.List[str]:
    running = host_vars.get("nanoedge_deploy_running")
    services = running.get("services") if isinstance(running, c.Mapping) else None
    if services is None:
        return []
    if isinstance(services, (str, bytes, c.Mapping)) or not isinstance(services, c.Iterable):
        raise SiteInputError("worker %r: nanoedge_deploy_running.services must be a list, got %s"
                             % (name, type(services).__name__))
    return list(services)


def current_placement(workers: t.Any, swarm: t.Any = None, previous: t.Any = None) -> t.Dict[str, t.Any]:
    """Service -> node for what runs now.

    What each planned worker reports running (a later worker wins a service found
    twice), then the Swarm pins over it, then, for a service found nowhere whose
    node is not planned for (not reached, or its lease ran out), the node the
    previous plan put it on: so the plan lists what leaves a lost node as a move."""
    hosts = _hosts(workers, "worker")
    current = {}  # type: t.Dict[str, t.Any]
    for name, host_vars in hosts:
        current.update((service, name) for service in _running_services(name, host_vars))
    current.update(_mapping({} if swarm is None else swarm, "swarm (service -> pinned node)"))
    document = _mapping({} if previous is None else previous, "previous (the plan document)")
    placements = _mapping(document.get("placements", {}), "previous.placements")
    planned = [name for name, _host_vars in hosts]
    for service, node in placements.items():
        if service not in current and node not in planned:
            current[service] = node
    return current
