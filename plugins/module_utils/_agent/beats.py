# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Beats: ``POST /beat/{node}`` to every registry every ``beat_interval`` seconds (docs/contracts.md).

A beat carries the ETag of the profile reported last, the highest term this
worker granted and its grant to that registry's manager; the answer says
whether the registry's copy of the profile is current and may carry the
manager's ask, which the witness grants, renews or refuses. Each registry
has its own loop, so a silent one delays no other. Beats are NON messages
with a timeout of one beat interval: a lost beat is not repeated, the next
one follows anyway. A registry that stops answering (or answers what is no
answer) is logged once, and once again when it answers again.

Standard library plus aiocoap (under the guard of ``_coap``), Python >= 3.9.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils import _coap
from ansible_collections.nanoedge.core.plugins.module_utils._agent.witness import WitnessFileError, WitnessKeeper
from ansible_collections.nanoedge.core.plugins.module_utils._canonical_json import canonical_json
from ansible_collections.nanoedge.core.plugins.module_utils._leadership import (
    Beat, LeadershipError, beat_payload, parse_answer,
)
from ansible_collections.nanoedge.core.plugins.module_utils._oscore import Credentials, client_context

# (registry, node, payload, timeout) -> (response code "2.04", response payload); CoapError when none came
Sender = t.Callable[[_coap.Registry, str, bytes, float], t.Awaitable[t.Tuple[str, bytes]]]


class BeatClient:
    """One aiocoap client context, so one UDP socket, per registry for the life of the process
    (OSCORE-protected with the credentials). Not one socket for all: the ICMP "port unreachable" of a
    registry that is down stays pending on the socket that sent to it, and the kernel reports it on
    that socket's next send, which may be the beat to a registry that is up."""

    def __init__(self, credentials: t.Optional[Credentials]) -> None:
        self.credentials = credentials
        self.contexts = {}  # type: t.Dict[str, t.Any]

    async def open(self, registries: t.Sequence[_coap.Registry]) -> None:
        if self.credentials is not None:
            for registry in registries:  # every registry must have its context: never a beat in the clear
                self.credentials.context_for(registry.authority)
        for registry in registries:
            if registry.authority not in self.contexts:
                self.contexts[registry.authority] = await client_context(_coap.aiocoap, self.credentials)

    async def send(self, registry: _coap.Registry, node: str, payload: bytes, timeout: float) -> t.Tuple[str, bytes]:
        aiocoap = _coap.aiocoap
        uri = registry.uri("beat", node)
        if hasattr(aiocoap, "Unreliable"):  # aiocoap >= 0.4.8 chooses NON from the transport tuning
            message = aiocoap.Message(code=aiocoap.POST, uri=uri, payload=payload, transport_tuning=aiocoap.Unreliable)
        else:
            message = aiocoap.Message(mtype=aiocoap.NON, code=aiocoap.POST, uri=uri, payload=payload)
        message.opt.content_format = _coap.CF_JSON
        context = self.contexts.get(registry.authority)
        if context is None:
            raise _coap.CoapError("no client for %s: the beats were not opened for it" % registry.authority)
        answer = context.request(message).response
        try:
            # asyncio.wait, not wait_for: wait_for can swallow the cancellation that stops the service
            # when the answer arrives at the same moment (Python < 3.12)
            await asyncio.wait({answer}, timeout=timeout)
            if not answer.done():
                raise _coap.CoapError("no answer within %gs" % timeout)
            response = answer.result()
        except (aiocoap.error.Error, OSError) as exc:
            cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
            # aiocoap versions word the same ICMP error differently; the errno does not vary
            text = os.strerror(cause.errno) if isinstance(cause, OSError) and cause.errno else str(cause)
            raise _coap.CoapError(text or type(cause).__name__) from None
        finally:
            if not answer.done():
                answer.cancel()
        return response.code.dotted, bytes(response.payload)

    async def close(self) -> None:
        contexts, self.contexts = list(self.contexts.values()), {}
        for context in contexts:
            await context.shutdown()


