# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of nanoedge.core.sync_tree: read src, send its manifest, and
send the archive only when the node's folder differs."""

from __future__ import annotations

import os
import shutil
import tempfile
import typing as t

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase

from ansible_collections.nanoedge.core.plugins.module_utils._tree import TreeError, build_manifest, pack, parse_mode

PREFIX = "nanoedge.core.sync_tree: "


class ActionModule(ActionBase):
    # the archive goes through a temporary folder made only when it is needed
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp: t.Optional[str] = None, task_vars: t.Optional[t.Dict[str, t.Any]] = None) -> t.Dict[str, t.Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        for key in ("_manifest", "_archive"):
            if key in args:
                return dict(result, failed=True, msg=PREFIX + "%s is set by the action plugin, not by the task" % key)
        if not args.get("src") or not args.get("dest"):
            return dict(result, failed=True, msg=PREFIX + "src and dest are required")
        try:
            src = self._find_needle("files", os.path.expanduser(str(args["src"])))
        except AnsibleError as exc:
            return dict(result, failed=True, msg=PREFIX + "src %s is not found: %s" % (args["src"], exc))
        files, exclude = args.get("files"), args.get("exclude") or []
        if files is not None and (not isinstance(files, list) or not all(isinstance(f, str) for f in files)):
            return dict(result, failed=True, msg=PREFIX + "files must be a list of paths relative to src")
        if not isinstance(exclude, list) or not all(isinstance(p, str) for p in exclude):
            return dict(result, failed=True, msg=PREFIX + "exclude must be a list of patterns")
        try:
            manifest = build_manifest(src, files, exclude, parse_mode(args.get("mode"), "mode"))
        except (TreeError, OSError) as exc:
            return dict(result, failed=True, msg=PREFIX + str(exc))

        module_args = dict(args, src=src, _manifest=manifest)
        try:
            answer = self._execute_module(module_name="nanoedge.core.sync_tree", module_args=module_args,
                                          task_vars=task_vars)
            if answer.pop("needs_archive", False) and not answer.get("failed"):
                answer = self._send(src, manifest, module_args, task_vars)
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        result.update(answer)
        return result

    def _send(self, src: str, manifest: t.List[t.Dict[str, t.Any]], module_args: t.Dict[str, t.Any],
              task_vars: t.Dict[str, t.Any]) -> t.Dict[str, t.Any]:
        local = tempfile.mkdtemp(prefix="nanoedge-sync-tree.")
        try:
            archive = os.path.join(local, "tree.tar.gz")
            try:
                pack(src, manifest, archive)
            except OSError as exc:
                return dict(failed=True, msg=PREFIX + "cannot pack %s: %s" % (src, exc))
            if not self._connection._shell.tmpdir:
                self._make_tmp_path()
            remote = self._connection._shell.join_path(self._connection._shell.tmpdir, "tree.tar.gz")
            self._transfer_file(archive, remote)
            self._fixup_perms2((self._connection._shell.tmpdir, remote))
            return self._execute_module(module_name="nanoedge.core.sync_tree",
                                        module_args=dict(module_args, _archive=remote), task_vars=task_vars)
        finally:
            shutil.rmtree(local, ignore_errors=True)
