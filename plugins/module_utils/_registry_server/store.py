# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Durable storage of the profile registry: SQLite in WAL mode, written in
group commits; the lock that keeps a second registry off the database, and
the check at start that moves a damaged database aside."""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import time
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._registry_server import LOG, PROG

# SQLite keeps these beside the database; they belong to it.
COMPANIONS = ("-wal", "-shm")


class DatabaseLock:
    """An exclusive flock on ``<db>.lock``, held for the life of the process
    (the kernel releases it when the process dies, even by kill -9). The file
    holds the holder's pid so that the refused registry can name it."""

    def __init__(self, db: str) -> None:
        self.path = db + ".lock"
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(self._fd)
            raise SystemExit("%s: another registry (pid %s) is running on the database %s (it holds %s)"
                             % (PROG, holder, db, self.path)) from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, b"%d\n" % os.getpid(), 0)

    def release(self) -> None:
        os.close(self._fd)


def _damage(path: str) -> t.Optional[str]:
    """Why the database at ``path`` cannot be used, or None when it can (or is absent)."""
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        return None
    if size == 0:
        # SQLite would take it for a new database: a file truncated to
        # nothing must not pass for an empty registry without a word.
        return "the file is empty (0 bytes)"
    try:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            verdict = conn.execute("PRAGMA quick_check").fetchall()
            if verdict != [("ok",)]:
                return "quick_check: %s" % "; ".join(str(row[0]) for row in verdict[:3])
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "profiles" in tables:
                conn.execute("SELECT node, body, etag, expires_at FROM profiles").fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return str(exc)
    return None


def check_database(path: str, now: t.Optional[float] = None) -> t.Optional[str]:
    """Move a corrupt, truncated or empty database (and its WAL) aside, so the
    registry starts empty and the workers' next reports fill it again; the
    new name, or None when the database is usable."""
    reason = _damage(path)
    if reason is None:
        return None
    suffix = time.strftime(".corrupt-%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    for companion in ("",) + COMPANIONS:
        if os.path.exists(path + companion):
            os.replace(path + companion, path + suffix + companion)
    LOG.error("database %s is unusable (%s): moved aside to %s, starting with no profiles",
              path, reason, path + suffix)
    return path + suffix


class Store:
    """SQLite in WAL mode; every batch is committed (fsync'd) before any of
    its requests is answered."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        # FULL: the WAL is fsync'd on every commit, so an acknowledged PUT
        # survives power loss, not only a process crash.
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS profiles ("
            " node TEXT PRIMARY KEY, body BLOB NOT NULL, etag BLOB NOT NULL,"
            " expires_at REAL NOT NULL, updated_at REAL NOT NULL)"
        )

    def load(self, now: float) -> t.Tuple[t.List[t.Tuple[str, bytes, bytes, float]], t.List[str]]:
        rows = self.conn.execute("SELECT node, body, etag, expires_at FROM profiles ORDER BY node").fetchall()
        live = [(str(r[0]), bytes(r[1]), bytes(r[2]), float(r[3])) for r in rows if float(r[3]) > now]
        expired = [str(r[0]) for r in rows if float(r[3]) <= now]
        if expired:
            self.conn.execute("BEGIN")
            self.conn.execute("DELETE FROM profiles WHERE expires_at <= ?", (now,))
            self.conn.execute("COMMIT")
        return live, expired

    def apply(self, ops: t.Sequence[t.Tuple[t.Any, ...]]) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            for op in ops:
                if op[0] == "put":
                    node, body, etag, expires_at, now = op[1:]
                    self.conn.execute(
                        "INSERT INTO profiles (node, body, etag, expires_at, updated_at) VALUES (?, ?, ?, ?, ?)"
                        " ON CONFLICT(node) DO UPDATE SET body=excluded.body, etag=excluded.etag,"
                        " expires_at=excluded.expires_at, updated_at=excluded.updated_at",
                        (node, body, etag, expires_at, now),
                    )
                elif op[0] == "delete":
                    self.conn.execute("DELETE FROM profiles WHERE node = ?", (op[1],))
                elif op[0] == "expire":
                    self.conn.execute("DELETE FROM profiles WHERE node = ? AND expires_at <= ?", (op[1], op[2]))
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.conn.close()


class Committer:
    """Collects writes from concurrent requests into one transaction."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._pending: t.List[t.Tuple[t.Tuple[t.Any, ...], t.Optional[asyncio.Future]]] = []
        self._wakeup = asyncio.Event()
        self._task: t.Optional[asyncio.Task] = None
        # A batch being written: cancelling the task would not stop its thread,
        # and closing the database under it crashes the process.
        self._applying = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="registry-committer")

    async def commit(self, op: t.Tuple[t.Any, ...]) -> None:
        future = asyncio.get_running_loop().create_future()
        self._pending.append((op, future))
        self._wakeup.set()
        await future

    def enqueue(self, op: t.Tuple[t.Any, ...]) -> None:
        self._pending.append((op, None))
        self._wakeup.set()

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            batch, self._pending = self._pending, []
            if not batch:
                continue
            try:
                self._applying = True
                try:
                    await asyncio.to_thread(self.store.apply, [item[0] for item in batch])
                finally:
                    self._applying = False
            except Exception as exc:
                LOG.error("storage failure, %d write(s) not stored: %s", len(batch), exc)
                for _op, future in batch:
                    if future is not None and not future.done():
                        future.set_exception(exc)
            else:
                for _op, future in batch:
                    if future is not None and not future.done():
                        future.set_result(None)

    async def stop(self) -> None:
        while self._pending or self._applying:
            await asyncio.sleep(0.01)
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
