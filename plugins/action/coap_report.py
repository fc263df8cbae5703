# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of nanoedge.core.coap_report: a module cannot read the
host's facts, so the profile defaults to ``ansible_facts.nanoedge_profile`` here."""

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
        if module_args.get("profile") is None:
            facts = task_vars.get("ansible_facts") or {}
            profile = facts.get("nanoedge_profile")
            if profile is None:
                result.update(failed=True, msg=(
                    "nanoedge.core.coap_report: no profile given and ansible_facts.nanoedge_profile is not set; "
                    "run nanoedge.core.resource_facts first or pass profile"))
                return result
            module_args["profile"] = profile

        result.update(self._execute_module(module_name="nanoedge.core.coap_report", module_args=module_args,
                                           task_vars=task_vars))
        return result
