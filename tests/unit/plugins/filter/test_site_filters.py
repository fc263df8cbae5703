# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The adapters of deployments, plan_report, plan_table and plan_svg: registration and error mapping."""
from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.nanoedge.core.plugins.filter import deployments, plan_report, plan_svg, plan_table
from ansible_collections.nanoedge.core.plugins.plugin_utils._allocate import allocate
from ansible_collections.nanoedge.core.tests.unit import healthcare


def test_filters_are_registered():
    assert deployments.FilterModule().filters() == {"deployments": deployments.deployments_filter}
    assert plan_report.FilterModule().filters() == {"plan_report": plan_report.plan_report_filter}
    assert plan_table.FilterModule().filters() == {"plan_table": plan_table.plan_table_filter}
    assert plan_svg.FilterModule().filters() == {"plan_svg": plan_svg.plan_svg_filter}


def test_pipeline_through_the_filters():
    services = healthcare.services()
    for service in services:
        service["digest"] = "sha256:" + "0" * 64
    plan = allocate(services, healthcare.workers())
    doc = plan_report.plan_report_filter(plan, services, healthcare.workers(), critical=["spo2"])
    assert plan_table.plan_table_filter(doc)[0] == "SERVICE  NODE  WHY"
    assert plan_svg.plan_svg_filter(doc, title="t", columns=3).startswith("<svg ")
    described = deployments.deployments_filter(plan, services, "w4")
    assert [d["name"] for d in described] == ["spo2", "hrv", "hr"]
    # what a node needs to finish each description itself, and what its container is created from
    assert [d["io"] for d in described] == [[], [], []]
    assert [d["labels"]["io.nanoedge.spec"] for d in described] == [
        "sha256:9a3b842d5f91b6f5e2a0b41276a357d3a854c5b1f75c80334bf444d29f8faa65",
        "sha256:57f67812f33fc544b90aec22001125d4c9525ca1a002b249a7e123554f8e25bf",
        "sha256:d834e713cc9dc8460861572e03adacfa4551e0d1c701316102e040a0a74c0f50"]


@pytest.mark.parametrize("call, message", [
    (lambda: deployments.deployments_filter({}, [], "w1"),
     "nanoedge.core.deployments: plan must be the result of nanoedge.core.allocate (a dict with by_node)"),
    (lambda: plan_report.plan_report_filter({}, [], [], critical="spo2"),
     "nanoedge.core.plan_report: critical must be a list of service names, got 'spo2'"),
    (lambda: plan_report.plan_report_filter({}, [], []),
     "nanoedge.core.plan_report: plan must be the result of nanoedge.core.allocate "
     "(keys strategy, placements, by_node, unplaced, remaining)"),
    (lambda: plan_table.plan_table_filter([]),
     "nanoedge.core.plan_table: the input must be a plan document (a dict), got list"),
    (lambda: plan_table.plan_table_filter({}),
     "nanoedge.core.plan_table: the plan document has no 'by_node' (make it with nanoedge.core.plan_report)"),
    (lambda: plan_svg.plan_svg_filter("x"),
     "nanoedge.core.plan_svg: the input must be a plan document (a dict), got str"),
    (lambda: plan_svg.plan_svg_filter({}, title=3),
     "nanoedge.core.plan_svg: title must be a string, got int"),
    (lambda: plan_svg.plan_svg_filter({}, columns=True),
     "nanoedge.core.plan_svg: columns must be an integer, got True"),
    (lambda: plan_svg.plan_svg_filter({}),
     "nanoedge.core.plan_svg: the plan document has no 'by_node' (make it with nanoedge.core.plan_report)"),
])
def test_errors_name_the_filter(call, message):
    with pytest.raises(AnsibleFilterError) as error:
        call()
    assert error.value.message == message
