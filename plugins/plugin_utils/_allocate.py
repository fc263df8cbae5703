# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Service-to-node allocation (docs/contracts.md, "The allocation result and the plan file"): the logic behind the
``nanoedge.core.allocate`` and ``nanoedge.core.explain`` filters.

Controller-only, pure Python, no Ansible imports. Inputs are never mutated.

The input model and its validation live in ``_allocate_model``, the placement
state and the heuristic strategies in ``_allocate_heuristics``, the ``optimal``
strategy in ``_allocate_optimal``; this module runs them and builds the
allocation result.
"""

from __future__ import annotations

import contextlib
import gc
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._plan import (
    DEFAULT_STRATEGY,
    DETAIL_NODES,
    Cause,
    cause_text,
)
from ansible_collections.nanoedge.core.plugins.plugin_utils._allocate_columns import parse_services
from ansible_collections.nanoedge.core.plugins.plugin_utils._allocate_explain import Counter
from ansible_collections.nanoedge.core.plugins.plugin_utils._allocate_heuristics import (
    State,
    keep_current,
    processing_order,
    run_heuristic,
)
from ansible_collections.nanoedge.core.plugins.plugin_utils._allocate_model import (
    AllocationError,
    Node,
    Service,
    check_strategy,
    check_time_limit,
    from_milli,
    parse_current,
    parse_nodes,
)

# What callers import from here, AllocationError and parse_current included wherever they are defined.
__all__ = ["DEFAULT_TIME_LIMIT", "FITS", "PLACED", "AllocationError", "Plan", "allocate", "explain", "parse_current",
           "plan", "result_of"]

DEFAULT_TIME_LIMIT = 10.0
FITS = "fits"
PLACED = "placed"


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
    with without_gc():
        return result_of(plan(services, nodes, strategy, current, time_limit))


@contextlib.contextmanager
def without_gc() -> t.Iterator[None]:
    """No cyclic garbage collection while allocating: a large allocation makes hundreds of thousands of
    objects and no reference cycles, and the collections it would trigger (each walking every object of
    the controller's process) cost a third of its time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        # what the call made and keeps (the result) joins the oldest generation at once (freeze, then
        # unfreeze): else the first young collection after it walks all of it, a sixth of its time
        gc.freeze()
        gc.unfreeze()
        if enabled:
            gc.enable()


def result_of(outcome: Plan) -> t.Dict[str, t.Any]:
    state = outcome.state
    names = [node.name for node in outcome.nodes]
    placements: t.Dict[str, str] = {}
    replica_nodes: t.Dict[str, t.List[str]] = {}
    unplaced: t.List[t.Dict[str, t.Any]] = []
    # per-node detail only where it is small: the result and the plan file grow with services + nodes
    detail = len(names) <= DETAIL_NODES
    counter = None
    # services with the same requirements and no replica placed have the same counts; services of one
    # requirement vector share its key, so its identity is enough (and cheaper to hash than the key)
    counted: t.Dict[int, t.Tuple[t.List[t.Dict[str, t.Any]], str]] = {}
    assigned = state.assigned
    for service in outcome.services:
        where = assigned.get(service.name, ())
        if where:
            placements[service.name] = names[where[0]]
            replica_nodes[service.name] = [names[index] for index in where]
            missing = service.replicas - len(where)
            if not missing:
                continue
        else:
            missing = service.replicas
        if counter is None:
            counter = Counter(outcome.nodes, state.cpu, state.memory, state.storage)
        known = None if where else counted.get(id(service.key))
        if known is None:
            counts, text = counter.explained(service, where)
            if not where:
                counted[id(service.key)] = (counts, text)
        else:
            # separate copies: YAML dumps of shared dicts show anchors
            counts, text = [dict(count) for count in known[0]], known[1]
        entry = {"service": service.name, "missing": missing, "summary": text, "counts": counts}
        if detail:
            entry["reasons"], entry["causes"] = _explained(state, service, names)
        unplaced.append(entry)
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
    if not current:
        return moves
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
            time_limit: t.Any = DEFAULT_TIME_LIMIT, static: bool = False,
            names: t.Any = None) -> t.Dict[str, t.Dict[str, str]]:
    """The service x node matrix: ``placed``, ``fits`` or the first reason it does not fit.

    With ``static`` each service is checked against each node's whole profile,
    as if nothing else ran there; otherwise against the plan ``strategy`` makes.
    With ``names`` only those services get a row (the per-node detail of a large plan, on request).
    """
    if static:
        check_strategy(strategy)
        parsed_services = parse_services(services)
        parsed_nodes = parse_nodes(nodes)
        parse_current(current)
        check_time_limit(time_limit)
        wanted = _wanted(names, parsed_services)
        empty = State(parsed_nodes)
        return {service.name: {node.name: empty.reason(service, node.index) or FITS for node in parsed_nodes}
                for service in parsed_services if service.name in wanted}
    outcome = plan(services, nodes, strategy, current, time_limit)
    wanted = _wanted(names, outcome.services)
    state = outcome.state
    matrix: t.Dict[str, t.Dict[str, str]] = {}
    for service in outcome.services:
        if service.name not in wanted:
            continue
        where = state.assigned.get(service.name, ())
        matrix[service.name] = {
            node.name: PLACED if node.index in where else (state.reason(service, node.index) or FITS)
            for node in outcome.nodes}
    return matrix


def _wanted(names: t.Any, services: t.Sequence[Service]) -> t.Set[str]:
    known = [service.name for service in services]
    if names is None:
        return set(known)
    if not isinstance(names, (list, tuple)) or not all(isinstance(name, str) for name in names):
        raise AllocationError("names must be a list of service names, got %r" % (names,))
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise AllocationError("names: unknown service(s) %s" % ", ".join(unknown))
    return set(names)
