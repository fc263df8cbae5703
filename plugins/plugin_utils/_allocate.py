# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Service-to-node allocation (docs/contracts.md, "The allocation result and the plan file"): the logic behind the
``nanoedge.core.allocate`` and ``nanoedge.core.explain`` filters.

Controller-only, pure Python, no Ansible imports. Inputs are never mutated.

Quantities are kept internally as integers in millionths (a requirement of
0.5 cores is 500000) so that repeated subtraction is exact and a node that is
filled to the last byte is filled exactly. Requirements are rounded up and
capacities down to the millionth, which never makes a misfit look like a fit;
a millionth (not a thousandth) keeps figures such as 1/16 core (0.0625) exact,
so 16 of them fill one core as in Algorithm 1.

Strategies
----------
``first_fit`` is the paper's Algorithm 1 exactly: services in the given order,
for each the first node in the given order that satisfies it. Because a node's
capacity only ever decreases, a node that cannot take a given requirement now
never will; each distinct requirement therefore keeps a heap of the nodes that
might still take it and drops a node for good the first time it does not fit.
That gives the same answer as scanning every node for every service, in
O(K*N + S log N) instead of O(S*N) for K distinct requirements.

``best_fit`` and ``spread`` take services by priority (highest first) and pick,
among the nodes that fit, the one with the least (``best_fit``) or the most
(``spread``) remaining capacity. Remaining capacity is scored as the sum over
cpu, memory and storage of what is left divided by the largest node's figure;
since every candidate loses the same amount when the service is placed, this
ranks nodes identically before and after the placement. Ties go to the node
that comes first.
"""

from __future__ import annotations

import heapq
import math
import typing as t
from collections.abc import Mapping

from ansible_collections.nanoedge.core.plugins.module_utils._plan import (
    DEFAULT_STRATEGY,
    STRATEGIES,
    Cause,
    capacity_cause,
    cause_text,
)
from ansible_collections.nanoedge.core.plugins.module_utils._profile import NODE_NAME_RE, ProfileError, validate_profile
from ansible_collections.nanoedge.core.plugins.module_utils._requirements import RequirementError, normalize_requirements

DEFAULT_TIME_LIMIT = 10.0
# What allocation reads from a node's profile; the rest may be left out.
PLACEMENT_FIELDS = ("capabilities", "cpu.cores", "memory_mb.available", "storage_mb.free", "power.source", "network")

FITS = "fits"
SHARE_REASONS_ABOVE = 1000000
PLACED = "placed"
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


class Service:
    """One service with its normalised requirements."""

    __slots__ = ("name", "index", "capabilities", "cpu", "memory", "storage", "power", "network",
                 "min_battery", "priority", "replicas", "signature", "demand", "key")

    def __init__(self, name: str, index: int, requires: t.Dict[str, t.Any], priority: t.Union[int, float],
                 replicas: int) -> None:
        self.name = name
        self.index = index
        self.capabilities: t.Tuple[str, ...] = tuple(requires["capabilities"])
        self.cpu = _milli_up(requires["cpu"])
        self.memory = _milli_up(requires["memory_mb"])
        self.storage = _milli_up(requires["storage_mb"])
        self.power: str = requires["power"]
        self.network: str = requires["network"]
        self.min_battery = _milli_up(requires["min_battery_percent"])
        self.priority = priority
        self.replicas = replicas
        self.signature: Signature = (self.capabilities, self.power, self.network, self.min_battery)
        self.demand: Demand = (self.cpu, self.memory, self.storage)
        self.key: Key = (self.signature, self.demand)


def _milli_up(value: t.Union[int, float]) -> int:
    if isinstance(value, int):
        return value * _SCALE
    return int(math.ceil(round(value * _SCALE, 6)))


def _milli_down(value: t.Union[int, float]) -> int:
    if isinstance(value, int):
        return value * _SCALE
    return int(math.floor(round(value * _SCALE, 6)))


def from_milli(value: int) -> t.Union[int, float]:
    """Back to user units: an int when whole, else a float."""
    if value % _SCALE == 0:
        return value // _SCALE
    return value / _SCALE


def _is_number(value: t.Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _type_name(value: t.Any) -> str:
    return "null" if value is None else type(value).__name__


# --------------------------------------------------------------------------- validation

def parse_nodes(nodes: t.Any) -> t.List[Node]:
    """Validate the nodes (a list of profiles or a dict name -> profile) and keep their order."""
    if isinstance(nodes, Mapping):
        items = [("nodes[%r]" % (key,), key, profile) for key, profile in nodes.items()]
    elif isinstance(nodes, (list, tuple)):
        items = [("nodes[%d]" % index, None, profile) for index, profile in enumerate(nodes)]
    else:
        raise AllocationError("nodes must be a list of profiles or a dict of node name to profile, got %s"
                              % _type_name(nodes))
    result: t.List[Node] = []
    seen: t.Set[str] = set()
    for where, key, profile in items:
        node = _parse_node(where, key, profile, len(result))
        if node.name in seen:
            raise AllocationError("node %r is listed twice" % node.name)
        seen.add(node.name)
        result.append(node)
    return result


def _parse_node(where: str, key: t.Any, profile: t.Any, index: int) -> Node:
    if not isinstance(profile, Mapping):
        raise AllocationError("%s: profile must be a dict, got %s" % (where, _type_name(profile)))
    if "node" not in profile:
        raise AllocationError("%s: missing field node" % where)
    name = profile["node"]
    if not isinstance(name, str) or not NODE_NAME_RE.match(name):
        raise AllocationError("%s: node must match %s, got %r" % (where, NODE_NAME_RE.pattern, name))
    if key is not None and key != name:
        raise AllocationError("%s: profile is for node %r" % (where, name))
    who = "node %r" % name
    try:
        # A node may leave out what placement does not read; what it gives follows the profile schema.
        validate_profile(dict(profile), complete=False)
    except ProfileError as exc:
        raise AllocationError("%s: %s" % (who, exc)) from exc
    for path in PLACEMENT_FIELDS:
        _field(profile, who, path)
    return Node(
        name=name,
        index=index,
        capabilities=frozenset(profile["capabilities"]),
        cpu=_milli_down(profile["cpu"]["cores"]),
        memory=_milli_down(profile["memory_mb"]["available"]),
        storage=_milli_down(profile["storage_mb"]["free"]),
        power=profile["power"]["source"],
        # The schema always carries battery_percent; a hand-written node may leave it out (no battery known).
        battery=profile["power"].get("battery_percent"),
        network=frozenset(profile["network"]),
    )


def _field(profile: t.Mapping[str, t.Any], who: str, path: str) -> None:
    value: t.Any = profile
    for part in path.split("."):
        if part not in value:
            raise AllocationError("%s: missing field %s" % (who, path))
        value = value[part]


def parse_services(services: t.Any) -> t.List[Service]:
    """Validate the services (dicts with name and requires) and keep their order."""
    if not isinstance(services, (list, tuple)):
        raise AllocationError("services must be a list of dicts, got %s" % _type_name(services))
    result: t.List[Service] = []
    seen: t.Set[str] = set()
    for index, item in enumerate(services):
        where = "services[%d]" % index
        if not isinstance(item, Mapping):
            raise AllocationError("%s must be a dict, got %s" % (where, _type_name(item)))
        if "name" not in item:
            raise AllocationError("%s: missing key name" % where)
        name = item["name"]
        if not isinstance(name, str) or not name:
            raise AllocationError("%s: name must be a non-empty string, got %r" % (where, name))
        if name in seen:
            raise AllocationError("service %r is listed twice" % name)
        seen.add(name)
        result.append(_parse_service(item, name, index))
    return result


def _parse_service(item: t.Mapping[str, t.Any], name: str, index: int) -> Service:
    who = "service %r" % name
    if "requires" not in item:
        raise AllocationError("%s: missing key requires" % who)
    raw = item["requires"]
    if raw is not None and not isinstance(raw, Mapping):
        raise AllocationError("%s: requires must be a dict, got %s" % (who, _type_name(raw)))
    try:
        requires = normalize_requirements(dict(raw) if raw is not None else None)
    except RequirementError as exc:
        raise AllocationError("%s requires %s" % (who, exc)) from exc
    priority = item.get("priority", 0)
    if priority is None:
        priority = 0
    if not _is_number(priority):
        raise AllocationError("%s: priority must be a number, got %r" % (who, priority))
    replicas = item.get("replicas", 1)
    if replicas is None:
        replicas = 1
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
        raise AllocationError("%s: replicas must be an integer >= 1, got %r" % (who, replicas))
    return Service(name, index, requires, priority, replicas)


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
    if not _is_number(time_limit) or time_limit <= 0:
        raise AllocationError("time_limit must be a number of seconds > 0, got %r" % (time_limit,))
    return float(time_limit)


# --------------------------------------------------------------------------- state

def statically_fits(signature: Signature, node: Node) -> bool:
    """The requirements that no placement can change: capabilities, power, battery, network."""
    capabilities, power, network, min_battery = signature
    if capabilities and not node.capabilities.issuperset(capabilities):
        return False
    if power and power != node.power:
        return False
    if min_battery and not _battery_ok(min_battery, node):
        return False
    return not network or network in node.network


def _battery_ok(min_battery: int, node: Node) -> bool:
    # A mains-powered node is never "nearly empty"; a DC node must report its level.
    if node.power == "ac":
        return True
    return node.battery is not None and _milli_down(node.battery) >= min_battery


class State:
    """Remaining capacity and hosted services per node; only ever decreases."""

    def __init__(self, nodes: t.Sequence[Node]) -> None:
        self.nodes = nodes
        self.cpu = [node.cpu for node in nodes]
        self.memory = [node.memory for node in nodes]
        self.storage = [node.storage for node in nodes]
        self.hosted: t.List[t.List[str]] = [[] for node in nodes]
        self.assigned: t.Dict[str, t.List[int]] = {}

    def copy(self) -> State:
        other = State.__new__(State)
        other.nodes = self.nodes
        other.cpu = list(self.cpu)
        other.memory = list(self.memory)
        other.storage = list(self.storage)
        other.hosted = [list(names) for names in self.hosted]
        other.assigned = {name: list(where) for name, where in self.assigned.items()}
        return other

    def fits(self, service: Service, index: int) -> bool:
        return (self.cpu[index] >= service.cpu and self.memory[index] >= service.memory
                and self.storage[index] >= service.storage and index not in self.assigned.get(service.name, ())
                and statically_fits(service.signature, self.nodes[index]))

    def place(self, service: Service, index: int) -> None:
        self.cpu[index] -= service.cpu
        self.memory[index] -= service.memory
        self.storage[index] -= service.storage
        self.hosted[index].append(service.name)
        self.assigned.setdefault(service.name, []).append(index)

    def placed_count(self, service: Service) -> int:
        return len(self.assigned.get(service.name, ()))

    def reason(self, service: Service, index: int) -> t.Optional[str]:
        """The text of ``cause``, or None when the node can take one more replica."""
        cause = self.cause(service, index)
        return None if cause is None else cause_text(cause)

    def cause(self, service: Service, index: int) -> t.Optional[Cause]:
        """The first reason, in Algorithm 1's order of checks, why the node cannot take one more replica."""
        node = self.nodes[index]
        if index in self.assigned.get(service.name, ()):
            return {"code": "replica", "service": service.name}
        missing = [capability for capability in service.capabilities if capability not in node.capabilities]
        if missing:
            return {"code": "capability", "missing": missing}
        if service.cpu > self.cpu[index]:
            return self._capacity("cpu", service.cpu, index, self.cpu[index], node.cpu)
        if service.memory > self.memory[index]:
            return self._capacity("memory", service.memory, index, self.memory[index], node.memory)
        if service.power and service.power != node.power:
            return {"code": "power", "needs": service.power, "has": node.power}
        if service.min_battery and not _battery_ok(service.min_battery, node):
            level = None if node.battery is None else from_milli(_milli_down(node.battery))
            return {"code": "battery", "needs": from_milli(service.min_battery), "has": level}
        if service.network and service.network not in node.network:
            return {"code": "network", "needs": service.network, "has": sorted(node.network)}
        if service.storage > self.storage[index]:
            return self._capacity("storage", service.storage, index, self.storage[index], node.storage)
        return None

    def _capacity(self, code: str, needs: int, index: int, left: int, total: int) -> Cause:
        # Name what took the room only when something did.
        return capacity_cause(code, from_milli(needs), from_milli(left), self.hosted[index] if left != total else ())

    def nodes_used(self) -> int:
        return sum(1 for names in self.hosted if names)

    def units(self) -> int:
        return sum(len(where) for where in self.assigned.values())


