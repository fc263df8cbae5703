# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What counts as a change of the live profiles: their fingerprint and its differences.

The fingerprint of a node is its profile's placement facets (_profile.placement_facets):
what placement depends on and what does not drift between reports.
"""

from __future__ import annotations

import hashlib
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._canonical_json import canonical_json
from ansible_collections.nanoedge.core.plugins.module_utils._profile import (
    PLACEMENT_FACETS, ProfileError, placement_facets,
)

Fingerprint = t.Dict[str, t.Dict[str, t.Any]]
# the facets that are lists of names, and those that are one name or None
_LIST_FACETS = ("capabilities", "network")
_VALUE_FACETS = ("power", "arch")
_NUMBER_FACETS = ("battery",)


def valid_fingerprint_entry(entry: t.Any) -> bool:
    """A per-node fingerprint as placement_facets makes it (read back from state.json; one written
    before the battery was a facet has none)."""
    if not isinstance(entry, dict) or set(entry) not in (set(PLACEMENT_FACETS), set(PLACEMENT_FACETS) - {"battery"}):
        return False
    return (all(isinstance(entry[key], list) and all(isinstance(i, str) for i in entry[key]) for key in _LIST_FACETS)
            and all(entry[key] is None or isinstance(entry[key], str) for key in _VALUE_FACETS)
            and all(entry.get(key) is None or (isinstance(entry[key], int) and not isinstance(entry[key], bool))
                    for key in _NUMBER_FACETS))


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
        try:
            result[node] = placement_facets(profile)
        except ProfileError as exc:
            problems.append("profile of %s: %s" % (node, exc))
    return result, problems


def fingerprint_digest(fingerprint: t.Optional[Fingerprint]) -> t.Optional[str]:
    if fingerprint is None:
        return None
    return hashlib.sha256(canonical_json(fingerprint)).hexdigest()[:16]


def diff_fingerprints(before: t.Optional[Fingerprint], after: Fingerprint) -> t.Dict[str, t.Any]:
    """Nodes added and removed, and per kept node what changed."""
    before = before or {}
    changed = {}  # type: t.Dict[str, t.Dict[str, t.Any]]
    for node in sorted(set(before) & set(after)):
        old, new = before[node], after[node]
        entry = {}  # type: t.Dict[str, t.Any]
        for key in _LIST_FACETS:
            gained = sorted(set(new[key]) - set(old[key]))
            lost = sorted(set(old[key]) - set(new[key]))
            if gained:
                entry[key + "_added"] = gained
            if lost:
                entry[key + "_removed"] = lost
        for key in _VALUE_FACETS + _NUMBER_FACETS:
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
        for key in _VALUE_FACETS:
            if key in entry:
                parts.append("%s %s %s -> %s" % (node, key, entry[key][0], entry[key][1]))
        if "battery" in entry:
            old, new = ("unknown" if level is None else "%d%%" % level for level in entry["battery"])
            parts.append("%s battery %s -> %s" % (node, old, new))
    return parts
