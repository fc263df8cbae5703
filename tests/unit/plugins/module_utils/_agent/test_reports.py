# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Full reports of the service: one at a time per registry, a new profile right after the one under way,
a stale or missing answer reported at once but not twice, the ETag of docs/contracts.md; and the service
sending a new profile after a burst of events only when the profile changed."""

from __future__ import annotations

import asyncio
import logging
import typing as t

import pytest

from ansible_collections.nanoedge.core.plugins.module_utils import _coap
from ansible_collections.nanoedge.core.plugins.module_utils._agent import daemon, reports
from ansible_collections.nanoedge.core.plugins.module_utils._canonical_json import canonical_json
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.codec import etag_of

M1, M2 = "coap://10.0.0.2", "coap://10.0.0.3"
LOG = logging.getLogger("test")


def profile(**changes: t.Any) -> t.Dict[str, t.Any]:
    base = {"node": "w1", "collected_at": "2026-12-05T19:00:00Z", "capabilities": ["pom"],
            "power": {"source": "ac", "battery_percent": 80}}
    base.update(changes)
    return base


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeReport:
    """report_one that waits until released and records what it sent where."""

    def __init__(self, stored: bool = True) -> None:
        self.sent: t.List[t.Tuple[str, str]] = []
        self.stored = stored
        self.gate = asyncio.Event()

    async def __call__(self, registry, prof, body, content_format, settings, credentials):
        await self.gate.wait()
        self.sent.append((registry.url, prof["collected_at"]))
        return _coap.Outcome(registry.url, self.stored, True, "updated" if self.stored else "failed",
                             "2.04 Changed" if self.stored else None, None, 1, None if self.stored else "no", None)


def test_profile_etag_is_the_registry_etag():
    value = profile()
    assert reports.profile_etag(value) == etag_of(canonical_json(value)).hex()
    assert len(reports.profile_etag(value)) == 16


async def settle() -> None:
    for _tick in range(10):
        await asyncio.sleep(0)


def test_one_report_at_a_time_and_the_newest_profile_after_it():
    fake = FakeReport()

    async def scenario() -> None:
        reporter = reports.Reporter([M1, M2], _coap.ReportSettings(), None, LOG, report_one=fake, clock=Clock())
        reporter.report_all(profile(collected_at="t1"), "start")
        await settle()  # the reports of t1 are under way
        reporter.report_all(profile(collected_at="t2"), "hardware changed")
        reporter.report_all(profile(collected_at="t3"), "hardware changed")
        await settle()
        fake.gate.set()
        for _round in range(3):
            await asyncio.gather(*reporter.pending())
            await settle()
        assert reporter.pending() == []

    asyncio.run(scenario())
    # per registry: the one under way, then once more with the newest profile (t2 was never sent)
    assert sorted(fake.sent) == [(M1, "t1"), (M1, "t3"), (M2, "t1"), (M2, "t3")]


@pytest.mark.parametrize("stored, after, reported", [
    (True, 1.0, 0),  # beats sent before the report landed still say stale: no second report
    (True, reports.HOLD_OFF, 1),  # still stale after the hold-off: the registry lost it again
    (False, 0.0, 1),  # the report failed: the next stale answer tries again at once
])
def test_stale_answer_after_a_report(stored, after, reported):
    fake = FakeReport(stored=stored)
    fake.gate.set()
    clock = Clock()

    async def scenario() -> None:
        reporter = reports.Reporter([M1, M2], _coap.ReportSettings(), None, LOG, report_one=fake, clock=clock)
        reporter.on_answer(M1, "stale")  # nothing to send before the first discovery
        reporter.report_all(profile(), "start")
        reporter.on_answer(M1, "stale")  # under way: nothing more
        await asyncio.gather(*reporter.pending())
        clock.now += after
        reporter.on_answer(M1, "stale")
        await asyncio.gather(*reporter.pending())

    asyncio.run(scenario())
    assert len([sent for sent in fake.sent if sent[0] == M1]) == 1 + reported


@pytest.mark.parametrize("new, reported", [
    (profile(), False),
    (profile(collected_at="2026-12-05T19:00:09Z"), False),  # only the measurements that move anyway
    (profile(capabilities=[]), True),  # the oximeter unplugged
    (profile(power={"source": "dc", "battery_percent": 12}), True),
], ids=["same", "time-only", "unplugged", "battery"])
def test_events_report_only_a_changed_profile(new, reported):
    calls: t.List[t.Tuple[t.Dict[str, t.Any], str]] = []

    class Reporter:
        profile = profile()

        def report_all(self, value, why):
            calls.append((value, why))

    async def scenario() -> None:
        agent = daemon.Agent({}, LOG)
        agent.reporter = Reporter()

        async def discover():
            return new

        agent.discover = discover
        await agent.on_events(["uevent add usb /devices/a", "uevent add usb /devices/a", "inotify x", "poll y"])

    asyncio.run(scenario())
    assert calls == ([(new, "hardware changed: uevent add usb /devices/a; inotify x (+1 more)")] if reported else [])
