# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The CoAP parts of the node's service directory (see ``directory``): the loopback
resources ``/local/instances/{service}`` and ``/local/services[/{name}]``, the
forwarding of this node's list to every registry and the observation of their
``/services``.

Standard library plus aiocoap (under the guard of ``_coap``), Python >= 3.9.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils import _coap
from ansible_collections.nanoedge.core.plugins.module_utils._agent.directory import (
    DEFAULT_LIFETIME, LocalInstances, ManagersView, encode,
)
# aiocoap's resource classes, or stand-ins where it is missing (the agent names what is missing when it starts)
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.aiocoap_dep import (
    ObservableResource as _Observable,
    PathCapable as _PathCapable,
    Resource as _Resource,
)

# Seconds before a registry whose observation ended or failed is observed again (doubling up to the cap).
REOBSERVE_FIRST = 0.5
REOBSERVE_CAP = 8.0
# A registry that answers /services without the Observe option (its cap on observations is reached) is polled.
POLL_INTERVAL = 2.0
# Seconds before observing again after a notification came in blocks while the list changed (aiocoap's
# ResourceChanged): no failure, only a burst of registrations, so at once and without logging.
REOBSERVE_CHANGED = 0.05
# Seconds after the start during which an empty list is not sent: an agent that restarted knows none of the
# node's running services until they renew (within the default lifetime of a local registration), and must
# not tell the registries meanwhile that there are none.
STARTUP_GRACE = float(DEFAULT_LIFETIME)
# How long the first lookup waits for the managers' first answer.
FIRST_ANSWER_WAIT = 2.0

# (registry, method, path, query, payload or None, observe) -> a client request object of aiocoap
Requester = t.Callable[..., t.Any]


