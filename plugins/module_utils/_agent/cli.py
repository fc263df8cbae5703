# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The command line of the agent: the service (the default), one report (``--once``) or the profile (``--print``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils import _coap
from ansible_collections.nanoedge.core.plugins.module_utils._agent.config import (
    DEFAULT_CONFIG, PROG, AgentError, discover, load_config, report_settings, require_aiocoap,
)
from ansible_collections.nanoedge.core.plugins.module_utils._agent.daemon import Agent


def _say(text: str, stream: t.TextIO) -> None:
    stream.write(text + "\n")
    stream.flush()


def report_once(config: t.Mapping[str, t.Any], profile: t.Mapping[str, t.Any]) -> int:
    """Report to every registry once; 0 when at least min_acks stored it, 1 when fewer did."""
    try:
        outcomes = _coap.run_report(profile, config["registries"], report_settings(config))
    except (ValueError, _coap.CoapError) as exc:
        raise AgentError(str(exc)) from None
    for outcome in outcomes:
        if outcome.stored:
            _say("%s: %s: %s %s (%s, %d attempt%s)" % (
                PROG, outcome.registry, outcome.action, profile["node"], outcome.code,
                outcome.attempts, "" if outcome.attempts == 1 else "s"), sys.stdout)
        else:
            _say("%s: %s: failed: %s" % (PROG, outcome.registry, outcome.error), sys.stderr)
    stored = sum(1 for outcome in outcomes if outcome.stored)
    if stored < config["min_acks"]:
        _say("%s: %d of %d registries stored the profile of %s, fewer than min_acks=%d" % (
            PROG, stored, len(outcomes), profile["node"], config["min_acks"]), sys.stderr)
        return 1
    return 0


async def _serve(config: t.Mapping[str, t.Any], log: logging.Logger) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_event_loop()
    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, stop.set)
    await Agent(config, log).serve(stop)


def run(args: argparse.Namespace) -> int:
    require_aiocoap()
    config = load_config(args.config)
    if args.once or args.print:
        profile, warnings = discover(config)
        for warning in warnings:
            _say("%s: warning: %s" % (PROG, warning), sys.stderr)
        if args.print:
            _say(json.dumps(profile, indent=2, sort_keys=True), sys.stdout)
            return 0
        return report_once(config, profile)
    logging.basicConfig(level=args.log_level, stream=sys.stderr, format="%s: %%(message)s" % PROG)
    # aiocoap reports every unanswered request and ICMP error itself; the service logs each outage once
    logging.getLogger("coap").setLevel(logging.CRITICAL)
    asyncio.run(_serve(config, logging.getLogger(PROG)))
    return 0


def main(argv: t.Optional[t.Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Discover this node's resources and keep the profile registries informed: a service"
                               " that reports on hardware events and beats every second, or one report (--once).")
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="configuration file (default %(default)s)")
    # Read by the entry point, before this module can be imported.
    parser.add_argument("--lib", help="folder holding ansible_collections/nanoedge/core/plugins/module_utils "
                                      "(default: lib beside the program)")
    parser.add_argument("--print", action="store_true", help="print the discovered profile instead of reporting it")
    parser.add_argument("--once", action="store_true", help="report once and exit (the status says how it went)")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    args = parser.parse_args(argv)
    try:
        return run(args)
    except AgentError as exc:
        _say("%s: %s" % (PROG, exc), sys.stderr)
        return 2
