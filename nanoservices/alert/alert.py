# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Alert nanoservice: watches the SpO2 nanoservice and raises an alert when
SpO2 stays below its threshold for ``--hold`` seconds (the paper uses 92 %
and long periods such as 30 minutes; the demo uses seconds).

The alert state is served over CoAP at ``/alert`` (observable) and logged.
With ``--oc-uri`` the alert also asks the oxygen controller for more oxygen
(``--alert-flow``) while it lasts and returns it to ``--normal-flow`` after.

Every SpO2 reading is judged once, in order, at the time it was taken: the
service follows the SpO2 service's history (``<spo2 uri>/history``), so after
a restart or a move it first catches up on what it missed; it finds the SpO2
service by name at the node's directory, so it follows it when it moves; each state change
keeps the sequence number of the reading that caused it. What it received,
dropped as duplicate or could not get is served at ``/counters``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import logging
import sys
import typing as t

from nanoedge_ns import alerting, coapio, directory, follower, service

log = logging.getLogger("alert")


class Monitor:
    """The alert logic between readings and actions, without the network."""

    def __init__(self, threshold: float, hold_s: float, margin: float, history: int = 20) -> None:
        self.alert = alerting.ThresholdAlert(threshold, hold_s, margin, below=True)
        self.history: t.Deque[t.Dict[str, t.Any]] = collections.deque(maxlen=history)
        self.source_error: t.Optional[str] = None
        self.last_seq: t.Optional[int] = None

    def observe(self, reading: t.Any, now: float) -> t.Optional[alerting.Transition]:
        value = reading.get("spo2") if isinstance(reading, dict) else None
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ValueError("alert: the SpO2 service sent spo2=%r, not a number" % (value,))
        seq = reading.get("seq") if isinstance(reading, dict) else None
        transition = self.alert.update(value, now)
        if seq is not None:
            self.last_seq = seq
        if transition is not None:
            self.history.append({"state": transition.state, "time": service.iso(transition.since),
                                 "spo2": transition.value, "seq": seq,
                                 "source": reading.get("source") if isinstance(reading, dict) else None})
        return transition

    def observe_numbered(self, reading: t.Dict[str, t.Any]) -> t.Optional[alerting.Transition]:
        """A reading from the SpO2 history, judged at the time it was taken."""
        taken_at = reading.get("taken_at")
        now = float(taken_at) if isinstance(taken_at, (int, float)) and not isinstance(taken_at, bool) else \
            service.now()
        try:
            return self.observe(reading, now)
        except ValueError as exc:
            log.error("seq %s: %s", reading.get("seq"), exc)  # one bad reading must not stop the catch-up
            return None

    def snapshot(self) -> t.Dict[str, t.Any]:
        result = self.alert.snapshot()
        result.update(since=service.iso(self.alert.since), measure="spo2", unit="%",
                      history=list(self.history), source_error=self.source_error, last_seq=self.last_seq)
        return result


def message(transition: alerting.Transition, monitor: Monitor) -> str:
    if transition.state == alerting.ALERT:
        return "ALERT: SpO2 %g %% has stayed below %g %% for %g s" % (
            transition.value, monitor.alert.threshold, monitor.alert.hold_s)
    if transition.state == alerting.PENDING:
        return "SpO2 %g %% below %g %%: alert in %g s unless it recovers" % (
            transition.value, monitor.alert.threshold, monitor.alert.hold_s)
    return "SpO2 back to %g %%: alert cleared" % transition.value