# --------------------------------------------------------------------------- heuristics

class _Candidates:
    """Nodes that might still take one requirement, best first; a node that does not fit is dropped for good."""

    __slots__ = ("heap", "dead")

    def __init__(self, heap: t.List[t.Tuple[float, int]]) -> None:
        self.heap = heap
        self.dead: t.Set[int] = set()


def processing_order(services: t.Sequence[Service], strategy: str) -> t.List[Service]:
    """first_fit keeps the paper's order; the others take higher priority first (stable on ties)."""
    if strategy == "first_fit":
        return list(services)
    return sorted(services, key=lambda service: -service.priority)


def keep_current(order: t.Sequence[Service], state: State, current: t.Mapping[str, t.Sequence[str]]) -> None:
    """Leave each service where it runs while that node still satisfies it."""
    if not current:
        return
    index_of = {node.name: node.index for node in state.nodes}
    for service in order:
        for node_name in current.get(service.name, ()):
            if state.placed_count(service) >= service.replicas:
                break
            index = index_of.get(node_name)
            if index is not None and state.fits(service, index):
                state.place(service, index)


def run_heuristic(strategy: str, order: t.Sequence[Service], state: State) -> None:
    """Place every replica still missing, in ``order``, on the node ``strategy`` picks."""
    pending = [service for service in order if state.placed_count(service) < service.replicas]
    if not pending:
        return
    nodes = state.nodes
    cpu, memory, storage = state.cpu, state.memory, state.storage
    score = _scorer(strategy, state)

    eligible: t.Dict[Signature, t.List[int]] = {}
    candidates: t.Dict[Key, _Candidates] = {}
    # for best_fit/spread a node's score changes when it takes a service: its new entry goes to every heap that holds it
    holders: t.List[t.List[_Candidates]] = [[] for node in nodes]
    for service in pending:
        if service.key in candidates:
            continue
        if service.signature not in eligible:
            eligible[service.signature] = [node.index for node in nodes if statically_fits(service.signature, node)]
        need_cpu, need_memory, need_storage = service.demand
        fitting = [index for index in eligible[service.signature]
                   if cpu[index] >= need_cpu and memory[index] >= need_memory and storage[index] >= need_storage]
        heap = [(score(index), index) for index in fitting]
        heapq.heapify(heap)
        entry = _Candidates(heap)
        candidates[service.key] = entry
        if score is not _first_fit_score:
            for index in fitting:
                holders[index].append(entry)

    for service in pending:
        entry = candidates[service.key]
        heap, dead = entry.heap, entry.dead
        need_cpu, need_memory, need_storage = service.demand
        wanted = service.replicas - state.placed_count(service)
        taken = set(state.assigned.get(service.name, ()))
        set_aside: t.List[t.Tuple[float, int]] = []
        while wanted and heap:
            value, index = heap[0]
            if index in dead or value != score(index):
                heapq.heappop(heap)
                continue
            if cpu[index] < need_cpu or memory[index] < need_memory or storage[index] < need_storage:
                heapq.heappop(heap)
                dead.add(index)
                continue
            if index in taken:
                set_aside.append(heapq.heappop(heap))
                continue
            state.place(service, index)
            taken.add(index)
            wanted -= 1
            if holders[index]:
                fresh = (score(index), index)
                for holder in holders[index]:
                    if index not in holder.dead:
                        heapq.heappush(holder.heap, fresh)
        for item in set_aside:
            heapq.heappush(heap, item)


