# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The consumer's catch-up: in order, once, and loud about what is missing."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import socket
from types import SimpleNamespace

import pytest

from nanoedge_ns import coapio
from nanoedge_ns.follower import Follower, LatestCounters, SequenceError, open_follower, position_path
from nanoedge_ns.readings import Producer


def _producer(folder, **options):
    return Producer("spo2", str(folder), fsync=False, clock=lambda: 100.0, **options)


def _catch_up(follower, producer, limit=4, consumer=""):
    pages = 0
    while True:
        pages += 1
        query = "since=%d&limit=%d" % (follower.since(), limit) + ("&consumer=" + consumer if consumer else "")
        page = json.loads(producer.answer(query)[0])
        if not follower.accept(page):
            return pages


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Consumer:
    def __init__(self, folder, **options):
        self.seen = []
        self.path = position_path(str(folder), "alert")
        self.follower = Follower("alert", self.path, self.seen.append, clock=lambda: 110.0, sync=False, **options)

    @property
    def seqs(self):
        return [r["seq"] for r in self.seen]


def test_catches_up_in_order_then_follows(tmp_path):
    producer = _producer(tmp_path / "p")
    for value in range(10):
        producer.publish({"spo2": 90 + value})
    consumer = Consumer(tmp_path / "c")
    assert _catch_up(consumer.follower, producer) == 3  # 4 + 4 + 2
    producer.publish({"spo2": 99})
    _catch_up(consumer.follower, producer)
    assert consumer.seqs == list(range(1, 12))
    assert consumer.seen[0] == {"seq": 1, "spo2": 90, "taken_at": 100.0, "source": "spo2/main"}
    counters = consumer.follower.counters()
    assert {k: counters[k] for k in ("received", "duplicates", "missing", "resets", "gaps", "refused",
                                     "lag_readings", "lag_s", "current")} == {
        "received": 11, "duplicates": 0, "missing": 0, "resets": 0, "gaps": [], "refused": [],
        "lag_readings": 0, "lag_s": 10.0, "current": "spo2/main"}


def test_counters_show_the_lag_while_catching_up(tmp_path):
    producer = _producer(tmp_path / "p")
    for value in range(10):
        producer.publish({"spo2": value}, taken_at=95.0 + value * 0.5)
    consumer = Consumer(tmp_path / "c")
    page = json.loads(producer.answer("since=0&limit=4")[0])
    assert consumer.follower.accept(page) is True
    counters = consumer.follower.counters()
    assert (counters["received"], counters["lag_readings"], counters["lag_s"]) == (4, 6, 13.5)
    assert counters["sources"]["spo2/main"]["last_seq"] == 4 and counters["sources"]["spo2/main"]["head"] == 10


def test_a_restarted_consumer_resumes_after_its_last_reading(tmp_path):
    producer = _producer(tmp_path / "p")
    for value in range(5):
        producer.publish({"spo2": value})
    first = Consumer(tmp_path / "c")
    _catch_up(first.follower, producer)
    for value in range(5, 8):
        producer.publish({"spo2": value})  # taken while the consumer was down
    second = Consumer(tmp_path / "c")
    _catch_up(second.follower, producer)
    assert second.seqs == [6, 7, 8]
    assert second.follower.counters()["received"] == 8  # the counters survive the restart too


def test_a_history_that_no_longer_reaches_back_is_a_counted_gap(tmp_path, caplog):
    producer = _producer(tmp_path / "p", max_count=8)
    producer.publish({"spo2": 1})
    consumer = Consumer(tmp_path / "c")
    _catch_up(consumer.follower, producer)
    for value in range(20):
        producer.publish({"spo2": value})  # 2..21 taken, 14..21 still held
    _catch_up(consumer.follower, producer)
    assert consumer.seqs == [1] + list(range(14, 22))
    counters = consumer.follower.counters()
    assert (counters["missing"], counters["gaps"]) == (12, [{"source": "spo2/main", "first": 2, "last": 13}])
    assert "follower alert: 12 reading(s) of spo2/main missing, seq 2..13 (no longer in its history)" in caplog.text


