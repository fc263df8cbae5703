# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a node-side apply decides and does, in an order that never leaves a checkable fault half-done.

1. Look, changing nothing: the node's path types (``os.stat``, following links), the descriptions finished
   with them (``_deploy_layout.on_node``), each wanted container as the engine has it, and in the break phase
   the nanoedge containers that are not wanted.
2. Fence (``_fence.check_and_record``): a refusal changes nothing (EXIT_REFUSED).
3. Pull what is needed, create the missing folders services write to, then per wanted container: unchanged
   (running, labelled with the wanted spec digest), started (the same digest, stopped), or created (none, or
   another digest: the old one is removed first, fenced again right before).
4. Break phase: fenced again, then every container labelled io.nanoedge.service whose name starts with the
   prefix and that is not wanted is removed; a Swarm task's container never is.

The result (standard output)::

    {"node": "w1", "phase": "make", "changed": true, "unchanged": [...], "started": [...], "created": [...],
     "removed": [...], "folders": [...], "fence": {"term": 7, "changed": false} | null}

with container names in the lists and the folders created; a failure adds ``"error"`` (naming the service,
container or image at fault) to what was done before it.
"""

from __future__ import annotations

import os
import stat
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._deploy_layout import on_node
from ansible_collections.nanoedge.core.plugins.module_utils._docker_engine import EngineError
from ansible_collections.nanoedge.core.plugins.module_utils._fence import FenceError, FenceRefused, check_and_record
from ansible_collections.nanoedge.core.plugins.module_utils._labels import SERVICE_LABEL, SPEC_LABEL
from ansible_collections.nanoedge.core.plugins.module_utils._node_apply.container import create_body
from ansible_collections.nanoedge.core.plugins.module_utils._node_apply.request import Request

EXIT_OK, EXIT_FAILED, EXIT_REFUSED, EXIT_BAD_REQUEST = 0, 1, 2, 3
# Containers of a Docker Swarm task carry this label; Swarm, not the node, owns them.
SWARM_TASK_LABEL = "com.docker.swarm.task.id"
FOLDER_MODE = 0o755
LISTS = ("unchanged", "started", "created", "removed", "folders")


class Engine(t.Protocol):
    """What the apply asks of the node's Docker engine (``_docker_engine.DockerEngine``)."""

    def inspect_container(self, name: str) -> t.Optional[t.Dict[str, t.Any]]: ...
    def inspect_image(self, image: str) -> t.Optional[t.Dict[str, t.Any]]: ...
    def list_containers(self, label: str) -> t.List[t.Dict[str, t.Any]]: ...
    def pull(self, image: str, platform: t.Optional[str] = None) -> None: ...
    def create_container(self, name: str, body: t.Mapping[str, t.Any], platform: t.Optional[str] = None) -> str: ...
    def start_container(self, ident: str) -> None: ...
    def remove_container(self, ident: str) -> None: ...


class Stop(Exception):
    """The apply stops here; ``code`` is its exit code, the message its error."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def stat_type(path: str, stat_path: t.Callable[[str], os.stat_result] = os.stat) -> str:
    """The path's type as ``_deploy_layout.path_type`` names them, following links as the deploy role does."""
    try:
        mode = stat_path(path).st_mode
    except OSError:
        return "missing"
    for test, name in ((stat.S_ISCHR, "char"), (stat.S_ISBLK, "block"), (stat.S_ISDIR, "dir")):
        if test(mode):
            return name
    return "file"


def make_folder(path: str) -> None:
    """A folder a service writes to, as the deploy role creates it: 0755, root's."""
    os.makedirs(path, FOLDER_MODE, exist_ok=True)
    os.chmod(path, FOLDER_MODE)
    if os.geteuid() == 0:
        os.chown(path, 0, 0)


class Plan(t.NamedTuple):
    """One wanted container: its finished description, its create body, and what to do with it."""
    description: t.Dict[str, t.Any]
    body: t.Dict[str, t.Any]
    action: str                 # unchanged, start, create, recreate
    current: t.Optional[str]    # the existing container's ID


def decide(description: t.Mapping[str, t.Any], current: t.Optional[t.Mapping[str, t.Any]]) -> str:
    if current is None:
        return "create"
    labels = (current.get("Config") or {}).get("Labels") or {}
    if labels.get(SPEC_LABEL) != description["labels"][SPEC_LABEL]:
        return "recreate"
    return "unchanged" if (current.get("State") or {}).get("Running") else "start"


def _name(item: t.Mapping[str, t.Any]) -> str:
    names = item.get("Names") or []
    return names[0].lstrip("/") if names and isinstance(names[0], str) else ""


