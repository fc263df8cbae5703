# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pure parts of ``bench/bench_continuity.py``: placements compared, rows, the table, the median, the report.

Nothing here touches the cluster, so it is tested on its own (``tests/unit/bench/test_continuity.py``).

A *placement* maps each service to the sorted nodes that run it (normally one; two for a moment
during a move, none when it is unplaced). A *row* is what the report holds for one event:
``{"event", "detect_s", "restore_s", "moves", "unneeded_moves", "readings_lost", "duplicates"}``, plus
``"note"`` whenever a figure could not be measured (it then is ``None`` and the note says why), and
``"restore_seen_s"`` when the bench's polling saw the event restored (``restore_s`` is by the consumers'
own clocks where they report it).
"""

from __future__ import annotations

import json
import os
import statistics
import typing as t

Placement = t.Dict[str, t.List[str]]
Row = t.Dict[str, t.Any]

FIELDS = ("event", "detect_s", "restore_s", "moves", "unneeded_moves", "readings_lost", "duplicates")
# Over several runs these are the worst run's, the times and moves the median.
WORST_OF_RUNS = ("readings_lost", "duplicates")


def placement_from_nodes(services_by_node: t.Mapping[str, t.Iterable[str]]) -> Placement:
    """``{node: [service, ...]}`` as read from each worker, turned into ``{service: [node, ...]}``."""
    placement: Placement = {}
    for node, services in services_by_node.items():
        for service in services:
            placement.setdefault(service, []).append(node)
    return {service: sorted(set(nodes)) for service, nodes in sorted(placement.items())}


def moved_services(before: Placement, after: Placement) -> t.List[str]:
    """The services whose set of nodes differs between the two placements (started or stopped included)."""
    return sorted(s for s in set(before) | set(after) if before.get(s, []) != after.get(s, []))


def unneeded_moves(moved: t.Iterable[str], required: t.Iterable[str]) -> t.List[str]:
    """The moves the event did not call for."""
    return sorted(set(moved) - set(required))


def moved_away(before: Placement, now: Placement, services: t.Iterable[str]) -> bool:
    """Whether each of ``services`` runs on exactly one node, and not on the one it ran on before."""
    services = list(services)
    return bool(services) and all(len(now.get(s, [])) == 1 and now[s][0] not in before.get(s, []) for s in services)


def describe_moves(before: Placement, after: Placement, moved: t.Iterable[str]) -> t.List[str]:
    """``["alert: w2 -> w3", ...]``; ``-`` stands for no node."""
    return ["%s: %s -> %s" % (s, ",".join(before.get(s, [])) or "-", ",".join(after.get(s, [])) or "-")
            for s in moved]


def make_row(event: str, detect_s: t.Optional[float], restore_s: t.Optional[float], moves: t.Optional[int],
             unneeded: t.Optional[int], notes: t.Sequence[str] = (), readings_lost: t.Optional[int] = None,
             duplicates: t.Optional[int] = None, seen_s: t.Optional[float] = None) -> Row:
    """One report row; figures rounded to 0.01 s, and a note when something is missing or was odd.
    ``seen_s`` (``restore_seen_s``), when given: when the bench's polling saw it restored."""
    row: Row = {
        "event": event,
        "detect_s": None if detect_s is None else round(detect_s, 2),
        "restore_s": None if restore_s is None else round(restore_s, 2),
        "moves": moves,
        "unneeded_moves": unneeded,
        "readings_lost": readings_lost,
        "duplicates": duplicates,
    }
    if seen_s is not None:
        row["restore_seen_s"] = round(seen_s, 2)
    if notes:
        row["note"] = "; ".join(notes)
    return row


def latest_moment(*moments: t.Tuple[t.Optional[float], str]) -> t.Tuple[t.Optional[float], str]:
    """The latest of the consumers' ``(moment, why not)``; ``(None, the first reason)`` when one is missing."""
    for moment, why in moments:
        if moment is None:
            return None, why
    return max(t.cast(float, moment) for moment, _why in moments), ""


def consumers_restore(moment: t.Optional[float], why: str, started: float, seen_s: float) -> t.Tuple[float, str]:
    """``restore_s`` by the consumers' own clocks (``moment``: when their readings began to flow from the new
    node), which the bench's polling saw ``seen_s`` after the event; the bench's ``seen_s`` with a note when
    the consumers do not say, or say a moment outside the event (their readings never stopped)."""
    if moment is None:
        return seen_s, "restore_s as the bench saw it: %s" % why
    if not started <= moment <= started + seen_s:
        return seen_s, "restore_s as the bench saw it: the consumers' readings flow since %+.1f s" % (
            moment - started)
    return moment - started, ""


def _figure(value: t.Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "%.1f" % value
    return str(value)


def format_table(rows: t.Sequence[Row], title: t.Optional[str] = None) -> str:
    """The rows as a fixed-width table, one line per event, with its note at the end of the line."""
    header = ("event", "detect_s", "restore_s", "moves", "unneeded", "lost", "dups", "note")
    lines = [header] + [(row["event"], _figure(row["detect_s"]), _figure(row["restore_s"]), _figure(row["moves"]),
                         _figure(row["unneeded_moves"]), _figure(row.get("readings_lost")),
                         _figure(row.get("duplicates")), row.get("note", "")) for row in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    text = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths)))
            + "  " + line[-1] for line in lines]
    if title:
        text.insert(0, title)
    return "\n".join(line.rstrip() for line in text)


def _median(values: t.Sequence[t.Any]) -> t.Any:
    """The median of the measured values; None when there is none. Counts stay whole numbers."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    if all(isinstance(v, int) for v in present):
        return int(statistics.median_low(present))
    return round(float(statistics.median(present)), 2)


def median_rows(runs: t.Sequence[t.Sequence[Row]]) -> t.List[Row]:
    """One row per event (in the order of the first run): the median of each figure over the runs that
    measured it (the readings lost and duplicated: the worst run), and a note saying how many did and why
    the others did not."""
    events: t.List[str] = []
    by_event: t.Dict[str, t.List[Row]] = {}
    for rows in runs:
        for row in rows:
            if row["event"] not in by_event:
                events.append(row["event"])
            by_event.setdefault(row["event"], []).append(row)
    result = []
    for event in events:
        rows = by_event[event]
        figures = {field: _median([row.get(field) for row in rows]) for field in FIELDS[1:]}
        # a reading lost in any run is one too many: the worst run, not the median
        for field in WORST_OF_RUNS:
            present = [row[field] for row in rows if row.get(field) is not None]
            figures[field] = max(present) if present else None
        notes = []
        for field in FIELDS[1:]:
            measured = sum(1 for row in rows if row.get(field) is not None)
            if measured < len(rows):
                notes.append("%s measured in %d of %d runs" % (field, measured, len(rows)))
        notes.extend(sorted({row["note"] for row in rows if row.get("note")}))
        result.append(make_row(event, figures["detect_s"], figures["restore_s"], figures["moves"],
                               figures["unneeded_moves"], notes, figures["readings_lost"], figures["duplicates"],
                               _median([row.get("restore_seen_s") for row in rows])))
    return result


def write_report(path: str, rows: t.Sequence[Row]) -> None:
    """The rows as a JSON list, written whole (a temporary file renamed), folders created."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    temporary = os.path.join(folder, ".%s.tmp" % os.path.basename(path))
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(list(rows), handle, indent=2)
        handle.write("\n")
    os.replace(temporary, path)
