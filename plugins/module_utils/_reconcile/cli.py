# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The command line of the reconcile daemon."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._coap import AIOCOAP_IMPORT_ERROR, HAS_AIOCOAP
from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.config import ConfigError, load_config
from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.daemon import (
    EXIT_CONFIG, EXIT_OK, EXIT_UNREACHABLE, Reconciler,
)

PROG = "nanoedge-reconcile"
DEFAULT_CONFIG = "/etc/nanoedge-reconcile/config.json"


def parse_args(argv: t.Optional[t.Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Watch the profile registry and run plan + deploy when the live nodes change"
                               " (only on the manager that holds the leadership lease).")
    parser.add_argument("action", nargs="?", choices=("status",),
                        help="status: print this manager's role, term and lease from the state file, and exit")
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="configuration file (default %(default)s)")
    parser.add_argument("--check-config", action="store_true", help="validate the configuration and exit")
    parser.add_argument("--once", action="store_true",
                        help="read the registry once, stand for the lease (waiting a few seconds for it), run the"
                             " command if this manager leads and something changed since the last successful run,"
                             " and exit")
    parser.add_argument("--force", action="store_true", help="with --once: run even when nothing changed")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    args = parser.parse_args(argv)
    if args.force and not args.once:
        parser.error("--force needs --once")
    if args.action and (args.once or args.check_config):
        parser.error("status goes without --once and --check-config")
    return args


# what ``status`` prints, in this order: (state file key, label)
STATUS_FIELDS = (("role", "role"), ("since", "since"), ("manager", "manager"), ("name", "name"),
                 ("term", "term"), ("leader", "leader"), ("lease_remaining", "lease remaining (s)"),
                 ("granted_by", "granted by"), ("majority", "majority"), ("members", "members"),
                 ("candidate_term", "candidate term"), ("lease_error", "lease error"), ("updated", "updated"))


def status_lines(state: t.Mapping[str, t.Any]) -> t.List[str]:
    """The state file's leadership and last run, one ``label: value`` line each."""
    lines = []
    for key, label in STATUS_FIELDS:
        value = state.get(key)
        if isinstance(value, list):
            value = ", ".join(str(item) for item in value) or "-"
        elif isinstance(value, bool):
            value = "yes" if value else "no"
        lines.append("%s: %s" % (label, "-" if value is None else value))
    last_run = state.get("last_run") if isinstance(state.get("last_run"), dict) else None
    if last_run:
        lines.append("last run: rc %s, finished %s: %s" % (last_run.get("rc"), last_run.get("finished"),
                                                           last_run.get("reason")))
    else:
        lines.append("last run: -")
    return lines


def show_status(state_dir: str, stream: t.TextIO) -> int:
    path = os.path.join(state_dir, "state.json")
    try:
        with open(path, encoding="utf-8") as handle:
            state = json.load(handle)
    except (OSError, ValueError) as exc:
        _say("%s: cannot read the state file %s: %s" % (PROG, path, exc), sys.stderr)
        return EXIT_UNREACHABLE
    if not isinstance(state, dict):
        _say("%s: the state file %s is not a JSON object" % (PROG, path), sys.stderr)
        return EXIT_UNREACHABLE
    for line in status_lines(state):
        _say(line, stream)
    return EXIT_OK


def _say(text: str, stream: t.TextIO) -> None:
    # the daemon's own lines go to the terminal or the journal as they are, not through logging
    stream.write(text + "\n")
    stream.flush()


def main(argv: t.Optional[t.Sequence[str]] = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr, format="reconcile: %(message)s")
    # aiocoap reports every unanswered request and ICMP error itself; the
    # daemon logs each outage once.
    logging.getLogger("coap").setLevel(logging.CRITICAL)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        _say("%s: configuration %s: %s" % (PROG, args.config, exc), sys.stderr)
        return EXIT_CONFIG
    if args.check_config:
        _say("%s: configuration %s is valid" % (PROG, args.config), sys.stdout)
        return EXIT_OK
    if args.action == "status":
        return show_status(config["state_dir"], sys.stdout)
    if not HAS_AIOCOAP:
        _say("%s: the Python library aiocoap is missing for %s (%s)" % (PROG, sys.executable, AIOCOAP_IMPORT_ERROR),
             sys.stderr)
        return EXIT_CONFIG

    async def run() -> int:
        reconciler = Reconciler(config)
        reconciler.prepare_dirs()
        reconciler.load_state()
        if args.once:
            return await reconciler.once(args.force)
        await reconciler.serve()
        return EXIT_OK

    try:
        return asyncio.run(run())
    except ConfigError as exc:
        _say("%s: configuration %s: %s" % (PROG, args.config, exc), sys.stderr)
        return EXIT_CONFIG
    except OSError as exc:
        _say("%s: %s" % (PROG, exc), sys.stderr)
        return EXIT_CONFIG
