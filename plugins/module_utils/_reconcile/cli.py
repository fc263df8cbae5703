# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The command line of the reconcile daemon."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._coap import AIOCOAP_IMPORT_ERROR, HAS_AIOCOAP
from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.config import ConfigError, load_config
from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.daemon import EXIT_CONFIG, EXIT_OK, Reconciler

PROG = "nanoedge-reconcile"
DEFAULT_CONFIG = "/etc/nanoedge-reconcile/config.json"


def parse_args(argv: t.Optional[t.Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Watch the profile registry and run plan + deploy when the live nodes change"
                               " (only on the active manager).")
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="configuration file (default %(default)s)")
    parser.add_argument("--check-config", action="store_true", help="validate the configuration and exit")
    parser.add_argument("--once", action="store_true",
                        help="read the registry and the peers once, run the command if something changed since"
                             " the last successful run, and exit")
    parser.add_argument("--force", action="store_true", help="with --once: run even when nothing changed")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    args = parser.parse_args(argv)
    if args.force and not args.once:
        parser.error("--force needs --once")
    return args


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
