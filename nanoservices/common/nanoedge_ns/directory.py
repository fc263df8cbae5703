# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Finding producers by service name, through the node's agent (the service directory).

The agent of every node serves a small directory on loopback
(``NANOEDGE_DIRECTORY_URI``, e.g. ``coap://127.0.0.1:5690``; no credentials
in the service):

- a producer's :class:`Registrar` registers its instance (``PUT
  /local/instances/<service>`` with its own URI, ``NANOEDGE_SELF_URI``) when it
  starts serving, renews it every third of its lifetime and removes it when it
  stops cleanly;
- a consumer's :class:`Resolver` looks its producer up by service name
  (``GET /local/services/<name>``, observed): the newest registration wins, so
  a producer that moved is used as soon as it registered there. The URI is
  cached; a consumer that cannot reach it calls :meth:`Resolver.failed` and the
  name is looked up again at once.

A consumer's producer is configured as ``service:<name>`` (what the deployment
writes with the directory on: the value does not change when the producer
moves, so the consumer is not recreated) or as a plain ``coap://`` URI (the
deployment without the directory, or by hand), which is used whenever no
agent answers (an older agent) or the directory lists no instance.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import typing as t

from nanoedge_ns import coapio

DIRECTORY_ENV = "NANOEDGE_DIRECTORY_URI"
SELF_URI_ENV = "NANOEDGE_SELF_URI"
SERVICE_PREFIX = "service:"
DEFAULT_LIFETIME = 30
# Seconds between two attempts to reach an agent that does not answer, doubling up to the cap.
RETRY_FIRST = 0.5
RETRY_CAP = 5.0

log = logging.getLogger("nanoedge_ns.directory")
T = t.TypeVar("T")


def directory_uri() -> str:
    """The local directory, or "" (none: the producers' URIs come from the environment alone)."""
    return os.environ.get(DIRECTORY_ENV, "").rstrip("/")


def split_target(value: str) -> t.Tuple[str, str]:
    """(service name, fallback URI) of a configured producer: ``service:spo2`` or ``coap://host:port/spo2``."""
    if value.startswith(SERVICE_PREFIX):
        return value[len(SERVICE_PREFIX):], ""
    return "", value


def newest_uri(instances: t.Any) -> t.Optional[str]:
    """The URI of the newest registration among the directory's answer (newest first), if any."""
    if not isinstance(instances, list):
        raise ValueError("the directory answered %r, not a list of instances" % (instances,))
    best: t.Optional[t.Dict[str, t.Any]] = None
    for item in instances:
        if isinstance(item, dict) and isinstance(item.get("uri"), str):
            if best is None or _registered(item) > _registered(best):
                best = item
    return None if best is None else t.cast(str, best["uri"])


def _registered(item: t.Mapping[str, t.Any]) -> float:
    value = item.get("registered")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


class Registrar:
    """Keeps one instance of a producer registered at the local directory."""

    def __init__(self, client: coapio.Client, directory: str, service: str, uri: str, instance: str = "main",
                 lifetime: int = DEFAULT_LIFETIME) -> None:
        self.client = client
        self.target = "%s/local/instances/%s" % (directory, service)
        self.service = service
        # since: this process's start, so that the agent tells a restart from a renewal (a restarted instance
        # is registered anew, and its consumers take it over one that registered elsewhere meanwhile)
        self.body = {"uri": uri, "instance": instance, "lifetime": lifetime, "since": round(time.time(), 3)}
        self.lifetime = lifetime
        self.registered = asyncio.Event()
        self._trouble = ""

    async def register(self) -> bool:
        try:
            await self.client.put(self.target, self.body)
        except coapio.CoapError as exc:
            if "since" in self.body and "unknown key(s) since" in str(exc):
                # an agent older than this library: registered without it (a restart then keeps the old time)
                del self.body["since"]
                return await self.register()
            return self._failed(exc)
        except (asyncio.TimeoutError, OSError, ValueError) as exc:
            return self._failed(exc)
        if self._trouble or not self.registered.is_set():
            log.info("%s: registered %s at the node's directory", self.service, self.body["uri"])
        self._trouble = ""
        self.registered.set()
        return True

    def _failed(self, exc: Exception) -> bool:
        message = str(exc) or type(exc).__name__
        if message != self._trouble:
            log.warning("%s: cannot register at the node's directory (%s); consumers use the address they "
                        "were given", self.service, message)
        self._trouble = message
        return False

    async def run(self) -> None:
        """Register, then renew every third of the lifetime (sooner while the agent does not answer)."""
        pause = RETRY_FIRST
        while True:
            if await self.register():
                pause = RETRY_FIRST
                await asyncio.sleep(self.lifetime / 3)
            else:
                await asyncio.sleep(pause)
                pause = min(RETRY_CAP, pause * 2)

    async def close(self) -> None:
        """Unregister (a clean exit): consumers move on at once rather than at the lifetime's end."""
        query = "?instance=%s" % self.body["instance"]
        try:
            await asyncio.wait_for(self.client.exchange("DELETE", self.target + query), 2.0)
        except Exception as exc:  # pylint: disable=broad-except  # best effort: the lifetime ends it anyway
            log.debug("%s: not unregistered: %s", self.service, exc)


