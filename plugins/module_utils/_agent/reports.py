# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Full profile reports of the service: ``PUT /profiles/{node}?lt=...`` to one registry or to all of them.

One report at a time per registry: a new profile asked for while one is
being sent goes out right after it. A registry whose beat answer says its
copy is stale or missing gets the current profile at once, but not while a
report to it is under way or was stored in the last ``HOLD_OFF`` seconds
(beats sent before that report landed still say "stale").

Standard library plus aiocoap (under the guard of ``_coap``), Python >= 3.9.
"""

from __future__ import annotations

import asyncio
import logging
import time
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils import _coap
from ansible_collections.nanoedge.core.plugins.module_utils._canonical_json import canonical_json
from ansible_collections.nanoedge.core.plugins.module_utils._oscore import Credentials
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.codec import etag_of

HOLD_OFF = 3.0

# (registry, profile, body, content format, settings, credentials) -> Outcome
ReportOne = t.Callable[..., t.Awaitable[_coap.Outcome]]


def profile_etag(profile: t.Mapping[str, t.Any]) -> str:
    """The ETag a registry gives ``profile`` once stored (docs/contracts.md, "The CoAP API"), as hex."""
    return etag_of(canonical_json(profile)).hex()


class _Target:
    def __init__(self, url: str) -> None:
        self.registry = _coap.parse_registry(url)
        self.task: t.Optional[asyncio.Future] = None
        self.again: t.Optional[str] = None  # why another report must follow the one under way
        self.stored_at = float("-inf")


class Reporter:
    def __init__(self, registries: t.Sequence[str], settings: _coap.ReportSettings,
                 credentials: t.Optional[Credentials], log: logging.Logger, report_one: ReportOne = _coap.report_one,
                 clock: t.Callable[[], float] = time.monotonic) -> None:
        self.targets = {url: _Target(url) for url in registries}
        self.settings = settings
        self.credentials = credentials
        self.log = log
        self.report_one = report_one
        self.clock = clock
        self.profile: t.Optional[t.Dict[str, t.Any]] = None
        self.body = b""
        self.content_format = _coap.CF_JSON
        self.etag = "0" * 16

    def set_profile(self, profile: t.Dict[str, t.Any]) -> None:
        self.profile = profile
        self.body, self.content_format = _coap.encode_profile(profile, self.settings.fmt)
        self.etag = profile_etag(profile)

    def report_all(self, profile: t.Dict[str, t.Any], why: str) -> None:
        self.set_profile(profile)
        for url in self.targets:
            self._start(url, why)

    def on_answer(self, url: str, why: str) -> None:
        """A beat answer said the registry's copy is stale or missing."""
        target = self.targets[url]
        busy = target.task is not None and not target.task.done()
        if self.profile is None or busy or self.clock() - target.stored_at < HOLD_OFF:
            return
        self._start(url, why)

    def _start(self, url: str, why: str) -> None:
        target = self.targets[url]
        if target.task is not None and not target.task.done():
            target.again = why
            return
        target.task = asyncio.ensure_future(self._send(url, why))

    async def _send(self, url: str, why: str) -> None:
        target = self.targets[url]
        while True:
            target.again = None
            profile = self.profile
            try:
                outcome = await self.report_one(target.registry, profile, self.body, self.content_format,
                                                self.settings, self.credentials)
            except Exception as exc:  # pylint: disable=broad-except
                # the service must outlive whatever one report runs into; the next one tries again
                self.log.error("%s: report failed (%s): %s: %s", url, why, type(exc).__name__, exc)
                return
            if outcome.stored:
                target.stored_at = self.clock()
                # a renewal of an unchanged profile is routine: only a new or changed one makes a journal line
                level = logging.DEBUG if outcome.action == "renewed" else logging.INFO
                self.log.log(level, "%s: %s %s (%s): %s", url, outcome.action, profile["node"], outcome.code, why)
            else:
                self.log.warning("%s: report failed (%s): %s", url, why, outcome.error)
            if target.again is None:
                return
            why = target.again

    def pending(self) -> t.List[asyncio.Future]:
        return [target.task for target in self.targets.values() if target.task is not None and not target.task.done()]
