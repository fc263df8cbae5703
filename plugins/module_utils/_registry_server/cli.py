# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The command line of the profile registry."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._coap import DEFAULT_PORT
from ansible_collections.nanoedge.core.plugins.module_utils._leadership import DEFAULT_DRIFT, DEFAULT_LEASE, MAX_LEASE
from ansible_collections.nanoedge.core.plugins.module_utils._profile import NODE_NAME_RE
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server import LOG
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.aiocoap_dep import aiocoap, require_aiocoap
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.leadership import (
    TERM_FILE, TermFileError, read_term,
)
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.limits import (
    add_limit_options, check_limit_options,
)
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.liveness import (
    DEFAULT_CONFIRM_AFTER, DEFAULT_SUSPECT_AFTER,
)
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.server import serve
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.store import DatabaseLock, check_database


class _ArgumentParser(argparse.ArgumentParser):
    """@FILE holds one argument per line; blank lines and # comments are skipped."""

    def convert_arg_line_to_args(self, arg_line: str) -> t.List[str]:
        line = arg_line.strip()
        return [] if not line or line.startswith("#") else [line]


def parse_args(argv: t.Optional[t.Sequence[str]] = None) -> argparse.Namespace:
    parser = _ArgumentParser(
        prog="nanoedge_registry.py", fromfile_prefix_chars="@",
        description="nanoedge.core CoAP profile registry (PUT/GET/DELETE /profiles/{node}, GET /profiles)."
                    " Options can also come from a file, one per line: @FILE.")
    parser.add_argument("--bind", default="::", help="address to listen on (default: all, IPv6 and IPv4)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help="UDP port (default %(default)s; 0 picks a free one)")
    parser.add_argument("--db", required=True, help="SQLite database file (created when missing)")
    parser.add_argument("--default-lifetime", type=int, default=300, metavar="SECONDS",
                        help="lease when a PUT has no ?lt= (default 300)")
    parser.add_argument("--max-lifetime", type=int, default=86400, metavar="SECONDS",
                        help="largest accepted ?lt= (default 86400)")
    parser.add_argument("--max-body", type=int, default=262144, metavar="BYTES",
                        help="largest accepted profile, also for block-wise uploads (default 262144)")
    parser.add_argument("--rcvbuf", type=int, default=4 * 1024 * 1024, metavar="BYTES",
                        help="UDP receive buffer of the server socket (default 4 MiB)")
    parser.add_argument("--security", choices=("on", "off"), default=None,
                        help="OSCORE: on requires --oscore-contexts (default: on when that is given)")
    parser.add_argument("--oscore-contexts", metavar="DIR",
                        help="one OSCORE security context per peer: DIR/<node or manager>/settings.json")
    parser.add_argument("--managers", default="", metavar="ID[,ID...]",
                        help="with security on, only these OSCORE identities may GET /profiles and any"
                             " /profiles/{node}; an authenticated worker may still GET its own profile"
                             " (default: GETs open)")
    add_limit_options(parser)
    add_liveness_options(parser)
    parser.add_argument("--watchdog", type=float, default=0, metavar="SECONDS",
                        help="end the process when its event loop has not run for this long, so that the"
                             " container's restart policy starts it again (default 0: off; under systemd"
                             " with WatchdogSec=, systemd's watchdog is used instead)")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    args = parser.parse_args(argv)
    if args.security is None:
        args.security = "on" if args.oscore_contexts else "off"
    if args.security == "on" and not args.oscore_contexts:
        parser.error("--security on needs --oscore-contexts DIR")
    if args.default_lifetime < 1 or args.max_lifetime < 1 or args.default_lifetime > args.max_lifetime:
        parser.error("need 1 <= --default-lifetime <= --max-lifetime")
    if args.max_body < 1:
        parser.error("--max-body must be positive")
    if args.watchdog < 0:
        parser.error("--watchdog must be 0 (off) or a number of seconds")
    if not 0 <= args.port <= 65535:
        parser.error("--port must be from 0 to 65535")
    check_limit_options(parser, args)
    check_liveness_options(parser, args)
    return args


def add_liveness_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--suspect-after", type=float, default=DEFAULT_SUSPECT_AFTER, metavar="SECONDS",
                        help="a node that beat is suspected after this long without a beat (default %(default)s)")
    parser.add_argument("--confirm-after", type=float, default=DEFAULT_CONFIRM_AFTER, metavar="SECONDS",
                        help="and lost (hidden from /profiles) after this long (default %(default)s)")
    parser.add_argument("--name", default="", metavar="MANAGER",
                        help="this manager's name: serves PUT/GET /leadership (default: no leadership)")
    parser.add_argument("--cluster-managers", default="", metavar="NAME[,NAME...]",
                        help="every manager in order of preference, --name among them (default: --name alone)")
    parser.add_argument("--members", default="", metavar="NAME[,NAME...]",
                        help="the cluster's members (managers and workers) whose grants count for leadership;"
                             " their beats are always tracked (default: the managers)")
    parser.add_argument("--members-file", metavar="FILE", help="more members, one name per line")
    parser.add_argument("--lease", type=float, default=DEFAULT_LEASE, metavar="SECONDS",
                        help="leadership lease a member grants (default %(default)s)")
    parser.add_argument("--clock-drift", type=float, default=DEFAULT_DRIFT, metavar="FRACTION",
                        help="bound on the clock rate difference between two members (default %(default)s)")


