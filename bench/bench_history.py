# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The producer's durable history and the consumer's catch-up (nanoedge_ns).

Measured in this run, each against a baseline of the same run:

1. append: ``History.append`` of SpO2-like readings, each on stable storage
   before it returns (fsync, the default) and without fsync, against
   appending the same readings, JSON-encoded, to a plain in-memory list;
2. catch-up in process: a ``Follower`` handed every page of a 10,000-reading
   history read from disk, against the same follower handed pages sliced
   from an in-memory list;
3. catch-up over CoAP on loopback (aiocoap, block-wise, zlib pages): what a
   restarted consumer pays for 10,000 missed readings. Goal: <= 1 s. The
   CPU time beside it (producer and consumer share this process and core)
   is what a loaded machine cannot inflate;
4. the history's size on disk per 10,000 readings, and on the wire.

``--pi3`` runs the same inside ``docker run --cpus 1 --memory 926m`` (a
Raspberry Pi 3's memory; one core of this machine, not a Pi's core) of a
nanoservice image (it has aiocoap), with this checkout's library mounted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import typing as t
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "nanoservices" / "common"))

from nanoedge_ns import coapio  # noqa: E402  (after the path)
from nanoedge_ns.follower import Follower  # noqa: E402
from nanoedge_ns.history import History  # noqa: E402
from nanoedge_ns.readings import Producer  # noqa: E402

N = 10000
PI3_IMAGE = "127.0.0.1:5000/nanoedge/spo2:1.0.0"


def reading(i: int) -> t.Dict[str, t.Any]:
    stamp = 1796500000.0 + i
    return {"spo2": 90 + i % 9, "pulse_rate": 60 + i % 30, "status": "ok", "unit": "%",
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp)), "taken_at": stamp}


