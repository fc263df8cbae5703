# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""SpO2 nanoservice: oxygen saturation and pulse rate from the BerryMed
BM1000B pulse oximeter, served over CoAP at ``/spo2`` (observable).

The value served is the mean of the valid readings of the last few seconds
(``--average``), as bedside monitors show it; without a finger on the probe
the service says so instead of repeating an old value.
"""

from __future__ import annotations

import argparse
import collections
import logging
import sys
import typing as t

from nanoedge_ns import bm1000b, coapio, readings, service

log = logging.getLogger("spo2")


class Spo2Window:
    """Rolling mean of SpO2 and pulse rate over the valid packets of the last
    ``seconds`` seconds of the stream (time taken from the packet count)."""

    def __init__(self, rate_hz: int, seconds: float = 4.0) -> None:
        self._size = max(1, int(rate_hz * seconds))
        self._spo2: t.Deque[t.Optional[int]] = collections.deque(maxlen=self._size)
        self._rate: t.Deque[t.Optional[int]] = collections.deque(maxlen=self._size)
        self.last_status = "no data"

    def add(self, packet: bm1000b.Packet) -> None:
        if packet.valid:
            self._spo2.append(packet.spo2)
            self._rate.append(packet.pulse_rate)
            self.last_status = "ok"
        else:
            self._spo2.append(None)
            self._rate.append(None)
            self.last_status = ("probe unplugged" if packet.probe_unplugged else
                                "no finger" if packet.no_finger else "no signal")

    def reading(self) -> t.Dict[str, t.Any]:
        spo2 = [v for v in self._spo2 if v is not None]
        rate = [v for v in self._rate if v is not None]
        # fewer than half the window valid: the mean would mostly be history
        if len(spo2) * 2 < len(self._spo2) or not spo2:
            return {"spo2": None, "pulse_rate": None, "status": self.last_status}
        return {"spo2": round(sum(spo2) / len(spo2)), "pulse_rate": round(sum(rate) / len(rate)),
                "status": "ok"}


async def main(args: argparse.Namespace) -> None:
    window = Spo2Window(args.rate, args.average)
    state: t.Dict[str, t.Any] = {"spo2": None, "pulse_rate": None, "status": "no data", "unit": "%",
                                 "device": args.device, "time": None}
    resource = coapio.make_json_resource(lambda: state)
    producer = readings.open_producer("spo2", args)  # numbered readings, kept for consumers that catch up
    context = await coapio.serve({"spo2": resource, "spo2/history": coapio.make_history_resource(producer.answer)},
                                 args.bind, args.port)
    try:
        count = 0
        async for packet in bm1000b.stream_packets(args.device, args.rate):
            window.add(packet)
            count += 1
            if count % args.rate == 0:  # once a second
                now = service.now()
                state.update(producer.publish(dict(window.reading(), time=service.iso(now)), taken_at=now))
                resource.notify()
                log.debug("%s", state)
    finally:
        producer.close()
        await context.shutdown()


def cli(argv: t.Optional[t.Sequence[str]] = None) -> int:
    parser = service.parser("spo2", __doc__, port=5701)
    parser.add_argument("--device", default=service.env("pom_device", "/dev/ttyUSB0"),
                        help="the oximeter: a serial device or a recording (env NANOEDGE_POM_DEVICE)")
    parser.add_argument("--rate", type=int, default=int(service.env("pom_rate", str(bm1000b.DEFAULT_RATE_HZ))),
                        help="packets per second of the device (env NANOEDGE_POM_RATE)")
    parser.add_argument("--average", type=float, default=4.0, help="seconds averaged (default 4)")
    return service.run(main, parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(cli())