class Link:
    """What the beats know of one registry: whether it answers, and a wake-up for a beat out of turn."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.registry = _coap.parse_registry(url)
        self.trouble: t.Optional[str] = None  # the kind of the current trouble; None while it answers
        self.wake = asyncio.Event()


class Beater:
    """Sends the beats and acts on their answers; ``request_report(url, why)`` sends the profile to one registry."""

    def __init__(self, node: str, keeper: WitnessKeeper, etag: t.Callable[[], str], send: Sender,
                 request_report: t.Callable[[str, str], None], beat_interval: float, log: logging.Logger,
                 clock: t.Callable[[], float] = time.monotonic,
                 on_restart: t.Optional[t.Callable[[str, str], None]] = None) -> None:
        # ``on_restart(url, why)``: the registry at ``url`` may have restarted (it answers again after a
        # silence, or its answer says it lost this node's profile): what it kept for this node is gone
        self.on_restart = on_restart
        self.node = node
        self.keeper = keeper
        self.etag = etag
        self.send = send
        self.request_report = request_report
        self.beat_interval = beat_interval
        self.log = log
        self.clock = clock
        self.file_trouble: t.Optional[str] = None

    def payload(self, link: Link) -> bytes:
        """The next beat to ``link``'s registry; the witness file is written first when it must be."""
        witness = self.keeper.witness
        grant = None
        try:
            if self.keeper.persist():
                grant = witness.grant_for(link.url)
            self.file_trouble = None
        except WitnessFileError as exc:
            if self.file_trouble != str(exc):
                self.log.error("%s; beats carry no grant until it can be written", exc)
            self.file_trouble = str(exc)
        return canonical_json(beat_payload(Beat(self.etag(), witness.highest_term, grant, witness.holder)))

    def _trouble(self, link: Link, kind: t.Optional[str], detail: str = "") -> None:
        """Log a change of state only: the first failure of a kind, and the first answer after failures."""
        if kind == link.trouble:
            return
        if kind is None:
            self.log.info("%s: beats answered again", link.url)
            if link.trouble == "silent" and self.on_restart is not None:
                self.on_restart(link.url, "it answers again")
        else:
            self.log.warning("%s: beat %s (logged once until it answers)", link.url, detail)
        link.trouble = kind

    async def beat(self, link: Link) -> None:
        try:
            code, body = await self.send(link.registry, self.node, self.payload(link), self.beat_interval)
        except _coap.CoapError as exc:
            self._trouble(link, "silent", "not answered: %s" % exc)
            return
        if code != "2.04":
            text = body[:200].decode("utf-8", "replace").strip()
            self._trouble(link, "refused " + code, "answered %s%s" % (code, ": " + text if text else ""))
            return
        try:
            state, ask = parse_answer(json.loads(body.decode("utf-8")))
        except (ValueError, LeadershipError) as exc:  # UnicodeDecodeError and JSON's errors are ValueErrors
            self._trouble(link, "garbage", "answered what is no beat answer: %s" % str(exc)[:200])
            return
        self._trouble(link, None)
        if state != "current":
            self.request_report(link.url, "%s says the profile is %s" % (link.url, state))
        if state == "missing" and self.on_restart is not None:
            self.on_restart(link.url, "it lost this node's profile")
        if ask is not None:
            self.on_ask(link, ask)

    def on_ask(self, link: Link, ask: t.Any) -> None:
        verdict = self.keeper.on_ask(link.url, ask)
        if verdict == "granted":
            self.log.info("%s: granted term %d to %s (ask %d, lease %gs)", link.url, ask.term, ask.manager,
                          ask.n, ask.lease)
            link.wake.set()  # the manager learns of a new grant at once, not a beat later
        elif verdict != "renewed":
            self.log.debug("%s: %s", link.url, verdict)

    async def run(self, link: Link) -> None:
        """Beat ``link`` every interval (and at once after a new grant) until cancelled."""
        while True:
            started = self.clock()
            link.wake.clear()
            await self.beat(link)
            remaining = self.beat_interval - (self.clock() - started)
            if remaining > 0 and not link.wake.is_set():
                woken = asyncio.ensure_future(link.wake.wait())
                try:
                    await asyncio.wait({woken}, timeout=remaining)  # not wait_for: see BeatClient.send
                finally:
                    woken.cancel()
