# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What tells the agent that the node's hardware changed, and the debounce that makes a burst one report.

``Watcher`` listens to the kernel's uevents where netlink is permitted, to
inotify on the folders discovery reads where that works, and takes the
folders' stat signature every ``poll_interval`` seconds in any case (see
``uevents`` and ``sysfs``). Each says what it saw to one callback; the
``Debouncer`` turns a burst of them into one rediscovery.

Standard library only, Python >= 3.9: this runs on the workers.
"""

from __future__ import annotations

import asyncio
import logging
import os
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._agent import sysfs, uevents

Sleeper = t.Callable[[float], t.Awaitable[t.Any]]


class Debouncer:
    """Calls ``action`` with the reasons gathered ``delay`` seconds after the first of a burst.

    The window starts at the first event and does not grow with the ones
    after it, so a device that chatters still gets its report within
    ``delay`` plus one discovery. Events during the action make one more
    round afterwards, never two actions at once.
    """

    def __init__(self, delay: float, action: t.Callable[[t.List[str]], t.Awaitable[None]],
                 sleep: Sleeper = asyncio.sleep) -> None:
        self.delay = delay
        self.action = action
        self.sleep = sleep
        self.reasons: t.List[str] = []
        self.task: t.Optional[asyncio.Future] = None

    def trigger(self, reason: str) -> None:
        self.reasons.append(reason)
        if self.task is None or self.task.done():
            self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while self.reasons:
            await self.sleep(self.delay)
            reasons, self.reasons = self.reasons, []
            await self.action(reasons)

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()


class Watcher:
    """The node's hardware events, from every source available, as reasons given to ``notify``."""

    def __init__(self, root: str, notify: t.Callable[[str], None], poll_interval: float,
                 log: logging.Logger, sleep: Sleeper = asyncio.sleep) -> None:
        self.root = root or "/"
        self.notify = notify
        self.poll_interval = poll_interval
        self.log = log
        self.sleep = sleep
        self.malformed = uevents.OnceLog(log, "events")
        self.netlink = None  # type: t.Optional[t.Any]
        self.inotify = None  # type: t.Optional[sysfs.Inotify]
        self.poller = None  # type: t.Optional[asyncio.Future]
        self.last_signature = None  # type: t.Optional[t.Tuple[t.Any, ...]]

    def start(self) -> t.List[str]:
        """Open the sources; return what each is (for the log at start)."""
        loop = asyncio.get_event_loop()
        sources = []
        # The kernel's uevents are for this machine's devices: only where the root is the machine's own.
        if os.path.realpath(self.root) == "/":
            self.netlink, why = uevents.open_netlink()
            if self.netlink is not None:
                loop.add_reader(self.netlink.fileno(), self._on_netlink)
                sources.append("kernel uevents")
            else:
                sources.append("no kernel uevents (%s)" % why)
        try:
            self.inotify = sysfs.Inotify()
            self.inotify.watch(sysfs.watched_folders(self.root))
            loop.add_reader(self.inotify.fd, self._on_inotify)
            sources.append("inotify on %d folder(s)" % len(self.inotify.watches))
        except sysfs.InotifyError as exc:
            if self.inotify is not None:
                self.inotify.close()
                self.inotify = None
            sources.append("no inotify (%s)" % exc.strerror)
        self.last_signature = sysfs.signature(self.root)
        self.poller = asyncio.ensure_future(self._poll())
        sources.append("a look every %gs" % self.poll_interval)
        return sources

    def _on_netlink(self) -> None:
        try:
            datagrams, overflowed = uevents.read_datagrams(self.netlink)
        except OSError as exc:
            self.malformed("read error", "netlink: %s" % (exc.strerror or exc))
            return
        if overflowed:
            # events were lost: whatever they were, look again
            self.notify("uevents lost (socket overflow)")
        for reason in uevents.relevant(datagrams, self.malformed):
            self.notify(reason)

    def _on_inotify(self) -> None:
        for path in self.inotify.read():
            self.notify("inotify %s" % ("queue overflow" if path == "*" else os.path.relpath(path, self.root)))

    async def _poll(self) -> None:
        while True:
            await self.sleep(self.poll_interval)
            self.look()

    def look(self) -> None:
        """Compare the folders' signature with the last one; notify when it moved."""
        current = sysfs.signature(self.root)
        if current != self.last_signature:
            changed = [folder for folder, old, new in zip(sysfs.FOLDERS, self.last_signature or (), current)
                       if old != new]
            self.last_signature = current
            self.notify("changed %s" % ", ".join(changed or ["folders"]))
        if self.inotify is not None:
            try:
                self.inotify.watch(sysfs.watched_folders(self.root))
            except sysfs.InotifyError as exc:
                self.malformed("inotify watch", exc.strerror or str(exc))

    def close(self) -> None:
        loop = asyncio.get_event_loop()
        if self.poller is not None:
            self.poller.cancel()
        if self.netlink is not None:
            loop.remove_reader(self.netlink.fileno())
            self.netlink.close()
            self.netlink = None
        if self.inotify is not None:
            loop.remove_reader(self.inotify.fd)
            self.inotify.close()
            self.inotify = None