def test_a_moved_consumer_resumes_where_the_producer_last_heard_from_it(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="nanoedge_ns.follower")
    producer = _producer(tmp_path / "p")
    for value in range(6):
        producer.publish({"spo2": value})
    before = Consumer(tmp_path / "node-a")
    _catch_up(before.follower, producer, consumer="alert/main")  # asks since=0, since=4: handles 1..6
    _catch_up(before.follower, producer, consumer="alert/main")  # its next poll, since=6, tells it got 6
    for value in range(6, 9):
        producer.publish({"spo2": value})  # taken while the consumer moved
    producer.close()
    producer = _producer(tmp_path / "p")  # the producer restarted meanwhile, too
    after = Consumer(tmp_path / "node-b")  # its state folder stayed on node a
    _catch_up(after.follower, producer, consumer="alert/main")
    assert after.seqs == [7, 8, 9]
    assert after.follower.counters()["duplicates"] == 0
    assert after.follower.counters()["sources"]["spo2/main"]["resumed_from"] == 6
    assert "follower alert: resuming spo2/main after seq 6, where it last asked from" in caplog.text
    other = Consumer(tmp_path / "node-c")  # another consumer is not resumed at alert's position
    _catch_up(other.follower, producer, consumer="display/main")
    assert other.seqs == list(range(1, 10))
    assert other.follower.counters()["sources"]["spo2/main"]["resumed_from"] is None


def test_duplicates_and_a_gap_in_a_page_are_counted():
    seen = []
    follower = Follower("alert", "", seen.append)
    page = {"source": "s", "epoch": "e", "since": 0, "first": 1, "last": 6, "missing": 0, "more": False,
            "readings": [{"seq": 1}, {"seq": 2}, {"seq": 2}, {"seq": 5}, {"seq": 6}]}
    follower.accept(page)
    follower.accept(dict(page, since=6, readings=[{"seq": 6}]))  # a retransmitted answer
    assert [r["seq"] for r in seen] == [1, 2, 5, 6]
    counters = follower.counters()
    assert (counters["received"], counters["duplicates"], counters["missing"]) == (4, 2, 2)
    assert counters["gaps"] == [{"source": "s", "first": 3, "last": 4}]


def test_a_producer_that_went_backwards_is_refused(tmp_path):
    producer = _producer(tmp_path / "p")
    for value in range(5):
        producer.publish({"spo2": value})
    shutil.copytree(str(tmp_path / "p"), str(tmp_path / "old"))
    for value in range(5):
        producer.publish({"spo2": value})
    consumer = Consumer(tmp_path / "c")
    _catch_up(consumer.follower, producer)
    producer.close()
    restored = _producer(tmp_path / "old")  # restarted from a copy of its history taken at seq 5
    restored.publish({"spo2": 50})
    with pytest.raises(SequenceError) as error:
        _catch_up(consumer.follower, restored)
    assert str(error.value) == (
        "follower alert: spo2/main went back to seq 6 (epoch %s) after seq 10 was processed: its readings are "
        "refused (restore its history, or delete %s to start again)" % (restored.history.epoch, consumer.path))
    for value in range(10):
        restored.publish({"spo2": value})  # past the position again: still refused, also after a restart
    again = Consumer(tmp_path / "c")
    with pytest.raises(SequenceError):
        _catch_up(again.follower, restored)
    assert again.seqs == [] and again.follower.counters()["refused"] == [str(error.value)]


def test_a_restored_producer_past_the_position_is_refused_by_the_time_at_it(tmp_path):
    producer = _producer(tmp_path / "p")
    for seq in range(1, 6):
        producer.publish({"spo2": 97}, taken_at=1000.0 + seq)
    shutil.copytree(str(tmp_path / "p"), str(tmp_path / "old"))
    for seq in range(6, 11):
        producer.publish({"spo2": 97}, taken_at=1000.0 + seq)
    consumer = Consumer(tmp_path / "c")
    _catch_up(consumer.follower, producer)
    producer.close()
    restored = _producer(tmp_path / "old")
    for seq in range(6, 16):
        restored.publish({"spo2": 80}, taken_at=2000.0 + seq)  # seq 6..15 again, other readings
    with pytest.raises(SequenceError) as error:
        _catch_up(consumer.follower, restored)
    assert str(error.value) == (
        "follower alert: spo2/main numbered another reading seq 10 (taken at 2010.0, not 1010.0; epoch %s): its "
        "readings are refused (restore its history, or delete %s to start again)"
        % (restored.history.epoch, consumer.path))
    assert consumer.seqs == list(range(1, 11))


