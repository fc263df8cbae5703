# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of nanoedge.core.resource_facts: a module cannot see the
inventory, so the profile's node name defaults to the inventory hostname and
the capabilities declared in ``nanoedge_capabilities`` are added here."""

from __future__ import annotations

import typing as t

from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True

    def run(self, tmp: t.Optional[str] = None, task_vars: t.Optional[t.Dict[str, t.Any]] = None) -> t.Dict[str, t.Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp

        module_args = dict(self._task.args)
        if module_args.get("node") is None and task_vars.get("inventory_hostname"):
            module_args["node"] = str(task_vars["inventory_hostname"]).lower()
        if module_args.get("capabilities") is None:
            declared = task_vars.get("nanoedge_capabilities")
            if declared is not None:
                declared = self._templar.template(declared)
                if not isinstance(declared, list) or not all(isinstance(item, str) for item in declared):
                    result.update(failed=True, msg=(
                        "nanoedge.core.resource_facts: the inventory variable nanoedge_capabilities must be a "
                        "list of capability names, got %r" % (declared,)))
                    return result
                module_args["capabilities"] = declared

        result.update(self._execute_module(module_name="nanoedge.core.resource_facts", module_args=module_args,
                                           task_vars=task_vars))
        return result