async def main(args: argparse.Namespace) -> None:
    monitor = Monitor(args.threshold, args.hold, args.margin)
    client = coapio.Client(timeout=args.poll * 5)
    valve: t.List[alerting.Transition] = []
    valve_changed = asyncio.Event()

    def react(transition: t.Optional[alerting.Transition]) -> None:
        if transition is None:
            return
        log.log(logging.WARNING if transition.state == alerting.ALERT else logging.INFO,
                "%s", message(transition, monitor))
        resource.notify()
        if args.oc_uri and transition.state in (alerting.ALERT, alerting.NORMAL):
            valve[:] = [transition]  # catching up, only the last command matters
            valve_changed.set()

    spo2 = follower.open_follower("alert", args, lambda reading: react(monitor.observe_numbered(reading)))
    # the producers by service name at the node's directory (or at the URI given, without one)
    spo2_at = directory.producer_resolver(client, args.spo2_uri, "spo2")
    oc_at = directory.producer_resolver(client, args.oc_uri, "oc") if args.oc_uri else None

    async def poll_live() -> None:
        # an SpO2 service without a history (an older image): its current reading, as before
        uri = spo2_at.current()
        try:
            if uri is None:
                raise ConnectionError("the SpO2 service is not listed yet")
            reading = await client.get(uri)
            monitor.source_error = spo2.source_error = None
        except (asyncio.TimeoutError, OSError, ValueError) as exc:
            reading = None
            if monitor.source_error is None:
                log.warning("cannot read %s: %s", uri, exc)
            monitor.source_error = spo2.source_error = str(exc) or type(exc).__name__
        react(monitor.observe(reading, service.now()))

    async def drive_valve() -> None:
        while True:
            await valve_changed.wait()
            valve_changed.clear()
            await _drive_valve(client, args, valve[-1], oc_at)

    def snapshot() -> t.Dict[str, t.Any]:
        monitor.source_error = spo2.source_error
        # where it reads SpO2 now: found at the node's directory, its environment only names the service
        return dict(monitor.snapshot(), spo2_uri=spo2_at.current())

    resource = coapio.make_json_resource(snapshot)
    context = await coapio.serve({"alert": resource, "counters": coapio.make_json_resource(spo2.counters)},
                                 args.bind, args.port)
    driver = asyncio.ensure_future(drive_valve())
    watchers = [asyncio.ensure_future(r.watch()) for r in (spo2_at, oc_at) if r is not None]
    try:
        await spo2.follow(client, lambda: history_of(spo2_at.current()), args.poll, legacy=poll_live,
                          resolver=spo2_at)
    finally:
        driver.cancel()
        for watcher in watchers:
            watcher.cancel()
        await client.close()
        await context.shutdown()


def history_of(uri: t.Optional[str]) -> t.Optional[str]:
    return None if uri is None else uri.rstrip("/") + "/history"


async def _drive_valve(client: coapio.Client, args: argparse.Namespace, transition: alerting.Transition,
                       oc_at: t.Optional[directory.Resolver]) -> None:
    raised = transition.state == alerting.ALERT
    command = {"flow_lpm": args.alert_flow if raised else args.normal_flow,
               "reason": "SpO2 alert" if raised else "SpO2 recovered"}
    uri = oc_at.current() if oc_at is not None else None
    try:
        if uri is None:
            raise ConnectionError("the oxygen controller is not listed yet")
        await client.put(uri, command)
    except (asyncio.TimeoutError, OSError, ValueError) as exc:
        log.error("could not set the oxygen flow at %s: %s", uri or args.oc_uri, exc)
        if oc_at is not None and isinstance(exc, (asyncio.TimeoutError, OSError)):
            oc_at.failed()


def cli(argv: t.Optional[t.Sequence[str]] = None) -> int:
    return service.run(main, make_parser().parse_args(argv))


def make_parser() -> argparse.ArgumentParser:
    parser = service.parser("alert", __doc__, port=5705)
    parser.add_argument("--spo2-uri", default=service.env("spo2_uri", "coap://localhost/spo2"),
                        help="the SpO2 nanoservice: coap://... or service:spo2, looked up at the node's directory "
                             "(env NANOEDGE_SPO2_URI)")
    parser.add_argument("--oc-uri", default=service.env("oc_uri", ""),
                        help="the oxygen controller's valve, optional: coap://... or service:oc (env NANOEDGE_OC_URI)")
    parser.add_argument("--threshold", type=float, default=float(service.env("spo2_threshold", "92")),
                        help="SpO2 %% below which the patient is at risk (env NANOEDGE_SPO2_THRESHOLD)")
    parser.add_argument("--hold", type=float, default=float(service.env("alert_hold", "30")),
                        help="seconds SpO2 must stay below the threshold (env NANOEDGE_ALERT_HOLD)")
    parser.add_argument("--margin", type=float, default=1.0, help="recovery margin above the threshold")
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between readings")
    parser.add_argument("--alert-flow", type=float, default=4.0, help="oxygen L/min during an alert")
    parser.add_argument("--normal-flow", type=float, default=1.0, help="oxygen L/min otherwise")
    return parser


if __name__ == "__main__":
    sys.exit(cli())
