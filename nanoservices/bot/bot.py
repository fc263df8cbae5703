# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""BoT nanoservice: body temperature from a DS18B20 probe on the 1-Wire
bus (Linux w1_therm driver), served over CoAP at ``/temperature``
(observable). A reading the bus garbled is reported as an error, never as a
temperature.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import typing as t

from nanoedge_ns import coapio, readings, service, w1therm

log = logging.getLogger("bot")


def read_temperature(devices_dir: str) -> t.Dict[str, t.Any]:
    sensors = w1therm.find_sensors(devices_dir)
    if not sensors:
        return {"celsius": None, "sensor": None, "error": "no DS18B20 under %s" % devices_dir}
    path = sensors[0]
    sensor = os.path.basename(os.path.dirname(path))
    try:
        with open(path, encoding="ascii") as handle:
            return {"celsius": w1therm.parse_w1_slave(handle.read()), "sensor": sensor, "error": None}
    except (OSError, UnicodeDecodeError, w1therm.W1Error) as exc:
        return {"celsius": None, "sensor": sensor, "error": str(exc)}


async def main(args: argparse.Namespace) -> None:
    state: t.Dict[str, t.Any] = {"celsius": None, "unit": "C", "time": None}
    resource = coapio.make_json_resource(lambda: state)
    producer = readings.open_producer("bot", args)
    context = await coapio.serve({"temperature": resource,
                                  "temperature/history": coapio.make_history_resource(producer.answer)},
                                 args.bind, args.port)
    try:
        while True:
            # the w1 driver blocks for the ~750 ms conversion: keep it off the loop
            result = await asyncio.get_running_loop().run_in_executor(None, read_temperature, args.devices)
            if result["error"] and result["error"] != state.get("error"):
                log.warning("%s", result["error"])
            now = service.now()
            state.update(producer.publish(dict(result, unit="C", time=service.iso(now)), taken_at=now))
            resource.notify()
            await asyncio.sleep(args.interval)
    finally:
        producer.close()
        await context.shutdown()


def cli(argv: t.Optional[t.Sequence[str]] = None) -> int:
    parser = service.parser("bot", __doc__, port=5704)
    parser.add_argument("--devices", default=service.env("w1_devices", "/sys/bus/w1/devices"),
                        help="1-Wire devices folder (env NANOEDGE_W1_DEVICES)")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between readings")
    return service.run(main, parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(cli())
