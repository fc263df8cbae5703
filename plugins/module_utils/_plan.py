# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The plan document (docs/contracts.md, "The allocation result and the plan file"): its keys,
the structured causes of an unplaced service and their text, and the reader of the plan file.

The allocate filter writes the causes, the site playbook writes the plan file,
the reconcile daemon on the managers reads it back. Standard library only,
Python >= 3.9, no Ansible imports: it runs on the managers.
"""

from __future__ import annotations

import json
import os
import typing as t

# The allocation strategies, and those that need no solver.
STRATEGIES = ("first_fit", "best_fit", "spread", "optimal")
HEURISTICS = ("first_fit", "best_fit", "spread")
DEFAULT_STRATEGY = "first_fit"

# What nanoedge.core.allocate always returns and plan_report requires.
RESULT_KEYS = ("strategy", "placements", "by_node", "unplaced", "remaining")
# What allocate returns besides, and the plan file carries over when present.
CARRIED_KEYS = ("replica_nodes", "placed", "moves")
# allocate with strategy=optimal only; not carried into the plan file.
OPTIMAL_KEY = "optimal"
# What the plan file adds: why each service runs where it does, and what the run was based on.
PLAN_KEYS = ("why", "critical", "critical_unplaced", "registry", "current", "services", "nodes")
# One entry of ``unplaced``; ``reasons`` and ``causes`` (per node) only for clusters of up to DETAIL_NODES nodes.
UNPLACED_KEYS = ("service", "missing", "summary", "counts", "reasons", "causes")
DETAIL_NODES = 50
# One entry of ``moves`` (the plan file adds ``why``).
MOVE_KEYS = ("service", "from", "to")
# One entry of the plan file's ``services`` and ``nodes``.
PLAN_SERVICE_FIELDS = ("image", "digest", "requires")
PLAN_NODE_FIELDS = ("model", "arch", "capabilities", "cpu", "memory_mb", "storage_mb", "power", "network")

# Why a node cannot take (one more replica of) a service, in the order the checks run;
# ``fits`` marks a node that could take it.
CAUSE_CODES = ("replica", "capability", "cpu", "memory", "power", "battery", "network", "storage", "fits")
_NAMES_SHOWN = 5

Cause = t.Dict[str, t.Any]


def cause_text(cause: t.Mapping[str, t.Any]) -> str:
    """The one line a cause reads as in ``reasons``, plan tables and explain matrices."""
    code = cause["code"]
    if code == "replica":
        return "already runs a replica of %s" % cause["service"]
    if code == "capability":
        missing = cause["missing"]
        return "missing capabilit%s %s" % ("y" if len(missing) == 1 else "ies", ", ".join(missing))
    if code == "cpu":
        return "needs %s core%s, %s" % (cause["needs"], "" if cause["needs"] == 1 else "s", _left(cause))
    if code in ("memory", "storage"):
        return "needs %s MB %s, %s" % (cause["needs"], code, _left(cause))
    if code == "power":
        return "needs %s power, runs on %s" % (cause["needs"], cause["has"])
    if code == "battery":
        level = "battery level unknown" if cause["has"] is None else "has %s%%" % cause["has"]
        return "needs battery at %s%% or more, %s" % (cause["needs"], level)
    if code == "network":
        return "needs %s network, has %s" % (cause["needs"], ", ".join(cause["has"]) or "none")
    if code == "fits":
        return "fits"
    raise ValueError("unknown cause code %r (known: %s)" % (code, ", ".join(CAUSE_CODES)))


def _left(cause: t.Mapping[str, t.Any]) -> str:
    after = cause.get("after")
    if not after:
        return "has %s" % cause["has"]
    names = ", ".join(after)
    if cause.get("more"):
        names += " and %d more" % cause["more"]
    return "%s left after %s" % (cause["has"], names)


def capacity_cause(code: str, needs: t.Union[int, float], has: t.Union[int, float],
                   hosted: t.Sequence[str] = ()) -> Cause:
    """A ``cpu``, ``memory`` or ``storage`` cause; ``hosted`` names what took the room, if anything did."""
    cause = {"code": code, "needs": needs, "has": has}  # type: Cause
    if hosted:
        cause["after"] = list(hosted[:_NAMES_SHOWN])
        if len(hosted) > _NAMES_SHOWN:
            cause["more"] = len(hosted) - _NAMES_SHOWN
    return cause


def counts_text(counts: t.Sequence[t.Mapping[str, t.Any]]) -> str:
    """``0/5000 nodes fit: 4,980 missing capability pom, 20 not enough memory (needs 512 MB)``."""
    if not counts:
        return "no live node"
    total = fits = 0
    causes = []
    for count in counts:
        total += count["count"]
        if count["code"] == "fits":
            fits += count["count"]
        else:
            causes.append(count_line(count["count"], count_text(count)))
    return fits_text(fits, total, causes)


def count_line(number: int, text: str) -> str:
    """A count as ``counts_text`` shows it: ``4,980 missing capability pom``."""
    return "%s %s" % (format(number, ","), text)


def fits_text(fits: int, total: int, causes: t.Sequence[str]) -> str:
    """``counts_text`` from how many nodes fit, how many there are and the ``count_line`` of each other count."""
    return "%d/%d nodes fit: %s" % (fits, total, ", ".join(causes)) if causes else "%d/%d nodes fit" % (fits, total)


def count_text(count: t.Mapping[str, t.Any]) -> str:
    """One count without its number: ``missing capability pom``, ``not enough memory (needs 512 MB)``."""
    code = count["code"]
    if code == "replica":
        return "already run a replica"
    if code == "capability":
        missing = count["missing"]
        return "missing capabilit%s %s" % ("y" if len(missing) == 1 else "ies", ", ".join(missing))
    if code == "cpu":
        return "not enough cpu (needs %s core%s)" % (count["needs"], "" if count["needs"] == 1 else "s")
    if code in ("memory", "storage"):
        return "not enough %s (needs %s MB)" % (code, count["needs"])
    if code == "power":
        return "not on %s power" % count["needs"]
    if code == "battery":
        return "battery under %s%% or unknown" % count["needs"]
    if code == "network":
        return "without %s network" % count["needs"]
    raise ValueError("unknown cause code %r (known: %s)" % (code, ", ".join(CAUSE_CODES)))


def unplaced_summary(entry: t.Mapping[str, t.Any]) -> str:
    """One line for an unplaced service, from its structured ``counts`` (or, in older plan files, ``causes``).

    From ``counts``: ``0/5 nodes fit: 4 missing capability pom, 1 not enough
    memory (needs 512 MB)``. From ``causes``: ``no live node has capability pom``
    (or ``capabilities a, b``) when every node lacks the same capabilities,
    ``every node: <cause>`` when all share another cause, else
    ``node: cause; ...`` by node name. ``no live node`` when there were no
    nodes. An entry's own ``reason`` wins; an entry without readable codes is
    summed up from its ``reasons`` texts as they are.
    """
    reason = entry.get("reason")
    if isinstance(reason, str) and reason:
        return reason
    try:
        if entry.get("counts") is not None:
            return counts_text(entry["counts"])
    except (AttributeError, KeyError, TypeError, ValueError):
        pass
    try:
        return _summary_of_causes(entry.get("causes"))
    except (AttributeError, KeyError, TypeError, ValueError):
        return _summary_of_texts(entry.get("reasons"))


def _summary_of_causes(causes: t.Any) -> str:
    if causes is None:
        raise ValueError("no causes")
    if not causes:
        return "no live node"
    if len(causes) == 1:
        (cause,) = causes
        if cause["code"] == "capability":
            missing = cause["missing"]
            return "no live node has capabilit%s %s" % ("y" if len(missing) == 1 else "ies", ", ".join(missing))
        return "every node: %s" % cause_text(cause)
    return _per_node((str(node), cause_text(cause)) for cause in causes for node in cause["nodes"])


def _summary_of_texts(reasons: t.Any) -> str:
    if not isinstance(reasons, dict) or not reasons:
        return "no live node"
    texts = {str(text) for text in reasons.values()}
    if len(texts) == 1:
        return "every node: %s" % texts.pop()
    return _per_node((str(node), str(text)) for node, text in reasons.items())


def _per_node(pairs: t.Iterable[t.Tuple[str, str]]) -> str:
    return "; ".join("%s: %s" % pair for pair in sorted(pairs, key=lambda pair: pair[0]))


def read_plan(path: str, since: float) -> t.Tuple[t.Optional[t.Dict[str, t.Any]], t.Optional[str]]:
    """(plan, problem): the plan JSON if the command wrote it after ``since`` (wall clock)."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None, "the command wrote no plan file %s" % path
    except OSError as exc:
        return None, "cannot read the plan file %s: %s" % (path, exc)
    # mtime has the file system's granularity; a plan written in the first
    # instant of the run must still count as new.
    if stat.st_mtime < since - 0.01:
        return None, "the plan file %s is older than this run" % path
    try:
        with open(path, encoding="utf-8") as handle:
            plan = json.load(handle)
    except (OSError, ValueError) as exc:
        return None, "cannot read the plan file %s: %s" % (path, exc)
    if not isinstance(plan, dict):
        return None, "the plan file %s holds no JSON object" % path
    return plan, None
