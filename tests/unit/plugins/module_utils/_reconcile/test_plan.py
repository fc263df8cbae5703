# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The plan the reconcile command leaves behind, as the decision log reports it."""

from __future__ import annotations

import os
import time

import pytest

from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.plan import move_line, plan_outcome, read_plan, summarize_reasons


@pytest.mark.parametrize("entry, text", [
    ({"service": "spo2", "reasons": {"w1": "missing capability pom", "w2": "missing capability pom"}},
     "no live node has capability pom"),
    ({"service": "spo2", "reason": "no live node has capability pom", "reasons": {"w1": "x"}},
     "no live node has capability pom"),
    ({"service": "big", "reasons": {"w1": "needs 2048 MB memory, has 512"}}, "every node: needs 2048 MB memory, has 512"),
    ({"service": "hrv", "reasons": {"w2": "needs 512 MB memory, has 100", "w1": "missing capability pom"}},
     "w1: missing capability pom; w2: needs 512 MB memory, has 100"),
    ({"service": "x", "reasons": {}}, "no live node"),
    ({"service": "x"}, "no live node"),
])
def test_unplaced_reasons_in_one_line(entry, text):
    assert summarize_reasons(entry) == text


def test_plan_outcome_takes_why_from_the_move_or_the_plan_and_skips_junk():
    plan = {"moves": [{"service": "alert", "from": "w2", "to": "w5", "why": "w2 left"},
                      {"service": "display", "from": "w4", "to": "w1"},
                      {"service": "bot", "from": None, "to": "w1"},
                      "junk", {"from": "w1"}],
            "unplaced": [{"service": "spo2", "reasons": {"w1": "missing capability pom"}}, 7],
            "why": {"display": "first node that fits"}}
    moves, unplaced = plan_outcome(plan)
    assert moves == [{"service": "alert", "from": "w2", "to": "w5", "why": "w2 left"},
                     {"service": "display", "from": "w4", "to": "w1", "why": "first node that fits"},
                     {"service": "bot", "from": None, "to": "w1", "why": ""}]
    assert unplaced == [{"service": "spo2", "why": "no live node has capability pom"}]
    assert [move_line(move) for move in moves] == [
        "moved alert w2 -> w5 (w2 left)", "moved display w4 -> w1 (first node that fits)", "moved bot (nowhere) -> w1"]
    assert plan_outcome({}) == ([], [])


def test_read_plan(tmp_path):
    path = tmp_path / "plan.json"
    since = time.time()
    assert read_plan(str(path), since) == (None, "the command wrote no plan file %s" % path)
    path.write_text('{"moves": []}')
    assert read_plan(str(path), since) == ({"moves": []}, None)
    os.utime(path, (since - 10, since - 10))
    assert read_plan(str(path), since) == (None, "the plan file %s is older than this run" % path)
    path.write_text("[1]")
    assert read_plan(str(path), since) == (None, "the plan file %s holds no JSON object" % path)
    path.write_text("{")
    plan, problem = read_plan(str(path), since)
    assert plan is None and problem.startswith("cannot read the plan file %s: " % path)
