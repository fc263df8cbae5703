# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""OC nanoservice: the oxygen controller. Drives the oxygen valve on
request: ``PUT /valve`` with ``{"flow_lpm": 2.5}`` (or ``{"open": false}``)
sets the flow, ``GET /valve`` (observable) tells the current state.

The state goes to the actuator path (``--actuator``) as JSON, written
atomically, which is what the valve driver (the relay HAT's driver, or the
demo cluster's fake valve) reads; the last state is restored from it on
start, so a restart does not change the patient's oxygen flow.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import tempfile
import typing as t

from nanoedge_ns import coapio, service

log = logging.getLogger("oc")

COMMAND_KEYS = ("flow_lpm", "open", "reason")


def apply_command(current: t.Dict[str, t.Any], command: t.Any, max_flow: float) -> t.Dict[str, t.Any]:
    """The valve state after ``command``; ValueError names what is wrong."""
    if not isinstance(command, dict) or not command:
        raise ValueError("oc: the command must be a JSON object with flow_lpm and/or open")
    unknown = sorted(str(k) for k in command if k not in COMMAND_KEYS)
    if unknown:
        raise ValueError("oc: unknown key(s) %s (known: %s)" % (", ".join(unknown), ", ".join(COMMAND_KEYS)))
    state = dict(current)
    if "flow_lpm" in command:
        flow = command["flow_lpm"]
        if isinstance(flow, bool) or not isinstance(flow, (int, float)) or not math.isfinite(flow):
            raise ValueError("oc: flow_lpm must be a number, got %r" % (flow,))
        if not 0 <= flow <= max_flow:
            raise ValueError("oc: flow_lpm=%r out of range 0..%g L/min" % (flow, max_flow))
        state["flow_lpm"] = float(flow)
        state["open"] = flow > 0
    if "open" in command:
        if not isinstance(command["open"], bool):
            raise ValueError("oc: open must be true or false, got %r" % (command["open"],))
        state["open"] = command["open"]
        if not command["open"]:
            state["flow_lpm"] = 0.0
        elif "flow_lpm" not in command and not state.get("flow_lpm"):
            raise ValueError("oc: opening the valve needs a flow_lpm > 0")
    reason = command.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise ValueError("oc: reason must be a string, got %r" % (reason,))
    state["reason"] = reason
    return state


def write_state(path: str, state: t.Dict[str, t.Any]) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=folder, prefix=".valve-")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(state, handle, sort_keys=True)
            handle.write("\n")
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def load_state(path: str) -> t.Dict[str, t.Any]:
    closed = {"open": False, "flow_lpm": 0.0, "reason": None, "time": None}
    try:
        with open(path, encoding="utf-8") as handle:
            stored = json.load(handle)
    except FileNotFoundError:
        return closed
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable valve state in %s: %s", path, exc)
        return closed
    return dict(closed, **{k: v for k, v in stored.items() if k in closed})


async def main(args: argparse.Namespace) -> None:
    state = load_state(args.actuator)
    write_state(args.actuator, state)

    def change(command: t.Any) -> t.Dict[str, t.Any]:
        updated = apply_command(state, command, args.max_flow)
        updated["time"] = service.iso(service.now())
        write_state(args.actuator, updated)
        state.clear()
        state.update(updated)
        log.info("valve %s, %.1f L/min (%s)", "open" if state["open"] else "closed", state["flow_lpm"],
                 state["reason"] or "no reason given")
        return state

    context = await coapio.serve({"valve": coapio.make_json_resource(lambda: state, change)}, args.bind, args.port)
    try:
        await coapio.run_forever()
    finally:
        await context.shutdown()


def cli(argv: t.Optional[t.Sequence[str]] = None) -> int:
    parser = service.parser("oc", __doc__, port=5706)
    parser.add_argument("--actuator", default=service.env("oc_actuator", "/run/nanoedge/oc/valve.json"),
                        help="where the valve state is written (env NANOEDGE_OC_ACTUATOR)")
    parser.add_argument("--max-flow", type=float, default=15.0, help="largest flow in L/min (default 15)")
    return service.run(main, parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(cli())