def test_a_producer_that_lost_its_history_starts_a_counted_new_epoch(tmp_path, caplog):
    producer = _producer(tmp_path / "p")
    for value in range(3):
        producer.publish({"spo2": value})
    consumer = Consumer(tmp_path / "c")
    _catch_up(consumer.follower, producer)
    producer.close()
    shutil.rmtree(str(tmp_path / "p"))
    fresh = _producer(tmp_path / "p")
    fresh.publish({"spo2": 42})
    _catch_up(consumer.follower, fresh)
    assert consumer.seqs == [1, 2, 3, 1] and consumer.seen[-1]["spo2"] == 42
    assert consumer.follower.counters()["resets"] == 1
    assert "spo2/main began a new numbering (epoch %s" % fresh.history.epoch in caplog.text


@pytest.mark.parametrize("start, expected", [("oldest", [1, 2, 3, 4]), ("latest", [4])])
def test_where_a_new_consumer_starts(tmp_path, start, expected):
    producer = _producer(tmp_path / "p")
    for value in range(3):
        producer.publish({"spo2": value})
    consumer = Consumer(tmp_path / "c", start=start)
    _catch_up(consumer.follower, producer)
    producer.publish({"spo2": 9})
    _catch_up(consumer.follower, producer)
    assert consumer.seqs == expected


