# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Targeted re-placement: a change re-planned in this process, deployed to the nodes it touches only.

The last full run left the plan file and, beside it, the services it planned (the services file). A
change of the live profiles is re-planned here from those and the watcher's profiles, with the same
allocation (plugin_utils/_moves.py, installed with this code by the reconcile role). When no node's
services change, nothing runs: the plan file is brought up to date and the change is applied. Otherwise
the move command (the playbook nanoedge.core.move) gets the plan and the nodes in a move file: it starts
the services on the nodes that gain one and rewires their consumers first, then removes them from the
nodes that lose one (make-before-break). The plan file is written once that run succeeded.

Whatever keeps a change from being re-planned here (no plan or services file yet, an unreadable one,
controller code missing) is said in the run's reason, and the full command runs instead."""

from __future__ import annotations

import json
import os
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._atomic import write_atomically

MOVE_FILE = "move.json"


class Move(t.NamedTuple):
    """A re-planned change: the plan document to write, the nodes it touches and the move file's content."""

    document: t.Dict[str, t.Any]
    hosts: t.Dict[str, t.List[str]]
    move: t.Dict[str, t.Any]

    def touched(self) -> t.List[str]:
        seen: t.List[str] = []
        for kind in ("start", "rewire", "stop"):
            seen.extend(node for node in self.hosts[kind] if node not in seen)
        return seen

    def describe(self) -> str:
        parts = ["%s on %s" % (kind, ", ".join(nodes)) for kind, nodes in self.hosts.items() if nodes]
        return "; ".join(parts) if parts else "no node's services change"


def _read_json(path: str, what: str) -> t.Any:
    if not path:
        raise ValueError("no %s is configured" % what)
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise ValueError("no %s yet (%s)" % (what, path)) from None
    except (OSError, ValueError) as exc:
        raise ValueError("cannot read the %s %s: %s" % (what, path, exc)) from None


class Targeted:
    """Re-plans changes for the Reconciler; ``enabled`` when the configuration has a move command."""

    def __init__(self, config: t.Mapping[str, t.Any]) -> None:
        self.config = config
        self.enabled = bool(config["move_command"])
        self.move_file = os.path.join(config["state_dir"], MOVE_FILE)

    def command(self) -> t.List[str]:
        return list(self.config["move_command"]) + ["--extra-vars", "@" + self.move_file]

    def prepare(self, profiles: t.Mapping[str, t.Any]) -> t.Union[Move, str]:
        """The change re-planned from the live ``profiles``, or why it cannot be here (then a full run)."""
        try:
            previous = _read_json(self.config["plan_file"], "plan file")
            services = _read_json(self.config["services_file"], "services file")
        except ValueError as exc:
            return str(exc)
        if not isinstance(previous, dict) or not isinstance(services, list):
            return "the plan file is no plan document, or the services file no list of services"
        try:
            # Controller code, installed beside this package by the reconcile role; imported here so that
            # the package stays importable without it (the agent and the registry share module_utils).
            from ansible_collections.nanoedge.core.plugins.plugin_utils._moves import replan  # pylint: disable=import-outside-toplevel
        except ImportError as exc:
            return "cannot re-plan here (%s)" % exc
        try:
            result = replan(services, profiles, self.config["workers"], previous, registry=self.config["registry"],
                            directory=str(self.config.get("directory") or ""))
        except ValueError as exc:
            return "cannot re-plan here: %s" % exc
        if result.document["critical_unplaced"]:
            # the full run stops on it as well, deploying nothing, and says why in its log
            return "critical service(s) %s cannot be placed" % ", ".join(result.document["critical_unplaced"])
        planned = result.document["nodes"]
        move = {"nanoedge_move": {
            "plan": result.plan, "services": services,
            # each node's platform, as the site playbook takes it from the profile
            "platforms": {node: str(profiles[node].get("arch") or "") for node in planned},
            "start": result.hosts["start"], "rewire": result.hosts["rewire"], "stop": result.hosts["stop"],
        }}
        return Move(result.document, result.hosts, move)

    def write_move(self, move: Move) -> None:
        write_atomically(self.move_file, json.dumps(move.move, sort_keys=True) + "\n", mode=0o600)

    def commit(self, move: Move) -> None:
        """The plan file, once the nodes run the plan (OSError when it cannot be written; the old file stays)."""
        write_atomically(self.config["plan_file"], json.dumps(move.document, indent=2, sort_keys=True) + "\n",
                         mode=0o644)
