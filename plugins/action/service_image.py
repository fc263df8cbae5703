# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of nanoedge.core.service_image: the decision is _service_image_run's, the Docker
work community.docker's modules'."""

from __future__ import annotations

import os
import typing as t
from pathlib import Path

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase

from ansible_collections.nanoedge.core.plugins.plugin_utils._service_image import (
    BuildError,
    ensure_wheel,
    load_service,
)
from ansible_collections.nanoedge.core.plugins.plugin_utils._service_image_run import (
    LocalImage,
    Request,
    ensure_image,
)

PREFIX = "nanoedge.core.service_image: "
ARGUMENT_SPEC = {
    "description": {"type": "path", "required": True},
    "source": {"type": "path"},
    "registry": {"type": "str", "default": "127.0.0.1:5000"},
    "registry_url": {"type": "str"},
    "namespace": {"type": "str", "default": "nanoedge"},
    "base_image": {"type": "str", "default": "nanoedge/base:bookworm"},
    "platforms": {"type": "list", "elements": "str", "default": []},
    "push": {"type": "bool", "default": True},
    "wheel_dir": {"type": "path", "default": "~/.cache/nanoedge/wheels"},
}


class ModuleBuilder:
    """The Builder of _service_image_run, with community.docker's modules on the task's host."""

    def __init__(self, action: "ActionModule", task_vars: t.Dict[str, t.Any]) -> None:
        self.action = action
        self.task_vars = task_vars

    def _run(self, module: str, **args: t.Any) -> t.Dict[str, t.Any]:
        result = self.action.execute("community.docker." + module, args, self.task_vars)
        if result.get("failed"):
            raise BuildError("community.docker.%s: %s" % (module, result.get("msg", result)))
        return result

    def platform(self) -> str:
        info = self._run("docker_host_info")["host_info"]
        return "%s/%s" % (info.get("OSType") or "linux", info["Architecture"])

    def image(self, reference: str) -> t.Optional[LocalImage]:
        images = self._run("docker_image_info", name=[reference])["images"]
        if not images:
            return None
        return LocalImage(id=images[0]["Id"], labels=dict((images[0].get("Config") or {}).get("Labels") or {}))

    def build(self, context: Path, image: str, arguments: t.Mapping[str, str], labels: t.Mapping[str, str],
              platform: str) -> None:
        self._run("docker_image", name=image, source="build", force_source=True, push=False,
                  build={"path": str(context), "dockerfile": "Dockerfile", "args": dict(arguments),
                         "labels": dict(labels), "platform": platform, "pull": False, "rm": True})

    def tag(self, source: str, target: str) -> None:
        self._run("docker_image_tag", name=source, repository=[target])

    def push(self, reference: str) -> None:
        self._run("docker_image_push", name=reference)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    def execute(self, module: str, args: t.Dict[str, t.Any], task_vars: t.Dict[str, t.Any]) -> t.Dict[str, t.Any]:
        return self._execute_module(module_name=module, module_args=args, task_vars=task_vars)

    def _path(self, path: str) -> str:
        """A relative path is the playbook's folder's, as for other controller-side files."""
        return self._loader.path_dwim(os.path.expanduser(path))

    def run(self, tmp: t.Optional[str] = None, task_vars: t.Optional[t.Dict[str, t.Any]] = None) -> t.Dict[str, t.Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        try:
            dummy, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        except AnsibleError as exc:
            return dict(result, failed=True, msg=PREFIX + str(exc.message))
        if self._connection.transport not in ("local", "ansible.builtin.local"):
            return dict(result, failed=True, msg=PREFIX + "runs on the controller (connection local, for example "
                        "on localhost): the build context is assembled there, not on %s" % task_vars.get("inventory_hostname"))
        request = Request(registry=args["registry"], namespace=args["namespace"], base_image=args["base_image"],
                          platforms=tuple(args["platforms"]), push=args["push"], registry_url=args["registry_url"])
        try:
            service = load_service(self._path(args["description"]), args["source"] and self._path(args["source"]))
            wheel = ensure_wheel(args["wheel_dir"])
            outcome = ensure_image(service, wheel, request, ModuleBuilder(self, task_vars),
                                   check_mode=bool(self._task.check_mode))
        except BuildError as exc:
            return dict(result, failed=True, msg=PREFIX + str(exc))
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        diff = outcome.pop("diff")
        if self._task.diff and outcome["changed"]:
            result["diff"] = diff
        result.update(outcome)
        return result