def test_an_unreadable_position_file_stops_the_consumer(tmp_path):
    path = position_path(str(tmp_path), "alert")
    os.makedirs(str(tmp_path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write("{")
    with pytest.raises(SystemExit) as error:
        Follower("alert", path, print)
    assert str(error.value).startswith("follower alert: cannot read its position file %s (" % path)


def test_rejects_an_unknown_start():
    with pytest.raises(ValueError) as error:
        Follower("alert", "", print, start="middle")
    assert str(error.value) == "follower alert: start must be oldest or latest, got 'middle'"


def test_catch_up_over_coap_block_wise_then_legacy(tmp_path):
    pytest.importorskip("aiocoap")
    port = _free_port()
    producer = _producer(tmp_path / "p")
    for value in range(600):
        producer.publish({"spo2": 90 + value % 10, "status": "ok"})
    consumer = Consumer(tmp_path / "c")
    base = "coap://127.0.0.1:%d" % port

    async def scenario():
        server = await coapio.serve({"spo2/history": coapio.make_history_resource(producer.answer),
                                     "spo2": coapio.make_json_resource(lambda: producer.latest)}, "127.0.0.1", port)
        client = coapio.Client(timeout=10)
        try:
            plain = await client.get(base + "/spo2/history?since=0&limit=300")  # ~10 kB: block-wise
            while consumer.follower.accept(await consumer.follower.fetch(client, base + "/spo2/history", 250)):
                pass
            with pytest.raises(coapio.CoapError) as bad:
                await client.get(base + "/spo2/history?since=-1")
            legacy = []

            async def poll_live():
                legacy.append(await client.get(base + "/spo2"))
                raise asyncio.CancelledError

            with pytest.raises(asyncio.CancelledError):
                await consumer.follower.follow(client, base + "/nothing/history", legacy=poll_live)
            return plain, bad.value, legacy
        finally:
            await client.close()
            await server.shutdown()

    plain, bad, legacy = asyncio.run(scenario())
    assert [r["seq"] for r in plain["readings"]] == list(range(1, 301)) and plain["more"] is True
    assert consumer.seqs == list(range(1, 601))
    assert bad.code == "4.00" and str(bad).endswith("history: since must be >= 0 and limit 1..2000, got since=-1 "
                                                    "limit=500")
    assert legacy[0]["seq"] == 600


def test_a_producer_and_a_consumer_in_a_few_lines(tmp_path):
    pytest.importorskip("aiocoap")
    from nanoedge_ns import readings, service

    port = _free_port()
    args = service.parser("resp", None, port).parse_args(["--bind", "127.0.0.1", "--state-dir", str(tmp_path / "p")])
    seen = []

    async def scenario():
        served = await readings.serve("resp", "resp", args, {"breaths_per_min": None})
        client = coapio.Client(timeout=5)
        try:
            for rate in (14, 15, 16):
                served.publish({"breaths_per_min": rate})
            live = await client.get("coap://127.0.0.1:%d/resp" % port)
            follower = Follower("resp-alarm", "", seen.append)
            while follower.accept(await follower.fetch(client, "coap://127.0.0.1:%d/resp/history" % port)):
                pass
            return live
        finally:
            await client.close()
            await served.close()

    live = asyncio.run(scenario())
    assert (live["breaths_per_min"], live["seq"], live["source"]) == (16, 3, "resp/main")
    assert [(r["seq"], r["breaths_per_min"]) for r in seen] == [(1, 14), (2, 15), (3, 16)]


def test_a_display_counts_what_it_showed_polled_twice_or_never_showed():
    counters = LatestCounters("display", clock=lambda: 20.0)
    stream = {"source": "spo2/main", "epoch": "e"}
    for reading in [dict(stream, seq=1, taken_at=10.0), dict(stream, seq=1, taken_at=10.0),
                    dict(stream, seq=4, taken_at=13.0), dict(stream, seq=2, epoch="f", taken_at=19.5)]:
        counters.saw("spo2", reading)
    counters.saw("oc", {"open": True, "flow_lpm": 2.0})
    counters.saw("oc", None)
    result = counters.counters()
    assert (result["received"], result["duplicates"], result["not_shown"]) == (3, 1, 2)
    assert result["sources"]["spo2"] == {"source": "spo2/main", "epoch": "f", "last_seq": 2, "received": 3,
                                         "duplicates": 1, "not_shown": 2, "unnumbered": 0, "last_taken_at": 19.5,
                                         "lag_s": 0.5, "flowing_since": 20.0, "flowing_from": None}
    assert result["sources"]["oc"]["unnumbered"] == 1 and result["sources"]["oc"]["lag_s"] is None


def test_a_display_says_since_when_a_source_flows_from_where_it_is_read():
    now = [10.0]
    counters = LatestCounters("display", clock=lambda: now[0])
    flowing = []
    for uri, seen in [("coap://w2/alert", True), ("coap://w2/alert", True), ("coap://w2/alert", False),
                      ("coap://w2/alert", True), ("coap://w3/alert", True), ("coap://w3/alert", True)]:
        now[0] += 1.0
        if seen:
            counters.saw("alert", {"state": "normal"}, uri)
        else:
            counters.failed("alert")
        state = counters.counters()["sources"]["alert"]
        flowing.append((state["flowing_since"], state["flowing_from"]))
    # from the first answer; not after a failure, until the next answer; anew at another address
    assert flowing == [(11.0, "coap://w2/alert"), (11.0, "coap://w2/alert"), (None, "coap://w2/alert"),
                       (14.0, "coap://w2/alert"), (15.0, "coap://w3/alert"), (15.0, "coap://w3/alert")]


@pytest.mark.parametrize("instance", ["w2", "w3", "main"])
def test_a_consumer_is_known_to_its_producers_by_its_service_name_wherever_it_runs(tmp_path, instance):
    """Its instance is its node, which a move changes; the producers' memory of where it was must not."""
    args = SimpleNamespace(state_dir=str(tmp_path / "state"), instance=instance)
    follower = open_follower("alert", args, lambda reading: None)
    assert follower.consumer == "alert"
    assert follower.path == position_path(str(tmp_path / "state"), "alert")
