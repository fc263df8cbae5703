# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a run of the site playbook tells its operator: the plan document
(the allocation result plus what produced it; its keys are in module_utils
``_plan``), the placement table with a reason per service, and a picture of
the cluster. Controller only.
"""

from __future__ import annotations

import typing as t
from xml.sax.saxutils import escape

from ansible_collections.nanoedge.core.plugins.module_utils._plan import (
    CARRIED_KEYS,
    DEFAULT_STRATEGY,
    DETAIL_NODES,
    PLAN_NODE_FIELDS,
    PLAN_SERVICE_FIELDS,
    RESULT_KEYS,
    cause_text,
    count_text,
    unplaced_summary,
)
from ansible_collections.nanoedge.core.plugins.plugin_utils._allocate import (
    FITS,
    PLACED,
    AllocationError,
    explain,
    parse_current,
)

# One per strategy of module_utils _plan.
_STRATEGY_WHY = {
    "first_fit": "first node in order that fits",
    "best_fit": "fits with the least capacity left",
    "spread": "fits with the most capacity left",
    "optimal": "chosen by the optimiser",
}


class ReportError(ValueError):
    """The plan or its inputs cannot be reported; the message names what is at fault."""


def _node_list(nodes: t.Any) -> t.List[t.Dict[str, t.Any]]:
    if isinstance(nodes, dict):
        return [dict(profile, node=profile.get("node", key)) if isinstance(profile, dict) else profile
                for key, profile in nodes.items()]
    if isinstance(nodes, list):
        return list(nodes)
    raise ReportError("nodes must be a list of profiles or a dict of node name to profile, got %s"
                      % type(nodes).__name__)


def _group(reasons: t.Iterable[t.Tuple[str, str]]) -> str:
    """``w1, w2: missing capability pom; w3: needs 2 cores, has 1`` (nodes with the same reason together)."""
    grouped = {}  # type: t.Dict[str, t.List[str]]
    for node, reason in reasons:
        grouped.setdefault(reason, []).append(node)
    return "; ".join("%s: %s" % (", ".join(nodes), reason) for reason, nodes in grouped.items())


def _reasons(entry: t.Mapping[str, t.Any]) -> t.Dict[str, str]:
    """Node to the text of its cause, from an unplaced entry's structured ``causes``, in node order."""
    pairs = [(str(node), cause_text(cause)) for cause in entry.get("causes") or [] for node in cause["nodes"]]
    order = list(entry.get("reasons") or {})
    return dict(sorted(pairs, key=lambda pair: order.index(pair[0]) if pair[0] in order else len(order)))


def _unplaced_text(entry: t.Mapping[str, t.Any]) -> str:
    """The nodes grouped by cause where the entry has them per node, else the counts."""
    reasons = _reasons(entry)
    return _group(reasons.items()) if reasons else unplaced_summary(entry)


def _brief(entry: t.Mapping[str, t.Any]) -> str:
    """``no node fits: 4,980 missing capability pom and 1 other cause``: the largest count (the rest is in
    the entry's ``counts``, which a large plan file must not repeat)."""
    try:
        counts = [count for count in entry["counts"] if count["code"] != "fits"]
        if not counts:
            return "no node fits: " + unplaced_summary(entry)
        largest = max(counts, key=lambda count: count["count"])
        more = len(counts) - 1
        return "no node fits: {:,} {}{}".format(largest["count"], count_text(largest), " and %d other cause%s" % (
            more, "" if more == 1 else "s") if more else "")
    except (AttributeError, KeyError, TypeError, ValueError):
        return "no node fits: " + unplaced_summary(entry)


def _needs(requires: t.Mapping[str, t.Any]) -> str:
    parts = list(requires.get("capabilities") or [])
    if requires.get("power"):
        parts.append("%s power" % requires["power"])
    if requires.get("network"):
        parts.append(str(requires["network"]))
    return ", ".join(parts)


