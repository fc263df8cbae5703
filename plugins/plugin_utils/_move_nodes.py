# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A targeted move applied by the nodes themselves: one SSH command per node, no Ansible run.

The reconcile service's move command, when the reconcile role turns node-side moves on::

    python -m ansible_collections.nanoedge.core.plugins.plugin_utils._move_nodes SETTINGS \\
        --extra-vars @move.json -e '{"nanoedge_fence_term": 7, "nanoedge_fence_manager": "m1"}'

It takes the arguments the playbook nanoedge.core.move takes (the move file of targeted.py and the run's
term), describes what each touched node runs with the same filter the deploy role uses
(nanoedge.core.deployments), and hands each node its part on the standard input of
``python3 -m ...module_utils._node_apply`` over SSH (the key and the pinned host keys of the reconcile
service): first the nodes that start a service or rewire a consumer, all at once ("make"), then, once
every one of them succeeded, the nodes that lose one ("break"). Each node fences the request with the
run's term before it changes anything, as the deploy role does.

What the nodes cannot do alone (a bare-metal or Swarm backend, a node the settings do not know) is left
to the playbook: the command then runs the ``fallback`` argv with the same arguments, and says why.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import sys
import time
import typing as t

from ansible_collections.nanoedge.core.plugins.plugin_utils._deployment import DeploymentError, deployments

NODE_PROGRAM = "ansible_collections.nanoedge.core.plugins.module_utils._node_apply"
# a node's answer is one JSON object; more is not an answer
MAX_ANSWER = 1 << 20
EXIT_FAILED, EXIT_USAGE = 1, 2


class MoveError(Exception):
    """The move cannot be applied by the nodes; the message says why (then the fallback runs)."""


def parse_arguments(argv: t.Sequence[str]) -> t.Tuple[str, t.Dict[str, t.Any]]:
    """(the settings file, the extra variables) from ``SETTINGS (--extra-vars|-e) @FILE|JSON ...``.

    Later variables win, as with ansible-playbook; only what this command needs is accepted."""
    if not argv:
        raise ValueError("usage: _move_nodes SETTINGS (--extra-vars|-e) @FILE|JSON ...")
    settings, rest, extra = argv[0], list(argv[1:]), {}  # type: str, t.List[str], t.Dict[str, t.Any]
    while rest:
        flag = rest.pop(0)
        if flag not in ("-e", "--extra-vars") or not rest:
            raise ValueError("unexpected argument %r (only --extra-vars @FILE or JSON are taken)" % flag)
        value = rest.pop(0)
        if value.startswith("@"):
            with open(value[1:], encoding="utf-8") as handle:
                text = handle.read()
            # site-vars.yml is YAML; JSON is YAML too, and the move file and the fence are JSON
            loaded = _load_yaml_or_json(text, value[1:])
        else:
            loaded = json.loads(value)
        if not isinstance(loaded, dict):
            raise ValueError("extra variables %s: not a mapping" % value[:60])
        extra.update(loaded)
    return settings, extra


def _load_yaml_or_json(text: str, path: str) -> t.Any:
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        import yaml  # pylint: disable=import-outside-toplevel
    except ImportError as exc:
        raise ValueError("%s is not JSON, and PyYAML is missing to read it: %s" % (path, exc)) from None
    return yaml.safe_load(text)


def load_settings(path: str) -> t.Dict[str, t.Any]:
    with open(path, encoding="utf-8") as handle:
        settings = json.load(handle)
    for key, kind in (("fallback", list), ("ssh", list), ("hosts", dict), ("node", dict), ("deploy", dict),
                      ("docker", dict), ("fence", dict)):
        if not isinstance(settings.get(key), kind):
            raise ValueError("settings %s: %s must be %s" % (path, key, kind.__name__))
    return settings


