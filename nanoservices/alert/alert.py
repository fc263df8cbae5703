# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Alert nanoservice: watches the SpO2 nanoservice and raises an alert when
SpO2 stays below its threshold for ``--hold`` seconds (the paper uses 92 %
and long periods such as 30 minutes; the demo uses seconds).

The alert state is served over CoAP at ``/alert`` (observable) and logged.
With ``--oc-uri`` the alert also asks the oxygen controller for more oxygen
(``--alert-flow``) while it lasts and returns it to ``--normal-flow`` after.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import logging
import sys
import typing as t

from nanoedge_ns import alerting, coapio, service

log = logging.getLogger("alert")


class Monitor:
    """The alert logic between readings and actions, without the network."""

    def __init__(self, threshold: float, hold_s: float, margin: float, history: int = 20) -> None:
        self.alert = alerting.ThresholdAlert(threshold, hold_s, margin, below=True)
        self.history: t.Deque[t.Dict[str, t.Any]] = collections.deque(maxlen=history)
        self.source_error: t.Optional[str] = None

    def observe(self, reading: t.Any, now: float) -> t.Optional[alerting.Transition]:
        value = reading.get("spo2") if isinstance(reading, dict) else None
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ValueError("alert: the SpO2 service sent spo2=%r, not a number" % (value,))
        transition = self.alert.update(value, now)
        if transition is not None:
            self.history.append({"state": transition.state, "time": service.iso(transition.since),
                                 "spo2": transition.value})
        return transition

    def snapshot(self) -> t.Dict[str, t.Any]:
        result = self.alert.snapshot()
        result.update(since=service.iso(self.alert.since), measure="spo2", unit="%",
                      history=list(self.history), source_error=self.source_error)
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
    resource = coapio.make_json_resource(monitor.snapshot)
    context = await coapio.serve({"alert": resource}, args.bind, args.port)
    client = coapio.Client(timeout=args.poll * 5)
    try:
        while True:
            try:
                reading = await client.get(args.spo2_uri)
                monitor.source_error = None
            except (asyncio.TimeoutError, OSError, ValueError) as exc:
                reading = None
                if monitor.source_error is None:
                    log.warning("cannot read %s: %s", args.spo2_uri, exc)
                monitor.source_error = str(exc) or type(exc).__name__
            transition = monitor.observe(reading, service.now())
            if transition is not None:
                log.log(logging.WARNING if transition.state == alerting.ALERT else logging.INFO,
                        "%s", message(transition, monitor))
                resource.notify()
                if args.oc_uri and transition.state in (alerting.ALERT, alerting.NORMAL):
                    await _drive_valve(client, args, transition)
            await asyncio.sleep(args.poll)
    finally:
        await client.close()
        await context.shutdown()


async def _drive_valve(client: coapio.Client, args: argparse.Namespace, transition: alerting.Transition) -> None:
    raised = transition.state == alerting.ALERT
    command = {"flow_lpm": args.alert_flow if raised else args.normal_flow,
               "reason": "SpO2 alert" if raised else "SpO2 recovered"}
    try:
        await client.put(args.oc_uri, command)
    except (asyncio.TimeoutError, OSError, ValueError) as exc:
        log.error("could not set the oxygen flow at %s: %s", args.oc_uri, exc)


def cli(argv: t.Optional[t.Sequence[str]] = None) -> int:
    parser = service.parser("alert", __doc__, port=5705)
    parser.add_argument("--spo2-uri", default=service.env("spo2_uri", "coap://localhost/spo2"),
                        help="the SpO2 nanoservice (env NANOEDGE_SPO2_URI)")
    parser.add_argument("--oc-uri", default=service.env("oc_uri", ""),
                        help="the oxygen controller's valve, optional (env NANOEDGE_OC_URI)")
    parser.add_argument("--threshold", type=float, default=float(service.env("spo2_threshold", "92")),
                        help="SpO2 %% below which the patient is at risk (env NANOEDGE_SPO2_THRESHOLD)")
    parser.add_argument("--hold", type=float, default=float(service.env("alert_hold", "30")),
                        help="seconds SpO2 must stay below the threshold (env NANOEDGE_ALERT_HOLD)")
    parser.add_argument("--margin", type=float, default=1.0, help="recovery margin above the threshold")
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between readings")
    parser.add_argument("--alert-flow", type=float, default=4.0, help="oxygen L/min during an alert")
    parser.add_argument("--normal-flow", type=float, default=1.0, help="oxygen L/min otherwise")
    return service.run(main, parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(cli())