def why(plan: t.Mapping[str, t.Any], services: t.Sequence[t.Mapping[str, t.Any]], nodes: t.Any,
        current: t.Any = None) -> t.Dict[str, str]:
    """Service name to why it runs where the plan put it (or why nowhere)."""
    node_list = _node_list(nodes)
    strategy = plan.get("strategy", DEFAULT_STRATEGY)
    # the per-node detail only where it is small: the plan file grows with services + nodes
    detail = len(node_list) <= DETAIL_NODES
    try:
        matrix = explain(list(services), node_list, strategy=strategy, current=current or None) if detail else {}
        kept = parse_current(current) if current else {}
    except AllocationError as exc:
        raise ReportError(str(exc)) from exc
    order = [profile["node"] for profile in node_list]
    placements = plan.get("replica_nodes") or {k: [v] for k, v in (plan.get("placements") or {}).items()}
    unplaced = {entry["service"]: entry for entry in plan.get("unplaced") or []}
    result = {}
    for service in services:
        name = service["name"]
        cells = matrix.get(name, {})
        where = placements.get(name) or []
        if not where:
            entry = unplaced.get(name, {})
            if not detail and entry:
                result[name] = _brief(entry)
                continue
            reasons = _reasons(entry) or {n: c for n, c in cells.items() if c not in (FITS, PLACED)}
            result[name] = "no node fits: " + (_group(reasons.items()) if reasons else "no nodes")
            continue
        first = where[0]
        needs = _needs(service.get("requires") or {})
        prefix = "needs %s; " % needs if needs else ""
        if first in kept.get(name, ()):
            result[name] = prefix + "already runs here and still fits"
            continue
        text = prefix + _STRATEGY_WHY.get(strategy, strategy)
        if strategy == "first_fit":
            earlier = [(n, cells[n]) for n in order[: order.index(first)] if cells.get(n) not in (None, FITS, PLACED)]
            if earlier:
                text += " (%s)" % _group(earlier)
        else:
            others = [n for n in order if n != first and cells.get(n) == FITS]
            if others:
                text += " (%s also fit%s)" % (", ".join(others), "s" if len(others) == 1 else "")
        result[name] = text
    return result


def explain_moves(moves: t.Sequence[t.Mapping[str, t.Any]], services: t.Sequence[t.Mapping[str, t.Any]],
                  node_list: t.Sequence[t.Mapping[str, t.Any]], strategy: str) -> t.List[t.Dict[str, t.Any]]:
    """Each move of the plan with why its service left its node: the node is gone, or no longer fits it."""
    live = {profile["node"] for profile in node_list}
    # only the moved services against the nodes they left: static cells do not depend on anything else
    moved = {move.get("service") for move in moves}
    sources = {move.get("from") for move in moves}
    try:
        matrix = explain([service for service in services if service.get("name") in moved],
                         [profile for profile in node_list if profile.get("node") in sources],
                         strategy=strategy, static=True)
    except AllocationError as exc:
        raise ReportError(str(exc)) from exc
    result = []
    for move in moves:
        entry = dict(move)
        source = move.get("from")
        if source is None:
            entry["why"] = "another replica is needed"
        elif source not in live:
            entry["why"] = "%s is gone (no live profile)" % source
        else:
            cell = matrix.get(move.get("service"), {}).get(source)
            entry["why"] = ("%s no longer fits: %s" % (source, cell) if cell not in (None, FITS, PLACED)
                            else "%s has no room left for it beside the services placed before it" % source)
        result.append(entry)
    return result


def plan_report(plan: t.Any, services: t.Any, nodes: t.Any, current: t.Any = None, registry: t.Any = None,
                critical: t.Any = None) -> t.Dict[str, t.Any]:
    """The plan file: the allocation result's keys as allocate returned them, plus what the run was based on."""
    if not isinstance(plan, dict) or any(key not in plan for key in RESULT_KEYS):
        raise ReportError("plan must be the result of nanoedge.core.allocate (keys %s)" % ", ".join(RESULT_KEYS))
    if not isinstance(services, list) or not all(isinstance(s, dict) and isinstance(s.get("name"), str)
                                                 for s in services):
        raise ReportError("services must be a list of service profiles, each with a name")
    critical_names = set(critical or [])
    known = {s["name"] for s in services}
    unknown = sorted(critical_names - known)
    if unknown:
        raise ReportError("critical names unknown service(s): %s (known: %s)"
                          % (", ".join(unknown), ", ".join(sorted(known))))
    critical_names |= {s["name"] for s in services if s.get("critical") is True}
    node_list = _node_list(nodes)
    document = {key: plan[key] for key in RESULT_KEYS}
    for key in CARRIED_KEYS:
        if key in plan:
            document[key] = plan[key]
    if document.get("moves"):
        document["moves"] = explain_moves(document["moves"], services, node_list, plan.get("strategy", DEFAULT_STRATEGY))
    unplaced_names = [entry["service"] for entry in plan["unplaced"]]
    document.update({
        "why": why(plan, services, node_list, current),
        "critical": sorted(critical_names),
        "critical_unplaced": [name for name in unplaced_names if name in critical_names],
        "registry": registry,
        "current": dict(current or {}),
        "services": {s["name"]: _service_fields(s) for s in services},
        "nodes": {p["node"]: {k: p.get(k) for k in PLAN_NODE_FIELDS} for p in node_list},
    })
    return document


def _service_fields(service: t.Mapping[str, t.Any]) -> t.Dict[str, t.Any]:
    fields = {key: service.get(key) for key in PLAN_SERVICE_FIELDS}
    fields["requires"] = fields["requires"] or {}
    return fields


