# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import math
import statistics

import pytest

from nanoedge_ns import beats, bm1000b


def _pulse_train(rr_ms, rate_hz=100):
    """A clean plethysmogram with beats after the given intervals."""
    beat_times = [0.5]
    for rr in rr_ms:
        beat_times.append(beat_times[-1] + rr / 1000.0)
    samples = []
    for index in range(int((beat_times[-1] + 1.0) * rate_hz)):
        now = index / rate_hz
        since = min((now - b for b in beat_times if b <= now), default=10.0)
        samples.append(int(20 + 70 * math.exp(-((since - 0.1) / 0.05) ** 2)))
    return samples, [b + 0.1 for b in beat_times]


def test_detector_finds_every_beat_of_a_clean_signal():
    rr = [800, 850, 780, 900, 820, 760, 840]
    samples, peaks = _pulse_train(rr)
    detector = beats.BeatDetector(100)
    found = [b for b in (detector.feed(s) for s in samples) if b is not None]
    assert len(found) == len(peaks)
    assert all(abs(a - b) <= 0.011 for a, b in zip(found, peaks))
    assert [round(x) for x in beats.intervals_ms(found)] == rr


def test_detector_keeps_time_across_a_gap():
    rr = [800] * 12
    samples, peaks = _pulse_train(rr)
    lost = range(350, 650)  # 3 s without a usable sample
    detector = beats.BeatDetector(100)
    found = []
    for index, sample in enumerate(samples):
        if index in lost:
            detector.gap()
        else:
            beat = detector.feed(sample)
            if beat is not None:
                found.append(beat)
    expected = [p for p in peaks if not 3.5 <= p < 6.5]  # and 7.0 s is 7.0 s, not 4.0 s
    assert len(found) == len(expected)
    assert all(abs(a - b) <= 0.011 for a, b in zip(found, expected))


def test_detector_ignores_a_flat_line():
    detector = beats.BeatDetector(100)
    assert [detector.feed(50 + (i % 3)) for i in range(500)] == [None] * 500


def test_detector_on_the_synthetic_patient():
    detector = beats.BeatDetector(bm1000b.DEFAULT_RATE_HZ)
    found = [b for b in (detector.feed(p.pleth) for p in bm1000b.synthesize(60.0)) if b is not None]
    rate = beats.heart_rate(beats.intervals_ms(found))
    assert rate is not None and 71.0 < rate < 75.5  # generated around 820 ms, i.e. 73 bpm


def test_detector_rejects_a_bad_rate():
    with pytest.raises(ValueError) as error:
        beats.BeatDetector(0)
    assert str(error.value) == "rate_hz must be > 0, got 0"


@pytest.mark.parametrize("rr, clean", [
    ([800, 810, 790, 805], [800, 810, 790, 805]),
    ([800, 810, 400, 820, 800], [800, 810, 820, 800]),        # an extra beat halves an interval
    ([800, 810, 1620, 820, 800], [800, 810, 820, 800]),       # a missed beat doubles one
    ([250, 800, 2500, 810], [800, 810]),                      # outside 300..2000 ms
    ([], []),
])
def test_clean_intervals(rr, clean):
    assert beats.clean_intervals(rr) == clean


@pytest.mark.parametrize("rr, bpm", [
    ([1000, 1000, 1000], 60.0),
    ([500, 500], 120.0),
    ([800, 810, 400, 790], 60000.0 / 800.0),
    ([100, 3000], None),
])
def test_heart_rate(rr, bpm):
    assert beats.heart_rate(rr) == (None if bpm is None else pytest.approx(bpm))


def test_hrv_metrics_exact():
    rr = [800.0, 850.0, 800.0, 850.0, 800.0]
    metrics = beats.hrv_metrics(rr)
    assert metrics == beats.HRV(beats=6, mean_rr_ms=820.0, sdnn_ms=pytest.approx(statistics.stdev(rr)),
                                rmssd_ms=pytest.approx(50.0), pnn50=0.0, heart_rate_bpm=pytest.approx(60000 / 820))


def test_hrv_pairs_only_intervals_adjacent_in_the_recording():
    # the 400 ms interval is an extra beat: (810, 820) were never adjacent
    metrics = beats.hrv_metrics([800.0, 810.0, 400.0, 820.0, 760.0])
    assert metrics is not None
    assert metrics.rmssd_ms == pytest.approx(math.sqrt((10.0 ** 2 + 60.0 ** 2) / 2))
    assert metrics.pnn50 == 50.0
    assert metrics.beats == 5


@pytest.mark.parametrize("rr", [[], [800.0, 810.0], [800.0, 5000.0, 810.0]])
def test_hrv_needs_three_clean_intervals(rr):
    assert beats.hrv_metrics(rr) is None
