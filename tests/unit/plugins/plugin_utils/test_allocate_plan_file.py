# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the plan file holds: the document itself up to DETAIL_NODES nodes, past that without the unplaced summaries."""
from __future__ import annotations

import typing as t

import pytest

from ansible_collections.nanoedge.core.plugins.module_utils._plan import DETAIL_NODES, unplaced_summary
from ansible_collections.nanoedge.core.plugins.plugin_utils._allocate_plan_file import compact, file_document

COUNTS = [{"code": "capability", "missing": ["xr"], "count": 2}]


def document(nodes: int) -> t.Dict[str, t.Any]:
    return {"strategy": "first_fit", "by_node": {"w%d" % index: [] for index in range(nodes)},
            "placements": {"web": "w0", "db": "w1"},
            "why": {"web": "first node in order that fits", "db": "first node in order that fits",
                    "xray": "no node fits: 2 missing capability xr"},
            "unplaced": [{"service": "xray", "missing": 1, "summary": "0/2 nodes fit: 2 missing capability xr",
                          "counts": COUNTS},
                         {"service": "db", "missing": 1, "summary": "1/2 nodes fit: 1 already run a replica",
                          "counts": [{"code": "replica", "service": "db", "count": 1}, {"code": "fits", "count": 1}]}]}


@pytest.mark.parametrize("nodes, large", [(0, False), (DETAIL_NODES, False), (DETAIL_NODES + 1, True)])
def test_compact_past_the_detail_limit(nodes: int, large: bool) -> None:
    assert compact(document(nodes)) is large


@pytest.mark.parametrize("value", [{}, {"by_node": None}, {"by_node": ["w1"] * 60}])
def test_not_compact_without_a_node_map(value: t.Dict[str, t.Any]) -> None:
    assert compact(value) is False


def test_a_small_plan_is_kept_whole() -> None:
    assert file_document(document(2)) == document(2)


def test_a_large_plan_leaves_out_the_summaries_its_counts_give() -> None:
    original = document(DETAIL_NODES + 1)
    written = file_document(original)
    assert [entry["service"] for entry in written["unplaced"]] == ["xray", "db"]
    assert written["unplaced"][0] == {"service": "xray", "missing": 1, "counts": COUNTS}
    assert [unplaced_summary(entry) for entry in written["unplaced"]] == [
        entry["summary"] for entry in original["unplaced"]]
    # a service placed nowhere has no why: its counts say it; one short of replicas keeps where it runs
    assert written["why"] == {"web": "first node in order that fits", "db": "first node in order that fits"}
    assert written["by_node"] is original["by_node"]
    assert original == document(DETAIL_NODES + 1)
