# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: plan_report
short_description: Turn an allocation into the plan document the site playbook writes
version_added: 0.1.0
author: nanoedge.core contributors
description:
  - Takes the result of P(nanoedge.core.allocate#filter) and returns the plan document that
    C(nanoedge.core.site) writes to C(nanoedge_plan_file) for CI and the input of
    P(nanoedge.core.plan_table#filter) and P(nanoedge.core.plan_svg#filter).
  - The document keeps the allocation result's keys (C(strategy), C(placements), C(by_node), C(unplaced), C(remaining))
    exactly as the allocation returned them, and adds why each service runs where it does, which services are
    critical and which of them are unplaced, the registry the profiles came from, the services (image, digest,
    requirements) and the node profiles the plan was made from.
options:
  _input:
    description: The allocation, as returned by P(nanoedge.core.allocate#filter).
    type: dict
    required: true
  services:
    description: The services that were allocated, in the order given to the allocation.
    type: list
    elements: dict
    required: true
  nodes:
    description: The node profiles that were allocated to, a list or a dictionary of node name to profile.
    type: raw
    required: true
  current:
    description: The placement that was running before (the O(ignore:current) option of the allocation).
    type: dict
  registry:
    description: The CoAP registry the profiles were read from, recorded in the document.
    type: str
  critical:
    description:
      - Names of services that must be placed. Services with C(critical=true) in their profile are critical too.
      - Every name must be one of O(services).
    type: list
    elements: str
    default: []
extends_documentation_fragment:
  - nanoedge.core.attributes.filter
seealso:
  - plugin: nanoedge.core.allocate
    plugin_type: filter
  - plugin: nanoedge.core.plan_table
    plugin_type: filter
  - plugin: nanoedge.core.plan_svg
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Write the plan file for CI
  ansible.builtin.copy:
    content: "{{ plan | nanoedge.core.plan_report(services, nodes, critical=['spo2', 'alert']) | to_nice_json }}\n"
    dest: build/plan.json
    mode: "0644"
  delegate_to: localhost
"""

RETURN = r"""
_value:
  description: The plan document.
  type: dict
  contains:
    strategy:
      description: As the allocation returned it.
      type: str
      sample: first_fit
    placements:
      description: As the allocation returned it.
      type: dict
      sample: {"spo2": "w4", "bot": "w1"}
    by_node:
      description: As the allocation returned it.
      type: dict
      sample: {"w1": ["bot"], "w4": ["spo2"]}
    unplaced:
      description: As the allocation returned it.
      type: list
      elements: dict
      sample: [{"service": "xray", "summary": "0/1 nodes fit: 1 missing capability xr",
                "counts": [{"code": "capability", "missing": ["xr"], "count": 1}],
                "reasons": {"w1": "missing capability xr"},
                "causes": [{"code": "capability", "missing": ["xr"], "nodes": ["w1"]}], "missing": 1}]
    remaining:
      description: As the allocation returned it.
      type: dict
      sample: {"w1": {"cpu": 1.75, "memory_mb": 1800, "storage_mb": 9000}}
    why:
      description: Service name to why it runs on its node, or why it runs nowhere.
      type: dict
      sample: {"spo2": "needs pom; first node in order that fits (w1, w2, w3: missing capability pom)"}
    critical:
      description: The critical services.
      type: list
      elements: str
      sample: [alert, spo2]
    critical_unplaced:
      description: The critical services that are not placed; the site playbook fails when there is any.
      type: list
      elements: str
      sample: []
    registry:
      description: The registry the profiles were read from.
      type: str
      sample: coap://172.30.0.11:5683
    current:
      description: The placement running before this plan.
      type: dict
      sample: {"spo2": "w4"}
    services:
      description: Service name to its C(image), C(digest) and C(requires).
      type: dict
      sample: {"spo2": {"image": "127.0.0.1:5000/nanoedge/spo2:1.0.0", "digest": "sha256:d79e...", "requires": {}}}
    nodes:
      description: Node name to the profile fields the plan used (model, arch, capabilities, cpu, memory, storage, power, network).
      type: dict
      sample: {"w4": {"capabilities": ["pom"], "cpu": {"cores": 2}}}
"""

import typing as t

from ansible.errors import AnsibleFilterError

from ansible_collections.nanoedge.core.plugins.plugin_utils._site_report import ReportError, plan_report

FILTER = "nanoedge.core.plan_report"


def plan_report_filter(plan: t.Any, services: t.Any, nodes: t.Any, current: t.Any = None, registry: t.Any = None,
                       critical: t.Any = None) -> t.Dict[str, t.Any]:
    if critical is not None and (not isinstance(critical, list) or not all(isinstance(c, str) for c in critical)):
        raise AnsibleFilterError("%s: critical must be a list of service names, got %r" % (FILTER, critical))
    try:
        return plan_report(plan, services, nodes, current=current, registry=registry, critical=critical)
    except ReportError as exc:
        raise AnsibleFilterError("%s: %s" % (FILTER, exc)) from exc


class FilterModule:
    def filters(self) -> t.Dict[str, t.Callable[..., t.Any]]:
        return {"plan_report": plan_report_filter}
