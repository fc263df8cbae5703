# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Keeping the leadership lease: the requests to the own registry's ``/leadership``.

Every ``lease_poll`` seconds one request goes out without waiting for the one
before (a lost request must not delay the next); each answer goes to the
Election with the time its request was sent. Between the requests the clock is
checked, so the manager steps down when its lease runs out even when no answer
comes.
"""

from __future__ import annotations

import asyncio
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.election import Election, RoleChange
from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.waiting import sleep_or_stop

# (kind, value) of one exchange, as Watcher.leadership gives it: "answer", "error" or "none"
Exchange = t.Callable[[t.Optional[bool], float, float], t.Awaitable[t.Tuple[str, t.Any]]]

# How long a stopping daemon waits for its registry to take the withdrawal.
WITHDRAW_TIMEOUT = 1.0


class LeaseKeeper:
    """Stands for leadership every ``lease_poll`` seconds and hands each change of role to ``on_change``."""

    def __init__(self, config: t.Mapping[str, t.Any], election: Election, exchange: Exchange,
                 on_change: t.Callable[[RoleChange], None],
                 on_renewal: t.Callable[[], None] = lambda: None) -> None:
        self.poll = float(config["lease_poll"])
        self.ttl = float(config["lease_ttl"])
        self.election = election
        self.clock = election.clock
        self.exchange = exchange
        self.on_change = on_change
        # after an exchange that changed no role: the state file shows the lease as it stands
        self.on_renewal = on_renewal
        # A manager after the first stands only once its settle time is over: at a cold start of the
        # cluster the preferred manager wins the lease, and a backup that could not run yet anyway
        # does not take it. It reads the status (GET) meanwhile.
        index = config["self"]
        self.stand_from = self.clock() + (float(config["settle"]) if index else 0.0)

    def candidate(self) -> bool:
        return self.clock() >= self.stand_from

    def check(self) -> None:
        """Step down now if the lease ran out."""
        change = self.election.tick()
        if change is not None:
            self.on_change(change)

    async def renew(self) -> None:
        """One request and what its answer (or its lack) changes."""
        sent = self.clock()
        kind, value = await self.exchange(True if self.candidate() else None, self.ttl, self.ttl)
        if kind == "answer":
            change = self.election.answered(sent, value)
        elif kind == "error":
            change = self.election.failed(sent, value)
        else:
            self.election.unanswered(value)
            change = self.election.tick()
        if change is not None:
            self.on_change(change)
        else:
            self.on_renewal()

    async def keep(self, until: asyncio.Event) -> None:
        """Renew every ``lease_poll`` seconds until ``until`` is set."""
        exchanges: t.Set[asyncio.Future] = set()
        try:
            while not until.is_set():
                next_poll = self.clock() + self.poll
                exchange = asyncio.ensure_future(self.renew())
                exchanges.add(exchange)
                exchange.add_done_callback(exchanges.discard)
                await self._wait_until(next_poll, until)
        finally:
            for exchange in exchanges:
                exchange.cancel()
            await asyncio.gather(*exchanges, return_exceptions=True)

    async def _wait_until(self, moment: float, until: asyncio.Event) -> None:
        """Sleep until ``moment``, checking the lease when it is due to run out on the way."""
        while not until.is_set():
            self.check()
            now = self.clock()
            if now >= moment:
                return
            wait = moment - now
            if self.election.active():
                # just past the lease's end, so the check there finds it over
                wait = min(wait, self.election.active_until - now + 0.001)
            await sleep_or_stop(until, wait)

    async def obtain(self, wait: float, until: asyncio.Event) -> bool:
        """For --once, with ``keep`` running: wait until the lease is granted or ``wait`` seconds passed."""
        deadline = self.clock() + wait
        while not self.election.active() and self.clock() < deadline and not until.is_set():
            await sleep_or_stop(until, min(0.05, max(0.0, deadline - self.clock())))
        return self.election.active()

    async def withdraw(self) -> None:
        """Stop standing, so that another manager need not wait for the candidacy to lapse."""
        await self.exchange(False, self.ttl, WITHDRAW_TIMEOUT)
