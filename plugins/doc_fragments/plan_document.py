# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations


class ModuleDocFragment:
    """The input of the filters that present a plan document (plan_table, plan_svg, plan_json)."""

    DOCUMENTATION = r"""
options:
  _input:
    description: The plan document, as returned by P(nanoedge.core.plan_report#filter).
    type: dict
    required: true
seealso:
  - plugin: nanoedge.core.plan_report
    plugin_type: filter
"""
