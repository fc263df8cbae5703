# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The registry's database: writes applied in one transaction, read back
after a restart, expired leases dropped at load; group commits."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3

import pytest

from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.store import (
    Committer, DatabaseLock, Store, check_database,
)


def put(node: str, expires_at: float, body: bytes = b"{}", etag: bytes = b"e" * 8, now: float = 0.0) -> tuple:
    return ("put", node, body, etag, expires_at, now)


@pytest.fixture()
def db(tmp_path):
    return str(tmp_path / "registry.sqlite")


def test_durable_settings(db):
    store = Store(db)
    try:
        assert store.conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert store.conn.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    finally:
        store.close()


def test_apply_then_load_after_a_restart(db):
    store = Store(db)
    store.apply([put("w2", 200.0, b'{"node":"w2"}', b"22222222"), put("w1", 100.0, b'{"node":"w1"}', b"11111111")])
    store.apply([put("w1", 300.0, b'{"node":"w1","x":1}', b"1111111x", now=50.0)])
    store.close()

    again = Store(db)
    try:
        assert again.load(0.0) == ([("w1", b'{"node":"w1","x":1}', b"1111111x", 300.0),
                                    ("w2", b'{"node":"w2"}', b"22222222", 200.0)], [])
    finally:
        again.close()


@pytest.mark.parametrize("ops, now, live, expired", [
    # a lease ending at the moment of loading has ended
    ([put("w1", 100.0), put("w2", 200.0)], 200.0, [], ["w1", "w2"]),
    ([put("w1", 100.0), put("w2", 200.0)], 150.0, ["w2"], ["w1"]),
    ([put("w1", 100.0), ("delete", "w1")], 0.0, [], []),
    ([put("w1", 100.0), ("delete", "nobody")], 0.0, ["w1"], []),
    # "expire" deletes only the lease it names: a renewed one stays
    ([put("w1", 100.0), ("expire", "w1", 100.0)], 0.0, [], []),
    ([put("w1", 300.0), ("expire", "w1", 100.0)], 0.0, ["w1"], []),
])
def test_load_keeps_live_leases_and_drops_the_rest(db, ops, now, live, expired):
    store = Store(db)
    try:
        store.apply(ops)
        loaded, gone = store.load(now)
        assert ([row[0] for row in loaded], gone) == (live, expired)
        assert [row[0] for row in store.load(0.0)[0]] == live  # the expired rows are deleted, not only skipped
    finally:
        store.close()


def test_a_failed_batch_stores_nothing(db):
    store = Store(db)
    try:
        with pytest.raises(ValueError):
            store.apply([put("w1", 100.0), ("put", "w2", b"{}")])
        assert store.load(0.0) == ([], [])
    finally:
        store.close()


def test_committer_writes_concurrent_requests_in_one_transaction(db, monkeypatch):
    store = Store(db)
    batches = []
    apply = store.apply
    monkeypatch.setattr(store, "apply", lambda ops: (batches.append(list(ops)), apply(ops))[1])

    async def scenario() -> None:
        committer = Committer(store)
        committer.start()
        await asyncio.sleep(0)  # the committer now waits for work
        requests = [asyncio.ensure_future(committer.commit(put(node, 100.0))) for node in ("w1", "w2")]
        committer.enqueue(("expire", "gone", 1.0))
        await asyncio.gather(*requests)
        await committer.stop()

    asyncio.run(scenario())
    assert batches == [[("expire", "gone", 1.0), put("w1", 100.0), put("w2", 100.0)]]
    assert [row[0] for row in store.load(0.0)[0]] == ["w1", "w2"]
    store.close()


def test_committer_reports_a_storage_failure_to_every_waiting_request(db, caplog):
    store = Store(db)
    store.close()

    async def scenario() -> list:
        committer = Committer(store)
        committer.start()
        results = await asyncio.gather(committer.commit(put("w1", 1.0)), committer.commit(put("w2", 1.0)),
                                       return_exceptions=True)
        await committer.stop()
        return results

    with caplog.at_level(logging.ERROR, logger="nanoedge.registry"):
        results = asyncio.run(scenario())
    assert [type(result) for result in results] == [sqlite3.ProgrammingError] * 2
    assert caplog.messages == ["storage failure, 2 write(s) not stored: Cannot operate on a closed database."]


# -- the check at start and the lock ---------------------------------------------

STAMP = 1798000000.0  # 2026-12-23T04:26:40Z
SUFFIX = ".corrupt-20261223T042640Z"


def healthy(db: str) -> None:
    store = Store(db)
    store.apply([put("w1", 100.0, b'{"node":"w1"}', b"11111111")])
    store.close()


def truncate(db: str) -> None:
    healthy(db)
    store = Store(db)
    store.apply([put("w%d" % i, 100.0, b"x" * 3000) for i in range(20)])
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    with open(db, "r+b") as handle:
        handle.truncate(4096 * 3)


@pytest.mark.parametrize("damage, reason", [
    (lambda db: open(db, "wb").close(), "the file is empty (0 bytes)"),
    (lambda db: open(db, "wb").write(b"not a database" * 100), "file is not a database"),
    (truncate, "database disk image is malformed"),
])
def test_a_damaged_database_is_moved_aside_with_one_log_line(db, caplog, damage, reason):
    damage(db)
    open(db + "-wal", "wb").close()
    caplog.set_level(logging.INFO, logger="nanoedge.registry")
    assert check_database(db, now=STAMP) == db + SUFFIX
    # its WAL goes with it (SQLite itself removes an empty one on a clean close)
    assert (os.path.exists(db), os.path.exists(db + "-wal"), os.path.exists(db + SUFFIX)) == (False, False, True)
    assert [r.getMessage() for r in caplog.records] == [
        "database %s is unusable (%s): moved aside to %s, starting with no profiles" % (db, reason, db + SUFFIX)]
    store = Store(db)
    try:
        assert store.load(0.0) == ([], [])
    finally:
        store.close()


@pytest.mark.parametrize("prepare", [lambda db: None, healthy])
def test_an_absent_or_healthy_database_is_left_alone(db, caplog, prepare):
    prepare(db)
    assert check_database(db, now=STAMP) is None
    assert [name for name in os.listdir(os.path.dirname(db)) if "corrupt" in name] == []
    assert caplog.records == []


def test_one_registry_per_database(db):
    first = DatabaseLock(db)
    try:
        with open(db + ".lock") as handle:
            assert handle.read() == "%d\n" % os.getpid()
        with pytest.raises(SystemExit) as info:
            DatabaseLock(db)
        assert str(info.value) == (
            "nanoedge.core.registry: another registry (pid %d) is running on the database %s (it holds %s)"
            % (os.getpid(), db, db + ".lock"))
    finally:
        first.release()
    DatabaseLock(db).release()  # free again once the holder is gone
