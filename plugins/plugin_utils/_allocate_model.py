# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The input of allocation: services and nodes validated into the internal model (``Service``, ``Node``).

Quantities are kept internally as integers in millionths (a requirement of
0.5 cores is 500000) so that repeated subtraction is exact and a node that is
filled to the last byte is filled exactly. Requirements are rounded up and
capacities down to the millionth, which never makes a misfit look like a fit;
a millionth (not a thousandth) keeps figures such as 1/16 core (0.0625) exact,
so 16 of them fill one core as in Algorithm 1.
"""

from __future__ import annotations

import math
import typing as t
from collections.abc import Mapping

from ansible_collections.nanoedge.core.plugins.module_utils._plan import STRATEGIES
from ansible_collections.nanoedge.core.plugins.module_utils._profile import NODE_NAME_RE, ProfileError, validate_profile
from ansible_collections.nanoedge.core.plugins.module_utils._requirements import (
    REQUIREMENT_DEFAULTS,
    REQUIREMENT_KEYS,
    RequirementError,
    normalize_requirements,
)

# What allocation reads from a node's profile; the rest may be left out.
PLACEMENT_FIELDS = ("capabilities", "cpu.cores", "memory_mb.available", "storage_mb.free", "power.source", "network")
_SCALE = 1000000

Signature = t.Tuple[t.Tuple[str, ...], str, str, int]
Demand = t.Tuple[int, int, int]
Key = t.Tuple[Signature, Demand]


class AllocationError(ValueError):
    """Input that cannot be allocated; the message names the service or node and the field."""


class Node:
    """What allocation reads from one node profile."""

    __slots__ = ("name", "index", "capabilities", "cpu", "memory", "storage", "power", "battery", "network")

    def __init__(self, name: str, index: int, capabilities: t.FrozenSet[str], cpu: int, memory: int,
                 storage: int, power: str, battery: t.Optional[float], network: t.FrozenSet[str]) -> None:
        self.name = name
        self.index = index
        self.capabilities = capabilities
        self.cpu = cpu
        self.memory = memory
        self.storage = storage
        self.power = power
        self.battery = battery
        self.network = network


# One distinct requirement vector as its services copy it, in the order of Service's slots from
# ``capabilities`` on: the vector (in the order of REQUIREMENT_KEYS, numbers in millionths), then its
# signature, demand and key. Shared by the services with that vector.
Need = t.Tuple[t.Tuple[str, ...], int, int, int, str, str, int, Signature, Demand, Key]


def need_of(capabilities: t.Tuple[str, ...], cpu: int, memory: int, storage: int, power: str, network: str,
            min_battery: int) -> Need:
    signature = (capabilities, power, network, min_battery)
    demand = (cpu, memory, storage)
    return (capabilities, cpu, memory, storage, power, network, min_battery, signature, demand, (signature, demand))


class Service:
    """One service with its normalised requirements."""

    __slots__ = ("name", "index", "priority", "replicas", "capabilities", "cpu", "memory", "storage", "power",
                 "network", "min_battery", "signature", "demand", "key")

    def __init__(self, name: str, index: int, need: Need, priority: t.Union[int, float], replicas: int) -> None:
        self.name = name
        self.index = index
        self.priority = priority
        self.replicas = replicas
        (self.capabilities, self.cpu, self.memory, self.storage, self.power, self.network, self.min_battery,
         self.signature, self.demand, self.key) = need


def milli_up(value: t.Union[int, float]) -> int:
    """To millionths, rounded up: what a service needs never looks smaller than it is."""
    if isinstance(value, int):
        return value * _SCALE
    return int(math.ceil(round(value * _SCALE, 6)))


def milli_down(value: t.Union[int, float]) -> int:
    """To millionths, rounded down: what a node offers never looks larger than it is."""
    if isinstance(value, int):
        return value * _SCALE
    return int(math.floor(round(value * _SCALE, 6)))


def from_milli(value: int) -> t.Union[int, float]:
    """Back to user units: an int when whole, else a float."""
    if value % _SCALE == 0:
        return value // _SCALE
    return value / _SCALE


def statically_fits(signature: Signature, node: Node) -> bool:
    """The requirements that no placement can change: capabilities, power, battery, network."""
    capabilities, power, network, min_battery = signature
    if capabilities and not node.capabilities.issuperset(capabilities):
        return False
    if power and power != node.power:
        return False
    if min_battery and not battery_ok(min_battery, node):
        return False
    return not network or network in node.network


def battery_ok(min_battery: int, node: Node) -> bool:
    # A mains-powered node is never "nearly empty"; a DC node must report its level.
    if node.power == "ac":
        return True
    return node.battery is not None and milli_down(node.battery) >= min_battery


def is_number(value: t.Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _type_name(value: t.Any) -> str:
    return "null" if value is None else type(value).__name__


# --------------------------------------------------------------------------- validation

def parse_nodes(nodes: t.Any) -> t.List[Node]:
    """Validate the nodes (a list of profiles or a dict name -> profile) and keep their order."""
    if isinstance(nodes, Mapping):
        items: t.Iterable[t.Tuple[t.Any, t.Any]] = nodes.items()
        keyed = True
    elif isinstance(nodes, (list, tuple)):
        items = enumerate(nodes)
        keyed = False
    else:
        raise AllocationError("nodes must be a list of profiles or a dict of node name to profile, got %s"
                              % _type_name(nodes))
    result: t.List[Node] = []
    seen: t.Set[str] = set()
    for key, profile in items:
        node = _parse_node(key, keyed, profile, len(result))
        if node.name in seen:
            raise AllocationError("node %r is listed twice" % node.name)
        seen.add(node.name)
        result.append(node)
    return result


def _where(key: t.Any, keyed: bool) -> str:
    return "nodes[%r]" % (key,) if keyed else "nodes[%d]" % key


def _parse_node(key: t.Any, keyed: bool, profile: t.Any, index: int) -> Node:
    if not isinstance(profile, Mapping):
        raise AllocationError("%s: profile must be a dict, got %s" % (_where(key, keyed), _type_name(profile)))
    if "node" not in profile:
        raise AllocationError("%s: missing field node" % _where(key, keyed))
    name = profile["node"]
    if not isinstance(name, str) or not NODE_NAME_RE.fullmatch(name):
        raise AllocationError("%s: node must match %s, got %r" % (_where(key, keyed), NODE_NAME_RE.pattern, name))
    if keyed and key is not None and key != name:
        raise AllocationError("%s: profile is for node %r" % (_where(key, keyed), name))
    try:
        # A node may leave out what placement does not read; what it gives follows the profile schema.
        validate_profile(dict(profile), complete=False)
    except ProfileError as exc:
        raise AllocationError("node %r: %s" % (name, exc)) from exc
    for path, parts in _PLACEMENT_PATHS:
        value: t.Any = profile
        for part in parts:
            if part not in value:
                raise AllocationError("node %r: missing field %s" % (name, path))
            value = value[part]
    power = profile["power"]
    return Node(
        name=name,
        index=index,
        capabilities=frozenset(profile["capabilities"]),
        cpu=milli_down(profile["cpu"]["cores"]),
        memory=milli_down(profile["memory_mb"]["available"]),
        storage=milli_down(profile["storage_mb"]["free"]),
        power=power["source"],
        # The schema always carries battery_percent; a hand-written node may leave it out (no battery known).
        battery=power.get("battery_percent"),
        network=frozenset(profile["network"]),
    )


_PLACEMENT_PATHS = tuple((path, tuple(path.split("."))) for path in PLACEMENT_FIELDS)


def parse_services(services: t.Any) -> t.List[Service]:
    """Validate the services (dicts with name and requires) and keep their order."""
    if not isinstance(services, (list, tuple)):
        raise AllocationError("services must be a list of dicts, got %s" % _type_name(services))
    result: t.List[Service] = []
    seen: t.Set[str] = set()
    needs = Needs()
    # the messages are formatted only when raised: a large allocation reads tens of thousands of services
    for index, item in enumerate(services):
        # a dict is a Mapping, and checked at C speed (the abstract class's check is not)
        if not isinstance(item, (dict, Mapping)):
            raise AllocationError("services[%d] must be a dict, got %s" % (index, _type_name(item)))
        if "name" not in item:
            raise AllocationError("services[%d]: missing key name" % index)
        name = item["name"]
        if not isinstance(name, str) or not name:
            raise AllocationError("services[%d]: name must be a non-empty string, got %r" % (index, name))
        if name in seen:
            raise AllocationError("service %r is listed twice" % name)
        seen.add(name)
        result.append(_parse_service(item, name, index, needs))
    return result


# what a requirement value may be to be normalised once for all its services: types whose equal values
# normalise alike (exact types, not isinstance: a subclass may compare equal and still normalise differently).
# Equal ints and floats (1, 1.0) normalise alike and may share an entry; bool may not (True == 1 is refused
# where 1 is taken), nor a list with a string (a tuple of strings stands for a list of them).
_SCALARS = frozenset((str, int, float, type(None)))
_UNCACHED = object()
_KNOWN = frozenset(REQUIREMENT_KEYS)
_POSITION = {key: position for position, key in enumerate(REQUIREMENT_KEYS)}
_NUMERIC = frozenset(("cpu", "memory_mb", "storage_mb", "min_battery_percent"))


def compared(key: str, value: t.Any) -> t.Any:
    """A normalised requirement value as allocation compares it: numbers in millionths, capabilities a tuple."""
    if key == "capabilities":
        return tuple(value)
    if key in _NUMERIC:
        return milli_up(value)
    return value


class Needs:
    """Requirement dicts to their ``Need``: replicas, templates and even diverse services repeat the same
    values, so each distinct value of each key is normalised once (by ``normalize_requirements``, which
    also gives the errors) and each distinct vector becomes one ``Need``."""

    def __init__(self) -> None:
        self._values: t.Dict[str, t.Dict[t.Any, t.Any]] = {key: {} for key in REQUIREMENT_KEYS}
        self._needs: t.Dict[t.Tuple[t.Any, ...], Need] = {}
        self._defaults = tuple(compared(key, value) for key, value in REQUIREMENT_DEFAULTS.items())

    def of(self, raw: t.Any, name: str) -> Need:
        """The need of service ``name``'s ``requires`` (None or a mapping); raises AllocationError."""
        if raw is None:
            return self._need(self._defaults)
        if not isinstance(raw, dict) or not _KNOWN.issuperset(raw):
            # a mapping of another kind, or unknown keys: the whole dict at once (the error names them all)
            requires = self._normalized(dict(raw), name)
            return self._need(tuple(compared(key, value) for key, value in requires.items()))
        vector = list(self._defaults)
        values = self._values
        for key, value in raw.items():
            kind = type(value)
            if kind in _SCALARS:
                cached: t.Any = value
            elif kind is list and all(type(item) is str for item in value):  # pylint: disable=unidiomatic-typecheck
                cached = tuple(value)
            else:
                cached = _UNCACHED
            found = values[key].get(cached, _UNCACHED)
            if found is _UNCACHED:
                # the keys are checked one by one in the dict's order, as the whole dict is: the same first error
                found = compared(key, self._normalized({key: value}, name)[key])
                if cached is not _UNCACHED:
                    values[key][cached] = found
            vector[_POSITION[key]] = found
        return self._need(tuple(vector))

    def _need(self, vector: t.Tuple[t.Any, ...]) -> Need:
        found = self._needs.get(vector)
        if found is None:
            found = self._needs[vector] = need_of(*vector)
        return found

    @staticmethod
    def _normalized(raw: t.Dict[str, t.Any], name: str) -> t.Dict[str, t.Any]:
        try:
            return normalize_requirements(raw)
        except RequirementError as exc:
            raise AllocationError("service %r requires %s" % (name, exc)) from exc


