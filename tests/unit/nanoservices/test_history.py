# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The producer's durable history and the numbering of readings."""

from __future__ import annotations

import json
import os

import pytest

from nanoedge_ns.history import HEADER, History, HistoryError, decode_records, encode_record
from nanoedge_ns.readings import Producer, parse_query


def _fill(history, count, start=0):
    return [history.append({"v": start + i})["seq"] for i in range(count)]


def _segments(directory):
    return sorted(n for n in os.listdir(directory) if n.startswith("seg-"))


def test_numbers_from_one_and_replays_in_order(tmp_path):
    history = History(str(tmp_path), "spo2/main", fsync=False)
    assert (history.last_seq, history.first_seq, len(history)) == (0, 1, 0)
    assert _fill(history, 5) == [1, 2, 3, 4, 5]
    assert history.readings(since=2) == [{"v": 2, "seq": 3, "source": "spo2/main"},
                                         {"v": 3, "seq": 4, "source": "spo2/main"},
                                         {"v": 4, "seq": 5, "source": "spo2/main"}]
    assert [r["seq"] for r in history.readings(since=0, limit=2)] == [1, 2]
    assert history.readings(since=5) == []


def test_a_restart_keeps_the_sequence_and_the_epoch(tmp_path):
    history = History(str(tmp_path), "spo2/main")
    _fill(history, 3)
    epoch = history.epoch
    history.close()
    again = History(str(tmp_path), "spo2/main")
    assert (again.epoch, again.last_seq) == (epoch, 3)
    assert again.append({"v": 9}) == {"v": 9, "seq": 4, "source": "spo2/main", "epoch": epoch}
    assert [r["v"] for r in again.readings()] == [0, 1, 2, 9]


def test_an_empty_folder_starts_a_new_epoch(tmp_path):
    first = History(str(tmp_path / "a"), "spo2/main")
    second = History(str(tmp_path / "b"), "spo2/main")
    assert first.epoch != second.epoch and len(first.epoch) == 16


@pytest.mark.parametrize("cut", [1, HEADER.size - 1, HEADER.size, HEADER.size + 3])
def test_a_torn_last_record_is_dropped_not_misread(tmp_path, cut):
    history = History(str(tmp_path), "spo2/main")
    _fill(history, 3)
    history.close()
    path = tmp_path / _segments(tmp_path)[0]
    whole = path.read_bytes()
    record = encode_record(4, b'{"v":3}')
    path.write_bytes(whole + record[:cut])  # the crash came in the middle of writing seq 4
    again = History(str(tmp_path), "spo2/main")
    assert again.last_seq == 3 and again.dropped_records == 1
    assert path.read_bytes() == whole  # cut back, so the next append follows a whole record
    assert again.append({"v": "new"})["seq"] == 4
    assert [r["v"] for r in again.readings()] == [0, 1, 2, "new"]


def test_a_garbled_record_is_dropped_with_what_follows(tmp_path):
    history = History(str(tmp_path), "spo2/main")
    _fill(history, 4)
    history.close()
    path = tmp_path / _segments(tmp_path)[0]
    data = bytearray(path.read_bytes())
    second = HEADER.size + len(b'{"v":0}')
    data[second + HEADER.size] ^= 0xFF  # one flipped bit in seq 2's payload: its checksum fails
    path.write_bytes(bytes(data))
    again = History(str(tmp_path), "spo2/main")
    assert [r["seq"] for r in again.readings()] == [1]
    assert again.append({"v": "x"})["seq"] == 2


def test_a_crash_between_write_and_rename_keeps_the_old_meta(tmp_path):
    history = History(str(tmp_path), "spo2/main")
    _fill(history, 2)
    epoch = history.epoch
    history.close()
    (tmp_path / ".meta.json.tmp").write_bytes(b'{"source": "spo2/main", "ep')  # written, never renamed
    again = History(str(tmp_path), "spo2/main")
    assert (again.epoch, again.last_seq) == (epoch, 2)
    assert not (tmp_path / ".meta.json.tmp").exists()


def test_full_by_count_drops_the_oldest_segments(tmp_path):
    history = History(str(tmp_path), "s", max_count=80, max_bytes=1 << 20)  # segments of 10
    _fill(history, 205)
    assert (history.first_seq, history.last_seq, len(history)) == (131, 205, 75)
    assert len(_segments(tmp_path)) == 8
    assert [r["seq"] for r in history.readings(since=0, limit=3)] == [131, 132, 133]


def test_full_by_bytes_drops_the_oldest_segments(tmp_path):
    history = History(str(tmp_path), "s", max_count=100000, max_bytes=8192)  # segments of 1 KiB
    for i in range(400):
        history.append({"v": "x" * 40, "i": i})
    assert history.size <= 8192 and history.size > 8192 * 7 // 8 - 1024
    assert history.last_seq == 400 and history.first_seq > 1
    held = [r["seq"] for r in history.readings(since=0, limit=1000)]
    assert held == list(range(history.first_seq, 401))


def test_a_hole_left_by_a_lost_deletion_keeps_only_what_follows(tmp_path):
    history = History(str(tmp_path), "s", max_count=16, max_bytes=1 << 20)  # segments of 2
    _fill(history, 8)
    history.close()
    os.unlink(str(tmp_path / _segments(tmp_path)[1]))  # seq 3..4 gone, 1..2 still there
    again = History(str(tmp_path), "s", max_count=16, max_bytes=1 << 20)
    assert (again.first_seq, again.last_seq) == (5, 8)
    assert len(_segments(tmp_path)) == 2


