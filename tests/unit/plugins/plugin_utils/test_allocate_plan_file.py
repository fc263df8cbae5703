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
            "unplaced": [{"service": "xray", "missing": 1, "summary": "0/2 nodes fit: 2 missing capability xr",
                          "counts": COUNTS}]}


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
    assert written["unplaced"] == [{"service": "xray", "missing": 1, "counts": COUNTS}]
    assert unplaced_summary(written["unplaced"][0]) == "0/2 nodes fit: 2 missing capability xr"
    assert written["by_node"] is original["by_node"]
    assert "summary" in original["unplaced"][0]
