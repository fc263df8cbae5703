# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from ansible_collections.nanoedge.core.plugins.module_utils._plan import (
    CARRIED_KEYS,
    PLAN_KEYS,
    PLAN_NODE_FIELDS,
    PLAN_SERVICE_FIELDS,
    RESULT_KEYS,
    STRATEGIES,
    UNPLACED_KEYS,
    unplaced_summary,
)
from ansible_collections.nanoedge.core.plugins.plugin_utils import _site_report
from ansible_collections.nanoedge.core.plugins.plugin_utils._allocate import allocate
from ansible_collections.nanoedge.core.plugins.plugin_utils._site_report import (
    ReportError,
    plan_report,
    plan_svg,
    plan_table,
    why,
)
from ansible_collections.nanoedge.core.tests.unit import healthcare

SVG = "{http://www.w3.org/2000/svg}"


def document(**kwargs):
    services = healthcare.services() + [{"name": "xray", "requires": {"capabilities": ["xr"]}}]
    nodes = healthcare.workers()
    plan = allocate(services, nodes, current=kwargs.get("current"))
    return plan_report(plan, services, nodes, **kwargs)


def test_document_keeps_contract_3_and_adds_reasons():
    doc = document(registry="coap://172.30.0.11:5683", critical=["spo2"])
    assert doc["placements"] == dict(healthcare.FIRST_FIT_PLACEMENTS)
    assert doc["by_node"]["w4"] == ["spo2", "hrv", "hr"]
    assert [entry["service"] for entry in doc["unplaced"]] == ["xray"]
    assert set(doc["remaining"]) == {"w1", "w2", "w3", "w4", "w5"}
    assert doc["why"]["spo2"] == "needs pom; first node in order that fits (w1, w2, w3: missing capability pom)"
    assert doc["why"]["bot"] == "needs bot; first node in order that fits"
    assert doc["why"]["xray"] == "no node fits: w1, w2, w3, w4, w5: missing capability xr"
    assert doc["critical"] == ["spo2"] and doc["critical_unplaced"] == []
    assert doc["registry"] == "coap://172.30.0.11:5683"
    assert doc["nodes"]["w4"]["capabilities"] == ["pom"]
    assert doc["services"]["spo2"]["image"] == "127.0.0.1:5000/nanoedge/spo2:1.0"


def test_document_has_exactly_the_plan_keys():
    doc = document(current={"alert": "w3"})
    assert sorted(doc) == sorted(RESULT_KEYS + CARRIED_KEYS + PLAN_KEYS)
    assert sorted(doc["unplaced"][0]) == sorted(UNPLACED_KEYS)
    assert doc["unplaced"][0]["causes"] == [
        {"code": "capability", "missing": ["xr"], "nodes": ["w1", "w2", "w3", "w4", "w5"]}]
    assert unplaced_summary(doc["unplaced"][0]) == "0/5 nodes fit: 5 missing capability xr"
    assert sorted(doc["services"]["spo2"]) == sorted(PLAN_SERVICE_FIELDS)
    assert sorted(doc["nodes"]["w4"]) == sorted(PLAN_NODE_FIELDS)


def test_every_strategy_has_its_why():
    assert sorted(_site_report._STRATEGY_WHY) == sorted(STRATEGIES)


def test_critical_unplaced_from_option_and_from_the_service():
    doc = document(critical=["xray"])
    assert doc["critical_unplaced"] == ["xray"]
    services = healthcare.services() + [{"name": "xray", "requires": {"capabilities": ["xr"]}, "critical": True}]
    plan = allocate(services, healthcare.workers())
    assert plan_report(plan, services, healthcare.workers())["critical_unplaced"] == ["xray"]


def test_kept_services_say_so():
    doc = document(current={"alert": "w3"})
    assert doc["placements"]["alert"] == "w3"
    assert doc["why"]["alert"] == "needs wifi; already runs here and still fits"


def test_other_strategies_name_the_alternatives():
    services = healthcare.services()
    plan = allocate(services, healthcare.workers(), strategy="spread")
    reasons = why(plan, services, healthcare.workers())
    assert reasons["alert"].startswith("needs wifi; fits with the most capacity left (")
    assert reasons["alert"].endswith(" also fit)")


