# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Waiting that a stop cuts short: every wait of the daemon ends at once on SIGTERM."""

from __future__ import annotations

import asyncio
import typing as t


async def sleep_or_stop(stopping: asyncio.Event, seconds: float, *events: asyncio.Event) -> None:
    """Sleep, ending early on stop or on any of ``events``."""
    waiters = [asyncio.ensure_future(event.wait()) for event in (stopping,) + events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def next_or_stop(queue: asyncio.Queue, stopping: asyncio.Event, *events: asyncio.Event) -> t.Tuple[str, t.Any]:
    """The next item of ``queue``; ``("stop", None)`` when ``stopping`` is set first, ``("event", None)``
    when one of ``events`` is."""
    getter = asyncio.ensure_future(queue.get())
    stopper = asyncio.ensure_future(stopping.wait())
    others = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait({getter, stopper, *others}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in [stopper] + others:
            waiter.cancel()
        if not getter.done():
            getter.cancel()
    if getter.done() and not getter.cancelled():
        return getter.result()
    if stopping.is_set():
        return ("stop", None)
    return ("event", None)
