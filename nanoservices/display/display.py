# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Display nanoservice: the patient's status at a glance. Polls the other
nanoservices (``--source spo2=coap://…/spo2`` or ``spo2=service:spo2``, found
at the node's directory; repeatable), each on its own so that one that does
not answer holds up no other, and draws the latest readings as a text screen
on stdout and in ``--output`` (what the attached panel shows), also served
over CoAP at ``/screen``. It shows the latest reading of each source;
``/counters`` says, per source, how many numbered readings it showed, polled
twice or never showed, and since when its readings come from where they come
from now (``flowing_since``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
import typing as t

from nanoedge_ns import coapio, directory, follower, service

log = logging.getLogger("display")

WIDTH = 48


def _fmt(value: t.Any, unit: str = "", digits: int = 0) -> str:
    if value is None:
        return "--"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return ("%.*f%s" % (digits, value, unit)) if digits else ("%d%s" % (round(value), unit))
    return "%s%s" % (value, unit)


def _line(label: str, reading: t.Any, describe: t.Callable[[t.Dict[str, t.Any]], str]) -> str:
    if isinstance(reading, Exception):
        text = "unreachable"
    elif not isinstance(reading, dict):
        text = "waiting"
    else:
        text = describe(reading)
    return "%-6s %s" % (label, text)


DESCRIBERS: t.Dict[str, t.Tuple[str, t.Callable[[t.Dict[str, t.Any]], str]]] = {
    "spo2": ("SpO2", lambda r: "%s   pulse %s" % (_fmt(r.get("spo2"), " %"), _fmt(r.get("pulse_rate"), " bpm"))
             if r.get("spo2") is not None else str(r.get("status") or "no reading")),
    "hr": ("HR", lambda r: "%s   (%s beats)" % (_fmt(r.get("bpm"), " bpm"), _fmt(r.get("beats")))),
    "hrv": ("HRV", lambda r: "RMSSD %s  SDNN %s" % (_fmt(r.get("rmssd_ms"), " ms"), _fmt(r.get("sdnn_ms"), " ms"))),
    "bot": ("BoT", lambda r: _fmt(r.get("celsius"), " C", 1) if r.get("error") is None else "error: %s" % r["error"]),
    "alert": ("Alert", lambda r: {"alert": "SpO2 LOW since %s" % r.get("since"),
                                  "pending": "SpO2 below %s %%, watching" % _fmt(r.get("threshold"))}
              .get(str(r.get("state")), "none")),
    "oc": ("O2", lambda r: "%s L/min%s" % (_fmt(r.get("flow_lpm"), "", 1),
                                           " (%s)" % r["reason"] if r.get("reason") else "")),
}


def render(readings: t.Dict[str, t.Any], now: float) -> str:
    """The screen for ``readings`` (source name -> JSON reading, an
    Exception when unreachable, None before the first answer)."""
    header = "nanoedge patient monitor"
    clock = time.strftime("%H:%M:%S", time.gmtime(now))
    lines = [header + clock.rjust(WIDTH - len(header)), "-" * WIDTH]
    for name, reading in readings.items():
        label, describe = DESCRIBERS.get(name, (name, lambda r: " ".join("%s=%s" % kv for kv in sorted(r.items()))))
        lines.append(_line(label, reading, describe)[:WIDTH])
    return "\n".join(lines) + "\n"


def parse_sources(values: t.Sequence[str]) -> t.Dict[str, str]:
    sources: t.Dict[str, str] = {}
    for value in values:
        for item in filter(None, (part.strip() for part in value.split(","))):
            name, sep, uri = item.partition("=")
            if not sep or not name or not uri.startswith(("coap://", "coap+tcp://", "coaps://", "service:")):
                raise ValueError("display: source %r must look like name=coap://host/path or name=service:name"
                                 % item)
            sources[name] = uri
    return sources


def write_screen(path: str, screen: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    temporary = os.path.join(folder, ".screen.tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(screen)
    os.replace(temporary, path)


async def main(args: argparse.Namespace) -> None:
    try:
        sources = parse_sources(args.source)
    except ValueError as exc:
        raise SystemExit(str(exc)) from exc
    readings: t.Dict[str, t.Any] = dict.fromkeys(sources)
    screen = {"text": render(readings, service.now()), "time": None, "readings": {}}
    resource = coapio.make_json_resource(lambda: screen)
    seen = follower.LatestCounters("display")
    context = await coapio.serve({"screen": resource, "counters": coapio.make_json_resource(seen.counters)},
                                 args.bind, args.port)
    client = coapio.Client(timeout=max(2.0, args.interval * 2))
    # each source by service name at the node's directory (or at the URI given, without one)
    resolvers = {name: directory.producer_resolver(client, uri, name) for name, uri in sources.items()}
    watchers = [asyncio.ensure_future(resolver.watch()) for resolver in resolvers.values()]

    drawn = asyncio.Event()  # set when a reading changed: the screen is drawn again

    async def fetch(name: str, resolver: directory.Resolver) -> None:
        resolver.changed.clear()
        uri = resolver.current()
        try:
            if uri is None:
                raise ConnectionError("not listed yet")
            answered, reading = await directory.ask_unless_moved(resolver, client.get(uri))
            if not answered:
                return  # the source moved while it was asked: the new one is asked at once
            readings[name] = reading
            seen.saw(name, reading, uri)
        except (asyncio.TimeoutError, OSError, ValueError) as exc:
            readings[name] = exc
            seen.failed(name)
            if isinstance(exc, (asyncio.TimeoutError, OSError)):
                resolver.failed()
        drawn.set()

    async def poll(name: str, resolver: directory.Resolver) -> None:
        # each source on its own: one that does not answer holds up neither the others nor the screen, and
        # one that moved is asked at once, not an interval later
        while True:
            await fetch(name, resolver)
            await directory.sleep_unless_moved([resolver], args.interval)

    def draw(previous: str) -> str:
        now = service.now()
        text = render(readings, now)
        screen.update(text=text, time=service.iso(now),
                      readings={k: v for k, v in readings.items() if isinstance(v, dict)},
                      sources={name: resolver.current() for name, resolver in resolvers.items()})
        resource.notify()
        write_screen(args.output, text)
        if text.split("\n", 1)[1] != previous:  # the clock alone does not redraw stdout
            sys.stdout.write(text)
            sys.stdout.flush()
        return text.split("\n", 1)[1]

    pollers = [asyncio.ensure_future(poll(name, resolver)) for name, resolver in resolvers.items()]
    try:
        previous = ""
        while True:
            # readings that arrive together are drawn once; the clock is redrawn at least every interval
            try:
                await asyncio.wait_for(drawn.wait(), args.interval)
            except asyncio.TimeoutError:
                pass
            await asyncio.sleep(0.05)
            drawn.clear()
            previous = draw(previous)
    finally:
        for task in pollers + watchers:
            task.cancel()
        await client.close()
        await context.shutdown()


def cli(argv: t.Optional[t.Sequence[str]] = None) -> int:
    return service.run(main, make_parser().parse_args(argv))


def make_parser() -> argparse.ArgumentParser:
    parser = service.parser("display", __doc__, port=5707)
    parser.add_argument("--source", action="append", default=[s for s in [service.env("display_sources", "")] if s],
                        help="name=coap://host/path, repeatable or comma-separated (env NANOEDGE_DISPLAY_SOURCES)")
    parser.add_argument("--output", default=service.env("display_output", "/run/nanoedge/display/screen.txt"),
                        help="the screen file (env NANOEDGE_DISPLAY_OUTPUT)")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes")
    return parser


if __name__ == "__main__":
    sys.exit(cli())