class LocalDirectory:
    """``registries``: the managers' registry URLs; ``context_for(authority)``: the agent's client context
    for that registry (OSCORE-protected like its beats and reports)."""

    def __init__(self, node: str, registries: t.Sequence[str], context_for: t.Callable[[str], t.Any],
                 lifetime: int, renew: float, log: logging.Logger, clock: t.Callable[[], float] = time.time,
                 timeout: float = 5.0) -> None:
        self.node = node
        self.registries = {url: _coap.parse_registry(url) for url in registries}
        self.context_for = context_for
        self.lifetime = lifetime
        self.renew = renew
        self.log = log
        self.timeout = timeout
        self.local = LocalInstances(node, clock)
        self.view = ManagersView()
        # (registry, "list" or "lookup") -> its current trouble: the list sent and the lookups fail apart
        self.trouble: t.Dict[t.Tuple[str, str], t.Optional[str]] = {}
        self._sending: t.Dict[str, asyncio.Future] = {}
        self._again: t.Set[str] = set()
        self._observing: t.Dict[str, asyncio.Future] = {}
        self._tasks: t.List[asyncio.Future] = []
        self._server: t.Any = None
        self._quiet_until = time.monotonic() + STARTUP_GRACE  # no empty list before (see STARTUP_GRACE)
        self.heard = asyncio.Event()  # set once a registry's /services has been heard
        self.lookups = _Lookups(self)

    # -- the loopback server ----------------------------------------------

    async def start(self, port: int, bind: str = "127.0.0.1") -> None:
        aiocoap = _coap.aiocoap
        site = aiocoap.resource.Site()
        site.add_resource(["local", "instances"], _Registrations(self))
        site.add_resource(["local", "services"], self.lookups)
        site.add_resource(["local", "services"], _Front(self.lookups))  # a Site routes only below a PathCapable
        self._server = await aiocoap.Context.create_server_context(site, bind=(bind, port), transports=["udp6"])
        self._tasks.append(asyncio.ensure_future(self._upkeep()))
        self.log.info("service directory on coap://%s:%d/local (renewed every %gs)", bind, port, self.renew)

    async def close(self) -> None:
        for task in self._tasks + list(self._sending.values()) + list(self._observing.values()):
            task.cancel()
        await asyncio.gather(*self._tasks, *self._sending.values(), *self._observing.values(), return_exceptions=True)
        if self._server is not None:
            await self._server.shutdown()

    # -- registrations ----------------------------------------------------------

    def register(self, service: str, body: t.Any) -> t.Tuple[bool, int]:
        created, changed, lifetime = self.local.register(service, body)
        self._quiet_until = 0.0  # the node's list is known from here on
        if created:
            self.log.info("registered %s/%s at %s", service, body.get("instance", "main"), body.get("uri"))
        if changed:
            self.forward_all()
        return created, lifetime

    def unregister(self, service: str, instance: str) -> bool:
        removed = self.local.remove(service, instance)
        if removed:
            self._quiet_until = 0.0
            self.log.info("unregistered %s/%s", service, instance)
            self.forward_all()
        return removed

    async def _upkeep(self) -> None:
        """Local lifetimes every second; the list to every registry every ``renew`` seconds."""
        last_renewal = time.monotonic()
        while True:
            await asyncio.sleep(1.0)
            gone = self.local.expire()
            for service, instance in gone:
                self.log.warning("%s/%s stopped renewing its registration: removed", service, instance)
            if gone or time.monotonic() - last_renewal >= self.renew:
                last_renewal = time.monotonic()
                self.forward_all()

    # -- forwarding ------------------------------------------------------------

    def forward_all(self) -> None:
        for url in self.registries:
            self.forward(url)

    def forward(self, url: str) -> None:
        """The current list to one registry: one PUT at a time, the latest list after the one under way."""
        if not self.local.items and time.monotonic() < self._quiet_until:
            return
        task = self._sending.get(url)
        if task is not None and not task.done():
            self._again.add(url)
            return
        self._sending[url] = asyncio.ensure_future(self._send(url))

    async def _send(self, url: str) -> None:
        while True:
            self._again.discard(url)
            registry = self.registries[url]
            message = _coap.aiocoap.Message(code=_coap.aiocoap.PUT, payload=encode(self.local.listing()),
                                            uri=registry.uri("instances", self.node, query="lt=%d" % self.lifetime))
            message.opt.content_format = _coap.CF_JSON
            try:
                response = await self._request(registry, message)
                if response.code.is_successful():
                    self._note(url, "list", None)
                else:
                    self._note(url, "list", "refused the instance list: %s %s" % (
                        response.code, response.payload[:200].decode("utf-8", "replace")))
            except (asyncio.TimeoutError, OSError, _coap.CoapError, _coap.aiocoap.error.Error) as exc:
                self._note(url, "list", "did not take the instance list: %s" % (exc or type(exc).__name__))
            if url not in self._again:
                return

    async def _request(self, registry: _coap.Registry, message: t.Any) -> t.Any:
        context = self.context_for(registry.authority)
        if context is None:
            raise _coap.CoapError("no client context for %s" % registry.authority)
        request = context.request(message)
        try:
            return await asyncio.wait_for(request.response, self.timeout)
        finally:
            if not request.response.done():
                request.response.cancel()

    def _note(self, url: str, kind: str, trouble: t.Optional[str]) -> None:
        """Log a change of a registry's state only (as the beats do), the list's and the lookups' apart."""
        if trouble == self.trouble.get((url, kind)):
            return
        if trouble is None:
            self.log.info("%s: directory answered again (%s)", url, "the node's list" if kind == "list" else "lookups")
        else:
            self.log.warning("%s: directory %s (logged once until it answers)", url, trouble)
        self.trouble[(url, kind)] = trouble

    # -- lookups ------------------------------------------------------------------

    def observe_managers(self) -> None:
        """From the first lookup on: observe every registry's /services (once)."""
        for url in self.registries:
            if url not in self._observing:
                self._observing[url] = asyncio.ensure_future(self._observe(url))

    def refresh(self, url: str, why: str) -> None:
        """Observe ``url``'s /services anew, and send it this node's list, when the beats tell it restarted
        (it answers again after a silence, or no longer knows this node's profile). A registry that restarts
        forgets its observers without telling them: the observation here would stay silent, and this node
        would keep the registry's list from before (a producer that moved since would never be seen)."""
        if url not in self.registries:
            return
        self.forward(url)
        task = self._observing.get(url)
        if task is None:
            return  # no lookup yet: the first one observes
        task.cancel()
        self.log.info("%s: observing its services anew (%s)", url, why)
        self._observing[url] = asyncio.ensure_future(self._observe(url))

    async def _observe(self, url: str) -> None:
        registry = self.registries[url]
        pause = REOBSERVE_FIRST
        while True:
            try:
                await self._observe_once(url, registry)
                pause = REOBSERVE_FIRST
            except _coap.aiocoap.error.ResourceChanged:
                # a list longer than a block changed while it came (a service moving registers on one node
                # and leaves another): the next answer has the new list
                self.log.debug("%s: its services changed during a block-wise answer; observing again", url)
                await asyncio.sleep(REOBSERVE_CHANGED)
                continue
            except (asyncio.TimeoutError, OSError, ValueError, _coap.CoapError, _coap.aiocoap.error.Error) as exc:
                self._note(url, "lookup", "lookup failed: %s" % (exc or type(exc).__name__))
                pause = min(REOBSERVE_CAP, pause * 2)
            await asyncio.sleep(pause)

    async def _observe_once(self, url: str, registry: _coap.Registry) -> None:
        aiocoap = _coap.aiocoap
        context = self.context_for(registry.authority)
        if context is None:
            raise _coap.CoapError("no client context for %s" % registry.authority)
        request = context.request(aiocoap.Message(code=aiocoap.GET, uri=registry.uri("services"), observe=0))
        try:
            first = await asyncio.wait_for(request.response, self.timeout)
            self._take(url, first)
            # a registry that lost its directory (restarted) is observed anew: it gets this node's list again
            self.forward(url)
            if first.opt.observe is None:
                await asyncio.sleep(POLL_INTERVAL)
                return
            await self._follow(url, request.observation)
        finally:
            if not request.response.done():
                request.response.cancel()
            elif request.observation is not None and not request.observation.cancelled:
                request.observation.cancel()

    async def _follow(self, url: str, observation: t.Any) -> None:
        """Take the notifications until the observation ends; raise what ended it, unless it was cancelled.
        Callbacks rather than ``async for``: aiocoap's iterator re-raises the error that ended an observation
        from its finaliser, a traceback in the journal at each end."""
        queue: asyncio.Queue = asyncio.Queue()
        observation.register_callback(lambda notification: queue.put_nowait((notification, None)))
        observation.register_errback(lambda exc: queue.put_nowait((None, exc)))
        while True:
            notification, ended = await queue.get()
            if notification is not None:
                self._take(url, notification)
                continue
            if isinstance(ended, _coap.aiocoap.error.ObservationCancelled):
                return
            raise ended if isinstance(ended, BaseException) else _coap.CoapError(str(ended))

    def _take(self, url: str, response: t.Any) -> None:
        if not response.code.is_successful():
            raise _coap.CoapError("GET /services: %s %s" % (response.code, response.payload[:200].decode(
                "utf-8", "replace")))
        changed = self.view.update(url, json.loads(response.payload.decode("utf-8")))
        self.heard.set()
        self._note(url, "lookup", None)
        if changed:
            self.lookups.changed(changed)


