# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restarting a registry whose event loop stops answering.

Under systemd (``Type=notify``, ``WatchdogSec=``) the loop sends READY=1 once
it serves and WATCHDOG=1 while it runs (sd_notify(3), spoken here with the
standard library); when the datagrams stop, systemd kills and restarts it.
Where no systemd watches (the container), a thread ends the process when the
loop has not run for ``--watchdog`` seconds, and the container's restart
policy starts it again: Docker itself only marks a container unhealthy, it
never restarts one for that."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._registry_server import LOG

Environ = t.Mapping[str, str]
# The exit status of a registry ended by its own watchdog (EX_SOFTWARE).
STALL_EXIT_STATUS = 70


def notify(state: str, environ: t.Optional[Environ] = None) -> bool:
    """Send ``state`` (e.g. "READY=1") to the service manager; False when
    none listens. An address starting with '@' is in the abstract namespace."""
    address = (os.environ if environ is None else environ).get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(state.encode("ascii"))
    except OSError as exc:
        LOG.warning("cannot notify the service manager at %s: %s", address.replace("\0", "@"), exc)
        return False
    return True


def systemd_watchdog_interval(environ: t.Optional[Environ] = None, pid: t.Optional[int] = None) -> t.Optional[float]:
    """Seconds between two WATCHDOG=1 (half of WatchdogSec=, as
    sd_watchdog_enabled(3) advises), or None when systemd expects none."""
    environ = os.environ if environ is None else environ
    usec, owner = environ.get("WATCHDOG_USEC", ""), environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or not environ.get("NOTIFY_SOCKET"):
        return None
    if owner and (not owner.isdigit() or int(owner) != (os.getpid() if pid is None else pid)):
        return None  # meant for another process (e.g. a wrapper that started us)
    return int(usec) / 2e6


def _end_process(stalled: float) -> None:
    LOG.critical("the event loop has not run for %.1f s: ending the registry so that it is restarted", stalled)
    os._exit(STALL_EXIT_STATUS)


class LoopWatchdog:
    """A thread that calls ``on_stall`` (by default: ends the process) when
    ``beat`` has not been called for ``timeout`` seconds. A loop stuck in
    Python code still lets this thread run (the interpreter switches threads
    every few milliseconds)."""

    def __init__(self, timeout: float, on_stall: t.Callable[[float], None] = _end_process) -> None:
        self.timeout = timeout
        self.on_stall = on_stall
        self._last = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="registry-watchdog", daemon=True)

    def start(self) -> None:
        self._last = time.monotonic()
        self._thread.start()

    def beat(self) -> None:
        self._last = time.monotonic()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _watch(self) -> None:
        while not self._stop.wait(min(1.0, self.timeout / 4)):
            stalled = time.monotonic() - self._last
            if stalled > self.timeout:
                self.on_stall(stalled)
                return


async def keep_alive(interval: float, beats: t.Sequence[t.Callable[[], t.Any]]) -> None:
    """Call every beat each ``interval`` seconds, for as long as the loop runs."""
    while True:
        for beat in beats:
            beat()
        await asyncio.sleep(interval)


def start_watchdogs(loop: asyncio.AbstractEventLoop, own_timeout: float) -> t.Tuple[t.Optional[asyncio.Task],
                                                                                    t.Optional[LoopWatchdog]]:
    """Tell systemd the registry is ready and feed the watchdog that applies:
    systemd's when it set one, else our own thread when ``own_timeout`` > 0."""
    notify("READY=1")
    interval = systemd_watchdog_interval()
    if interval is not None:
        LOG.info("systemd watchdog: WATCHDOG=1 every %.1f s", interval)
        return loop.create_task(keep_alive(interval, [lambda: notify("WATCHDOG=1")]), name="registry-watchdog"), None
    if own_timeout <= 0:
        return None, None
    own = LoopWatchdog(own_timeout)
    own.start()
    LOG.info("watchdog: the registry ends itself if its event loop stalls for %.0f s", own_timeout)
    return loop.create_task(keep_alive(min(1.0, own_timeout / 4), [own.beat]), name="registry-watchdog"), own
