# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: plan_table
short_description: The placement table of a plan, as lines of text
version_added: 0.1.0
author: nanoedge.core contributors
description:
  - Renders the plan document of P(nanoedge.core.plan_report#filter) as a table with one line per placed service
    (service, node, why that node) and one per unplaced service with the reason each node gave (past 50 nodes,
    the nodes counted per reason), followed by a summary line. Critical services are marked with C(*).
  - Returns a list of lines, which C(ansible.builtin.debug) prints one per line.
extends_documentation_fragment:
  - nanoedge.core.attributes.filter
  - nanoedge.core.plan_document
"""

EXAMPLES = r"""
- name: Show where each service runs and why
  ansible.builtin.debug:
    msg: "{{ plan_document | nanoedge.core.plan_table }}"
# SERVICE  NODE  WHY
# bot      w1    needs bot; first node in order that fits
# alert    w2    needs ac power; first node in order that fits (w1: needs ac power, has dc)
"""

RETURN = r"""
_value:
  description: The lines of the table.
  type: list
  elements: str
  sample:
    - "SERVICE  NODE  WHY"
    - "bot      w1    needs bot; first node in order that fits"
    - ""
    - "strategy first_fit, 1 placed, 0 unplaced"
"""

import typing as t

from ansible.errors import AnsibleFilterError

from ansible_collections.nanoedge.core.plugins.plugin_utils._site_report import ReportError, plan_table

FILTER = "nanoedge.core.plan_table"


def plan_table_filter(document: t.Any) -> t.List[str]:
    if not isinstance(document, dict):
        raise AnsibleFilterError("%s: the input must be a plan document (a dict), got %s"
                                 % (FILTER, type(document).__name__))
    try:
        return plan_table(document)
    except ReportError as exc:
        raise AnsibleFilterError("%s: %s" % (FILTER, exc)) from exc


class FilterModule:
    def filters(self) -> t.Dict[str, t.Callable[..., t.Any]]:
        return {"plan_table": plan_table_filter}