def _first_fit_score(index: int) -> float:
    return 0.0


def _scorer(strategy: str, state: State) -> t.Callable[[int], float]:
    if strategy == "first_fit":
        return _first_fit_score
    if strategy not in ("best_fit", "spread"):
        raise AllocationError("strategy %r is not a heuristic" % strategy)
    nodes = state.nodes
    sign = -1.0 if strategy == "spread" else 1.0
    # One fixed scale per resource (the largest node) keeps the ranking the same before and after a placement.
    scale_cpu = sign / max([node.cpu for node in nodes] + [1])
    scale_memory = sign / max([node.memory for node in nodes] + [1])
    scale_storage = sign / max([node.storage for node in nodes] + [1])
    cpu, memory, storage = state.cpu, state.memory, state.storage

    def score(index: int) -> float:
        return cpu[index] * scale_cpu + memory[index] * scale_memory + storage[index] * scale_storage

    return score


# --------------------------------------------------------------------------- entry points

class Plan:
    """The outcome of one allocation, before it is turned into the allocation result."""

    def __init__(self, strategy: str, services: t.List[Service], nodes: t.List[Node], state: State,
                 current: t.Dict[str, t.List[str]], optimal: t.Optional[t.Dict[str, t.Any]] = None) -> None:
        self.strategy = strategy
        self.services = services
        self.nodes = nodes
        self.state = state
        self.current = current
        self.optimal = optimal


