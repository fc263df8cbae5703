# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The registry's database: writes applied in one transaction, read back
after a restart, expired leases dropped at load; group commits."""

from __future__ import annotations

import asyncio
import logging
import sqlite3

import pytest

from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.store import Committer, Store


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
