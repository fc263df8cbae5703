# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""HR nanoservice: heart rate from the pulse waves in the oximeter's
plethysmogram (not the device's own pulse-rate field), served over CoAP at
``/hr`` (observable). Counting beats itself lets the service report how many
beats the figure rests on and drop missed or extra beats.
"""

from __future__ import annotations

import argparse
import collections
import logging
import sys
import typing as t

from nanoedge_ns import beats, bm1000b, coapio, readings, service

log = logging.getLogger("hr")


class BeatWindow:
    """Beat times of the last ``seconds`` seconds of the stream."""

    def __init__(self, rate_hz: int, seconds: float) -> None:
        self.detector = beats.BeatDetector(rate_hz)
        self.seconds = seconds
        self.times: t.Deque[float] = collections.deque()
        self.clock = 0.0
        self._rate = float(rate_hz)

    def add(self, packet: bm1000b.Packet) -> t.Optional[float]:
        self.clock += 1.0 / self._rate
        if not packet.valid:
            self.detector.gap()
            return None
        beat = self.detector.feed(packet.pleth)
        if beat is not None:
            self.times.append(beat)
        while self.times and self.times[0] < self.clock - self.seconds:
            self.times.popleft()
        return beat

    def intervals(self) -> t.List[float]:
        return beats.intervals_ms(list(self.times))


def reading(window: BeatWindow) -> t.Dict[str, t.Any]:
    rr = window.intervals()
    rate = beats.heart_rate(rr)
    return {"bpm": None if rate is None else round(rate, 1), "beats": len(window.times),
            "window_s": window.seconds, "unit": "bpm"}


async def main(args: argparse.Namespace) -> None:
    window = BeatWindow(args.rate, args.window)
    state: t.Dict[str, t.Any] = {"bpm": None, "beats": 0, "time": None}
    resource = coapio.make_json_resource(lambda: state)
    producer = readings.open_producer("hr", args)
    context = await coapio.serve({"hr": resource, "hr/history": coapio.make_history_resource(producer.answer)},
                                 args.bind, args.port)
    try:
        count = 0
        async for packet in bm1000b.stream_packets(args.device, args.rate):
            window.add(packet)
            count += 1
            if count % args.rate == 0:
                now = service.now()
                state.update(producer.publish(dict(reading(window), time=service.iso(now)), taken_at=now))
                resource.notify()
    finally:
        producer.close()
        await context.shutdown()


def cli(argv: t.Optional[t.Sequence[str]] = None) -> int:
    parser = service.parser("hr", __doc__, port=5702)
    parser.add_argument("--device", default=service.env("pom_device", "/dev/ttyUSB0"),
                        help="the oximeter: a serial device or a recording (env NANOEDGE_POM_DEVICE)")
    parser.add_argument("--rate", type=int, default=int(service.env("pom_rate", str(bm1000b.DEFAULT_RATE_HZ))))
    parser.add_argument("--window", type=float, default=15.0, help="seconds of beats averaged (default 15)")
    return service.run(main, parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(cli())
