# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""bench/continuity/readings.py: readings lost and processed twice, from the consumer's /counters."""

from __future__ import annotations

import pytest

from ansible_collections.nanoedge.core.bench.continuity import readings

W4 = "spo2/w4"
W1 = "spo2/w1"


def source(last_seq, received, head=None, missing=0, duplicates=0, resets=0, resumed_from=None):
    return {"last_seq": last_seq, "received": received, "head": last_seq if head is None else head,
            "missing": missing, "duplicates": duplicates, "resets": resets, "resumed_from": resumed_from}


def counters(current, **sources):
    return {"current": current, "sources": {k.replace("_", "/"): v for k, v in sources.items()}}


BEFORE = counters(W4, spo2_w4=source(500, 480, missing=20))


@pytest.mark.parametrize("after, lost, duplicates", [
    # the same instance went on: nothing lost, nothing twice
    (counters(W4, spo2_w4=source(530, 510, missing=20)), 0, 0),
    # the same instance skipped readings the history no longer held, and dropped two repeats
    (counters(W4, spo2_w4=source(530, 505, missing=25, duplicates=2)), 5, 2),
    # a new instance (the alert moved) resumed right after the old one: first 501
    (counters(W4, spo2_w4=source(530, 30)), 0, 0),
    # ... resumed one early (the page the old one was handling): 500 processed twice
    (counters(W4, spo2_w4=source(530, 31)), 0, 1),
    # ... resumed three late: 501-503 lost, and it did not see it
    (counters(W4, spo2_w4=source(530, 27)), 3, 0),
    # ... and counted a gap of its own
    (counters(W4, spo2_w4=source(530, 26, missing=4)), 4, 0),
    # ... resumed two late, where the producer last heard from the consumer: the old instance handled 501
    # and 502 after the snapshot
    (counters(W4, spo2_w4=source(530, 28, resumed_from=502)), 0, 0),
    # ... the producer's record does not cover a reading the new instance skipped beyond it
    (counters(W4, spo2_w4=source(530, 27, resumed_from=502)), 1, 0),
])
def test_one_source(after, lost, duplicates):
    found = readings.tally(BEFORE, after)
    assert (found.lost, found.duplicates, found.notes) == (lost, duplicates, [])


def test_the_producer_moved_with_its_sensor():
    # the same alert instance: the old source's last readings reached it, the new source is followed from 1
    after = counters(W1, spo2_w4=source(512, 492, missing=20), spo2_w1=source(40, 40))
    assert readings.tally(BEFORE, after) == readings.Tally(0, 0, [])
    # the old producer took 3 readings it never served before it stopped
    after = counters(W1, spo2_w4=source(512, 492, head=515, missing=20), spo2_w1=source(40, 40))
    assert readings.tally(BEFORE, after).lost == 3
    # the new source followed from its first reading; one it skipped is counted
    after = counters(W1, spo2_w4=source(512, 492, missing=20), spo2_w1=source(40, 39, missing=1))
    assert readings.tally(BEFORE, after).lost == 1


def test_a_new_instance_that_never_heard_of_the_old_source():
    before = counters(W4, spo2_w4=source(500, 480, head=502, missing=20))
    after = counters(W1, spo2_w1=source(10, 10))
    assert readings.tally(before, after).lost == 2


def test_a_reset_is_noted():
    after = counters(W4, spo2_w4=source(530, 510, missing=20, resets=1))
    assert readings.tally(BEFORE, after).notes == ["spo2/w4 started a new numbering 1 time(s): what it lost is unknown"]


@pytest.mark.parametrize("before, after, same", [
    (BEFORE, counters(W4, spo2_w4=source(530, 510, missing=20)), True),
    (BEFORE, counters(W4, spo2_w4=source(530, 30)), False),
    ({"instance": "a", "sources": {}}, {"instance": "a", "sources": {}}, True),
    ({"instance": "a", "sources": {}}, {"instance": "b", "sources": {}}, False),
])
def test_same_instance(before, after, same):
    assert readings.same_instance(before, after) is same


@pytest.mark.parametrize("answer, expected", [
    (None, False),
    ({}, False),
    (counters(W4, spo2_w4=source(530, 510, head=531)), False),
    (counters(W4, spo2_w4=source(530, 510)), True),
    (counters(None, spo2_w4=source(530, 510)), False),
])
def test_caught_up(answer, expected):
    assert readings.caught_up(answer) is expected