def check_backends(deploy: t.Mapping[str, t.Any]) -> None:
    """Only containers are started by the nodes themselves."""
    backend = str(deploy.get("backend") or "container")
    others = sorted(name for name, value in (deploy.get("backends") or {}).items() if value != "container")
    if backend != "container":
        raise MoveError("the deploy backend is %s: the playbook moves it" % backend)
    if others:
        raise MoveError("service(s) %s run bare-metal: the playbook moves them" % ", ".join(others))


def node_request(move: t.Mapping[str, t.Any], node: str, phase: str, settings: t.Mapping[str, t.Any],
                 fence: t.Optional[t.Dict[str, t.Any]]) -> t.Dict[str, t.Any]:
    """What ``node`` runs after the move, as the request its _node_apply takes."""
    deploy = settings["deploy"]
    try:
        wanted = deployments(move["plan"], move["services"], node, specs=deploy.get("specs") or {},
                             addresses=deploy.get("addresses") or {}, backend="container",
                             backends=deploy.get("backends") or {}, pull_registry=deploy.get("pull_registry") or "",
                             name_prefix=deploy.get("name_prefix") or "nanoedge-svc-",
                             install_dir=deploy.get("install_dir") or "/opt/nanoedge",
                             platform=str((move.get("platforms") or {}).get(node) or ""),
                             directory=deploy.get("directory") or "")
    except DeploymentError as exc:
        raise MoveError("cannot describe what %s runs: %s" % (node, exc)) from None
    docker = dict(settings["docker"])
    docker.setdefault("name_prefix", deploy.get("name_prefix") or "nanoedge-svc-")
    return {"version": 1, "node": node, "phase": phase, "fence": fence, "deployments": wanted, "docker": docker}


def plan_requests(move: t.Mapping[str, t.Any], settings: t.Mapping[str, t.Any],
                  fence: t.Optional[t.Dict[str, t.Any]]) -> t.Tuple[t.Dict[str, t.Any], t.Dict[str, t.Any]]:
    """({node: request} of the make phase, {node: request} of the break phase)."""
    check_backends(settings["deploy"])
    for key in ("plan", "services", "start", "rewire", "stop"):
        if key not in move:
            raise MoveError("the move gives no %s" % key)
    make_nodes = list(dict.fromkeys(list(move["start"]) + list(move["rewire"])))
    unknown = sorted(n for n in make_nodes + list(move["stop"]) if n not in settings["hosts"])
    if unknown:
        raise MoveError("no SSH address for %s" % ", ".join(unknown))
    make = {node: node_request(move, node, "make", settings, fence) for node in make_nodes}
    breaks = {node: node_request(move, node, "break", settings, fence) for node in move["stop"]}
    return make, breaks


def fence_of(extra: t.Mapping[str, t.Any], settings: t.Mapping[str, t.Any]) -> t.Optional[t.Dict[str, t.Any]]:
    term = extra.get("nanoedge_fence_term") or 0
    if not term:
        return None
    return {"term": int(term), "manager": str(extra.get("nanoedge_fence_manager") or ""),
            "path": settings["fence"].get("path"), "witness_path": settings["fence"].get("witness_path")}


class NodeResult(t.NamedTuple):
    node: str
    phase: str
    ok: bool
    answer: t.Dict[str, t.Any]
    error: str
    seconds: float


def remote_command(settings: t.Mapping[str, t.Any]) -> str:
    node = settings["node"]
    python = str(node.get("python") or "/usr/bin/python3")
    pythonpath = shlex.quote(str(node.get("pythonpath") or ""))
    return "PYTHONPATH=%s exec %s -m %s" % (pythonpath, shlex.quote(python), NODE_PROGRAM)


def ensure_control_dir(ssh: t.Sequence[str]) -> None:
    """Create the folder of the ``ControlPath`` option of ``ssh`` (mode 0700) when it is missing. A manager that
    never ran a playbook (the backup, before it takes over) has none: ssh would fail every node-side move with
    "unix_listener: cannot bind to path"."""
    for option in ssh:
        if option.startswith("ControlPath="):
            folder = os.path.dirname(option[len("ControlPath="):])
            if folder and "%" not in folder:
                os.makedirs(folder, mode=0o700, exist_ok=True)


