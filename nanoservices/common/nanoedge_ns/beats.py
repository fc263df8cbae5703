# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Beats from a photoplethysmogram, heart rate and heart-rate variability.

``BeatDetector`` finds pulse peaks in the oximeter's plethysmogram with an
adaptive threshold (halfway between the recent minimum and maximum) and a
refractory period, so it follows slow changes in perfusion. The intervals
between beats (RR or, strictly, pulse-to-pulse intervals) give the heart
rate and the time-domain HRV measures (SDNN, RMSSD, pNN50; Task Force of the
ESC and NASPE, Circulation 1996), after removing implausible and ectopic
intervals.
"""

from __future__ import annotations

import collections
import math
import statistics
import typing as t

MIN_RR_MS = 300.0   # 200 bpm
MAX_RR_MS = 2000.0  # 30 bpm
ECTOPIC_TOLERANCE = 0.2  # an interval 20 % off the local median is not sinus rhythm


class BeatDetector:
    """Feed plethysmogram samples at ``rate_hz``; get the times (s) of beats."""

    def __init__(self, rate_hz: float, window_s: float = 2.0, refractory_s: float = 0.3) -> None:
        if rate_hz <= 0:
            raise ValueError("rate_hz must be > 0, got %r" % (rate_hz,))
        self.rate_hz = float(rate_hz)
        self._window: t.Deque[int] = collections.deque(maxlen=max(2, int(window_s * rate_hz)))
        self._refractory = refractory_s
        self._index = 0
        self._above = False
        self._last_beat: t.Optional[float] = None
        self._peak_value = -1
        self._peak_time = 0.0

    def gap(self) -> None:
        """One sample period without a usable sample (no finger, no signal):
        time goes on, and the pulse wave must be found again afterwards."""
        self._index += 1
        self._window.clear()
        self._above = False

    def feed(self, sample: int) -> t.Optional[float]:
        """Add one sample; return the time of a beat's peak when one completes."""
        now = self._index / self.rate_hz
        self._index += 1
        self._window.append(sample)
        low, high = min(self._window), max(self._window)
        if high - low < 8:  # flat line: no pulse, or no finger
            self._above = False
            return None
        threshold = low + (high - low) * 0.6
        beat = None
        if sample >= threshold:
            if not self._above or sample > self._peak_value:
                if not self._above:
                    self._peak_value = -1
                self._above = True
                if sample > self._peak_value:
                    self._peak_value, self._peak_time = sample, now
        elif self._above:
            self._above = False
            if self._last_beat is None or self._peak_time - self._last_beat >= self._refractory:
                beat = self._peak_time
                self._last_beat = beat
        return beat


def intervals_ms(beat_times: t.Sequence[float]) -> t.List[float]:
    """Successive differences of beat times (s), in milliseconds."""
    return [(b - a) * 1000.0 for a, b in zip(beat_times, beat_times[1:])]


def clean_intervals(rr_ms: t.Sequence[float]) -> t.List[float]:
    """Drop intervals outside 300-2000 ms and those more than 20 % away from
    the median of their neighbourhood (missed or extra beats)."""
    plausible = [rr for rr in rr_ms if MIN_RR_MS <= rr <= MAX_RR_MS]
    kept = []
    for index, rr in enumerate(plausible):
        neighbourhood = plausible[max(0, index - 5):index + 6]
        median = statistics.median(neighbourhood)
        if abs(rr - median) <= ECTOPIC_TOLERANCE * median:
            kept.append(rr)
    return kept


def heart_rate(rr_ms: t.Sequence[float]) -> t.Optional[float]:
    """Beats per minute from the mean of the clean intervals, None without any."""
    clean = clean_intervals(rr_ms)
    if not clean:
        return None
    return 60000.0 / statistics.fmean(clean)


class HRV(t.NamedTuple):
    beats: int
    mean_rr_ms: float
    sdnn_ms: float
    rmssd_ms: float
    pnn50: float
    heart_rate_bpm: float


def hrv_metrics(rr_ms: t.Sequence[float]) -> t.Optional[HRV]:
    """Time-domain HRV over the clean intervals; None with fewer than 3.

    RMSSD and pNN50 use only pairs of intervals that were adjacent in the
    recording, so a removed ectopic beat does not create a false difference.
    """
    recorded = list(rr_ms)
    clean = clean_intervals(recorded)
    if len(clean) < 3:
        return None
    clean_ids = _kept_positions(recorded, clean)
    diffs = [recorded[j] - recorded[i] for i, j in zip(clean_ids, clean_ids[1:]) if j == i + 1]
    if not diffs:
        return None
    mean_rr = statistics.fmean(clean)
    return HRV(
        beats=len(clean) + 1,
        mean_rr_ms=mean_rr,
        sdnn_ms=statistics.stdev(clean),
        rmssd_ms=math.sqrt(statistics.fmean(d * d for d in diffs)),
        pnn50=100.0 * sum(1 for d in diffs if abs(d) > 50.0) / len(diffs),
        heart_rate_bpm=60000.0 / mean_rr,
    )


def _kept_positions(original: t.Sequence[float], kept: t.Sequence[float]) -> t.List[int]:
    """Indices into ``original`` of the values in ``kept`` (a subsequence)."""
    positions = []
    start = 0
    for value in kept:
        for index in range(start, len(original)):
            if original[index] == value:
                positions.append(index)
                start = index + 1
                break
    return positions
