# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The registry's limits with an injected clock: token buckets per peer,
observations per peer and in all, Max-Age, peers and the command line."""

from __future__ import annotations

import argparse
import logging
import typing as t

import pytest

from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.limits import (
    Limits, ObserverCount, RateLimiter, RefusalLog, add_limit_options, check_limit_options, limits_of, max_age,
    peer_of,
)


class Clock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_a_burst_then_the_rate():
    clock = Clock()
    limiter = RateLimiter(rate=2.0, burst=3, clock=clock)
    assert [limiter.admit("10.0.0.1") for _request in range(4)] == [0.0, 0.0, 0.0, 0.5]
    clock.now += 0.25  # half a token
    assert limiter.admit("10.0.0.1") == pytest.approx(0.25)
    clock.now += 0.25
    assert limiter.admit("10.0.0.1") == 0.0
    assert limiter.admit("10.0.0.2") == 0.0  # another peer has its own bucket
    clock.now += 100.0  # refills up to the burst, no further
    assert [limiter.admit("10.0.0.1") for _request in range(4)] == [0.0, 0.0, 0.0, 0.5]


def test_full_buckets_are_forgotten_and_their_number_is_bounded():
    clock = Clock()
    limiter = RateLimiter(rate=1.0, burst=2, clock=clock, max_peers=3)
    for peer in ("a", "b", "c", "d"):
        limiter.admit(peer)
    assert len(limiter) == 3  # "a", the least recently seen, went first
    clock.now += 0.5
    limiter.admit("d")
    clock.now += 0.6
    limiter.prune()
    assert len(limiter) == 1  # only "d" has not filled up again


def test_rate_zero_switches_the_limit_off():
    limiter = RateLimiter(rate=0.0, burst=1, clock=Clock())
    assert not limiter.enabled
    assert {limiter.admit("p") for _request in range(100)} == {0.0}
    assert len(limiter) == 0


def test_observations_per_peer_and_in_all():
    count = ObserverCount(per_peer=2, total=3)
    ended: t.List[str] = []
    assert [count.admit("a", "a1", lambda: ended.append("a1")), count.admit("a", "a2", lambda: ended.append("a2"))] \
        == [None, None]
    # at the per-peer cap the peer's oldest observation ends to make room for its newest
    assert count.admit("a", "a3", lambda: ended.append("a3")) is None
    assert (ended, count.count, count.held_by("a")) == (["a1"], 2, 2)
    count.release("a", "a1")  # its end comes back as a release: already gone
    assert (count.count, count.held_by("a")) == (2, 2)
    assert count.admit("b", "b1", lambda: ended.append("b1")) is None
    # the cap on all observations refuses, and pushes out nobody
    assert count.admit("c", "c1", lambda: ended.append("c1")) == "3 observations are held (at most 3)"
    assert (ended, count.count) == (["a1"], 3)
    count.release("a", "a2")
    assert (count.count, count.held_by("a")) == (2, 1)
    assert count.admit("c", "c1", lambda: ended.append("c1")) is None
    count.release("nobody", "x")  # nothing held: nothing to release
    count.release("c", "c1")
    count.release("c", "c1")  # twice: once
    assert (count.count, count.held_by("c")) == (2, 0)
    assert count.pushed_out() == (
        "observation ended: its peer observes again beyond 2 observations at once (the oldest ends)")


@pytest.mark.parametrize("seconds, expected", [(0.0, 1), (0.01, 1), (1.0, 1), (1.2, 2), (92.5, 93), (1e12, 2 ** 32 - 1)])
def test_max_age_is_whole_seconds_at_least_one(seconds, expected):
    assert max_age(seconds) == expected


class _Udp:
    def __init__(self, sockaddr: t.Tuple[t.Any, ...]) -> None:
        self.sockaddr = sockaddr


class _Oscore:
    def __init__(self, underlying: _Udp) -> None:
        self.underlying_address = underlying


class _Other:
    hostinfo = "[fe80::1%eth0]:5683"


@pytest.mark.parametrize("remote, peer", [
    (_Udp(("::ffff:192.0.2.7", 40000, 0, 0)), "192.0.2.7"),
    (_Udp(("2001:db8::7", 40000, 0, 0)), "2001:db8::7"),
    (_Udp(("::ffff:abcd", 1, 0, 0)), "::ffff:abcd"),
    (_Oscore(_Udp(("::ffff:192.0.2.8", 5683, 0, 0))), "192.0.2.8"),
    (_Other(), "[fe80::1%eth0]:5683"),
])
def test_a_peer_is_an_ip_address(remote, peer):
    assert peer_of(remote) == peer


def test_refusals_are_logged_once_a_minute(caplog):
    clock = Clock()
    refusals = RefusalLog(logging.getLogger("test.limits"), clock=clock)
    with caplog.at_level(logging.WARNING, logger="test.limits"):
        refusals.note("first")
        refusals.note("second")
        clock.now += 59.0
        refusals.note("third")
        clock.now += 1.0
        refusals.note("fourth")
    assert [r.getMessage() for r in caplog.records] == [
        "refused 1 request(s) over the limits since the last warning, the last: first",
        "refused 3 request(s) over the limits since the last warning, the last: fourth",
    ]


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-body", type=int, default=262144)
    add_limit_options(parser)
    args = parser.parse_args(argv)
    check_limit_options(parser, args)
    return args


def test_the_command_line_defaults_are_the_limits():
    assert limits_of(_parse()) == Limits()
    assert limits_of(_parse("--max-profiles", "5", "--rate-limit", "0.5", "--rate-burst", "4")) == Limits(
        max_profiles=5, rate=0.5, burst=4)


@pytest.mark.parametrize("argv, message", [
    (["--max-profiles", "0"], "--max-profiles must be positive, got 0"),
    (["--max-observers-per-peer", "-1"], "--max-observers-per-peer must be positive, got -1"),
    (["--rate-limit", "-1"], "--rate-limit must be positive, got -1.0"),
    (["--rate-burst", "0"], "--rate-burst must be positive, got 0"),
    (["--upload-memory-per-peer", "100000"],
     "--upload-memory-per-peer must be at least --max-body + 4096 (266240), got 100000"),
    (["--max-body", "1000", "--upload-memory", "5000"],
     "--upload-memory must be at least --max-body + 4096 (5096), got 5000"),
])
def test_limits_that_cannot_work_are_refused(argv, message, capsys):
    with pytest.raises(SystemExit):
        _parse(*argv)
    assert message in capsys.readouterr().err


def test_rate_limit_zero_is_allowed():
    assert _parse("--rate-limit", "0").rate == 0.0
