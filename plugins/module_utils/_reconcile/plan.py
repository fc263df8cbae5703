# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The plan the command leaves behind, as the decision log reports it."""

from __future__ import annotations

import json
import os
import typing as t


def summarize_reasons(entry: t.Mapping[str, t.Any]) -> str:
    """One line for an unplaced service: its own ``reason``, or the per-node ``reasons`` condensed."""
    reason = entry.get("reason")
    if isinstance(reason, str) and reason:
        return reason
    reasons = entry.get("reasons")
    if not isinstance(reasons, dict) or not reasons:
        return "no live node"
    texts = sorted({str(text) for text in reasons.values()})
    if len(texts) == 1:
        text = texts[0]
        if text.startswith("missing capability "):
            return "no live node has capability %s" % text[len("missing capability "):]
        return "every node: %s" % text
    return "; ".join("%s: %s" % (node, text) for node, text in sorted(reasons.items(), key=lambda i: str(i[0])))


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


def plan_outcome(plan: t.Mapping[str, t.Any]) -> t.Tuple[t.List[t.Dict[str, t.Any]], t.List[t.Dict[str, t.Any]]]:
    """(moves, unplaced) as the decision log records them, each with a ``why``."""
    why = plan.get("why") if isinstance(plan.get("why"), dict) else {}
    moves = []
    for move in plan.get("moves") or []:
        if not isinstance(move, dict) or not isinstance(move.get("service"), str):
            continue
        text = move.get("why") if isinstance(move.get("why"), str) else why.get(move["service"])
        moves.append({"service": move["service"], "from": move.get("from"), "to": move.get("to"),
                      "why": text if isinstance(text, str) else ""})
    unplaced = []
    for entry in plan.get("unplaced") or []:
        if isinstance(entry, dict) and isinstance(entry.get("service"), str):
            unplaced.append({"service": entry["service"], "why": summarize_reasons(entry)})
    return moves, unplaced


def move_line(move: t.Mapping[str, t.Any]) -> str:
    text = "moved %s %s -> %s" % (move["service"], move.get("from") or "(nowhere)", move.get("to") or "(nowhere)")
    return text + (" (%s)" % move["why"] if move.get("why") else "")

