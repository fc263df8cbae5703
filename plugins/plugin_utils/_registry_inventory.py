# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the registry inventory plugin makes of a registry's answer: which
profiles to trust as hosts and which groups each host joins. Controller only."""

from __future__ import annotations

import re
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._profile import (
    ProfileError,
    placement_facets,
    validate_profile,
)

_NOT_IN_GROUP_NAMES = re.compile(r"[^A-Za-z0-9_]")


def group_name(prefix: str, value: str) -> str:
    """``prefix_value`` with every character a group name cannot hold turned into ``_``."""
    return _NOT_IN_GROUP_NAMES.sub("_", "%s_%s" % (prefix, value))


def groups_for(profile: t.Mapping[str, t.Any]) -> t.List[str]:
    """The groups a valid profile's host joins, from its placement facets: cap_*, power_*, net_*, arch_*, in that order."""
    facets = placement_facets(profile)
    groups = [group_name("cap", capability) for capability in facets["capabilities"]]
    groups.append(group_name("power", facets["power"]))
    groups.extend(group_name("net", kind) for kind in facets["network"])
    groups.append(group_name("arch", facets["arch"]))
    return list(dict.fromkeys(groups))


def live_profiles(raw: t.Any) -> t.Tuple[t.Dict[str, t.Dict[str, t.Any]], t.List[str]]:
    """(node -> profile for every valid entry, a description of every skipped entry).

    The registry validates what it stores, but its answer still crossed the
    network: every entry is checked again before it becomes a host."""
    if not isinstance(raw, dict):
        return {}, ["the registry's answer: a JSON %s, not an object of profiles" % type(raw).__name__]
    profiles = {}  # type: t.Dict[str, t.Dict[str, t.Any]]
    problems = []
    for key in sorted(raw, key=str):
        profile = raw[key]
        try:
            validate_profile(profile)
        except ProfileError as exc:
            problems.append("profile %r: %s" % (key, exc))
            continue
        if profile["node"] != key:
            problems.append("profile %r: it describes node %r" % (key, profile["node"]))
            continue
        profiles[key] = profile
    return profiles, problems