async def apply_on(node: str, request: t.Mapping[str, t.Any], settings: t.Mapping[str, t.Any]) -> NodeResult:
    """Run ``request`` on ``node`` over SSH; its answer, or why there is none."""
    argv = list(settings["ssh"]) + [settings["hosts"][node], remote_command(settings)]
    timeout = float(settings["node"].get("timeout") or 120)
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(json.dumps(request).encode()), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        return NodeResult(node, request["phase"], False, {}, "no answer within %g s" % timeout,
                          time.monotonic() - started)
    seconds = time.monotonic() - started
    answer: t.Dict[str, t.Any] = {}
    try:
        decoded = json.loads(out[:MAX_ANSWER].decode("utf-8", "replace") or "null")
        answer = decoded if isinstance(decoded, dict) else {}
    except ValueError:
        pass
    if proc.returncode == 0 and answer:
        return NodeResult(node, request["phase"], True, answer, "", seconds)
    why = answer.get("error") or err.decode("utf-8", "replace").strip()[-400:] or "exit %s" % proc.returncode
    return NodeResult(node, request["phase"], False, answer, "exit %s: %s" % (proc.returncode, why), seconds)


def describe(result: NodeResult) -> str:
    answer = result.answer
    parts = ["%s %s" % (key, ", ".join(answer[key])) for key in ("created", "started", "removed", "unchanged")
             if answer.get(key)]
    return "%s %s: %s (%.2f s)" % (result.node, result.phase, "; ".join(parts) or "nothing to do", result.seconds)


async def apply(make: t.Mapping[str, t.Any], breaks: t.Mapping[str, t.Any], settings: t.Mapping[str, t.Any],
                out: t.TextIO) -> int:
    """Make on every node at once, then break; stop before breaking when a make failed."""
    ensure_control_dir(settings["ssh"])
    for phase, requests in (("make", make), ("break", breaks)):
        if not requests:
            continue
        results = await asyncio.gather(*(apply_on(node, request, settings) for node, request in requests.items()))
        failed = [result for result in results if not result.ok]
        for result in results:
            out.write(("[ERROR]: %s %s: %s\n" % (result.node, result.phase, result.error)) if not result.ok
                      else describe(result) + "\n")
        out.flush()
        if failed:
            if phase == "make":
                out.write("[ERROR]: nothing was removed: the services did not start everywhere\n")
            return EXIT_FAILED
    return 0


def fall_back(settings: t.Mapping[str, t.Any], argv: t.Sequence[str], why: str) -> int:
    """Run the playbook instead, with the same arguments (does not return when it starts)."""
    fallback = [str(arg) for arg in settings.get("fallback") or []]
    sys.stdout.write("the nodes cannot apply this move themselves (%s): running %s\n"
                     % (why, " ".join(fallback[:2]) or "nothing"))
    sys.stdout.flush()
    if not fallback:
        sys.stdout.write("[ERROR]: no fallback command is configured\n")
        return EXIT_FAILED
    os.execvp(fallback[0], fallback + list(argv[1:]))
    return EXIT_FAILED  # not reached


def main(argv: t.Optional[t.Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        settings_path, extra = parse_arguments(argv)
        settings = load_settings(settings_path)
    except (OSError, ValueError) as exc:
        sys.stdout.write("[ERROR]: %s\n" % exc)
        return EXIT_USAGE
    move = extra.get("nanoedge_move")
    if not isinstance(move, dict):
        sys.stdout.write("[ERROR]: no nanoedge_move in the extra variables\n")
        return EXIT_USAGE
    try:
        make, breaks = plan_requests(move, settings, fence_of(extra, settings))
    except MoveError as exc:
        return fall_back(settings, argv, str(exc))
    return asyncio.run(apply(make, breaks, settings, sys.stdout))


if __name__ == "__main__":
    sys.exit(main())
