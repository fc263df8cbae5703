# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The plan the reconcile command leaves behind, as the decision log reports it. Reading
the plan file and the one-line summary itself are _plan's (tests/unit/plugins/module_utils/test_plan.py);
here, what the daemon makes of them."""

from __future__ import annotations

import pytest

from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.plan import move_line, plan_outcome

POM = {"code": "capability", "missing": ["pom"]}


# Each entry as allocate writes it: the reasons' texts and the structured causes they were made from.
@pytest.mark.parametrize("entry, text", [
    ({"service": "spo2", "reasons": {"w1": "missing capability pom", "w2": "missing capability pom"},
      "causes": [dict(POM, nodes=["w1", "w2"])]},
     "no live node has capability pom"),
    ({"service": "ecg", "reasons": {"w1": "missing capabilities a, b", "w2": "missing capabilities a, b"},
      "causes": [{"code": "capability", "missing": ["a", "b"], "nodes": ["w1", "w2"]}]},
     "no live node has capabilities a, b"),
    ({"service": "spo2", "reason": "no live node has capability pom", "reasons": {"w1": "x"}},
     "no live node has capability pom"),
    ({"service": "big", "reasons": {"w1": "needs 2048 MB memory, has 512"},
      "causes": [{"code": "memory", "needs": 2048, "has": 512, "nodes": ["w1"]}]},
     "every node: needs 2048 MB memory, has 512"),
    ({"service": "hrv", "reasons": {"w2": "needs 512 MB memory, has 100", "w1": "missing capability pom"},
      "causes": [dict(POM, nodes=["w1"]), {"code": "memory", "needs": 512, "has": 100, "nodes": ["w2"]}]},
     "w1: missing capability pom; w2: needs 512 MB memory, has 100"),
    ({"service": "x", "reasons": {}, "causes": []}, "no live node"),
    ({"service": "x"}, "no live node"),
])
def test_unplaced_reasons_in_one_line(entry, text):
    assert plan_outcome({"unplaced": [entry]}) == ([], [{"service": entry["service"], "why": text}])


def test_plan_outcome_takes_why_from_the_move_or_the_plan_and_skips_junk():
    plan = {"moves": [{"service": "alert", "from": "w2", "to": "w5", "why": "w2 left"},
                      {"service": "display", "from": "w4", "to": "w1"},
                      {"service": "bot", "from": None, "to": "w1"},
                      "junk", {"from": "w1"}],
            "unplaced": [{"service": "spo2", "reasons": {"w1": "missing capability pom"},
                          "causes": [dict(POM, nodes=["w1"])]}, 7],
            "why": {"display": "first node that fits"}}
    moves, unplaced = plan_outcome(plan)
    assert moves == [{"service": "alert", "from": "w2", "to": "w5", "why": "w2 left"},
                     {"service": "display", "from": "w4", "to": "w1", "why": "first node that fits"},
                     {"service": "bot", "from": None, "to": "w1", "why": ""}]
    assert unplaced == [{"service": "spo2", "why": "no live node has capability pom"}]
    assert [move_line(move) for move in moves] == [
        "moved alert w2 -> w5 (w2 left)", "moved display w4 -> w1 (first node that fits)", "moved bot (nowhere) -> w1"]
    assert plan_outcome({}) == ([], [])
