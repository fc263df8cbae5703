# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Workers that only beat, for tests of leadership against real registries.

Each fake worker runs the agent's own beat loop (``_agent/beats.py``: its
Beater, a WitnessKeeper with its witness file, one loop per registry) in a
thread of the test process, so the managers' registries see their members
grant, renew and refuse the leadership lease exactly as the agent does
(docs/leadership.md). They report no profile: an answer that asks for one
is left unanswered.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import typing as t
from pathlib import Path

from ansible_collections.nanoedge.core.plugins.module_utils._agent.beats import BeatClient, Beater, Link
from ansible_collections.nanoedge.core.plugins.module_utils._agent.witness import FILE_NAME, WitnessKeeper
from ansible_collections.nanoedge.core.plugins.module_utils._coap import parse_registry

LOG = logging.getLogger("nanoedge.test.beating")
NO_PROFILE_ETAG = "0" * 16


class Beating:
    """``nodes`` beating to every registry in ``registries`` every ``interval`` seconds, until stopped."""

    def __init__(self, state_dir: Path, nodes: t.Sequence[str], registries: t.Sequence[str],
                 interval: float = 1.0) -> None:
        self.state_dir = state_dir
        self.nodes = list(nodes)
        self.registries = list(registries)
        self.interval = interval
        self._thread: t.Optional[threading.Thread] = None
        self._loop: t.Optional[asyncio.AbstractEventLoop] = None
        self._stop: t.Optional[asyncio.Event] = None
        self._ready = threading.Event()
        self._error: t.Optional[BaseException] = None

    def start(self, timeout: float = 10.0) -> "Beating":
        self._thread = threading.Thread(target=self._run, name="beating", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise AssertionError("the beating workers did not start within %g s" % timeout)
        if self._error is not None:
            raise AssertionError("the beating workers failed to start: %r" % self._error)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread is None:
            return
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError("the beating workers did not stop within %g s" % timeout)
        self._thread = None

    def __enter__(self) -> "Beating":
        return self.start()

    def __exit__(self, *exc: t.Any) -> None:
        self.stop()

    def witness(self, node: str) -> t.Dict[str, t.Any]:
        """What ``node``'s witness file says ({} before its first grant)."""
        path = self.state_dir / node / FILE_NAME
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return {}

    # -- the thread ----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to start(); the thread must not die silently
            self._error = exc
            self._ready.set()

    @staticmethod
    def _no_report(_url: str, _why: str) -> None:
        """A registry asked for the profile: these workers have none to send."""

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        clients: t.List[BeatClient] = []
        tasks: t.List[asyncio.Future] = []
        for node in self.nodes:
            # a client (a socket) per node, as each worker's agent has its own
            client = BeatClient(None)
            await client.open([parse_registry(url) for url in self.registries])
            clients.append(client)
            (self.state_dir / node).mkdir(parents=True, exist_ok=True)
            # the agent's priority window: two beats (docs/leadership.md, "The protocol")
            keeper = WitnessKeeper(str(self.state_dir / node), priority_window=2 * self.interval)
            beater = Beater(node, keeper, lambda: NO_PROFILE_ETAG, client.send, self._no_report,
                            self.interval, LOG)
            # a Link per node and registry: its wake-up (the extra beat after a new grant) is the node's own
            tasks += [asyncio.ensure_future(beater.run(Link(url))) for url in self.registries]
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for client in clients:
                await client.close()