def _parse_service(item: t.Mapping[str, t.Any], name: str, index: int, needs: Needs) -> Service:
    if "requires" not in item:
        raise AllocationError("service %r: missing key requires" % name)
    raw = item["requires"]
    if raw is not None and not isinstance(raw, (dict, Mapping)):
        raise AllocationError("service %r: requires must be a dict, got %s" % (name, _type_name(raw)))
    need = needs.of(raw, name)
    priority = item.get("priority", 0)
    if priority is None:
        priority = 0
    if not is_number(priority):
        raise AllocationError("service %r: priority must be a number, got %r" % (name, priority))
    replicas = item.get("replicas", 1)
    if replicas is None:
        replicas = 1
    # an int (the usual case) is checked by its type alone; the rest as before
    if type(replicas) is not int or replicas < 1:  # pylint: disable=unidiomatic-typecheck
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
            raise AllocationError("service %r: replicas must be an integer >= 1, got %r" % (name, replicas))
    return Service(name, index, need, priority, replicas)


def parse_current(current: t.Any) -> t.Dict[str, t.List[str]]:
    """The placement now running: service -> node (or list of nodes), or a previous allocate result."""
    if current is None:
        return {}
    if not isinstance(current, Mapping):
        raise AllocationError("current must be a dict of service name to node name (or a previous allocate "
                              "result), got %s" % _type_name(current))
    if isinstance(current.get("replica_nodes"), Mapping):
        current = current["replica_nodes"]
    elif isinstance(current.get("placements"), Mapping):
        current = current["placements"]
    result: t.Dict[str, t.List[str]] = {}
    for service, where in current.items():
        if isinstance(where, str):
            where = [where]
        if not isinstance(where, (list, tuple)) or not all(isinstance(node, str) for node in where):
            raise AllocationError("current: service %r must map to a node name or a list of node names, got %r"
                                  % (service, where))
        result[str(service)] = list(dict.fromkeys(where))
    return result


def check_strategy(strategy: t.Any) -> str:
    if strategy not in STRATEGIES:
        raise AllocationError("strategy must be one of %s, got %r" % (", ".join(STRATEGIES), strategy))
    return t.cast(str, strategy)


def check_time_limit(time_limit: t.Any) -> float:
    if not is_number(time_limit) or time_limit <= 0:
        raise AllocationError("time_limit must be a number of seconds > 0, got %r" % (time_limit,))
    return float(time_limit)
