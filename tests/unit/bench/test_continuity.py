# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""bench/continuity/report.py: placements compared, rows, the table, the median over runs, the report."""

from __future__ import annotations

import json

import pytest

from ansible_collections.nanoedge.core.bench.continuity import report

PAPER = {"alert": ["w2"], "bot": ["w1"], "display": ["w5"], "hr": ["w4"], "hrv": ["w4"], "oc": ["w3"],
         "spo2": ["w4"]}


def test_placement_from_nodes():
    assert report.placement_from_nodes({"w4": ["spo2", "hr"], "w2": ["alert", "hr"], "w1": []}) == {
        "alert": ["w2"], "hr": ["w2", "w4"], "spo2": ["w4"]}


@pytest.mark.parametrize("after, required, moved, unneeded", [
    (PAPER, [], [], []),
    (dict(PAPER, spo2=["w2"], hr=["w2"], hrv=["w2"]), ["spo2", "hr", "hrv"], ["hr", "hrv", "spo2"], []),
    (dict(PAPER, alert=["w3"], oc=["w4"]), ["alert"], ["alert", "oc"], ["oc"]),
    # stopped (unplaced) and running twice both count as a move
    ({k: v for k, v in PAPER.items() if k != "bot"}, ["bot"], ["bot"], []),
    (dict(PAPER, display=["w2", "w5"]), [], ["display"], ["display"]),
])
def test_moves(after, required, moved, unneeded):
    assert report.moved_services(PAPER, after) == moved
    assert report.unneeded_moves(moved, required) == unneeded


@pytest.mark.parametrize("now, services, expected", [
    (dict(PAPER, alert=["w3"]), ["alert"], True),
    (dict(PAPER, alert=["w2", "w3"]), ["alert"], False),
    ({k: v for k, v in PAPER.items() if k != "alert"}, ["alert"], False),
    (dict(PAPER, spo2=["w2"], hr=["w2"]), ["spo2", "hr", "hrv"], False),
    (PAPER, [], False),
])
def test_moved_away(now, services, expected):
    assert report.moved_away(PAPER, now, services) is expected


def test_describe_moves():
    after = dict(PAPER, alert=["w3"])
    del after["bot"]
    assert report.describe_moves(PAPER, after, ["alert", "bot"]) == ["alert: w2 -> w3", "bot: w1 -> -"]


def test_row_rounds_and_notes():
    assert report.make_row("worker_killed", 3.14159, None, 1, 0, ["not restored within 90 s: alert runs on w2"]) == {
        "event": "worker_killed", "detect_s": 3.14, "restore_s": None, "moves": 1, "unneeded_moves": 0,
        "readings_lost": None, "duplicates": None, "note": "not restored within 90 s: alert runs on w2"}
    assert "note" not in report.make_row("network_blip", None, 2.5, 0, 0)


def test_a_row_says_when_the_bench_saw_it_restored():
    row = report.make_row("worker_killed", 2.9, 4.412, 1, 0, seen_s=5.891)
    assert (row["restore_s"], row["restore_seen_s"]) == (4.41, 5.89)
    median = report.median_rows([[row], [report.make_row("worker_killed", 3.1, 4.0, 1, 0, seen_s=6.0)],
                                 [report.make_row("worker_killed", 3.0, None, 1, 0, ["not restored"])]])
    assert (median[0]["restore_s"], median[0]["restore_seen_s"]) == (4.21, 5.95)


@pytest.mark.parametrize("moments, expected", [
    ([(10.5, ""), (11.25, "")], (11.25, "")),
    ([(10.5, ""), (None, "the display's alert flows from coap://172.30.0.22:5705/alert")],
     (None, "the display's alert flows from coap://172.30.0.22:5705/alert")),
])
def test_the_latest_consumer_ends_the_restore(moments, expected):
    assert report.latest_moment(*moments) == expected


@pytest.mark.parametrize("moment, why, expected", [
    (104.25, "", (4.25, "")),  # by the consumers' clocks, before the bench's round saw it
    (None, "no consumer changes its source in network_blip",
     (6.0, "restore_s as the bench saw it: no consumer changes its source in network_blip")),
    (97.0, "", (6.0, "restore_s as the bench saw it: the consumers' readings flow since -3.0 s")),
    (107.0, "", (6.0, "restore_s as the bench saw it: the consumers' readings flow since +7.0 s")),
])
def test_restore_by_the_consumers_clocks_or_as_the_bench_saw_it(moment, why, expected):
    assert report.consumers_restore(moment, why, started=100.0, seen_s=6.0) == expected


def test_table():
    rows = [report.make_row("sensor_moved", 1.25, 12.0, 3, 0, readings_lost=0, duplicates=0),
            report.make_row("network_blip", None, 2.0, 0, 0, ["nothing to detect"])]
    assert report.format_table(rows, title="run 1 of 1").splitlines() == [
        "run 1 of 1",
        "event         detect_s  restore_s  moves  unneeded  lost  dups  note",
        "sensor_moved       1.2       12.0      3         0     0     0",
        "network_blip         -        2.0      0         0     -     -  nothing to detect",
    ]


def test_median_over_runs():
    runs = [
        [report.make_row("worker_killed", 30.0, 40.0, 1, 0, readings_lost=0, duplicates=0),
         report.make_row("network_blip", None, 2.0, 0, 0, readings_lost=0, duplicates=0)],
        [report.make_row("worker_killed", 20.0, None, 2, 1, ["not restored within 90 s"], readings_lost=3,
                         duplicates=0),
         report.make_row("network_blip", None, 3.0, 0, 0, readings_lost=0, duplicates=1)],
        [report.make_row("worker_killed", 25.0, 36.0, 1, 0, readings_lost=0, duplicates=0),
         report.make_row("network_blip", None, 1.0, 0, 0, readings_lost=0, duplicates=0)],
    ]
    # the times and moves are the median, the readings the worst run
    assert report.median_rows(runs) == [
        {"event": "worker_killed", "detect_s": 25.0, "restore_s": 38.0, "moves": 1, "unneeded_moves": 0,
         "readings_lost": 3, "duplicates": 0,
         "note": "restore_s measured in 2 of 3 runs; not restored within 90 s"},
        {"event": "network_blip", "detect_s": None, "restore_s": 2.0, "moves": 0, "unneeded_moves": 0,
         "readings_lost": 0, "duplicates": 1, "note": "detect_s measured in 0 of 3 runs"},
    ]


def test_write_report(tmp_path):
    path = tmp_path / "continuity" / "report.json"
    rows = [report.make_row("battery_low", 10.0, 20.0, 1, 0)]
    report.write_report(str(path), rows)
    assert json.loads(path.read_text()) == rows
    assert sorted(p.name for p in path.parent.iterdir()) == ["report.json"]
