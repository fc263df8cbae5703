# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations


class ModuleDocFragment:
    """Attribute descriptions shared by the collection's modules.

    Use C(nanoedge.core.attributes) for the descriptions, then add the support
    levels, either inline or, for fact-gathering modules, with
    C(nanoedge.core.attributes.facts) and C(nanoedge.core.attributes.facts_module); a module
    with an action plugin adds C(nanoedge.core.attributes.action).
    Filters use C(nanoedge.core.attributes.filter) alone.
    """

    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Can run in check mode and return a changed status prediction without modifying the target.
  diff_mode:
    description: Returns details on what has changed (or would change in check mode) when run in diff mode.
  idempotent:
    description:
      - When run twice in a row outside check mode with the same arguments, the second run reports no change.
      - This assumes the state of the target was not changed in between by something else.
"""

    # With DOCUMENTATION: a module with an action plugin (the module gives the support level).
    ACTION = r"""
options: {}
attributes:
  action:
    description: Indicates this has a corresponding action plugin so some parts of the options can be executed on the controller.
"""

    FACTS = r"""
options: {}
attributes:
  facts:
    description: Action returns an C(ansible_facts) dictionary that updates existing host facts.
"""

    # With DOCUMENTATION and FACTS: a module that only reads the target.
    FACTS_MODULE = r"""
options: {}
attributes:
  check_mode:
    support: full
    details:
      - This action does not modify state.
  diff_mode:
    support: N/A
    details:
      - This action does not modify state.
  idempotent:
    support: full
    details:
      - This action does not modify state.
  facts:
    support: full
"""

    # A filter: a pure function of its input, with no target to change.
    FILTER = r"""
options: {}
attributes:
  check_mode:
    description: Can run in check mode and return a changed status prediction without modifying the target.
    support: full
    details: A filter computes a value and changes nothing.
  diff_mode:
    description: Returns details on what has changed (or would change in check mode) when run in diff mode.
    support: N/A
  idempotent:
    description: Given the same input, the result is the same.
    support: full
"""