def timed(action: t.Callable[[], t.Any]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def bench_append(folder: str, count: int) -> t.Dict[str, t.Any]:
    baseline: t.List[bytes] = []
    plain = timed(lambda: [baseline.append(json.dumps(dict(reading(i), seq=i + 1)).encode()) for i in range(count)])
    results = {"count": count, "list_s": round(plain, 4)}
    for name, fsync in (("nofsync", False), ("fsync", True)):
        history = History(os.path.join(folder, name), "spo2/main", max_count=2 * N, max_bytes=16 << 20, fsync=fsync)
        seconds = timed(lambda: [history.append(reading(i)) for i in range(count)])
        history.close()
        results.update({"%s_s" % name: round(seconds, 4), "%s_per_s" % name: round(count / seconds),
                        "%s_vs_list" % name: round(seconds / plain, 1)})
    return results


def _drain(follower: Follower, pages: t.Callable[[int], t.Dict[str, t.Any]]) -> None:
    while follower.accept(pages(follower.since())):
        pass


def bench_catch_up(folder: str) -> t.Dict[str, t.Any]:
    history = History(os.path.join(folder, "catchup"), "spo2/main", max_count=2 * N, max_bytes=16 << 20,
                      fsync=False)
    for i in range(N):
        history.append(reading(i))
    memory = [dict(reading(i), seq=i + 1) for i in range(N)]

    def from_memory(since: int) -> t.Dict[str, t.Any]:
        chunk = memory[since:since + 500]
        return {"source": "spo2/main", "epoch": "e", "since": since, "first": 1, "last": N, "missing": 0,
                "more": since + len(chunk) < N, "readings": [dict(r) for r in chunk]}

    def from_disk(since: int) -> t.Dict[str, t.Any]:
        return t.cast(t.Dict[str, t.Any], json.loads(history.page(since, 500)))

    results: t.Dict[str, t.Any] = {}
    for name, pages in (("list", from_memory), ("disk", from_disk)):
        seen: t.List[t.Dict[str, t.Any]] = []
        follower = Follower("bench", "", seen.append)
        results["%s_s" % name] = round(timed(lambda: _drain(follower, pages)), 4)
        assert [r["seq"] for r in seen] == list(range(1, N + 1))
    results["disk_vs_list"] = round(results["disk_s"] / results["list_s"], 1)
    results["bytes_on_disk_per_10000"] = history.size * 10000 // N
    results["bytes_zlib_pages_per_10000"] = sum(
        len(zlib.compress(history.page(since, 500), 6)) for since in range(0, N, 500)) * 10000 // N
    history.close()
    return results


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def bench_coap(folder: str, limits: t.Sequence[int]) -> t.Dict[str, t.Any]:
    producer = Producer("spo2", os.path.join(folder, "coap"), fsync=False, max_count=2 * N, max_bytes=16 << 20)
    for i in range(N):
        producer.publish(reading(i), taken_at=reading(i)["taken_at"])
    port = _free_port()
    uri = "coap://127.0.0.1:%d/spo2/history" % port

    async def scenario() -> t.Dict[str, t.Any]:
        server = await coapio.serve({"spo2/history": coapio.make_history_resource(producer.answer)}, "127.0.0.1",
                                    port)
        client = coapio.Client(timeout=30)
        results: t.Dict[str, t.Any] = {}
        try:
            await client.get(uri + "?since=%d" % N)  # the connection's set-up is not the catch-up
            for limit in limits:
                seen: t.List[t.Dict[str, t.Any]] = []
                # a consumer of its own per run: the producer would resume a consumer of the same name at its end
                follower = Follower("bench-%d" % limit, os.path.join(folder, "follow-%d.json" % limit), seen.append)
                start, cpu = time.perf_counter(), time.process_time()
                while follower.accept(await follower.fetch(client, uri, limit)):
                    pass
                seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
                assert [r["seq"] for r in seen] == list(range(1, N + 1))
                results["limit_%d_s" % limit] = round(seconds, 3)
                results["limit_%d_cpu_s" % limit] = round(cpu, 3)  # producer and consumer: this one process
            results["goal_s"] = 1.0
            results["met"] = min(results["limit_%d_s" % limit] for limit in limits) <= 1.0
        finally:
            await client.close()
            await server.shutdown()
        return results

    try:
        return asyncio.run(scenario())
    finally:
        producer.close()


def run(count: int, coap: bool) -> t.Dict[str, t.Any]:
    folder = tempfile.mkdtemp(prefix="bench-history-", dir=os.environ.get("BENCH_DIR"))
    try:
        report = {"python": sys.version.split()[0], "append": bench_append(folder, count),
                  "catch_up": bench_catch_up(folder)}
        if coap:
            report["catch_up_coap"] = bench_coap(folder, (500, 2000))
        return report
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def in_pi3_cgroup(image: str, count: int) -> t.Dict[str, t.Any]:
    command = ["docker", "run", "--rm", "--cpus", "1", "--memory", "926m", "--memory-swap", "926m",
               "-v", "%s:/src:ro" % ROOT, "-e", "PYTHONPATH=/src/nanoservices/common:/opt/nanoedge/lib",
               "--entrypoint", "python3", image, "/src/bench/bench_history.py", "--json", "--count", str(count)]
    output = subprocess.run(command, check=True, capture_output=True, timeout=900).stdout
    return t.cast(t.Dict[str, t.Any], json.loads(output))


def show(title: str, report: t.Dict[str, t.Any]) -> None:
    append, catch_up = report["append"], report["catch_up"]
    print("== %s (Python %s)" % (title, report["python"]))
    print("append %d: list %.3f s | history without fsync %.3f s (%d/s, %.1fx the list) | with fsync %.3f s "
          "(%d/s, %.1fx)" % (append["count"], append["list_s"], append["nofsync_s"], append["nofsync_per_s"],
                             append["nofsync_vs_list"], append["fsync_s"], append["fsync_per_s"],
                             append["fsync_vs_list"]))
    print("catch-up 10000 in process: from a list %.3f s | from the history on disk %.3f s (%.1fx)"
          % (catch_up["list_s"], catch_up["disk_s"], catch_up["disk_vs_list"]))
    print("size per 10000 readings: %d bytes on disk, %d bytes of zlib pages on the wire"
          % (catch_up["bytes_on_disk_per_10000"], catch_up["bytes_zlib_pages_per_10000"]))
    coap = report.get("catch_up_coap")
    if coap:
        print("catch-up 10000 over CoAP (loopback, block-wise, zlib): pages of 500 %.3f s (CPU %.3f s), of 2000 "
              "%.3f s (CPU %.3f s) (goal <= 1 s: %s)" % (coap["limit_500_s"], coap["limit_500_cpu_s"],
                                                         coap["limit_2000_s"], coap["limit_2000_cpu_s"],
                                                         "met" if coap["met"] else "MISSED"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--count", type=int, default=2000, help="readings appended (fsync each: keep it modest)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--no-coap", action="store_true", help="leave out the catch-up over CoAP")
    parser.add_argument("--pi3", action="store_true", help="also run inside a Pi-3-sized cgroup (docker)")
    parser.add_argument("--image", default=PI3_IMAGE, help="image with python3 and aiocoap for --pi3")
    args = parser.parse_args()
    report = run(args.count, not args.no_coap)
    if args.json:
        print(json.dumps(report, sort_keys=True))
        return 0
    show("this machine", report)
    if args.pi3:
        show("--cpus 1 --memory 926m (%s)" % args.image, in_pi3_cgroup(args.image, args.count))
    return 0


if __name__ == "__main__":
    sys.exit(main())
