# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running the profile registry: OSCORE credentials, the server sockets and
the serving loop."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._registry_server import LOG
from ansible_collections.nanoedge.core.plugins.module_utils._leadership import GrantBook
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.aiocoap_dep import aiocoap
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.aiocoap_tuning import (
    cheaper_addresses, cheaper_option_copies,
)
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.beats import BeatResource, LivenessResource, wire
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.directory import Directory
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.directory_resources import (
    InstancesResource, ServicesResource,
)
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.leadership import Leadership, LeadershipResource
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.limits import limits_of
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.liveness import TICK, Liveness
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.model import Registry
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.oscore_site import load_credentials, oscore_site
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.resources import (
    ProfilesResource, Settings, build_site, diagnostic,
)
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.store import Committer, Store
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.watchdog import notify, start_watchdogs

SWEEP_INTERVAL = 1.0


def tolerate_undecodable_datagrams() -> None:
    """aiocoap 0.4.17 lets e.g. invalid UTF-8 in a Uri-Path escape its
    datagram handler as UnicodeDecodeError (a traceback per datagram) instead
    of its own UnparsableMessage, which it drops quietly: turn the one into
    the other where the udp6 transport decodes."""
    from aiocoap import error
    from aiocoap.transports import udp6

    base = aiocoap.Message

    class TolerantMessage(base):  # type: ignore[misc,valid-type]
        @classmethod
        def decode(cls, rawdata: bytes, remote: t.Any = None) -> aiocoap.Message:
            try:
                return base.decode(rawdata, remote)
            except error.UnparsableMessage:
                raise
            except Exception as exc:
                raise error.UnparsableMessage("undecodable datagram: %s" % exc) from None

    if getattr(udp6, "Message", None) is base:
        udp6.Message = TolerantMessage


def server_sockets(context: aiocoap.Context) -> t.List[t.Any]:
    sockets = []
    for interface in context.request_interfaces:
        message_interface = getattr(getattr(interface, "token_interface", None), "message_interface", None)
        transport = getattr(message_interface, "transport", None)
        if transport is not None:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sockets.append(sock)
    return sockets


def enlarge_receive_buffer(sock: t.Any, size: int) -> int:
    """Set SO_RCVBUF; as root, SO_RCVBUFFORCE passes net.core.rmem_max."""
    force = getattr(socket, "SO_RCVBUFFORCE", None)
    try:
        if force is None:
            raise PermissionError
        sock.setsockopt(socket.SOL_SOCKET, force, size)
    except PermissionError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    # Linux reports twice the requested size (bookkeeping overhead).
    return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))


def liveness_site(args: argparse.Namespace, registry: Registry, resource: ProfilesResource, settings: Settings,
                  directory: Directory) -> t.Tuple[Liveness, t.Any]:
    """The failure detector and the site: /profiles, /beat, /liveness, the directory's /instances and /services
    and, with --name, /leadership."""
    members = frozenset(args.members)
    liveness = Liveness(args.suspect_after, args.confirm_after, max_nodes=args.max_profiles, always=members,
                        tracked=lambda node: node in registry.entries)
    leadership = None
    others: t.List[t.Tuple[str, t.Any]] = []
    if args.name:
        book = GrantBook(args.name, args.cluster_managers, args.members, lease=args.lease, drift=args.clock_drift,
                         highest_term=args.highest_term)
        leadership = Leadership(book, args.term_file, args.highest_term)
        others.append(("leadership", LeadershipResource(leadership, settings.security, settings.managers, diagnostic,
                                                        registry.collection_etag)))
        LOG.info("leadership: manager %s (%d of %s), %d members, lease %g s, highest term %d (%s)", args.name,
                 book.index + 1, ",".join(args.cluster_managers), len(book.members), args.lease, args.highest_term,
                 args.term_file)
    view = LivenessResource(liveness, settings.security, settings.managers, resource.observer_count, diagnostic)
    others.append(("liveness", view))
    wire(registry, liveness, view)
    beats = BeatResource(registry, liveness, settings.security, leadership, diagnostic)
    LOG.info("liveness: suspected after %g s, lost after %g s without a beat", args.suspect_after, args.confirm_after)
    return liveness, build_site(resource, beats, others, directory_subtrees(directory, resource, settings))


