# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``optimal`` allocation strategy: an exact mixed-integer model solved with HiGHS.

Objective, in this order: most replicas placed, then the highest total
priority of what is placed, then the fewest nodes in use. The three goals are
solved one after the other (each one fixing the value reached by the one
before), which keeps the model exact without mixing numbers of very different
size in one objective.

Services with identical requirements and priority are interchangeable, so
they share one integer variable per node ("how many of this kind run here")
instead of one binary each; that removes the symmetry that makes such models
hard to prove optimal. Services with more replicas keep one binary per node,
because replicas must land on distinct nodes.

The best heuristic result seeds the solver and is also the fallback, so the
result never places fewer services than ``first_fit`` (in the given order, as
well as in priority order) run from the same start.

highspy is an optional dependency: only this strategy needs it.
"""

from __future__ import annotations

import math
import time
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._plan import HEURISTICS
from ansible_collections.nanoedge.core.plugins.plugin_utils._allocate_heuristics import (
    State,
    lexicographic_value,
    run_heuristic,
    statically_fits,
)
from ansible_collections.nanoedge.core.plugins.plugin_utils._allocate_model import AllocationError, Service, from_milli

try:
    import highspy
    import numpy
except ImportError as exc:  # pragma: no cover - exercised by the missing-library test through _require_highspy
    HIGHSPY_IMPORT_ERROR: t.Optional[ImportError] = exc
else:
    HIGHSPY_IMPORT_ERROR = None

MISSING_HIGHSPY = ("strategy 'optimal' needs the Python library highspy on the controller (pip install highspy); "
                   "the strategies %s and %s work without it" % (", ".join(HEURISTICS[:-1]), HEURISTICS[-1]))

_INF = float("inf")


def _require_highspy() -> None:
    if HIGHSPY_IMPORT_ERROR is not None:
        raise AllocationError("%s: %s" % (MISSING_HIGHSPY, HIGHSPY_IMPORT_ERROR))


class _Column:
    __slots__ = ("kind", "members", "node", "upper")

    def __init__(self, kind: int, members: t.List[Service], node: int, upper: int) -> None:
        self.kind = kind
        self.members = members
        self.node = node
        self.upper = upper


def solve(order: t.Sequence[Service], start: State, time_limit: float) -> t.Tuple[State, t.Dict[str, t.Any]]:
    """Return the final state and what the solver proved about it."""
    _require_highspy()
    began = time.monotonic()
    deadline = began + time_limit

    best_state, best_source = start, "current"
    best_value = lexicographic_value(start, order)
    # first_fit proper takes the services as given, not by priority; without that run, a time limit
    # could leave the result below what first_fit places
    given_order = sorted(order, key=lambda service: service.index)
    trials = [("first_fit", given_order)] + [(name, order) for name in HEURISTICS]
    for name, sequence in trials:
        trial = start.copy()
        run_heuristic(name, sequence, trial)
        value = lexicographic_value(trial, order)
        if value > best_value:
            best_state, best_source, best_value = trial, name, value

    kinds, columns = _build_columns(order, start)
    wanted = sum(service.replicas for service in order)
    info: t.Dict[str, t.Any] = {"solver": "highs %s" % highspy.Highs().version(), "time_limit": time_limit}
    if not columns:
        final = best_state
        info.update(proven=True, status="Optimal", bound=final.units(), source=best_source)
    else:
        values, proven, status, bound_new = _solve_model(order, start, kinds, columns, best_state, deadline)
        final, source = best_state, best_source
        if values is not None:
            candidate = _state_from_columns(start, columns, values)
            # anything the solver left out that still fits (time limit, tolerances) is added first-fit
            run_heuristic("first_fit", order, candidate)
            if lexicographic_value(candidate, order) >= best_value:
                final, source = candidate, "solver"
        bound = start.units() + bound_new
        bound = max(min(bound, wanted), final.units())
        # a proof only counts if the placement returned reaches the proven count
        info.update(proven=proven and final.units() == bound, status=status, bound=bound, source=source)
    placed = final.units()
    info["placed"] = placed
    info["gap"] = round((info["bound"] - placed) / info["bound"], 6) if info["bound"] else 0.0
    info["seconds"] = round(time.monotonic() - began, 3)
    return final, info


def _build_columns(order: t.Sequence[Service], start: State) -> t.Tuple[t.List[t.List[Service]], t.List[_Column]]:
    kinds: t.List[t.List[Service]] = []
    by_key: t.Dict[t.Tuple[t.Any, ...], int] = {}
    for service in order:
        missing = service.replicas - start.placed_count(service)
        if missing <= 0:
            continue
        if service.replicas == 1:
            group = (service.key, service.priority)
            if group not in by_key:
                by_key[group] = len(kinds)
                kinds.append([])
            kinds[by_key[group]].append(service)
        else:
            kinds.append([service])
    columns: t.List[_Column] = []
    for kind, members in enumerate(kinds):
        first = members[0]
        taken = set(start.assigned.get(first.name, ()))
        for node in start.nodes:
            index = node.index
            if index in taken or not statically_fits(first.signature, node):
                continue
            upper = len(members) if first.replicas == 1 else 1
            for need, left in ((first.cpu, start.cpu[index]), (first.memory, start.memory[index]),
                               (first.storage, start.storage[index])):
                if need:
                    upper = min(upper, left // need)
            if upper > 0:
                columns.append(_Column(kind, members, index, upper))
    return kinds, columns


def _solve_model(order: t.Sequence[Service], start: State, kinds: t.List[t.List[Service]],
                 columns: t.List[_Column], seed: State, deadline: float,
                 ) -> t.Tuple[t.Optional[t.List[float]], bool, str, int]:
    """Three lexicographic stages; returns column values, proven, stage-1 status and its bound on new replicas."""
    model = highspy.Highs()
    model.setOptionValue("output_flag", False)
    model.setOptionValue("threads", 1)
    used_nodes = sorted({column.node for column in columns if not start.hosted[column.node]})
    y_of = {node: len(columns) + position for position, node in enumerate(used_nodes)}
    count = len(columns) + len(used_nodes)
    lower = numpy.zeros(count)
    upper = numpy.array([float(column.upper) for column in columns] + [1.0] * len(used_nodes))
    model.addVars(count, lower, upper)
    model.changeColsIntegrality(count, numpy.arange(count, dtype=numpy.int32),
                                numpy.array([highspy.HighsVarType.kInteger] * count))

    def add_row(low: float, high: float, indices: t.List[int], values: t.List[float]) -> None:
        model.addRow(low, high, len(indices), numpy.array(indices, dtype=numpy.int32), numpy.array(values, dtype=float))

    per_node: t.Dict[int, t.List[int]] = {}
    per_kind: t.Dict[int, t.List[int]] = {}
    for position, column in enumerate(columns):
        per_node.setdefault(column.node, []).append(position)
        per_kind.setdefault(column.kind, []).append(position)
    for node, positions in per_node.items():
        for attribute, left in (("cpu", start.cpu[node]), ("memory", start.memory[node]),
                                ("storage", start.storage[node])):
            needs = [getattr(columns[p].members[0], attribute) for p in positions]
            if sum(need * columns[p].upper for need, p in zip(needs, positions)) <= left:
                continue
            add_row(-_INF, from_milli(left), positions, [from_milli(need) for need in needs])
    for kind, positions in per_kind.items():
        first = kinds[kind][0]
        limit = len(kinds[kind]) if first.replicas == 1 else first.replicas - start.placed_count(first)
        add_row(-_INF, float(limit), positions, [1.0] * len(positions))
    for position, column in enumerate(columns):
        if column.node in y_of:
            add_row(-_INF, 0.0, [position, y_of[column.node]], [1.0, -float(column.upper)])

    everything = numpy.arange(count, dtype=numpy.int32)
    seed_values = _seed(kinds, columns, y_of, count, start, seed)
    stages = [
        ([1.0] * len(columns) + [0.0] * len(used_nodes), highspy.ObjSense.kMaximize),
        ([float(column.members[0].priority) for column in columns] + [0.0] * len(used_nodes),
         highspy.ObjSense.kMaximize),
        ([0.0] * len(columns) + [1.0] * len(used_nodes), highspy.ObjSense.kMinimize),
    ]
    if len({column.members[0].priority for column in columns}) <= 1:
        del stages[1]  # one priority only: the second goal follows from the first
    best: t.Optional[t.List[float]] = None
    proven = True
    status = "Optimal"
    bound_new = sum(len(members) if members[0].replicas == 1 else members[0].replicas for members in kinds)
    for stage, (costs, sense) in enumerate(stages):
        left = deadline - time.monotonic()
        if left <= 0.01:
            proven = False
            if stage == 0:
                status = "Time limit reached"
            break
        model.changeColsCost(count, everything, numpy.array(costs))
        model.changeObjectiveSense(sense)
        model.setOptionValue("time_limit", left)
        model.setOptionValue("mip_rel_gap", 0.0)
        model.setOptionValue("mip_abs_gap", 0.999 if stage == 0 or sense == highspy.ObjSense.kMinimize else 1e-6)
        start_values = best if best is not None else seed_values
        solution = highspy.HighsSolution()
        solution.col_value = list(start_values)
        solution.value_valid = True
        model.setSolution(solution)
        model.run()
        model_status = model.getModelStatus()
        info = model.getInfo()
        has_solution = info.primal_solution_status == 2
        if has_solution:
            best = list(model.getSolution().col_value)
        stage_proven = model_status == highspy.HighsModelStatus.kOptimal
        if stage == 0:
            status = model.modelStatusToString(model_status)
            if stage_proven and best is not None:
                bound_new = int(round(sum(best[:len(columns)])))
            elif math.isfinite(info.mip_dual_bound):
                bound_new = min(bound_new, int(math.floor(info.mip_dual_bound + 1e-6)))
        proven = proven and stage_proven
        if best is None:
            break
        # hold this goal at the value reached before optimising the next one
        achieved = sum(cost * value for cost, value in zip(costs, best))
        indices = [position for position, cost in enumerate(costs) if cost]
        if not indices:
            continue
        weights = [costs[position] for position in indices]
        if sense == highspy.ObjSense.kMaximize:
            slack = 0.5 if stage == 0 else 1e-6 * max(1.0, abs(achieved))
            add_row(achieved - slack, _INF, indices, weights)
        else:
            add_row(-_INF, achieved + 0.5, indices, weights)
    return best, proven, status, bound_new


def _seed(kinds: t.List[t.List[Service]], columns: t.List[_Column], y_of: t.Dict[int, int], count: int,
          start: State, seed: State) -> t.List[float]:
    """The best heuristic result as a starting solution for the solver."""
    kind_of = {service.name: kind for kind, members in enumerate(kinds) for service in members}
    new_here: t.Dict[t.Tuple[int, int], int] = {}
    for name, where in seed.assigned.items():
        kind = kind_of.get(name)
        if kind is None:
            continue
        before = start.assigned.get(name, ())
        for index in where:
            if index not in before:
                new_here[(kind, index)] = new_here.get((kind, index), 0) + 1
    values = [0.0] * count
    for position, column in enumerate(columns):
        amount = min(new_here.get((column.kind, column.node), 0), column.upper)
        values[position] = float(amount)
        if amount and column.node in y_of:
            values[y_of[column.node]] = 1.0
    return values


def _state_from_columns(start: State, columns: t.List[_Column], values: t.Sequence[float]) -> State:
    """Turn "so many of this kind on that node" into named services, in processing order and node order."""
    state = start.copy()
    cursor: t.Dict[int, int] = {}
    for position, column in enumerate(columns):
        amount = int(round(values[position]))
        members = column.members
        if members[0].replicas > 1:
            chosen = members[:1] if amount else []
        else:
            first = cursor.get(column.kind, 0)
            chosen = members[first:first + amount]
            cursor[column.kind] = first + len(chosen)
        for service in chosen:
            # the solver works within tolerances; only what really fits is placed
            if state.fits(service, column.node) and state.placed_count(service) < service.replicas:
                state.place(service, column.node)
    return state
