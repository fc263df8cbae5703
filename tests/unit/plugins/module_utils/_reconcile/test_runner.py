# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The run logs and the lock of the reconcile command."""

from __future__ import annotations

import asyncio
import fcntl
import os
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.runner import FileLock, prune_run_logs, tail


def test_old_run_logs_are_pruned_and_the_tail_is_read(tmp_path):
    for index in range(5):
        (tmp_path / ("run-2026112%dT000000Z.log" % index)).write_text("".join("line %d\n" % n for n in range(30)))
    (tmp_path / "other.txt").write_text("kept")
    prune_run_logs(str(tmp_path), 2)
    assert sorted(os.listdir(tmp_path)) == ["other.txt", "run-20261123T000000Z.log", "run-20261124T000000Z.log"]
    assert tail(str(tmp_path / "run-20261124T000000Z.log"), 3) == ["line 27", "line 28", "line 29"]
    assert tail(str(tmp_path / "missing.log"), 3) == []


def test_file_lock_waits_for_another_holder(tmp_path):
    path = tmp_path / "reconcile.lock"
    holder = os.open(str(path), os.O_RDWR | os.O_CREAT)
    fcntl.flock(holder, fcntl.LOCK_EX)

    async def scenario() -> t.Tuple[bool, bool]:
        stopping = asyncio.Event()
        lock = FileLock(str(path))
        waiting = asyncio.ensure_future(lock.acquire(stopping))
        await asyncio.sleep(0.3)
        blocked = not waiting.done()
        fcntl.flock(holder, fcntl.LOCK_UN)
        acquired = await asyncio.wait_for(waiting, 5)
        lock.release()
        return blocked, acquired

    try:
        assert asyncio.run(scenario()) == (True, True)
    finally:
        os.close(holder)


def test_file_lock_gives_up_when_stopping(tmp_path):
    path = tmp_path / "reconcile.lock"
    holder = os.open(str(path), os.O_RDWR | os.O_CREAT)
    fcntl.flock(holder, fcntl.LOCK_EX)

    async def scenario() -> bool:
        stopping = asyncio.Event()
        stopping.set()
        return await FileLock(str(path)).acquire(stopping)

    try:
        assert asyncio.run(scenario()) is False
    finally:
        os.close(holder)