def _names(parser: argparse.ArgumentParser, option: str, text: str) -> t.List[str]:
    names = [name.strip() for name in text.replace("\n", ",").split(",") if name.strip()]
    for name in names:
        if not NODE_NAME_RE.fullmatch(name):
            parser.error("%s: %r is not a node name (%s)" % (option, name, NODE_NAME_RE.pattern))
    return list(dict.fromkeys(names))


def check_liveness_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not 0 < args.suspect_after < args.confirm_after:
        parser.error("need 0 < --suspect-after < --confirm-after")
    if not 0 < args.lease <= MAX_LEASE:
        parser.error("--lease must be more than 0 and at most %g seconds" % MAX_LEASE)
    if not 0 <= args.clock_drift < 0.5:
        parser.error("--clock-drift must be from 0 to less than 0.5")
    args.name = _names(parser, "--name", args.name)[0] if args.name else ""
    args.cluster_managers = _names(parser, "--cluster-managers", args.cluster_managers) or (
        [args.name] if args.name else [])
    text = args.members
    if args.members_file:
        try:
            with open(args.members_file, encoding="utf-8") as handle:
                text += "," + ",".join(line.split("#", 1)[0] for line in handle)
        except OSError as exc:
            parser.error("--members-file: %s" % exc)
    args.members = _names(parser, "--members", text) or list(args.cluster_managers)
    if args.name and args.name not in args.cluster_managers:
        parser.error("--name %s is not one of --cluster-managers (%s)" % (args.name, ", ".join(args.cluster_managers)))


def main(argv: t.Optional[t.Sequence[str]] = None) -> int:
    args = parse_args(argv)
    require_aiocoap()
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # aiocoap logs every malformed datagram at warning level; a fuzzing or
    # misconfigured peer must not flood the journal.
    logging.getLogger("coap-server").setLevel(max(logging.ERROR, logging.getLogger().level))
    os.makedirs(os.path.dirname(os.path.abspath(args.db)), exist_ok=True)
    # Before anything reads the database: a second registry must not move
    # aside or write the file the first one is serving from.
    lock = DatabaseLock(args.db)
    try:
        if args.name:
            args.term_file = os.path.join(os.path.dirname(os.path.abspath(args.db)), TERM_FILE)
            try:
                args.highest_term = read_term(args.term_file)
            except TermFileError as exc:
                LOG.error("%s", exc)
                raise SystemExit(str(exc)) from None
        check_database(args.db)
        asyncio.run(serve(args))
    except (OSError, aiocoap.error.Error) as exc:
        LOG.error("cannot serve on [%s]:%d: %s", args.bind, args.port, exc)
        return 1
    finally:
        lock.release()
    return 0
