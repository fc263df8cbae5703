# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import pytest

from nanoedge_ns.alerting import ALERT, NORMAL, PENDING, ThresholdAlert, Transition


def _run(alert, readings):
    return [alert.update(value, now) for now, value in readings]


def test_alert_only_after_the_value_stays_low_for_the_hold_time():
    alert = ThresholdAlert(threshold=92, hold_s=30, margin=1, max_gap_s=20)
    readings = [(0, 97), (5, 91), (15, 90), (34, 89), (35, 89), (40, 88)]
    assert _run(alert, readings) == [None, Transition(PENDING, 5, 91), None, None, Transition(ALERT, 35, 89), None]
    assert alert.state == ALERT and alert.since == 35


def test_a_short_dip_does_not_alert():
    alert = ThresholdAlert(threshold=92, hold_s=30)
    assert _run(alert, [(0, 91), (10, 90), (20, 93), (40, 91)]) == [
        Transition(PENDING, 0, 91), None, Transition(NORMAL, 20, 93), Transition(PENDING, 40, 91)]


def test_alert_clears_only_past_the_margin():
    alert = ThresholdAlert(threshold=92, hold_s=0, margin=2)
    assert _run(alert, [(0, 91), (1, 92), (2, 93), (3, 94)]) == [
        Transition(ALERT, 0, 91), None, None, Transition(NORMAL, 3, 94)]
    assert alert.since is None


def test_missing_readings_neither_confirm_nor_clear():
    alert = ThresholdAlert(threshold=92, hold_s=10, max_gap_s=10)
    assert _run(alert, [(0, 90), (4, None), (8, None), (10, 90)]) == [
        Transition(PENDING, 0, 90), None, None, Transition(ALERT, 10, 90)]


def test_a_long_gap_restarts_the_low_streak():
    alert = ThresholdAlert(threshold=92, hold_s=30, max_gap_s=25)
    # unseen between 5 and 40: the streak starts again at 40
    assert _run(alert, [(0, 90), (5, 90), (40, 90), (60, 90), (70, 90)]) == [
        Transition(PENDING, 0, 90), None, Transition(PENDING, 40, 90), None, Transition(ALERT, 70, 90)]


def test_high_values_for_temperature():
    alert = ThresholdAlert(threshold=38.0, hold_s=60, margin=0.5, below=False, max_gap_s=120)
    assert _run(alert, [(0, 38.4), (60, 38.2), (70, 37.8), (80, 37.4)]) == [
        Transition(PENDING, 0, 38.4), Transition(ALERT, 60, 38.2), None, Transition(NORMAL, 80, 37.4)]
    assert alert.snapshot()["direction"] == "above"


def test_snapshot():
    alert = ThresholdAlert(threshold=92, hold_s=30)
    alert.update(90, 100.0)
    assert alert.snapshot() == {"state": PENDING, "since": 100.0, "threshold": 92, "hold_s": 30,
                                "last_value": 90, "direction": "below"}


@pytest.mark.parametrize("kwargs, message", [
    ({"hold_s": -1}, "hold_s must be >= 0, got -1"),
    ({"hold_s": 1, "margin": -0.5}, "margin must be >= 0, got -0.5"),
])
def test_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError) as error:
        ThresholdAlert(threshold=92, **kwargs)
    assert str(error.value) == message
