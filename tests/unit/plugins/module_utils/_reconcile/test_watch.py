# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the daemon makes of the registry's answers (the CoAP exchanges themselves
are in tests/integration/test_reconcile_daemon.py)."""

from __future__ import annotations

import asyncio
import json
import logging
import typing as t

import pytest

from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.config import validate_config
from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.waiting import next_or_stop
from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.watch import Watcher, describe_error

PROFILE = {"node": "w1", "capabilities": ["pom"], "power": {"source": "ac"}, "network": ["wifi"], "arch": "armv7l"}


class Code(t.NamedTuple):
    dotted: str
    name_printable: str

    def is_successful(self) -> bool:
        return self.dotted.startswith("2.")


class Options(t.NamedTuple):
    etag: t.Optional[bytes] = None


class Response(t.NamedTuple):
    code: Code
    payload: bytes
    opt: Options = Options()


CONTENT = Code("2.05", "Content")


class Calls:
    def __init__(self) -> None:
        self.changes = 0
        self.outages = 0

    def change(self) -> None:
        self.changes += 1

    def outage(self) -> None:
        self.outages += 1


def make_watcher() -> t.Tuple[Watcher, Calls]:
    calls = Calls()
    config = validate_config({"registry": "coap://m1", "command": ["true"]})
    return Watcher(config, asyncio.Event(), on_change=calls.change, on_outage=calls.outage), calls


def test_a_changed_fingerprint_is_taken_once(caplog):
    watcher, calls = make_watcher()
    answer = Response(CONTENT, json.dumps({"w1": PROFILE}).encode())
    watcher.take_payload(answer)
    drifted = dict(PROFILE, collected_at="2026-11-26T09:00:00Z")
    watcher.take_payload(Response(CONTENT, json.dumps({"w1": drifted}).encode()))
    assert calls.changes == 1
    assert watcher.fingerprint == {"w1": {"capabilities": ["pom"], "power": "ac", "network": ["wifi"],
                                          "arch": "arm/v7", "battery": None}}
    assert watcher.reachable() and caplog.records == []


@pytest.mark.parametrize("answer, warning", [
    (Response(CONTENT, b"{not json"),
     "registry coap://m1:5683: malformed /profiles answer ignored: Expecting property name enclosed in double quotes:"
     " line 1 column 2 (char 1)"),
    (Response(CONTENT, b"[]"),
     "registry coap://m1:5683: malformed /profiles answer ignored: expected a JSON object node -> profile, got list"),
    (Response(Code("4.04", "Not Found"), b"gone"), "registry coap://m1:5683: answered 4.04 Not Found: gone"),
])
def test_a_bad_answer_is_logged_once_and_ignored(caplog, answer, warning):
    watcher, calls = make_watcher()
    with caplog.at_level(logging.WARNING, logger="nanoedge.reconcile"):
        watcher.take_payload(answer)
        watcher.take_payload(answer)
    assert [record.getMessage() for record in caplog.records] == [warning]
    assert (watcher.fingerprint, calls.changes) == (None, 0)


def test_a_malformed_profile_is_skipped_and_reported_until_a_clean_answer(caplog):
    watcher, calls = make_watcher()
    with caplog.at_level(logging.WARNING, logger="nanoedge.reconcile"):
        for _round in range(2):
            watcher.take_payload(Response(CONTENT, json.dumps({"w1": PROFILE, "w2": "junk"}).encode()))
            watcher.take_payload(Response(CONTENT, json.dumps({"w1": PROFILE}).encode()))
    assert [record.getMessage() for record in caplog.records] == [
        "registry coap://m1:5683: skipping a malformed profile: profile of w2 is str, not an object"] * 2
    assert list(watcher.fingerprint) == ["w1"] and calls.changes == 1


def test_an_outage_is_reported_once_until_the_registry_answers(caplog):
    watcher, calls = make_watcher()
    with caplog.at_level(logging.INFO, logger="nanoedge.reconcile"):
        watcher.failed("no answer within 10 s")
        watcher.failed("Connection refused")
        assert (watcher.error, calls.outages, watcher.reachable()) == ("Connection refused", 1, False)
        watcher.take_payload(Response(CONTENT, b"{}"))
    messages = [record.getMessage() for record in caplog.records]
    assert messages[0] == ("registry coap://m1:5683: cannot read /profiles: no answer within 10 s;"
                           " retrying until it answers")
    assert messages[1].startswith("registry coap://m1:5683 answers again after ")
    assert len(messages) == 2 and watcher.error is None and watcher.fingerprint == {}


def test_errors_are_described_by_their_errno():
    error = RuntimeError("network unreachable (aiocoap's own words)")
    error.__cause__ = ConnectionRefusedError(111, "Connection refused")
    assert describe_error(error) == "Connection refused"
    assert describe_error(RuntimeError()) == "RuntimeError"
    assert describe_error(RuntimeError("timed out")) == "timed out"


def test_lease_answers_that_name_another_etag_make_the_watcher_read_again(caplog):
    caplog.set_level(logging.INFO, logger="nanoedge.reconcile")
    watcher, _calls = make_watcher()
    watcher.compare_etag({"profiles": "ffff"})  # nothing read yet: nothing to compare
    watcher.take_payload(Response(CONTENT, json.dumps({"w1": PROFILE}).encode(), Options(b"\x01\x02")))
    assert watcher.etag == "0102"
    refreshed = []
    for status in [{"profiles": "0102"}, {"profiles": "ffff"}, {"profiles": "0102"},  # overtaken once: nothing
                   {"profiles": "ffff"}, {"profiles": "ffff"},  # twice in a row: read again
                   {"profiles": "ffff"}, {"profiles": "ffff"}, {"profiles": "ffff"}, {"profiles": "ffff"},  # then 4
                   {"term": 9}, "not an object"]:  # a registry that does not say: nothing
        watcher.compare_etag(status)
        refreshed.append(watcher.refresh.is_set())
        watcher.refresh.clear()
    assert refreshed == [False, False, False, False, True, False, False, False, True, False, False]
    assert [r.getMessage() for r in caplog.records] == [
        "registry coap://m1:5683: /profiles changed (ETag ffff) and no notification came; reading it again"]


def test_the_refresh_ends_the_wait_for_a_notification():
    async def scenario() -> t.List[t.Tuple[str, t.Any]]:
        queue: asyncio.Queue = asyncio.Queue()
        stopping, refresh = asyncio.Event(), asyncio.Event()
        results = []
        queue.put_nowait(("notification", 1))
        results.append(await next_or_stop(queue, stopping, refresh))
        refresh.set()
        results.append(await next_or_stop(queue, stopping, refresh))
        stopping.set()
        results.append(await next_or_stop(queue, stopping, refresh))
        return results

    assert asyncio.run(scenario()) == [("notification", 1), ("event", None), ("stop", None)]
