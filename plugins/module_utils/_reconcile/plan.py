# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The plan the command leaves behind (module_utils/_plan), as the decision log reports it."""

from __future__ import annotations

import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._plan import unplaced_summary


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
            unplaced.append({"service": entry["service"], "why": unplaced_summary(entry)})
    return moves, unplaced


def move_line(move: t.Mapping[str, t.Any]) -> str:
    text = "moved %s %s -> %s" % (move["service"], move.get("from") or "(nowhere)", move.get("to") or "(nowhere)")
    return text + (" (%s)" % move["why"] if move.get("why") else "")