def plan(services: t.Any, nodes: t.Any, strategy: t.Any = DEFAULT_STRATEGY, current: t.Any = None,
         time_limit: t.Any = DEFAULT_TIME_LIMIT) -> Plan:
    """Validate the input and allocate; raises AllocationError."""
    strategy = check_strategy(strategy)
    parsed_services = parse_services(services)
    parsed_nodes = parse_nodes(nodes)
    parsed_current = parse_current(current)
    limit = check_time_limit(time_limit)
    order = processing_order(parsed_services, strategy)
    state = State(parsed_nodes)
    keep_current(order, state, parsed_current)
    optimal_info = None
    if strategy == "optimal":
        # imported here so that the heuristics work without the solver installed
        from ansible_collections.nanoedge.core.plugins.plugin_utils._allocate_optimal import solve

        state, optimal_info = solve(order, state, limit)
    else:
        run_heuristic(strategy, order, state)
    return Plan(strategy, parsed_services, parsed_nodes, state, parsed_current, optimal_info)


def allocate(services: t.Any, nodes: t.Any, strategy: t.Any = DEFAULT_STRATEGY, current: t.Any = None,
             time_limit: t.Any = DEFAULT_TIME_LIMIT) -> t.Dict[str, t.Any]:
    """The allocation result for ``services | nanoedge.core.allocate(nodes, ...)``."""
    return result_of(plan(services, nodes, strategy, current, time_limit))