def _columns(rows: t.Sequence[t.Sequence[str]]) -> t.List[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return ["  ".join([cell.ljust(width) for cell, width in zip(row, widths)] + [row[-1]]).rstrip() for row in rows]


def plan_table(document: t.Mapping[str, t.Any]) -> t.List[str]:
    """The placement table, one line per entry (Ansible prints a list of lines readably)."""
    for key in ("by_node", "unplaced", "why"):
        if key not in document:
            raise ReportError("the plan document has no %r (make it with nanoedge.core.plan_report)" % key)
    critical = set(document.get("critical") or [])
    rows = [("SERVICE", "NODE", "WHY")]
    for node, names in document["by_node"].items():
        for name in names:
            rows.append((name + (" *" if name in critical else ""), node, document["why"].get(name, "")))
    lines = _columns(rows)
    if document["unplaced"]:
        lines.append("")
        lines.extend(_columns([("UNPLACED", "REASONS")] + [
            (entry["service"] + (" *" if entry["service"] in critical else ""), _unplaced_text(entry))
            for entry in document["unplaced"]]))
    if document.get("moves"):
        lines.append("")
        lines.extend(_columns([("MOVED", "FROM", "TO", "WHY")] + [
            (move["service"], move.get("from") or "-", move.get("to") or "(unplaced)", move.get("why", ""))
            for move in document["moves"]]))
    if critical:
        lines.append("")
        lines.append("* critical: the run fails when it is unplaced")
    lines.append("")
    lines.append("strategy %s, %d placed, %d unplaced%s" % (
        document.get("strategy"), sum(len(v) for v in document["by_node"].values()), len(document["unplaced"]),
        ", profiles from %s" % document["registry"] if document.get("registry") else ""))
    return lines


# --- the picture --------------------------------------------------------------------------

# _CARD_H is the least card height; cards grow with their capability and service rows.
_CARD_W, _CARD_H, _GAP, _MARGIN = 250, 200, 20, 20
_COLOURS = {"bg": "#f7f7f4", "card": "#ffffff", "line": "#c9c9c1", "text": "#1f2328", "muted": "#6b6f76",
            "bar": "#e4e4de", "cpu": "#2f7d6d", "mem": "#3d6fb6", "disk": "#8a6bb8", "cap": "#f1e3c6",
            "svc": "#d8ecdf", "bad": "#f6d5d1", "ac": "#2f7d6d", "dc": "#b8742a"}


def _text(x: float, y: float, value: str, size: int = 12, weight: str = "normal", fill: str = "text",
          anchor: str = "start") -> str:
    return ('<text x="%g" y="%g" font-size="%d" font-weight="%s" fill="%s" text-anchor="%s">%s</text>'
            % (x, y, size, weight, _COLOURS[fill], anchor, escape(value)))


def _bar(x: float, y: float, label: str, used: float, total: float, unit: str, colour: str) -> t.List[str]:
    width = _CARD_W - 24
    fraction = 0.0 if total <= 0 else max(0.0, min(1.0, used / total))
    shown = ("%g/%g %s" % (round(used, 2), round(total, 2), unit)).strip()
    return [_text(x, y, label, 11, fill="muted"), _text(x + width, y, shown, 11, fill="muted", anchor="end"),
            '<rect x="%g" y="%g" width="%g" height="8" rx="4" fill="%s"/>' % (x, y + 4, width, _COLOURS["bar"]),
            '<rect x="%g" y="%g" width="%g" height="8" rx="4" fill="%s"><title>%s %s</title></rect>'
            % (x, y + 4, width * fraction, _COLOURS[colour], escape(label), escape(shown))]


def _chips(x: float, y: float, items: t.Sequence[str], fill: str, limit: float) -> t.Tuple[t.List[str], float]:
    parts, cx, cy = [], x, y
    for item in items:
        w = 7 * len(item) + 12
        if cx + w > limit and cx > x:
            cx, cy = x, cy + 20
        parts.append('<rect x="%g" y="%g" width="%g" height="16" rx="8" fill="%s"/>' % (cx, cy, w, _COLOURS[fill]))
        parts.append(_text(cx + w / 2, cy + 12, item, 11, anchor="middle"))
        cx += w + 4
    return parts, cy + 20


def _card(x: float, y: float, name: str, profile: t.Mapping[str, t.Any], services: t.Sequence[str],
          remaining: t.Mapping[str, t.Any], height: float) -> t.Tuple[t.List[str], float]:
    """The parts of one node's card, and the height its content needs."""
    power = profile.get("power") or {}
    source = power.get("source") or "?"
    battery = power.get("battery_percent")
    cpu_total = float((profile.get("cpu") or {}).get("cores") or 0)
    mem_total = float((profile.get("memory_mb") or {}).get("available") or 0)
    disk_total = float((profile.get("storage_mb") or {}).get("free") or 0)
    parts = ['<g><rect x="%g" y="%g" width="%d" height="%g" rx="10" fill="%s" stroke="%s"/>'
             % (x, y, _CARD_W, height, _COLOURS["card"], _COLOURS["line"]),
             _text(x + 12, y + 24, name, 16, "bold"),
             _text(x + _CARD_W - 12, y + 24, "%s%s" % (source.upper(), " %s%%" % battery if battery is not None else ""),
                   12, "bold", fill=source if source in ("ac", "dc") else "muted", anchor="end"),
             _text(x + 12, y + 40, str(profile.get("model") or profile.get("arch") or "")[:38], 10, fill="muted")]
    parts += _bar(x + 12, y + 60, "CPU cores", cpu_total - float(remaining.get("cpu", cpu_total)), cpu_total, "",
                  "cpu")
    parts += _bar(x + 12, y + 84, "memory", mem_total - float(remaining.get("memory_mb", mem_total)), mem_total,
                  "MB", "mem")
    parts += _bar(x + 12, y + 108, "storage", disk_total - float(remaining.get("storage_mb", disk_total)),
                  disk_total, "MB", "disk")
    parts.append(_text(x + 12, y + 138, "capabilities", 11, fill="muted"))
    chips, bottom = _chips(x + 12, y + 144, list(profile.get("capabilities") or []) or ["none"], "cap",
                           x + _CARD_W - 12)
    parts += chips
    parts.append(_text(x + 12, bottom + 14, "services", 11, fill="muted"))
    chips, bottom = _chips(x + 12, bottom + 20, list(services) or ["none"], "svc", x + _CARD_W - 12)
    parts += chips
    parts.append("</g>")
    return parts, bottom - y + 8


def plan_svg(document: t.Mapping[str, t.Any], title: str = "nanoedge cluster", columns: int = 5) -> str:
    """A self-contained SVG of the cluster: per node its capacity bars, capabilities and services."""
    for key in ("by_node", "unplaced", "remaining", "nodes"):
        if key not in document:
            raise ReportError("the plan document has no %r (make it with nanoedge.core.plan_report)" % key)
    if not isinstance(columns, int) or columns < 1:
        raise ReportError("columns must be a positive integer, got %r" % (columns,))
    names = list(document["nodes"]) or list(document["by_node"])
    columns = min(columns, max(1, len(names)))

    def card(x: float, y: float, name: str, height: float) -> t.Tuple[t.List[str], float]:
        return _card(x, y, name, document["nodes"].get(name) or {}, document["by_node"].get(name) or [],
                     document["remaining"].get(name) or {}, height)

    card_h = max([_CARD_H] + [card(0, 0, name, 0)[1] for name in names])
    rows = (len(names) + columns - 1) // columns
    unplaced = document["unplaced"]
    width = _MARGIN * 2 + columns * _CARD_W + (columns - 1) * _GAP
    height = _MARGIN * 2 + 40 + rows * (card_h + _GAP) + (30 + 20 * len(unplaced) if unplaced else 0)
    parts = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
             'font-family="DejaVu Sans, Helvetica, Arial, sans-serif">' % (width, height, width, height),
             "<title>%s</title>" % escape(title),
             '<rect width="100%%" height="100%%" fill="%s"/>' % _COLOURS["bg"],
             _text(_MARGIN, _MARGIN + 18, title, 18, "bold"),
             _text(width - _MARGIN, _MARGIN + 18, "strategy %s, %d placed, %d unplaced" % (
                 document.get("strategy"), sum(len(v) for v in document["by_node"].values()), len(unplaced)),
                 12, fill="muted", anchor="end")]
    for index, name in enumerate(names):
        x = _MARGIN + (index % columns) * (_CARD_W + _GAP)
        y = _MARGIN + 40 + (index // columns) * (card_h + _GAP)
        parts += card(x, y, name, card_h)[0]
    if unplaced:
        y = _MARGIN + 40 + rows * (card_h + _GAP) + 10
        parts.append(_text(_MARGIN, y, "unplaced", 13, "bold"))
        for entry in unplaced:
            y += 20
            reasons = _unplaced_text(entry)
            parts.append('<rect x="%g" y="%g" width="%g" height="16" rx="4" fill="%s"/>'
                         % (_MARGIN, y - 12, width - 2 * _MARGIN, _COLOURS["bad"]))
            parts.append(_text(_MARGIN + 6, y, "%s: %s" % (entry["service"], reasons)[:160], 11))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
