# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The agent as a service: report at start, on hardware events, every interval and when a registry asks;
beat every beat interval; witness the managers' leadership; with a directory port, serve the node's
service directory on loopback (``directory_server``).

Standard library plus aiocoap (under the guard of ``_coap``), Python >= 3.9.
"""

from __future__ import annotations

import asyncio
import logging
import random
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils import _coap
from ansible_collections.nanoedge.core.plugins.module_utils._agent.beats import BeatClient, Beater, Link
from ansible_collections.nanoedge.core.plugins.module_utils._agent.config import AgentError, discover, report_settings
from ansible_collections.nanoedge.core.plugins.module_utils._agent.directory_server import LocalDirectory
from ansible_collections.nanoedge.core.plugins.module_utils._agent.events import Debouncer, Watcher
from ansible_collections.nanoedge.core.plugins.module_utils._agent.reports import Reporter
from ansible_collections.nanoedge.core.plugins.module_utils._agent.witness import WitnessKeeper
from ansible_collections.nanoedge.core.plugins.module_utils._oscore import Credentials, OscoreError


def describe(reasons: t.Sequence[str]) -> str:
    """The first reasons of a burst, and how many more came with them."""
    first = list(dict.fromkeys(reasons))
    more = len(first) - 2
    return "; ".join(first[:2]) + (" (+%d more)" % more if more > 0 else "")


class Agent:
    def __init__(self, config: t.Mapping[str, t.Any], log: logging.Logger,
                 rng: t.Callable[[], float] = random.random) -> None:
        self.config = config
        self.log = log
        self.rng = rng
        self.warned: t.Set[str] = set()
        self.reporter = None  # type: t.Optional[Reporter]
        self.tasks: t.List[asyncio.Future] = []

    async def discover(self) -> t.Dict[str, t.Any]:
        # file reads under /proc and /sys: in a thread, so the beats keep their time
        profile, warnings = await asyncio.get_event_loop().run_in_executor(None, discover, self.config)
        for warning in warnings:
            if warning not in self.warned:  # a source that stays broken is named once
                self.warned.add(warning)
                self.log.warning("warning: %s", warning)
        return profile

    async def on_events(self, reasons: t.List[str]) -> None:
        try:
            profile = await self.discover()
        except AgentError as exc:
            self.log.error("%s", exc)
            return
        if self.reporter is None:
            return
        if _coap.profile_differs(self.reporter.profile, profile):
            self.reporter.report_all(profile, "hardware changed: %s" % describe(reasons))
        else:
            self.log.debug("no change in the profile after %s", describe(reasons))

    async def periodic(self) -> None:
        interval = float(self.config["interval"])
        spread = min(float(self.config["jitter"]), interval)
        while True:
            await asyncio.sleep(interval + spread * self.rng())
            try:
                profile = await self.discover()
            except AgentError as exc:
                self.log.error("%s", exc)
                continue
            if self.reporter is not None:
                self.reporter.report_all(profile, "every %gs" % interval)

    async def serve(self, stop: asyncio.Event) -> None:
        config = self.config
        registries = [_coap.parse_registry(url) for url in config["registries"]]
        try:
            credentials = Credentials.load(config["oscore_credentials"] or None, config["oscore_context"] or None,
                                           [registry.authority for registry in registries])
        except OscoreError as exc:
            raise AgentError(str(exc)) from None
        client = BeatClient(credentials)
        watcher = None  # type: t.Optional[Watcher]
        directory = None  # type: t.Optional[LocalDirectory]
        try:
            await client.open(registries)
            profile = await self.discover()
            self.reporter = Reporter(config["registries"], report_settings(config), credentials, self.log)
            self.reporter.report_all(profile, "start")
            keeper = WitnessKeeper(config["state_dir"], priority_window=2 * float(config["beat_interval"]))
            if not keeper.enabled:
                self.log.error("%s: this worker grants no leadership until it is fixed or removed", keeper.broken)
            if config["directory_port"]:
                directory = LocalDirectory(profile["node"], config["registries"], client.contexts.get,
                                           int(config["lifetime"]), float(config["directory_renew"]), self.log)
                await directory.start(int(config["directory_port"]))
            beater = Beater(profile["node"], keeper, lambda: self.reporter.etag, client.send, self.reporter.on_answer,
                            float(config["beat_interval"]), self.log,
                            on_restart=directory.refresh if directory is not None else None)
            self.tasks = [asyncio.ensure_future(beater.run(Link(url))) for url in config["registries"]]
            self.tasks.append(asyncio.ensure_future(self.periodic()))
            debouncer = Debouncer(float(config["debounce"]), self.on_events)
            watcher = Watcher(config["root"], debouncer.trigger, float(config["poll_interval"]), self.log)
            self.log.info("%s: watching %s; beats every %gs, a full report every %gs", profile["node"],
                          ", ".join(watcher.start()), config["beat_interval"], config["interval"])
            await stop.wait()
            debouncer.cancel()
        except OscoreError as exc:
            raise AgentError(str(exc)) from None
        finally:
            for task in self.tasks + (self.reporter.pending() if self.reporter else []):
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            if directory is not None:
                await directory.close()
            if watcher is not None:
                watcher.close()
            await client.close()
            if credentials is not None:
                credentials.release()
