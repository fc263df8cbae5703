# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``bench/bench_registry.py --liveness``: the registry's CPU for beats alone (docs/contracts.md, "The CoAP API").

50 and 500 simulated nodes each beat once a second (NON, as the agent does), all of them members, the
manager a candidate for leadership, with security off and on; the registry process's utime + stime
from /proc over a fixed window, as % of one core.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing
import os
import tempfile
import time
import typing as t
from pathlib import Path

import aiocoap
from aiocoap.numbers.codes import Code

from registry.load import (  # pylint: disable=import-error
    PAPER_PROFILE_BYTES, Server, client_context, cpu_seconds, run_load, shutdown, write_oscore_contexts)

BEAT_WARMUP = 4.0  # seconds of beats before the window: every node tracked, contexts warm
BEAT_WINDOW = 12.0
LIVENESS_NODES = (50, 500)


async def _beat_worker(url: str, nodes: t.Sequence[str], seconds: float, oscore: t.Optional[Path],
                       ready: t.Callable[[], t.Any]) -> t.Tuple[int, int, t.List[float]]:
    ctx = await client_context(url, nodes, oscore, resource="beat")
    ready()
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.1
    counts = [0, 0]  # sent, answered 2.04
    answered_at: t.List[float] = []  # monotonic, the same clock in every process
    payload = json.dumps({"etag": "0123456789abcdef", "term": 0}).encode()
    unreliable = {"transport_tuning": aiocoap.Unreliable} if hasattr(aiocoap, "Unreliable") else {"mtype": aiocoap.NON}

    async def node_loop(offset: float, node: str) -> None:
        beat = 0
        while True:
            due = start + offset + beat
            if due >= start + seconds:
                return
            await asyncio.sleep(max(0.0, due - loop.time()))
            message = aiocoap.Message(code=Code.POST, uri="%s/beat/%s" % (url, node), payload=payload,
                                      content_format=50, **unreliable)
            counts[0] += 1
            try:
                response = await asyncio.wait_for(ctx.request(message).response, 2.0)
            except (asyncio.TimeoutError, aiocoap.error.Error):
                response = None
            if response is not None and response.code == Code.CHANGED:
                counts[1] += 1
                answered_at.append(time.monotonic())
            beat += 1

    await asyncio.gather(*(node_loop(index / len(nodes), node) for index, node in enumerate(nodes)))
    await shutdown(ctx)
    return counts[0], counts[1], answered_at


def _beat_process(url: str, nodes: t.Sequence[str], seconds: float, oscore: t.Optional[Path], barrier: t.Any,
                  results: t.Any) -> None:
    # A beat whose answer came after its 2 s is counted as unanswered; aiocoap
    # would log each late answer, and each request still open at shutdown.
    logging.disable(logging.CRITICAL)

    async def run() -> t.Tuple[int, int, t.List[float]]:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, _context: None)
        return await _beat_worker(url, nodes, seconds, oscore, barrier.wait)

    results.put(asyncio.run(run()))


async def _stand(url: str, oscore: t.Optional[Path]) -> None:
    """The manager m1 stands as a candidate for the whole run, so every beat answer carries an ask."""
    ctx = await client_context(url, [], oscore)
    if oscore is not None:
        from aiocoap.oscore import FilesystemSecurityContext
        ctx.client_credentials[url + "/*"] = FilesystemSecurityContext(str(oscore / "client" / "m1") + "/")
    try:
        message = aiocoap.Message(code=Code.PUT, uri=url + "/leadership", content_format=50,
                                  payload=json.dumps({"candidate": True, "ttl": 60}).encode())
        response = await ctx.request(message).response
        assert response.code == Code.CHANGED, response.payload
    finally:
        await shutdown(ctx)


