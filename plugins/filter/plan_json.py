# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: plan_json
short_description: The text of the plan file
version_added: 0.1.0
author: nanoedge.core contributors
description:
  - Renders the plan document of P(nanoedge.core.plan_report#filter) as the JSON the site playbook writes to the
    plan file (C(docs/contracts.md), "The plan file"), keys sorted.
  - Up to 50 nodes, indented by two spaces, as C(to_nice_json(indent=2)) gives it. Past 50 nodes, compact (no
    spaces), each entry of C(unplaced) without C(summary) and C(why) without the services placed nowhere, which
    the C(counts) of their C(unplaced) entries say too; so the file grows with services + nodes (under 20 MB for
    5,000 nodes and 50,000 services).
extends_documentation_fragment:
  - nanoedge.core.attributes.filter
  - nanoedge.core.plan_document
"""

EXAMPLES = r"""
- name: Write the plan file
  ansible.builtin.copy:
    content: "{{ plan_document | nanoedge.core.plan_json }}\n"
    dest: nanoedge-plan.json
    mode: "0644"
"""

RETURN = r"""
_value:
  description: The plan file's text.
  type: str
  sample: |-
    {
      "by_node": {
        "w1": [
          "bot"
        ]
      }
    }
"""

import typing as t

from ansible.errors import AnsibleFilterError
from ansible.plugins.filter.core import to_json, to_nice_json

from ansible_collections.nanoedge.core.plugins.plugin_utils._allocate_plan_file import compact, file_document

FILTER = "nanoedge.core.plan_json"


def plan_json_filter(document: t.Any) -> str:
    if not isinstance(document, dict):
        raise AnsibleFilterError("%s: the input must be a plan document (a dict), got %s"
                                 % (FILTER, type(document).__name__))
    if compact(document):
        return t.cast(str, to_json(file_document(document), sort_keys=True, separators=(",", ":")))
    return t.cast(str, to_nice_json(document, indent=2))


class FilterModule:
    def filters(self) -> t.Dict[str, t.Callable[..., t.Any]]:
        return {"plan_json": plan_json_filter}