def result_of(outcome: Plan) -> t.Dict[str, t.Any]:
    state = outcome.state
    names = [node.name for node in outcome.nodes]
    placements: t.Dict[str, str] = {}
    replica_nodes: t.Dict[str, t.List[str]] = {}
    unplaced: t.List[t.Dict[str, t.Any]] = []
    shared: t.Dict[t.Tuple[Key, t.Tuple[int, ...]], t.Tuple[t.Dict[str, str], t.List[Cause]]] = {}
    # Separate copies read best (YAML dumps of shared dicts show anchors), but tens of thousands of copies of
    # thousands of entries would take gigabytes; past SHARE_REASONS_ABOVE entries identical ones are shared.
    unplaced_count = sum(1 for service in outcome.services
                         if len(state.assigned.get(service.name, ())) < service.replicas)
    share = unplaced_count * len(names) > SHARE_REASONS_ABOVE
    for service in outcome.services:
        where = state.assigned.get(service.name, [])
        if where:
            placements[service.name] = names[where[0]]
            replica_nodes[service.name] = [names[index] for index in where]
        missing = service.replicas - len(where)
        if missing:
            # Services with the same requirements that failed on the same nodes get the same explanation.
            cache_key = (service.key, tuple(where))
            explained = shared.get(cache_key)
            if explained is None:
                explained = shared[cache_key] = _explained(state, service, names)
            elif not share:
                explained = (dict(explained[0]), [dict(cause, nodes=list(cause["nodes"])) for cause in explained[1]])
            reasons, causes = explained
            unplaced.append({"service": service.name, "reasons": reasons, "causes": causes, "missing": missing})
    result: t.Dict[str, t.Any] = {
        "strategy": outcome.strategy,
        "placements": placements,
        "by_node": {name: list(state.hosted[index]) for index, name in enumerate(names)},
        "unplaced": unplaced,
        "remaining": {name: {"cpu": from_milli(state.cpu[index]), "memory_mb": from_milli(state.memory[index]),
                             "storage_mb": from_milli(state.storage[index])}
                      for index, name in enumerate(names)},
        "replica_nodes": replica_nodes,
        "placed": state.units(),
        "moves": _moves(outcome.services, outcome.current, replica_nodes),
    }
    if outcome.optimal is not None:
        result["optimal"] = outcome.optimal
    return result