def beats_cpu(workdir: Path, count: int, oscore: t.Optional[Path], processes: int = 2) -> t.Dict[str, t.Any]:
    """% of one core the registry spends while ``count`` nodes beat once a second."""
    nodes = ["node%03d" % i for i in range(count)]
    extra = ["--name", "m1", "--members", ",".join(nodes)]
    if oscore is not None:
        extra += ["--security", "on", "--oscore-contexts", str(oscore / "server"), "--managers", "m1"]
    workdir.mkdir()
    server = Server(workdir, *extra)
    url = "coap://127.0.0.1:%d" % server.port
    try:
        asyncio.run(_stand(url, oscore))
        seconds = BEAT_WARMUP + BEAT_WINDOW + 1.0
        barrier = multiprocessing.Barrier(processes + 1)
        results: t.Any = multiprocessing.Queue()
        workers = [multiprocessing.Process(target=_beat_process,
                                           args=(url, nodes[i::processes], seconds, oscore, barrier, results))
                   for i in range(processes)]
        for worker in workers:
            worker.start()
        barrier.wait()
        time.sleep(BEAT_WARMUP)
        cpu0, wall0 = cpu_seconds(server.proc.pid), time.monotonic()
        time.sleep(BEAT_WINDOW)
        cpu1, wall1 = cpu_seconds(server.proc.pid), time.monotonic()
        collected = [results.get(timeout=120) for _worker in workers]
        for worker in workers:
            worker.join(timeout=30)
    finally:
        server.stop()
    sent = sum(part[0] for part in collected)
    # When the simulated nodes fall behind (they share the cores), fewer beats
    # arrive than the nominal rate: the cost per beat counts those that did.
    received = sum(1 for part in collected for at in part[2] if wall0 <= at <= wall1)
    per_beat = (cpu1 - cpu0) / max(1, received)
    return {"nodes": count, "measured": 100 * (cpu1 - cpu0) / (wall1 - wall0), "sent": sent,
            "answered": sum(part[1] for part in collected), "received": received,
            "nominal": count * (wall1 - wall0), "cpu_per_beat_ms": 1000 * per_beat,
            "percent": max(100 * (cpu1 - cpu0) / (wall1 - wall0), 100 * per_beat * count)}


def baseline_cpu(workdir: Path, reports: int) -> float:
    """CPU milliseconds the registry spends per paper-sized report (the baseline), over ``reports`` of them."""
    workdir.mkdir()
    server = Server(workdir)
    try:
        before = cpu_seconds(server.proc.pid)
        paper = run_load("coap://127.0.0.1:%d" % server.port, ["paper%02d" % i for i in range(reports)], 1, 1, 4, big=True)
        spent = cpu_seconds(server.proc.pid) - before
    finally:
        server.stop()
    assert paper["acked"] == reports, paper
    return 1000 * spent / reports


def liveness_main(args: argparse.Namespace) -> int:
    rows = []
    with tempfile.TemporaryDirectory(prefix="nanoedge-bench-") as tmp:
        oscore = Path(tmp) / "oscore"
        write_oscore_contexts(oscore, ["node%03d" % i for i in range(max(LIVENESS_NODES))] + ["m1"])
        baseline_ms = baseline_cpu(Path(tmp) / "baseline", args.baseline_reports)
        for security in ("off", "on"):
            for count in LIVENESS_NODES:
                row = beats_cpu(Path(tmp) / ("%s-%d" % (security, count)), count, oscore if security == "on" else None)
                row["security"] = security
                rows.append(row)
    print("liveness: beats alone (NON, once a second per node, every node a member, m1 a candidate), the registry's "
          "utime+stime over %.0f s after %.0f s of warm-up" % (BEAT_WINDOW, BEAT_WARMUP))
    print("baseline (paper-sized %d kB profile, block-wise): %.1f ms of registry CPU per report"
          % (PAPER_PROFILE_BYTES // 1000, baseline_ms))
    met = True
    for row in rows:
        goal = 5.0 if row["nodes"] <= 50 else 25.0
        met = met and row["percent"] <= goal
        print("liveness %3d nodes, OSCORE %-3s: %5.1f %% of one core (goal <= %.0f %%; measured %.1f %% with %d of %.0f "
              "beats in the window), %.3f ms CPU per beat, %.0fx less than a baseline report; answered %d of %d beats"
              % (row["nodes"], row["security"], row["percent"], goal, row["measured"], row["received"], row["nominal"],
                 row["cpu_per_beat_ms"], baseline_ms / row["cpu_per_beat_ms"], row["answered"], row["sent"]))
    print("goal (<= 5 %% at 50 nodes, <= 25 %% at 500): %s" % ("met" if met else "NOT met"))
    late = sum(row["sent"] - row["answered"] for row in rows)
    if late:
        print("unanswered within 2 s: %d beats (the simulated nodes share this machine's cores with the registry; "
              "the load average was %.1f)" % (late, os.getloadavg()[0]))
    return 0 if met else 1
