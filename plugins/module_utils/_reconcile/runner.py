# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running the command: its lock, its log files and its end."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import os
import signal
import typing as t

LOG = logging.getLogger("nanoedge.reconcile")

# After SIGTERM to a timed-out or interrupted command's process group, how
# long it gets before SIGKILL.
KILL_AFTER = 5.0
LOCK_POLL = 0.1


def tail(path: str, lines: int) -> t.List[str]:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            data = handle.read()
    except OSError:
        return []
    return [line.rstrip("\r") for line in data.decode("utf-8", errors="replace").splitlines()[-lines:]]


def prune_run_logs(directory: str, keep: int) -> None:
    try:
        logs = sorted(name for name in os.listdir(directory) if name.startswith("run-") and name.endswith(".log"))
    except OSError:
        return
    for name in logs[:-keep]:
        try:
            os.unlink(os.path.join(directory, name))
        except OSError:
            pass


class FileLock:
    """``flock(LOCK_EX)`` on a file, waited for without blocking the event loop."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = None  # type: t.Optional[int]

    async def acquire(self, stopping: asyncio.Event) -> bool:
        """True once held; False when ``stopping`` was set while waiting."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        waited = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
                if not waited:
                    LOG.info("waiting for the lock %s (another run holds it)", self.path)
                    waited = True
                if stopping.is_set():
                    os.close(fd)
                    return False
                await asyncio.sleep(LOCK_POLL)
                continue
            self.fd = fd
            return True

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None



class RunResult(t.NamedTuple):
    rc: t.Optional[int]
    error: str
    log: str



async def terminate(proc: t.Any, waiter: t.Any) -> t.Optional[int]:
    """SIGTERM to the command's process group, SIGKILL if it lingers."""
    for signum, wait in ((signal.SIGTERM, KILL_AFTER), (signal.SIGKILL, KILL_AFTER)):
        try:
            os.killpg(proc.pid, signum)
        except ProcessLookupError:
            pass
        done, _pending = await asyncio.wait({waiter}, timeout=wait)
        if done:
            return waiter.result()
    return None

