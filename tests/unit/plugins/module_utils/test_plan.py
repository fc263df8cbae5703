# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The plan document: the text of each structured cause, the one-line summary of an unplaced service, the reader."""

from __future__ import annotations

import os
import time
import typing as t

import pytest

from ansible_collections.nanoedge.core.plugins.module_utils._plan import (
    CAUSE_CODES,
    capacity_cause,
    cause_text,
    read_plan,
    unplaced_summary,
)

CAUSES = [
    ({"code": "replica", "service": "web"}, "already runs a replica of web"),
    ({"code": "capability", "missing": ["pom"]}, "missing capability pom"),
    ({"code": "capability", "missing": ["pom", "xr"]}, "missing capabilities pom, xr"),
    ({"code": "cpu", "needs": 1, "has": 0}, "needs 1 core, has 0"),
    ({"code": "cpu", "needs": 0.5, "has": 0.25}, "needs 0.5 cores, has 0.25"),
    ({"code": "cpu", "needs": 2, "has": 1, "after": ["spo2", "hrv"]}, "needs 2 cores, 1 left after spo2, hrv"),
    ({"code": "cpu", "needs": 1, "has": 0, "after": ["s0", "s1", "s2", "s3", "s4"], "more": 3},
     "needs 1 core, 0 left after s0, s1, s2, s3, s4 and 3 more"),
    ({"code": "memory", "needs": 2048, "has": 512}, "needs 2048 MB memory, has 512"),
    ({"code": "memory", "needs": 500, "has": 100, "after": ["spo2"]}, "needs 500 MB memory, 100 left after spo2"),
    ({"code": "storage", "needs": 100, "has": 20}, "needs 100 MB storage, has 20"),
    ({"code": "power", "needs": "ac", "has": "dc"}, "needs ac power, runs on dc"),
    ({"code": "battery", "needs": 30, "has": 12}, "needs battery at 30% or more, has 12%"),
    ({"code": "battery", "needs": 30, "has": None}, "needs battery at 30% or more, battery level unknown"),
    ({"code": "network", "needs": "bluetooth", "has": ["ethernet", "wifi"]}, "needs bluetooth network, has ethernet, wifi"),
    ({"code": "network", "needs": "wban", "has": []}, "needs wban network, has none"),
    ({"code": "fits"}, "fits"),
]


@pytest.mark.parametrize("cause, text", CAUSES)
def test_cause_text(cause: t.Dict[str, t.Any], text: str) -> None:
    assert cause_text(cause) == text


def test_every_cause_code_has_a_text() -> None:
    assert sorted({cause["code"] for cause, text in CAUSES}) == sorted(CAUSE_CODES)


def test_an_unknown_cause_code_is_refused() -> None:
    with pytest.raises(ValueError) as info:
        cause_text({"code": "gpu"})
    assert str(info.value) == ("unknown cause code 'gpu' (known: replica, capability, cpu, memory, power, battery, "
                               "network, storage, fits)")


@pytest.mark.parametrize("hosted, expected", [
    ((), {"code": "cpu", "needs": 2, "has": 1}),
    (["a"], {"code": "cpu", "needs": 2, "has": 1, "after": ["a"]}),
    (["a", "b", "c", "d", "e"], {"code": "cpu", "needs": 2, "has": 1, "after": ["a", "b", "c", "d", "e"]}),
    (["a", "b", "c", "d", "e", "f", "g"],
     {"code": "cpu", "needs": 2, "has": 1, "after": ["a", "b", "c", "d", "e"], "more": 2}),
])
def test_capacity_cause(hosted: t.List[str], expected: t.Dict[str, t.Any]) -> None:
    assert capacity_cause("cpu", 2, 1, hosted) == expected


POM = {"code": "capability", "missing": ["pom"]}


@pytest.mark.parametrize("entry, text", [
    ({"service": "spo2", "causes": [dict(POM, nodes=["w1", "w2"])]}, "no live node has capability pom"),
    # the plural: every node lacks the same two capabilities
    ({"service": "ecg", "causes": [{"code": "capability", "missing": ["ecg", "wban"], "nodes": ["w1", "w2"]}]},
     "no live node has capabilities ecg, wban"),
    ({"service": "spo2", "reason": "no live node has capability pom", "causes": [dict(POM, nodes=["w1"])]},
     "no live node has capability pom"),
    ({"service": "big", "causes": [{"code": "memory", "needs": 2048, "has": 512, "nodes": ["w1"]}]},
     "every node: needs 2048 MB memory, has 512"),
    ({"service": "hrv", "causes": [{"code": "memory", "needs": 512, "has": 100, "nodes": ["w2"]},
                                   dict(POM, nodes=["w3", "w1"])]},
     "w1: missing capability pom; w2: needs 512 MB memory, has 100; w3: missing capability pom"),
    ({"service": "ecg", "causes": [{"code": "capability", "missing": ["ecg", "wban"], "nodes": ["w1"]},
                                   {"code": "capability", "missing": ["wban"], "nodes": ["w2"]}]},
     "w1: missing capabilities ecg, wban; w2: missing capability wban"),
    ({"service": "x", "causes": [], "reasons": {}}, "no live node"),
    ({"service": "x"}, "no live node"),
    # without readable causes, the texts as they are (no English is parsed)
    ({"service": "spo2", "reasons": {"w1": "missing capability pom", "w2": "missing capability pom"}},
     "every node: missing capability pom"),
    ({"service": "spo2", "causes": [{"nodes": ["w1"]}], "reasons": {"w2": "b", "w1": "a"}}, "w1: a; w2: b"),
    ({"service": "spo2", "causes": "junk"}, "no live node"),
])
def test_unplaced_summary(entry: t.Dict[str, t.Any], text: str) -> None:
    assert unplaced_summary(entry) == text


def test_read_plan(tmp_path) -> None:
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
    assert plan is None and problem is not None and problem.startswith("cannot read the plan file %s: " % path)