@pytest.mark.parametrize("args, message", [
    (({"placements": {}}, [], []), "plan must be the result of nanoedge.core.allocate "
                                   "(keys strategy, placements, by_node, unplaced, remaining)"),
    ((None, "x", []), "plan must be the result of nanoedge.core.allocate "
                      "(keys strategy, placements, by_node, unplaced, remaining)"),
])
def test_plan_report_errors(args, message):
    with pytest.raises(ReportError) as error:
        plan_report(*args)
    assert str(error.value) == message


def test_unknown_critical_service():
    services = healthcare.services()
    plan = allocate(services, healthcare.workers())
    with pytest.raises(ReportError) as error:
        plan_report(plan, services, healthcare.workers(), critical=["xray"])
    assert str(error.value) == ("critical names unknown service(s): xray "
                                "(known: alert, bot, display, hr, hrv, oc, spo2)")


def test_table():
    lines = plan_table(document(critical=["xray"], registry="coap://m1:5683"))
    assert lines[0] == "SERVICE  NODE  WHY"
    assert lines[1] == "bot      w1    needs bot; first node in order that fits"
    assert lines[2] == "alert    w1    needs wifi; first node in order that fits"
    assert "spo2     w4    needs pom; first node in order that fits (w1, w2, w3: missing capability pom)" in lines
    assert "UNPLACED  REASONS" in lines
    assert "xray *    w1, w2, w3, w4, w5: missing capability xr" in lines
    assert lines[-1] == "strategy first_fit, 7 placed, 1 unplaced, profiles from coap://m1:5683"
    assert "* critical: the run fails when it is unplaced" in lines


def test_table_needs_a_document():
    with pytest.raises(ReportError) as error:
        plan_table({"by_node": {}})
    assert str(error.value) == "the plan document has no 'unplaced' (make it with nanoedge.core.plan_report)"


def test_svg_is_self_contained_and_shows_every_node():
    svg = plan_svg(document(), title="ward <3> & co")
    root = ET.fromstring(svg)
    assert root.tag == SVG + "svg"
    texts = [node.text for node in root.iter(SVG + "text")]
    assert "ward <3> & co" in texts
    for name in ("w1", "w2", "w3", "w4", "w5", "spo2", "hrv", "hr", "bot", "alert", "oc", "display", "pom", "dd"):
        assert name in texts, name
    assert "unplaced" in texts
    assert any(text.startswith("xray: ") for text in texts)
    assert "href" not in svg and "<script" not in svg
    assert root.get("width") == str(20 * 2 + 5 * 250 + 4 * 20)


def test_svg_bars_show_what_the_plan_uses():
    svg = plan_svg(document())
    # w4 offers 4 cores; spo2, hrv and hr take one each
    assert "<title>CPU cores 3/4</title>" in svg


@pytest.mark.parametrize("doc, columns, message", [
    ({}, 5, "the plan document has no 'by_node' (make it with nanoedge.core.plan_report)"),
    ({"by_node": {}, "unplaced": [], "remaining": {}, "nodes": {}}, 0, "columns must be a positive integer, got 0"),
])
def test_svg_errors(doc, columns, message):
    with pytest.raises(ReportError) as error:
        plan_svg(doc, columns=columns)
    assert str(error.value) == message


def test_moves_say_why_the_service_left():
    services = healthcare.services()
    nodes = [node for node in healthcare.workers() if node["node"] != "w4"]
    w3 = next(node for node in nodes if node["node"] == "w3")
    w3["capabilities"] = w3["devices"] = []
    current = dict(healthcare.FIRST_FIT_PLACEMENTS)
    plan = allocate(services, nodes, current=current)
    doc = plan_report(plan, services, nodes, current=current)
    moves = {move["service"]: move for move in doc["moves"]}
    assert moves["spo2"] == {"service": "spo2", "from": "w4", "to": None, "why": "w4 is gone (no live profile)"}
    assert moves["oc"]["from"] == "w3" and moves["oc"]["to"] is None
    assert moves["oc"]["why"] == "w3 no longer fits: missing capability oc"
    assert set(moves) == {"spo2", "hrv", "hr", "oc"}
    table = plan_table(doc)
    header = table.index(next(line for line in table if line.startswith("MOVED")))
    assert table[header].split() == ["MOVED", "FROM", "TO", "WHY"]
    assert any(line.split()[:3] == ["spo2", "w4", "(unplaced)"] and line.endswith("w4 is gone (no live profile)")
               for line in table[header + 1:])


def test_no_moves_no_moves_section():
    doc = document(current=dict(healthcare.FIRST_FIT_PLACEMENTS))
    assert doc["moves"] == []
    assert not any(line.startswith("MOVED") for line in plan_table(doc))