def _answer(code: t.Any, value: t.Any = None, text: str = "") -> t.Any:
    aiocoap = _coap.aiocoap
    if value is not None:
        return aiocoap.Message(code=code, payload=encode(value), content_format=_coap.CF_JSON)
    return aiocoap.Message(code=code, payload=("nanoedge-agent: %s" % text).encode("utf-8") if text else b"",
                           content_format=_coap.CF_TEXT if text else None)


class _Registrations(_PathCapable, _Resource):  # type: ignore[misc,valid-type]
    """``/local/instances/{service}``: PUT (register, renew), DELETE (``?instance=ID``, default main)."""

    def __init__(self, directory: LocalDirectory) -> None:
        super().__init__()
        self.directory = directory

    async def render(self, request: t.Any) -> t.Any:
        aiocoap = _coap.aiocoap
        path = request.opt.uri_path
        if len(path) != 1 or not path[0]:
            return _answer(aiocoap.NOT_FOUND, text="register at /local/instances/{service}")
        service = path[0]
        if request.code == aiocoap.DELETE:
            query = dict(item.partition("=")[::2] for item in request.opt.uri_query)
            removed = self.directory.unregister(service, query.get("instance", "main"))
            return _answer(aiocoap.DELETED if removed else aiocoap.NOT_FOUND,
                           text="" if removed else "%s is not registered here" % service)
        if request.code != aiocoap.PUT:
            return _answer(aiocoap.METHOD_NOT_ALLOWED, text="PUT or DELETE /local/instances/%s" % service)
        if request.opt.content_format not in (None, _coap.CF_JSON):
            return _answer(aiocoap.UNSUPPORTED_CONTENT_FORMAT, text="send JSON (50)")
        try:
            created, lifetime = self.directory.register(service, json.loads(request.payload.decode("utf-8")))
        except ValueError as exc:  # UnicodeDecodeError and JSON's errors too
            return _answer(aiocoap.BAD_REQUEST, text="%s: %s" % (service, exc))
        return _answer(aiocoap.CREATED if created else aiocoap.CHANGED, {"lifetime": lifetime})