class Apply:
    """One request applied to one node's engine; ``run`` returns (exit code, result)."""

    def __init__(self, request: Request, engine: Engine,
                 fence: t.Callable[..., t.Any] = check_and_record,
                 stat_path: t.Callable[[str], os.stat_result] = os.stat,
                 create_folder: t.Callable[[str], None] = make_folder) -> None:
        self.request, self.engine = request, engine
        self._fence, self._stat, self._create_folder = fence, stat_path, create_folder
        self.result = {"node": request.node, "phase": request.phase, "changed": False,
                       "fence": None}  # type: t.Dict[str, t.Any]
        self.result.update({key: [] for key in LISTS})

    def run(self) -> t.Tuple[int, t.Dict[str, t.Any]]:
        try:
            plans, folders, stale = self._look()
            self._fence_run(first=True)
            self._pull(plans)
            self._folders(folders)
            for plan in plans:
                self._ensure(plan)
            if stale:
                self._fence_run(first=False)
                for ident, name in stale:
                    self._engine("remove container %s" % name, self.engine.remove_container, ident)
                    self._done("removed", name)
            code = EXIT_OK
        except Stop as exc:
            self.result["error"] = str(exc)
            code = exc.code
        except Exception as exc:  # pylint: disable=broad-exception-caught
            # the manager reads one JSON answer whatever went wrong, with what was done before it
            self.result["error"] = "unexpected %s: %s" % (type(exc).__name__, exc)
            code = EXIT_FAILED
        return code, self.result

    def _done(self, key: str, name: str) -> None:
        self.result[key].append(name)
        if key != "unchanged":
            self.result["changed"] = True

    def _engine(self, what: str, call: t.Callable[..., t.Any], *args: t.Any) -> t.Any:
        try:
            return call(*args)
        except EngineError as exc:
            raise Stop("%s: %s" % (what, exc)) from None

    def _look(self) -> t.Tuple[t.List[Plan], t.List[str], t.List[t.Tuple[str, str]]]:
        """Everything the run needs to know, before it changes anything."""
        paths = [e["host_path"] for d in self.request.deployments for e in d["io"]]
        types = {path: stat_type(path, self._stat) for path in dict.fromkeys(paths)}
        plans = []
        for wanted in self.request.deployments:
            description = on_node(wanted, wanted["io"], types)
            name = description["container_name"]
            current = self._engine("service %s: inspect container %s" % (description["name"], name),
                                   self.engine.inspect_container, name)
            plans.append(Plan(description, create_body(description, self.request.docker),
                              decide(description, current), current.get("Id") if current else None))
        self._check_paths(plans)
        folders = list(dict.fromkeys(p["path"] for plan in plans for p in plan.description["paths"]
                                     if p["mode"] == "rw" and p["type"] == "missing"))
        return plans, folders, self._stale(plans)

    def _check_paths(self, plans: t.Sequence[Plan]) -> None:
        """A path a service only reads must be there: the engine refuses a bind mount of a missing one, and
        finding that out at create time would leave the service's old container removed."""
        for plan in plans:
            for path in plan.description["paths"]:
                if path["mode"] == "ro" and path["type"] == "missing":
                    raise Stop("service %s: its %s %s is not on node %s" % (plan.description["name"], path["kind"],
                                                                            path["path"], self.request.node))

    def _stale(self, plans: t.Sequence[Plan]) -> t.List[t.Tuple[str, str]]:
        """(ID, name) of each nanoedge container of this node that is not wanted (break phase only)."""
        if self.request.phase != "break":
            return []
        wanted = {plan.description["container_name"] for plan in plans}
        listed = self._engine("list the nanoedge containers", self.engine.list_containers, SERVICE_LABEL)
        stale = []
        for item in listed:
            name, labels = _name(item), item.get("Labels") or {}
            if (name.startswith(self.request.docker.name_prefix) and name not in wanted and labels.get(SERVICE_LABEL)
                    and not labels.get(SWARM_TASK_LABEL)):
                stale.append((str(item.get("Id") or name), name))
        return stale

    def _fence_run(self, first: bool) -> None:
        fence = self.request.fence
        if fence is None:
            return
        try:
            outcome = self._fence(fence.path, fence.witness_path, fence.term, fence.manager)
        except FenceRefused as exc:
            raise Stop("%s%s" % (exc, "; nothing was changed" if first else ""), EXIT_REFUSED) from None
        except FenceError as exc:
            raise Stop(str(exc), EXIT_REFUSED) from None
        if first:
            self.result["fence"] = {"term": fence.term, "changed": bool(outcome.changed)}

    def _pull(self, plans: t.Sequence[Plan]) -> None:
        """Every image a container is created from, before any container changes: a registry that cannot be
        reached stops the run with every old container still running."""
        pull = self.request.docker.pull
        for image, platform in dict.fromkeys((p.description["image"], p.description["platform"]) for p in plans
                                             if p.action in ("create", "recreate")):
            if pull != "always":
                if self._engine("inspect image %s" % image, self.engine.inspect_image, image) is not None:
                    continue
                if pull == "never":
                    raise Stop("image %s is not on node %s, and docker.pull is never" % (image, self.request.node))
            self._engine("pull image %s" % image, self.engine.pull, image, platform)

    def _folders(self, folders: t.Sequence[str]) -> None:
        for path in folders:
            try:
                self._create_folder(path)
            except OSError as exc:
                raise Stop("create the folder %s: %s" % (path, exc.strerror or exc)) from None
            self._done("folders", path)

    def _ensure(self, plan: Plan) -> None:
        description = plan.description
        name = description["container_name"]
        where = "service %s: %%s container %s" % (description["name"], name)
        if plan.action == "unchanged":
            self._done("unchanged", name)
            return
        if plan.action == "start":
            self._engine(where % "start", self.engine.start_container, plan.current)
            self._done("started", name)
            return
        if plan.action == "recreate":
            self._fence_run(first=False)
            self._engine(where % "remove the old", self.engine.remove_container, plan.current)
        ident = self._engine(where % "create", self.engine.create_container, name, plan.body,
                             description["platform"])
        self._engine(where % "start the new", self.engine.start_container, ident)
        self._done("created", name)