@pytest.mark.parametrize("meta, message", [
    (b"{broken", "unreadable meta.json"),
    (json.dumps({"source": "hr/main", "epoch": "e"}).encode(), "holds source 'hr/main', not 'spo2/main'"),
])
def test_a_folder_it_cannot_trust_is_refused(tmp_path, meta, message):
    (tmp_path / "meta.json").write_bytes(meta)
    with pytest.raises(HistoryError) as error:
        History(str(tmp_path), "spo2/main")
    assert str(error.value).startswith("history %s: %s" % (tmp_path, message))


def test_page_says_what_is_missing_and_what_follows(tmp_path):
    history = History(str(tmp_path), "s", max_count=8, max_bytes=1 << 20, fsync=False)
    _fill(history, 12)  # segments of one reading: exactly 5..12 held
    page = json.loads(history.page(since=2, limit=3))
    assert page == {"source": "s", "epoch": history.epoch, "since": 2, "first": 5, "last": 12, "missing": 2,
                    "more": True, "readings": [{"seq": 5, "v": 4}, {"seq": 6, "v": 5}, {"seq": 7, "v": 6}]}
    after_nine = json.loads(history.page(since=9, limit=5))
    assert after_nine["more"] is False and [r["seq"] for r in after_nine["readings"]] == [10, 11, 12]
    assert after_nine["at_since"] is None  # seq 9 is held but has no taken_at
    assert json.loads(history.page(since=12, limit=3))["readings"] == []
    assert json.loads(history.page(since=40, limit=3))["missing"] == 0


def test_page_names_the_time_of_the_reading_at_since(tmp_path):
    history = History(str(tmp_path), "s", fsync=False)
    for i in range(3):
        history.append({"taken_at": 100.0 + i})
    assert json.loads(history.page(since=2, limit=5))["at_since"] == 101.0
    assert "at_since" not in json.loads(history.page(since=0, limit=5))


def test_decode_stops_at_a_break_in_the_numbering():
    data = encode_record(1, b"{}") + encode_record(3, b"{}")
    records, end = decode_records(data)
    assert records == [(1, b"{}")] and end == HEADER.size + 2


@pytest.mark.parametrize("query, expected", [
    ("", (0, 500, False, "")),
    ("since=7&limit=20&enc=zlib&consumer=alert%2Fmain", (7, 20, True, "alert/main")),
    (["since=3", "limit=1", "consumer=alert/main"], (3, 1, False, "alert/main")),
])
def test_history_query(query, expected):
    assert tuple(parse_query(query)) == expected


@pytest.mark.parametrize("query, message", [
    ("from=3", "history: unknown query item 'from' (known: since, limit, enc, consumer)"),
    ("consumer=" + "x" * 101, "history: consumer names at most 100 characters"),
    ("since=x", "history: since and limit must be whole numbers, got since='x' limit='500'"),
    ("limit=0", "history: since must be >= 0 and limit 1..2000, got since=0 limit=0"),
    ("limit=5000", "history: since must be >= 0 and limit 1..2000, got since=0 limit=5000"),
    ("enc=gzip", "history: enc must be zlib or absent, got 'gzip'"),
])
def test_history_query_errors(query, message):
    with pytest.raises(ValueError) as error:
        parse_query(query)
    assert str(error.value) == message


def test_producer_numbers_stamps_and_survives_a_restart(tmp_path):
    producer = Producer("spo2", str(tmp_path), instance="bed-4", clock=lambda: 1000.25)
    reading = producer.publish({"spo2": 97, "status": "ok"})
    assert reading == {"spo2": 97, "status": "ok", "taken_at": 1000.25, "seq": 1, "source": "spo2/bed-4",
                       "epoch": producer.history.epoch}
    assert producer.publish({"spo2": 96}, taken_at=1001.0)["seq"] == 2
    producer.close()
    assert os.path.isdir(str(tmp_path / "history" / "spo2_bed-4"))
    again = Producer("spo2", str(tmp_path), instance="bed-4")
    assert again.publish({"spo2": 95})["seq"] == 3
    page, compressed = again.answer(["since=1"])
    assert not compressed and [r["seq"] for r in json.loads(page)["readings"]] == [2, 3]


def test_a_record_that_rots_on_disk_later_is_left_out_of_the_pages(tmp_path):
    history = History(str(tmp_path), "s", fsync=False)
    _fill(history, 5)
    path = tmp_path / _segments(tmp_path)[0]
    data = bytearray(path.read_bytes())
    data[2 * (HEADER.size + len(b'{"v":0}')) + HEADER.size + 2] ^= 0xFF  # seq 3's payload, while running
    path.write_bytes(bytes(data))
    assert [r["seq"] for r in history.readings(since=0)] == [1, 2, 4, 5]
    assert [r["seq"] for r in history.readings(since=3)] == [4, 5]
    assert history.append({"v": 5})["seq"] == 6


def test_the_producer_remembers_where_each_consumer_asked_from(tmp_path):
    producer = Producer("spo2", str(tmp_path), fsync=False)
    for value in range(5):
        producer.publish({"spo2": value})

    def consumer_at(query):
        return json.loads(producer.answer(query)[0]).get("consumer_at")

    assert consumer_at("since=0") is None
    assert [consumer_at("since=%d&consumer=alert/main" % n) for n in (0, 3, 2, 5)] == [0, 3, 3, 5]
    producer.close()
    again = Producer("spo2", str(tmp_path), fsync=False)
    assert json.loads(again.answer("since=0&consumer=alert/main")[0])["consumer_at"] == 5
    assert json.loads((tmp_path / "history" / "spo2_main" / "consumers.json").read_text()) == {"alert/main": 5}