class _Front(_Observable):  # type: ignore[misc,valid-type]
    """The path of a PathCapable resource itself, answered by it."""

    def __init__(self, behind: t.Any) -> None:
        super().__init__()
        self.behind = behind

    async def add_observation(self, request: t.Any, serverobservation: t.Any) -> None:
        await self.behind.add_observation(request, serverobservation)

    async def render(self, request: t.Any) -> t.Any:
        return await self.behind.render(request)


class _Lookups(_PathCapable, _Observable):  # type: ignore[misc,valid-type]
    """``/local/services`` and ``/local/services/{name}``: GET, observable; newest registration first."""

    def __init__(self, directory: LocalDirectory) -> None:
        super().__init__()
        self.directory = directory
        self._observers: t.Dict[t.Optional[str], t.Set[t.Any]] = {}

    async def add_observation(self, request: t.Any, serverobservation: t.Any) -> None:
        path = request.opt.uri_path
        key = path[0] if path else None
        observers = self._observers.setdefault(key, set())
        observers.add(serverobservation)
        serverobservation.accept(lambda: observers.discard(serverobservation))

    def changed(self, names: t.Set[str]) -> None:
        for key in list(names) + [None]:
            for observation in list(self._observers.get(key, ())):
                observation.trigger()

    async def render(self, request: t.Any) -> t.Any:
        aiocoap = _coap.aiocoap
        if request.code != aiocoap.GET:
            return _answer(aiocoap.METHOD_NOT_ALLOWED, text="GET only")
        path = request.opt.uri_path
        if len(path) > 1:
            return _answer(aiocoap.NOT_FOUND, text="look up /local/services/{name}")
        self.directory.observe_managers()
        if not self.directory.heard.is_set():
            # the first lookup on this node: the managers' answer, not an empty list that only means "not yet"
            waiting = asyncio.ensure_future(self.directory.heard.wait())
            await asyncio.wait({waiting}, timeout=FIRST_ANSWER_WAIT)
            waiting.cancel()
        view = self.directory.view
        value: t.Any = view.instances(path[0]) if path else {name: view.instances(name) for name in sorted(view.names())}
        response = _answer(aiocoap.CONTENT, value)
        response.opt.etag = hashlib.sha256(response.payload).digest()[:8]
        return response
