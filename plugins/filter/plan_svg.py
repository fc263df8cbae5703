# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: plan_svg
short_description: A picture of the cluster and its plan, as a self-contained SVG
version_added: 0.1.0
author: nanoedge.core contributors
description:
  - Draws the plan document of P(nanoedge.core.plan_report#filter) as one card per node with its power source
    and battery, bars for the CPU cores, memory and storage the plan uses of what the node offers, its
    capabilities and the services placed on it, and a list of the unplaced services with their reasons (past 50
    nodes, the nodes counted per reason).
  - The SVG has no external references (no fonts, scripts or images), so it can be attached to a CI run or
    opened in any browser.
options:
  title:
    description: The title drawn at the top.
    type: str
    default: nanoedge cluster
  columns:
    description: Node cards per row.
    type: int
    default: 5
extends_documentation_fragment:
  - nanoedge.core.attributes.filter
  - nanoedge.core.plan_document
"""

EXAMPLES = r"""
- name: Draw the cluster
  ansible.builtin.copy:
    content: "{{ plan_document | nanoedge.core.plan_svg(title='Ward 3 edge cluster') }}"
    dest: build/cluster.svg
    mode: "0644"
  delegate_to: localhost
"""

RETURN = r"""
_value:
  description: The SVG document.
  type: str
  sample: '<svg xmlns="http://www.w3.org/2000/svg" width="1370" height="370" ...>...</svg>'
"""

import typing as t

from ansible.errors import AnsibleFilterError

from ansible_collections.nanoedge.core.plugins.plugin_utils._site_report import ReportError, plan_svg

FILTER = "nanoedge.core.plan_svg"


def plan_svg_filter(document: t.Any, title: t.Any = "nanoedge cluster", columns: t.Any = 5) -> str:
    if not isinstance(document, dict):
        raise AnsibleFilterError("%s: the input must be a plan document (a dict), got %s"
                                 % (FILTER, type(document).__name__))
    if not isinstance(title, str):
        raise AnsibleFilterError("%s: title must be a string, got %s" % (FILTER, type(title).__name__))
    if isinstance(columns, bool) or not isinstance(columns, int):
        raise AnsibleFilterError("%s: columns must be an integer, got %r" % (FILTER, columns))
    try:
        return plan_svg(document, title=title, columns=columns)
    except ReportError as exc:
        raise AnsibleFilterError("%s: %s" % (FILTER, exc)) from exc


class FilterModule:
    def filters(self) -> t.Dict[str, t.Callable[..., t.Any]]:
        return {"plan_svg": plan_svg_filter}
