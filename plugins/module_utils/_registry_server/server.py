# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running the profile registry: OSCORE credentials, the server sockets and
the serving loop."""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import signal
import socket
import typing as t
from pathlib import Path

from ansible_collections.nanoedge.core.plugins.module_utils._registry_server import LOG, PROG
from ansible_collections.nanoedge.core.plugins.module_utils._leadership import GrantBook
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.aiocoap_dep import aiocoap
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.beats import BeatResource, LivenessResource, wire
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.leadership import Leadership, LeadershipResource
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.limits import limits_of
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.liveness import TICK, Liveness
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.model import Registry
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.resources import (
    ProfilesResource, Settings, build_site, diagnostic,
)
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.store import Committer, Store
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.watchdog import notify, start_watchdogs

SWEEP_INTERVAL = 1.0


def load_credentials(directory: str) -> t.Tuple[t.Any, t.List[str]]:
    """One OSCORE security context per peer: DIR/<name>/settings.json (+ secret.json)."""
    from aiocoap.credentials import CredentialsMap

    base = Path(directory)
    if not base.is_dir():
        raise SystemExit("%s: --oscore-contexts %s is not a directory" % (PROG, directory))
    entries = {}
    names = []
    for child in sorted(base.iterdir()):
        if child.is_dir() and ((child / "settings.json").is_file() or (child / "secret.json").is_file()):
            entries[":" + child.name] = {"oscore": {"basedir": str(child) + "/"}}
            names.append(child.name)
    if not names:
        raise SystemExit("%s: no OSCORE security context (NAME/settings.json) under %s" % (PROG, directory))
    credentials = _indexed(CredentialsMap)()
    try:
        credentials.load_from_dict(entries)
    except Exception as exc:
        raise SystemExit("%s: cannot load OSCORE contexts from %s: %s" % (PROG, directory, exc)) from None
    credentials.reindex()
    return credentials, names


def _indexed(base: t.Any) -> t.Any:
    """aiocoap's CredentialsMap finds the context of a request by asking every
    context in turn (a beat from each of 500 workers each second is 125,000
    questions); this one looks the (kid, kid context) up in a dict first."""
    from aiocoap.oscore import COSE_KID, COSE_KID_CONTEXT

    class IndexedCredentials(base):  # type: ignore[misc,valid-type]
        def reindex(self) -> None:
            self.by_kid = {(getattr(item, "recipient_id", None), getattr(item, "id_context", None)): item
                           for item in self.values() if hasattr(item, "get_oscore_context_for")}

        def find_oscore(self, unprotected: t.Any) -> t.Any:
            item = getattr(self, "by_kid", {}).get((unprotected.get(COSE_KID), unprotected.get(COSE_KID_CONTEXT)))
            context = item.get_oscore_context_for(unprotected) if item is not None else None
            return context if context is not None else super().find_oscore(unprotected)

    return IndexedCredentials


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


def cheaper_address_repr() -> None:
    """aiocoap names a task after every request it renders ("Rendering for
    %r"), twice under OSCORE, and the repr of a UDP address parses the address
    and looks up the interface each time: a third of the cost of a beat. The
    repr of an address depends on the socket address and the packet info
    only, so it is kept for the peers seen last."""
    from aiocoap.transports import udp6

    cls = udp6.UDP6EndpointAddress
    original = cls.__repr__
    if getattr(original, "cached", False):
        return
    cache: "collections.OrderedDict[t.Any, str]" = collections.OrderedDict()

    def __repr__(self: t.Any) -> str:
        try:
            key = (self.sockaddr, self.pktinfo)
            text = cache.get(key)
        except TypeError:  # not hashable: no caching
            return str(original(self))
        if text is None:
            text = cache[key] = original(self)
            if len(cache) > 4096:
                cache.popitem(last=False)
        return text

    __repr__.cached = True  # type: ignore[attr-defined]
    cls.__repr__ = __repr__


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


def liveness_site(args: argparse.Namespace, registry: Registry, resource: ProfilesResource,
                  settings: Settings) -> t.Tuple[Liveness, t.Any]:
    """The failure detector and the site: /profiles, /beat, /liveness and, with --name, /leadership."""
    members = frozenset(args.members)
    liveness = Liveness(args.suspect_after, args.confirm_after, max_nodes=args.max_profiles, always=members,
                        tracked=lambda node: node in registry.entries)
    leadership = None
    others: t.List[t.Tuple[str, t.Any]] = []
    if args.name:
        book = GrantBook(args.name, args.cluster_managers, args.members, lease=args.lease, drift=args.clock_drift,
                         highest_term=args.highest_term)
        leadership = Leadership(book, args.term_file, args.highest_term)
        others.append(("leadership", LeadershipResource(leadership, settings.security, settings.managers, diagnostic)))
        LOG.info("leadership: manager %s (%d of %s), %d members, lease %g s, highest term %d (%s)", args.name,
                 book.index + 1, ",".join(args.cluster_managers), len(book.members), args.lease, args.highest_term,
                 args.term_file)
    view = LivenessResource(liveness, settings.security, settings.managers, resource.observer_count, diagnostic)
    others.append(("liveness", view))
    wire(registry, liveness, view)
    beats = BeatResource(registry, liveness, settings.security, leadership, diagnostic)
    LOG.info("liveness: suspected after %g s, lost after %g s without a beat", args.suspect_after, args.confirm_after)
    return liveness, build_site(resource, beats, others)


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
    liveness, site = liveness_site(args, registry, resource, settings)

    tolerate_undecodable_datagrams()
    cheaper_address_repr()
    # aiocoap sets SO_REUSEPORT, which lets a second registry bind the same
    # port and take half of the reports: without it, the second bind fails.
    os.environ["AIOCOAP_REUSE_PORT"] = "0"
    bind = (args.bind, args.port)
    if security:
        from aiocoap.oscore_sitewrapper import OscoreSiteWrapper

        credentials, names = load_credentials(args.oscore_contexts)
        site = OscoreSiteWrapper(site, credentials)
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
