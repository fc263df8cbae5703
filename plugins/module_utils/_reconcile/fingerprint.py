# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What counts as a change of the live profiles: their fingerprint and its differences."""

from __future__ import annotations

import hashlib
import json
import typing as t


Fingerprint = t.Dict[str, t.Dict[str, t.Any]]


def _string_list(value: t.Any) -> t.List[str]:
    if not isinstance(value, list):
        return []
    return sorted({item for item in value if isinstance(item, str)})


def node_fingerprint(profile: t.Mapping[str, t.Any]) -> t.Dict[str, t.Any]:
    """What placement depends on and what does not drift between reports."""
    power = profile.get("power")
    return {
        "capabilities": _string_list(profile.get("capabilities")),
        "power": power.get("source") if isinstance(power, dict) else None,
        "network": _string_list(profile.get("network")),
        "arch": profile.get("arch") if isinstance(profile.get("arch"), str) else None,
    }


def valid_fingerprint_entry(entry: t.Any) -> bool:
    """A per-node fingerprint as node_fingerprint makes it (read back from state.json)."""
    if not isinstance(entry, dict) or set(entry) != {"capabilities", "power", "network", "arch"}:
        return False
    return (all(isinstance(entry[key], list) and all(isinstance(i, str) for i in entry[key])
                for key in ("capabilities", "network"))
            and all(entry[key] is None or isinstance(entry[key], str) for key in ("power", "arch")))


def fingerprint_of(profiles: t.Any) -> t.Tuple[Fingerprint, t.List[str]]:
    """(fingerprint, problems) of a ``GET /profiles`` answer; raises ValueError when it is no object."""
    if not isinstance(profiles, dict):
        raise ValueError("expected a JSON object node -> profile, got %s" % type(profiles).__name__)
    result = {}  # type: Fingerprint
    problems = []
    for node in sorted(profiles):
        profile = profiles[node]
        if not isinstance(profile, dict):
            problems.append("profile of %s is %s, not an object" % (node, type(profile).__name__))
            continue
        result[node] = node_fingerprint(profile)
    return result, problems


def fingerprint_digest(fingerprint: t.Optional[Fingerprint]) -> t.Optional[str]:
    if fingerprint is None:
        return None
    canonical = json.dumps(fingerprint, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return hashlib.sha256(canonical).hexdigest()[:16]


def diff_fingerprints(before: t.Optional[Fingerprint], after: Fingerprint) -> t.Dict[str, t.Any]:
    """Nodes added and removed, and per kept node what changed."""
    before = before or {}
    changed = {}  # type: t.Dict[str, t.Dict[str, t.Any]]
    for node in sorted(set(before) & set(after)):
        old, new = before[node], after[node]
        entry = {}  # type: t.Dict[str, t.Any]
        for key in ("capabilities", "network"):
            gained = sorted(set(new[key]) - set(old[key]))
            lost = sorted(set(old[key]) - set(new[key]))
            if gained:
                entry[key + "_added"] = gained
            if lost:
                entry[key + "_removed"] = lost
        for key in ("power", "arch"):
            if old.get(key) != new.get(key):
                entry[key] = [old.get(key), new.get(key)]
        if entry:
            changed[node] = entry
    return {
        "added": sorted(set(after) - set(before)),
        "removed": sorted(set(before) - set(after)),
        "changed": changed,
    }


def describe_diff(diff: t.Mapping[str, t.Any], after: Fingerprint) -> t.List[str]:
    parts = []
    for node in diff["added"]:
        caps = after[node]["capabilities"]
        parts.append("%s joined (%s)" % (node, "capabilities " + ", ".join(caps) if caps else "no capabilities"))
    for node in diff["removed"]:
        parts.append("%s left (no live profile: lease expired or deleted)" % node)
    for node, entry in diff["changed"].items():
        for key, nouns in (("capabilities", ("capability", "capabilities")), ("network", ("network", "networks"))):
            for verb, suffix in (("gained", "_added"), ("lost", "_removed")):
                items = entry.get(key + suffix)
                if items:
                    parts.append("%s %s %s %s" % (node, verb, nouns[len(items) > 1], ", ".join(items)))
        for key in ("power", "arch"):
            if key in entry:
                parts.append("%s %s %s -> %s" % (node, key, entry[key][0], entry[key][1]))
    return parts

