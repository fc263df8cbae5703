# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Observing the profile registry over CoAP (docs/contracts.md, "The CoAP API"):
the live profiles' fingerprint as last read, and whether the registry answers."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._coap import CF_JSON, aiocoap, parse_registry
from ansible_collections.nanoedge.core.plugins.module_utils._oscore import Credentials, OscoreError, client_context
from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.config import ConfigError
from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.fingerprint import Fingerprint, fingerprint_of
from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.waiting import next_or_stop, sleep_or_stop

LOG = logging.getLogger("nanoedge.reconcile")


def describe_error(exc: BaseException) -> str:
    cause = exc.__cause__
    if isinstance(cause, OSError) and cause.errno:
        return os.strerror(cause.errno)
    text = str(exc)
    return text if text else type(exc).__name__


def _answer_text(response: t.Any) -> str:
    return "answered %s %s: %s" % (response.code.dotted, response.code.name_printable,
                                   bytes(response.payload[:200]).decode("utf-8", "replace"))


class Watcher:
    """The registry's ``/profiles``, observed, with the polling fallback."""

    def __init__(self, config: t.Mapping[str, t.Any], stopping: asyncio.Event,
                 on_change: t.Callable[[], None], on_outage: t.Callable[[], None]) -> None:
        self.registry = config["registry"]
        self.interval = config["interval"]
        self.request_timeout = config["request_timeout"]
        self.oscore_context = config["oscore_context"]
        self.oscore_credentials = config.get("oscore_credentials", "")
        self.stopping = stopping
        self.on_change = on_change
        self.on_outage = on_outage
        self.context: t.Any = None
        self.credentials: t.Optional[Credentials] = None
        # the live profiles as last read
        self.fingerprint: t.Optional[Fingerprint] = None
        # and whole, the well-formed ones: a targeted re-placement plans from them
        self.profiles: t.Dict[str, t.Dict[str, t.Any]] = {}
        self.last_change = 0.0
        # the ETag of the /profiles last read, and how many lease answers in a row named another
        self.etag: t.Optional[str] = None
        self.behind = self.refreshes = 0
        # set when /profiles changed without a notification: observe again at once
        self.refresh = asyncio.Event()
        self.error: t.Optional[str] = None
        self.down_since = 0.0
        self._reported_problems: t.Set[str] = set()

    def reachable(self) -> bool:
        return self.error is None and self.fingerprint is not None

    # -- the client context -------------------------------------------------------------

    async def open(self) -> None:
        # A manager reads its own registry, and stands for leadership with it, as
        # itself: under that registry's context (required).
        authority = parse_registry(self.registry).authority
        try:
            self.credentials = Credentials.load(self.oscore_credentials, self.oscore_context, [authority])
            self.context = await client_context(aiocoap, self.credentials, authority)
        except OscoreError as exc:
            key = "oscore_credentials" if self.oscore_credentials else "oscore_context"
            raise ConfigError("%s: %s" % (key, exc)) from None

    async def close(self) -> None:
        if self.context is not None:
            await self.context.shutdown()
        if self.credentials is not None:
            self.credentials.release()

    def _profiles_request(self, observe: bool) -> t.Any:
        message = aiocoap.Message(code=aiocoap.GET, uri=self.registry + "/profiles")
        message.opt.accept = CF_JSON
        if observe:
            message.opt.observe = 0
        return self.context.request(message)

    # -- what the registry answered --------------------------------------------------------

    def failed(self, error: str) -> None:
        if self.error is None:
            self.down_since = time.monotonic()
            LOG.warning("registry %s: cannot read /profiles: %s; retrying until it answers", self.registry, error)
            self.error = error
            self.on_outage()
        else:
            self.error = error

    def answered(self) -> None:
        if self.error is not None:
            LOG.info("registry %s answers again after %.1f s", self.registry, time.monotonic() - self.down_since)
            self.error = None

    def take_payload(self, response: t.Any) -> None:
        """A ``/profiles`` answer or notification; malformed ones are logged and ignored."""
        if not response.code.is_successful():
            self.payload_problem(_answer_text(response))
            return
        try:
            profiles = json.loads(bytes(response.payload).decode("utf-8"))
            fingerprint, problems = fingerprint_of(profiles)
        except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            self.payload_problem("malformed /profiles answer ignored: %s" % exc)
            return
        self.profiles = {node: profiles[node] for node in fingerprint}
        self.etag = bytes(response.opt.etag).hex() if response.opt.etag else None
        for problem in problems:
            self.payload_problem("skipping a malformed profile: %s" % problem)
        if not problems:
            self._reported_problems.clear()
        self.answered()
        if fingerprint != self.fingerprint:
            self.fingerprint = fingerprint
            self.last_change = time.monotonic()
            self.on_change()

    def payload_problem(self, text: str) -> None:
        # A registry that keeps serving the same bad answer must not flood the
        # journal: each problem once, until a clean answer ends the streak.
        if text not in self._reported_problems:
            LOG.warning("registry %s: %s", self.registry, text)
            self._reported_problems.add(text)

    # -- asking ----------------------------------------------------------------------------

    async def watch(self) -> None:
        """Observe ``/profiles``; re-register every interval (the polling
        fallback: it also heals an observation lost in a registry restart)."""
        retry = 0.5
        while not self.stopping.is_set():
            if await self._observe_once():
                retry = 0.5
                if self.refresh.is_set():
                    self.refresh.clear()
                    continue
                await sleep_or_stop(self.stopping, min(0.5, self.interval))
            else:
                await sleep_or_stop(self.stopping, retry)
                retry = min(retry * 2, self.interval)

    async def _first_answer(self, request: t.Any) -> t.Any:
        """The request's answer when it is a success; None (the failure recorded) otherwise."""
        try:
            response = await asyncio.wait_for(request.response, self.request_timeout)
        except asyncio.TimeoutError:
            self.failed("no answer within %g s" % self.request_timeout)
            return None
        except (aiocoap.error.Error, OSError) as exc:
            self.failed(describe_error(exc))
            return None
        if not response.code.is_successful():
            self.failed(_answer_text(response))
            return None
        return response

    async def _observe_once(self) -> bool:
        request = self._profiles_request(observe=True)
        observation = request.observation
        first = await self._first_answer(request)
        if first is None:
            _cancel(observation)
            return False
        self.take_payload(first)
        if observation is None or first.opt.observe is None:
            # Not observable (or no longer): polling every interval is all there is.
            _cancel(observation)
            await sleep_or_stop(self.stopping, self.interval)
            return True
        try:
            await self._follow(observation)
        finally:
            _cancel(observation)
        return True

    async def _follow(self, observation: t.Any) -> None:
        """Take the observation's notifications until it ends, the interval is over or the daemon stops."""
        notifications: asyncio.Queue = asyncio.Queue()
        # Callbacks rather than ``async for``: aiocoap's iterator re-raises the error that ended an
        # observation (a block-wise /profiles ends with ResourceChanged on every change) from its
        # finaliser, which would print a traceback to the journal each time.
        observation.register_callback(lambda notification: notifications.put_nowait(("notification", notification)))
        # whatever ends it, the answer is to observe again
        observation.register_errback(lambda exc: notifications.put_nowait(("end", describe_error(exc))))
        deadline = time.monotonic() + self.interval
        while not self.stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                kind, item = await asyncio.wait_for(next_or_stop(notifications, self.stopping, self.refresh),
                                                    remaining)
            except asyncio.TimeoutError:
                return
            if kind in ("stop", "event"):
                return
            if kind == "end":
                LOG.debug("observation of %s/profiles ended (%s); observing again", self.registry, item)
                return
            self.take_payload(item)

    async def fetch_once(self) -> bool:
        """One plain ``GET /profiles`` (for --once)."""
        response = await self._first_answer(self._profiles_request(observe=False))
        if response is None:
            return False
        self.take_payload(response)
        return self.fingerprint is not None

    async def leadership(self, candidate: t.Optional[bool], ttl: float, timeout: float) -> t.Tuple[str, t.Any]:
        """One exchange with the own registry's ``/leadership``: ``PUT`` standing (or not) as a candidate
        for ``ttl`` seconds, or ``GET`` when ``candidate`` is None. ("answer", decoded JSON), ("error",
        why: an error code or an undecodable payload) or ("none", why: no answer within ``timeout``)."""
        if candidate is None:
            message = aiocoap.Message(code=aiocoap.GET, uri=self.registry + "/leadership")
        else:
            body = json.dumps({"candidate": candidate, "ttl": ttl}).encode()
            message = aiocoap.Message(code=aiocoap.PUT, uri=self.registry + "/leadership", payload=body,
                                      content_format=CF_JSON)
        message.opt.accept = CF_JSON
        try:
            response = await asyncio.wait_for(self.context.request(message).response, timeout)
        except asyncio.TimeoutError:
            return "none", "no answer to /leadership within %g s" % timeout
        except (aiocoap.error.Error, OSError) as exc:
            return "none", "/leadership: %s" % describe_error(exc)
        if not response.code.is_successful():
            return "error", "/leadership " + _answer_text(response)
        try:
            status = json.loads(bytes(response.payload).decode("utf-8"))
        except ValueError as exc:
            return "error", "/leadership answered a payload that is not JSON: %s" % exc
        self.compare_etag(status)
        return "answer", status

    def compare_etag(self, status: t.Any) -> None:
        """A lease answer names the ETag of /profiles as it stands (docs/contracts.md, "The CoAP API").
        Two answers in a row that name another than the one last read mean a change whose notification
        was lost (one answer alone may just have overtaken it): observe again at once."""
        etag = status.get("profiles") if isinstance(status, dict) else None
        if not isinstance(etag, str) or self.etag is None or etag == self.etag:
            self.behind = self.refreshes = 0
            return
        self.behind += 1
        # a registry whose answers keep naming another ETag is read again less and less often
        if self.behind == 2 ** min(self.refreshes + 1, 6):
            if not self.refreshes:
                LOG.info("registry %s: /profiles changed (ETag %s) and no notification came; reading it again",
                         self.registry, etag)
            self.refreshes += 1
            self.behind = 0
            self.refresh.set()


def _cancel(observation: t.Any) -> None:
    if observation is not None and not observation.cancelled:
        observation.cancel()
