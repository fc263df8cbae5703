"""Resp nanoservice: respiration rate from a chest band, over CoAP at /resp."""

from __future__ import annotations

import asyncio
import sys

from nanoedge_ns import readings, service


def read_band(path: str) -> dict:
    try:
        with open(path, encoding="ascii") as handle:
            return {"breaths_per_min": int(handle.read().strip()), "error": None}
    except (OSError, ValueError) as exc:
        return {"breaths_per_min": None, "error": str(exc)}


async def main(args) -> None:
    served = await readings.serve("resp", "resp", args, {"breaths_per_min": None})
    try:
        while True:
            served.publish(read_band(args.device))   # numbered, on disk, then served
            await asyncio.sleep(args.interval)
    finally:
        await served.close()


def cli(argv=None) -> int:
    parser = service.parser("resp", __doc__, port=5708)
    parser.add_argument("--device", default=service.env("band_device", "/run/band/rate"))
    parser.add_argument("--interval", type=float, default=1.0)
    return service.run(main, parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(cli())