def _explained(state: State, service: Service, names: t.Sequence[str]) -> t.Tuple[t.Dict[str, str], t.List[Cause]]:
    """(node -> reason text, the distinct causes each with its nodes, in node order) for an unplaced service."""
    reasons: t.Dict[str, str] = {}
    causes: t.Dict[str, Cause] = {}
    for index, name in enumerate(names):
        cause = state.cause(service, index) or {"code": "fits"}
        # Equal texts are equal causes, and a text is cheaper to key on than a nested dict.
        text = reasons[name] = cause_text(cause)
        if text in causes:
            causes[text]["nodes"].append(name)
        else:
            causes[text] = dict(cause, nodes=[name])
    return reasons, list(causes.values())


def _moves(services: t.Sequence[Service], current: t.Mapping[str, t.Sequence[str]],
           replica_nodes: t.Mapping[str, t.Sequence[str]]) -> t.List[t.Dict[str, t.Optional[str]]]:
    moves: t.List[t.Dict[str, t.Optional[str]]] = []
    for service in services:
        if service.name not in current:
            continue
        before = current[service.name]
        after = replica_nodes.get(service.name, [])
        gone = [node for node in before if node not in after]
        new = [node for node in after if node not in before]
        for position in range(max(len(gone), len(new))):
            moves.append({"service": service.name,
                          "from": gone[position] if position < len(gone) else None,
                          "to": new[position] if position < len(new) else None})
    return moves


def explain(services: t.Any, nodes: t.Any, strategy: t.Any = DEFAULT_STRATEGY, current: t.Any = None,
            time_limit: t.Any = DEFAULT_TIME_LIMIT, static: bool = False) -> t.Dict[str, t.Dict[str, str]]:
    """The full service x node matrix: ``placed``, ``fits`` or the first reason it does not fit.

    With ``static`` each service is checked against each node's whole profile,
    as if nothing else ran there; otherwise against the plan ``strategy`` makes.
    """
    if static:
        check_strategy(strategy)
        parsed_services = parse_services(services)
        parsed_nodes = parse_nodes(nodes)
        parse_current(current)
        check_time_limit(time_limit)
        empty = State(parsed_nodes)
        return {service.name: {node.name: empty.reason(service, node.index) or FITS for node in parsed_nodes}
                for service in parsed_services}
    outcome = plan(services, nodes, strategy, current, time_limit)
    state = outcome.state
    matrix: t.Dict[str, t.Dict[str, str]] = {}
    for service in outcome.services:
        where = state.assigned.get(service.name, ())
        matrix[service.name] = {
            node.name: PLACED if node.index in where else (state.reason(service, node.index) or FITS)
            for node in outcome.nodes}
    return matrix


def lexicographic_value(state: State, order: t.Sequence[Service]) -> t.Tuple[int, float, int]:
    """What ``optimal`` maximises: placed replicas, then their total priority, then fewest nodes used."""
    priority = sum(service.priority * state.placed_count(service) for service in order)
    return (state.units(), priority, -state.nodes_used())