def directory_subtrees(directory: Directory, resource: ProfilesResource,
                       settings: Settings) -> t.List[t.Tuple[str, t.Any]]:
    """The service directory: /instances (written by the nodes) and /services (read by every peer)."""
    return [("instances", InstancesResource(directory, resource, diagnostic)),
            ("services", ServicesResource(directory, settings.security, resource.observer_count, diagnostic))]


async def serve(args: argparse.Namespace) -> None:
    store = Store(args.db)
    committer = Committer(store)
    committer.start()
    registry = Registry(store, committer, max_profiles=args.max_profiles)
    registry.load()

    security = args.security == "on"
    managers = frozenset(m for m in (args.managers or "").split(",") if m)
    settings = Settings(args.default_lifetime, args.max_lifetime, args.max_body, security, managers, limits_of(args))
    resource = ProfilesResource(registry, settings)
    directory = Directory(registry, max_nodes=args.max_profiles)
    liveness, site = liveness_site(args, registry, resource, settings, directory)

    tolerate_undecodable_datagrams()
    cheaper_addresses()
    cheaper_option_copies()
    # aiocoap sets SO_REUSEPORT, which lets a second registry bind the same
    # port and take half of the reports: without it, the second bind fails.
    os.environ["AIOCOAP_REUSE_PORT"] = "0"
    bind = (args.bind, args.port)
    if security:
        credentials, names = load_credentials(args.oscore_contexts)
        site = oscore_site(site, credentials)
        transports = ["oscore", "udp6"]
        LOG.info("OSCORE on: %d security context(s) (%s); GETs %s", len(names), ", ".join(names),
                 "restricted to " + ", ".join(sorted(managers)) if managers else "open")
    else:
        transports = ["udp6"]
        credentials = None
    try:
        context = await aiocoap.Context.create_server_context(
            site, bind, server_credentials=credentials, transports=transports)
    except aiocoap.error.ResolutionError:
        if args.bind != "::":
            raise
        # Where IPv6 is switched off (Docker's default networks), "::" is not
        # routable; the dual-stack socket still serves IPv4 via 0.0.0.0.
        LOG.warning("IPv6 is not available here, listening on IPv4 only")
        context = await aiocoap.Context.create_server_context(
            site, ("0.0.0.0", args.port), server_credentials=credentials, transports=transports)

    for sock in server_sockets(context):
        effective = enlarge_receive_buffer(sock, args.rcvbuf)
        if effective < args.rcvbuf:
            LOG.warning("SO_RCVBUF is %d bytes, asked for %d: raise net.core.rmem_max", effective, args.rcvbuf)
        host, port = sock.getsockname()[:2]
        LOG.info("ready on udp [%s]:%d (SO_RCVBUF %d bytes, db %s)", host, port, effective, args.db)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    async def sweeper() -> None:
        # The detector every TICK (a look at a heap's top when nothing is due),
        # leases too; the clean-ups that scan every SWEEP_INTERVAL.
        ticks = 0
        every = max(1, round(SWEEP_INTERVAL / TICK))
        while True:
            await asyncio.sleep(TICK)
            liveness.tick()
            registry.expire_due()
            directory.expire_due()
            ticks += 1
            if ticks % every == 0:
                resource.sweep()

    sweep = loop.create_task(sweeper(), name="registry-sweeper")
    feeder, own_watchdog = start_watchdogs(loop, args.watchdog)
    await stop.wait()
    LOG.info("shutting down")
    notify("STOPPING=1")
    for task in (sweep, feeder):
        if task is not None:
            task.cancel()
    if own_watchdog is not None:
        own_watchdog.stop()
    await context.shutdown()
    await committer.stop()
    store.close()
