# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""When a vital sign stays beyond its threshold long enough, raise an alert.

The paper's use case (Table 1): an alert is sent when a measured value stays
beyond its threshold for a longer period (e.g. SpO2 below 92 % for 30
minutes), not on a single low sample. The alert clears only once the value is
back past the threshold by a margin (hysteresis), so a value hovering at the
threshold does not make the alert flap.
"""

from __future__ import annotations

import typing as t

NORMAL = "normal"
PENDING = "pending"
ALERT = "alert"


class Transition(t.NamedTuple):
    state: str
    since: float
    value: float


class ThresholdAlert:
    """State machine normal -> pending -> alert -> normal for one measure.

    ``below=True`` alerts on low values (SpO2), ``below=False`` on high ones
    (body temperature). Readings of ``None`` (no finger, no signal) neither
    confirm nor clear a low streak, but a gap longer than ``max_gap_s``
    restarts it: nobody saw the value during the gap.
    """

    def __init__(self, threshold: float, hold_s: float, margin: float = 1.0, below: bool = True,
                 max_gap_s: float = 10.0) -> None:
        if hold_s < 0:
            raise ValueError("hold_s must be >= 0, got %r" % (hold_s,))
        if margin < 0:
            raise ValueError("margin must be >= 0, got %r" % (margin,))
        self.threshold = threshold
        self.hold_s = hold_s
        self.margin = margin
        self.below = below
        self.max_gap_s = max_gap_s
        self.state = NORMAL
        self.since: t.Optional[float] = None
        self.last_value: t.Optional[float] = None
        self._last_seen: t.Optional[float] = None

    def _beyond(self, value: float) -> bool:
        return value < self.threshold if self.below else value > self.threshold

    def _recovered(self, value: float) -> bool:
        if self.below:
            return value >= self.threshold + self.margin
        return value <= self.threshold - self.margin

    def update(self, value: t.Optional[float], now: float) -> t.Optional[Transition]:
        """Feed one reading taken at ``now`` (s); return the transition it caused."""
        gap = None if self._last_seen is None else now - self._last_seen
        if value is None:
            return None
        self._last_seen = now
        self.last_value = value
        if self.state == PENDING and gap is not None and gap > self.max_gap_s:
            self.state, self.since = NORMAL, None
        if self.state == NORMAL:
            if self._beyond(value):
                self.state, self.since = PENDING, now
                if self.hold_s == 0:
                    return self._enter(ALERT, now, value)
                return Transition(PENDING, now, value)
            return None
        if self.state == PENDING:
            if not self._beyond(value):
                self.state, self.since = NORMAL, None
                return Transition(NORMAL, now, value)
            if self.since is not None and now - self.since >= self.hold_s:
                return self._enter(ALERT, now, value)
            return None
        if self._recovered(value):
            return self._enter(NORMAL, now, value)
        return None

    def _enter(self, state: str, now: float, value: float) -> Transition:
        self.state = state
        self.since = now if state != NORMAL else None
        return Transition(state, now, value)

    def snapshot(self) -> t.Dict[str, t.Any]:
        return {"state": self.state, "since": self.since, "threshold": self.threshold,
                "hold_s": self.hold_s, "last_value": self.last_value,
                "direction": "below" if self.below else "above"}
