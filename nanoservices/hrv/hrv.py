# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""HRV nanoservice: heart-rate variability (SDNN, RMSSD, pNN50) over the
last minute of pulse-to-pulse intervals from the oximeter, served over CoAP
at ``/hrv`` (observable).
"""

from __future__ import annotations

import argparse
import collections
import logging
import sys
import typing as t

from nanoedge_ns import beats, bm1000b, coapio, readings, service

log = logging.getLogger("hrv")


class IntervalWindow:
    """Pulse-to-pulse intervals (ms) whose second beat lies in the last
    ``seconds`` seconds of the stream."""

    def __init__(self, rate_hz: int, seconds: float) -> None:
        self.detector = beats.BeatDetector(rate_hz)
        self.seconds = seconds
        self.clock = 0.0
        self._rate = float(rate_hz)
        self._last_beat: t.Optional[float] = None
        self._intervals: t.Deque[t.Tuple[float, float]] = collections.deque()

    def add(self, packet: bm1000b.Packet) -> None:
        self.clock += 1.0 / self._rate
        if not packet.valid:
            self.detector.gap()
            self._last_beat = None  # an interval across a gap is not an interval
            return
        beat = self.detector.feed(packet.pleth)
        if beat is not None:
            if self._last_beat is not None:
                self._intervals.append((beat, (beat - self._last_beat) * 1000.0))
            self._last_beat = beat
        while self._intervals and self._intervals[0][0] < self.clock - self.seconds:
            self._intervals.popleft()

    def intervals(self) -> t.List[float]:
        return [entry[1] for entry in self._intervals]


def reading(window: IntervalWindow) -> t.Dict[str, t.Any]:
    metrics = beats.hrv_metrics(window.intervals())
    if metrics is None:
        return {"sdnn_ms": None, "rmssd_ms": None, "pnn50": None, "mean_rr_ms": None, "beats": 0}
    return {"sdnn_ms": round(metrics.sdnn_ms, 1), "rmssd_ms": round(metrics.rmssd_ms, 1),
            "pnn50": round(metrics.pnn50, 1), "mean_rr_ms": round(metrics.mean_rr_ms, 1),
            "beats": metrics.beats}


async def main(args: argparse.Namespace) -> None:
    window = IntervalWindow(args.rate, args.window)
    state: t.Dict[str, t.Any] = {"sdnn_ms": None, "rmssd_ms": None, "window_s": args.window, "time": None}
    resource = coapio.make_json_resource(lambda: state)
    producer = readings.open_producer("hrv", args)
    context = await coapio.serve({"hrv": resource, "hrv/history": coapio.make_history_resource(producer.answer)},
                                 args.bind, args.port)
    try:
        count = 0
        async for packet in bm1000b.stream_packets(args.device, args.rate):
            window.add(packet)
            count += 1
            if count % (args.rate * 5) == 0:  # HRV moves slowly: every 5 s
                now = service.now()
                state.update(producer.publish(dict(reading(window), window_s=args.window, time=service.iso(now)),
                                              taken_at=now))
                resource.notify()
    finally:
        producer.close()
        await context.shutdown()


def cli(argv: t.Optional[t.Sequence[str]] = None) -> int:
    parser = service.parser("hrv", __doc__, port=5703)
    parser.add_argument("--device", default=service.env("pom_device", "/dev/ttyUSB0"),
                        help="the oximeter: a serial device or a recording (env NANOEDGE_POM_DEVICE)")
    parser.add_argument("--rate", type=int, default=int(service.env("pom_rate", str(bm1000b.DEFAULT_RATE_HZ))))
    parser.add_argument("--window", type=float, default=60.0, help="seconds of intervals (default 60)")
    return service.run(main, parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(cli())
