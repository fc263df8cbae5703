# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the plan file holds (docs/contracts.md, "The plan file"): the plan document as it is, for a
cluster people read whole; past ``DETAIL_NODES`` nodes, compact and without what it says twice.

A large plan's file leaves out each unplaced service's ``summary`` and, for a service placed nowhere,
its ``why`` (the largest of its counts): its ``counts`` say the same and ``unplaced_summary`` rebuilds
the line from them, and these lines of an over-subscribed cluster were a quarter of the file. The file
then grows with services + nodes and stays small (under 20 MB for 5,000
nodes and 50,000 services). Controller-only, no Ansible imports.
"""

from __future__ import annotations

import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._plan import DETAIL_NODES


def compact(document: t.Mapping[str, t.Any]) -> bool:
    """Whether the plan is large: written without indentation and without the unplaced summaries."""
    nodes = document.get("by_node")
    return isinstance(nodes, t.Mapping) and len(nodes) > DETAIL_NODES


def file_document(document: t.Mapping[str, t.Any]) -> t.Dict[str, t.Any]:
    """The document the plan file holds: ``document`` itself, or, for a large plan, a copy whose unplaced
    entries have no ``summary`` and whose ``why`` has only the services placed."""
    result = dict(document)
    if not compact(document):
        return result
    if isinstance(document.get("unplaced"), list):
        result["unplaced"] = [{key: value for key, value in entry.items() if key != "summary"}
                              if isinstance(entry, t.Mapping) else entry for entry in document["unplaced"]]
    placements = document.get("placements")
    if isinstance(document.get("why"), t.Mapping) and isinstance(placements, t.Mapping):
        result["why"] = {name: text for name, text in document["why"].items() if name in placements}
    return result