class Resolver:
    """The URI of one producer: looked up by ``service`` at the local ``directory`` (observed, so a move is
    known as soon as the directory has it), else ``fallback``. ``changed`` is set whenever the URI changes."""

    def __init__(self, client: coapio.Client, directory: str, service: str, fallback: str = "") -> None:
        self.client = client
        self.directory = directory
        self.service = service
        self.fallback = fallback
        self.uri: t.Optional[str] = fallback or None
        self.from_directory = False
        self.changed = asyncio.Event()
        self._again = asyncio.Event()
        self._trouble = ""

    def current(self) -> t.Optional[str]:
        return self.uri

    def take(self, instances: t.Any) -> None:
        """The directory's answer: the newest instance, else the fallback, else the last one known."""
        found = newest_uri(instances)
        if found is not None:
            self._set(found, True)
        elif self.fallback:
            self._set(self.fallback, False)
        elif self.from_directory:
            # every instance gone (moving, or its node lost): keep trying the last one until a new one registers
            log.info("%s: no instance listed; keeping %s until one registers", self.service, self.uri)

    def _set(self, uri: str, from_directory: bool) -> None:
        self.from_directory = from_directory
        if uri != self.uri:
            log.info("%s: now at %s (%s)", self.service, uri, "directory" if from_directory else "fallback")
            self.uri = uri
            self.changed.set()

    def failed(self) -> None:
        """The consumer could not reach the current URI: look the service up again now."""
        self._again.set()

    def _no_directory(self, message: str) -> None:
        if message != self._trouble:
            log.warning("%s: the node's directory at %s does not answer (%s)%s", self.service, self.directory,
                        message, "; using %s" % self.fallback if self.fallback else "")
        self._trouble = message
        if self.fallback:
            self._set(self.fallback, False)

    async def lookup(self) -> t.Optional[str]:
        """One lookup (no observation); the URI after it."""
        if not self.directory:
            return self.uri
        try:
            self.take(await self.client.get("%s/local/services/%s" % (self.directory, self.service)))
            self._trouble = ""
        except (asyncio.TimeoutError, OSError, ValueError) as exc:
            self._no_directory(str(exc) or type(exc).__name__)
        return self.uri

    async def watch(self) -> None:
        """Observe the service at the directory, forever: every notification is taken at once; a failure of
        the consumer (``failed``) or of the observation looks it up again. Without a directory: nothing to do."""
        if not self.directory:
            return
        pause = RETRY_FIRST
        while True:
            try:
                await self._observe()
                pause = RETRY_FIRST
            except (asyncio.TimeoutError, OSError, ValueError, coapio.CoapError) as exc:
                self._no_directory(str(exc) or type(exc).__name__)
                pause = min(RETRY_CAP, pause * 2)
            again = asyncio.ensure_future(self._again.wait())
            await asyncio.wait({again}, timeout=pause)
            again.cancel()

    async def _observe(self) -> None:
        aiocoap = coapio.aiocoap_module()
        context = await self.client.context()
        self._again.clear()
        request = context.request(aiocoap.Message(code=aiocoap.GET, observe=0,
                                                  uri="%s/local/services/%s" % (self.directory, self.service)))
        waiter = asyncio.ensure_future(self._again.wait())
        try:
            first = await asyncio.wait_for(request.response, self.client.timeout)
            self._take_response(first)
            self._trouble = ""
            if first.opt.observe is None:
                return
            notifications = request.observation.__aiter__()
            while not self._again.is_set():
                following = asyncio.ensure_future(notifications.__anext__())
                await asyncio.wait({following, waiter}, return_when=asyncio.FIRST_COMPLETED)
                if not following.done():
                    following.cancel()
                    return  # asked to look again: a new observation, a fresh answer
                self._take_response(following.result())
        except aiocoap.error.Error as exc:
            raise ConnectionError(str(exc) or type(exc).__name__) from exc
        except StopAsyncIteration:
            return
        finally:
            waiter.cancel()
            if not request.response.done():
                request.response.cancel()
            elif request.observation is not None and not request.observation.cancelled:
                request.observation.cancel()

    def _take_response(self, response: t.Any) -> None:
        if not response.code.is_successful():
            raise coapio.CoapError("GET /local/services/%s: %s" % (self.service, response.code), response.code.dotted)
        self.take(json.loads(response.payload.decode("utf-8")))


async def sleep_unless_moved(resolvers: t.Iterable[Resolver], seconds: float) -> bool:
    """Sleep ``seconds``, or less when a producer moved since the resolvers were last woken (a polling
    consumer asks the new one at once, not an interval later); True when one moved. Their ``changed``
    are cleared on waking (a change during the consumer's last round wakes it at once)."""
    resolvers = list(resolvers)
    waiters = [asyncio.ensure_future(resolver.changed.wait()) for resolver in resolvers]
    try:
        if waiters:
            done, _pending = await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        else:
            done = set()
            await asyncio.sleep(seconds)
    finally:
        for waiter in waiters:
            waiter.cancel()
    for resolver in resolvers:
        resolver.changed.clear()
    return bool(done)


async def ask_unless_moved(resolver: t.Optional[Resolver],
                           asking: t.Awaitable[T]) -> t.Tuple[bool, t.Optional[T]]:
    """Await ``asking`` (a request to the resolver's current URI) unless the resolver learns of a new
    address first: then the request is cancelled, since a producer that stopped would hold the consumer for
    the client's whole timeout. ``(True, answer)``, or ``(False, None)`` when the producer moved. The caller
    clears ``resolver.changed`` before it reads the URI it asks."""
    if resolver is None:
        return True, await asking
    fetching = asyncio.ensure_future(asking)
    moved = asyncio.ensure_future(resolver.changed.wait())
    try:
        done, _pending = await asyncio.wait({fetching, moved}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        moved.cancel()
        if not fetching.done():
            fetching.cancel()
    if fetching not in done:
        # a cancelled task is only done once it ran again: wait for it, so it does not outlive the caller
        await asyncio.gather(fetching, return_exceptions=True)
        return False, None
    return True, fetching.result()


def producer_resolver(client: coapio.Client, configured: str, service: str) -> Resolver:
    """The resolver for a producer configured as ``configured`` (``service:<name>`` or a URI); ``service``
    names it when the value is a plain URI."""
    name, fallback = split_target(configured)
    return Resolver(client, directory_uri(), name or service, fallback)


def registrar_for(client: coapio.Client, service: str, instance: str = "main") -> t.Optional[Registrar]:
    """The registrar of this producer when the node has a directory and the deployment gave the producer its
    own URI; None otherwise (then its consumers use the address they were given)."""
    directory, uri = directory_uri(), os.environ.get(SELF_URI_ENV, "")
    if not directory or not uri or not service:
        return None
    return Registrar(client, directory, service, uri, instance)
