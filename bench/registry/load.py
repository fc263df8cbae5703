# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The registry and its simulated nodes for ``bench/bench_registry.py`` (and ``bench/bench_registry_limits.py``).

The real registry started on loopback, each simulated node's OSCORE security context as the registry
role writes it, and the reporting load: client processes, each with several aiocoap contexts (aiocoap
keeps one outstanding confirmable request per context and peer), every node reporting its profile
(docs/contracts.md, "The profile").
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import re
import secrets
import statistics
import subprocess
import sys
import time
import typing as t
from pathlib import Path

import aiocoap
from aiocoap.numbers.codes import Code

ROOT = Path(__file__).resolve().parents[2]
# .../ansible_collections/nanoedge/core -> the folder holding ansible_collections
COLLECTIONS_PATH = ROOT.parents[2]
SERVER_MODULE = "ansible_collections.nanoedge.core.plugins.module_utils._registry_server"
PAPER_PROFILE_BYTES = 158_000  # the paper's profile: 158 kB in 153 block-wise messages


def make_profile(node: str, seq: int) -> t.Dict[str, t.Any]:
    """A realistic worker profile, W4 of the paper's testbed."""
    return {
        "schema": 1,
        "node": node,
        "collected_at": "2026-11-26T02:30:%02dZ" % (seq % 60),
        "arch": "armv7l",
        "model": "Raspberry Pi 3 Model B Plus Rev 1.3",
        "cpu": {"cores": 4, "bogomips": 89.6, "load1": round(0.01 * (seq % 100), 2)},
        "memory_mb": {"total": 926, "available": 640 - seq % 50},
        "storage_mb": {"total": 29820, "free": 21033},
        "power": {"source": "dc", "battery_percent": 87, "battery_health": 0.93, "charging": False},
        "network": ["bluetooth", "ethernet", "wifi"],
        "capabilities": ["bot", "pom"],
        "devices": [
            {"capability": "pom", "kind": "sensor", "name": "BerryMed BM1000B", "bus": "usb", "id": "0403:6001"},
            {"capability": "bot", "kind": "sensor", "name": "DS18B20", "bus": "w1", "id": "28"},
        ],
        "labels": {"room": "ward 3", "seq": str(seq)},
    }


def paper_sized_profile(node: str, seq: int) -> t.Dict[str, t.Any]:
    body = make_profile(node, seq)
    body["labels"]["padding"] = ""
    size = len(json.dumps(body, separators=(",", ":")))
    body["labels"]["padding"] = "p" * (PAPER_PROFILE_BYTES - size)
    return body


class Server:
    def __init__(self, workdir: Path, *extra: str) -> None:
        if ROOT.parent.parent.name != "ansible_collections":
            raise SystemExit("run the benchmark from the ansible_collections/nanoedge/core layout (make bench)")
        self.log = workdir / "registry.log"
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(COLLECTIONS_PATH)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", SERVER_MODULE, "--bind", "127.0.0.1", "--port", "0", "--db",
                 str(workdir / "registry.sqlite"), "--max-lifetime", "3600",
                 # the simulated nodes all report from this one address: no per-address rate limit
                 "--rate-limit", "0", *extra],
                stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            match = re.search(r"ready on udp \[[^\]]+\]:(\d+)", self.log.read_text())
            if match:
                self.port = int(match.group(1))
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.proc.kill()
        self.proc.wait(timeout=10)
        raise SystemExit("registry did not start:\n" + self.log.read_text())

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=15)


def write_oscore_contexts(base: Path, peers: t.Sequence[str]) -> None:
    """The server and client side of one pair per peer, as the registry role writes them."""
    for index, peer in enumerate(peers):
        secret = secrets.token_hex(32)
        peer_id = "%06x" % (index + 1)
        for side, sender, recipient in (("server", "", peer_id), ("client", peer_id, "")):
            folder = base / side / peer
            folder.mkdir(parents=True)
            (folder / "settings.json").write_text(json.dumps({
                "sender-id_hex": sender, "recipient-id_hex": recipient, "secret_hex": secret, "salt_hex": "",
                "id-context_ascii": "m1"}))


async def client_context(url: str, nodes: t.Sequence[str], oscore: t.Optional[Path],
                         resource: str = "profiles") -> aiocoap.Context:
    if oscore is None:
        return await aiocoap.Context.create_client_context(transports=["udp6"])
    from aiocoap.oscore import FilesystemSecurityContext

    ctx = await aiocoap.Context.create_client_context(transports=["oscore", "udp6"])
    for node in nodes:
        # node names have a fixed width: "node001*" matches node001's requests only
        ctx.client_credentials["%s/%s/%s*" % (url, resource, node)] = FilesystemSecurityContext(
            str(oscore / "client" / node) + "/")
    return ctx


class Load(t.NamedTuple):
    """One timed load: ``rounds`` reports per node, the first with label seq ``first_seq``.

    With ``warm``, each client context first sends one untimed report per node (seq ``first_seq``, the
    timed rounds follow it): every OSCORE context has been used once, so its sequence numbers are
    persisted (fsync) before the clock starts, as in a worker that keeps its context for days.
    """

    rounds: int
    processes: int
    contexts: int
    big: bool = False
    oscore: t.Optional[Path] = None
    warm: bool = False
    first_seq: int = 0

    @property
    def last_seq(self) -> int:
        return self.first_seq + int(self.warm) + self.rounds - 1


async def _client_worker(url: str, nodes: t.Sequence[str], load: Load, ready: t.Callable[[], t.Any],
                         ) -> t.Dict[str, t.Any]:
    ctxs = [await client_context(url, nodes[i::load.contexts], load.oscore) for i in range(load.contexts)]
    make = paper_sized_profile if load.big else make_profile
    tally: t.Dict[str, t.Any] = {"latencies": [], "acked": 0, "failed": 0, "warm_acked": 0, "warm_failed": 0}

    async def lane(ctx: aiocoap.Context, lane_nodes: t.Sequence[str], seqs: t.Iterable[int], prefix: str) -> None:
        for seq in seqs:
            for node in lane_nodes:
                payload = json.dumps(make(node, seq), separators=(",", ":")).encode()
                message = aiocoap.Message(code=Code.PUT, uri="%s/profiles/%s?lt=3600" % (url, node),
                                          payload=payload, content_format=50)
                started = time.perf_counter()
                response = await ctx.request(message).response
                if not prefix:
                    tally["latencies"].append(time.perf_counter() - started)
                ok = response.code in (Code.CREATED, Code.CHANGED)
                tally[prefix + ("acked" if ok else "failed")] += 1

    async def all_lanes(seqs: t.Sequence[int], prefix: str = "") -> None:
        await asyncio.gather(*(lane(ctx, nodes[i::load.contexts], seqs, prefix) for i, ctx in enumerate(ctxs)))

    if load.warm:
        await all_lanes([load.first_seq], "warm_")
    ready()  # the security contexts are loaded (and, warm, used once) before the clock starts
    # time.monotonic is CLOCK_MONOTONIC, one clock for every process of the run
    tally["started"] = time.monotonic()
    await all_lanes(range(load.first_seq + int(load.warm), load.last_seq + 1))
    # The clock stops at the last answer: the contexts' shutdown (which stores each
    # OSCORE context's sequence numbers, with fsync) and the process's end are not
    # part of reporting, for security on and off alike.
    tally["finished"] = time.monotonic()
    for ctx in ctxs:
        await shutdown(ctx)
    return tally


async def shutdown(ctx: aiocoap.Context) -> None:
    """Shut down, and store the security contexts' sequence numbers while their folders still exist."""
    await ctx.shutdown()
    for secctx in ctx.client_credentials.values():
        getattr(secctx, "_destroy", lambda: None)()


def _process_main(url: str, nodes: t.Sequence[str], load: Load, barrier: t.Any, results: t.Any) -> None:
    results.put(asyncio.run(_client_worker(url, nodes, load, barrier.wait)))


def run_load(url: str, nodes: t.Sequence[str], rounds: int, processes: int, contexts: int,
             big: bool = False, oscore: t.Optional[Path] = None, warm: bool = False, first_seq: int = 0,
             pid: t.Optional[int] = None) -> t.Dict[str, t.Any]:
    """Reports/s and latencies of one load; with ``pid``, that process's CPU per timed report.

    The window runs from the first client process passing the start barrier to the last answer.
    """
    load = Load(rounds, processes, contexts, big, oscore, warm, first_seq)
    # a client process that fails before the barrier breaks it instead of hanging the run
    barrier = multiprocessing.Barrier(processes + 1, timeout=300)
    results: t.Any = multiprocessing.Queue()
    workers = [multiprocessing.Process(target=_process_main, args=(url, nodes[i::processes], load, barrier, results))
               for i in range(processes)]
    for worker in workers:
        worker.start()
    barrier.wait()
    cpu0 = cpu_seconds(pid) if pid else 0.0
    collected = [results.get(timeout=600) for _worker in workers]
    # the registry is idle while the clients shut down: its CPU here is the timed window's
    cpu1 = cpu_seconds(pid) if pid else 0.0
    for worker in workers:
        worker.join(timeout=30)
    elapsed = max(part["finished"] for part in collected) - min(part["started"] for part in collected)
    latencies = sorted(x for part in collected for x in part["latencies"])
    row = {key: sum(part[key] for part in collected) for key in ("acked", "failed", "warm_acked", "warm_failed")}
    row.update({
        "sent": len(latencies), "seconds": elapsed, "per_second": len(latencies) / elapsed, "last_seq": load.last_seq,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
    })
    if pid:
        row["registry_cpu_ms"] = 1000 * (cpu1 - cpu0) / len(latencies)
    return row


async def fetch_all(url: str, oscore: t.Optional[Path] = None) -> t.Dict[str, t.Any]:
    """Every stored profile; with ``oscore``, read as the manager m1."""
    ctx = await client_context(url, [], oscore)
    if oscore is not None:
        from aiocoap.oscore import FilesystemSecurityContext
        ctx.client_credentials[url + "/*"] = FilesystemSecurityContext(str(oscore / "client" / "m1") + "/")
    try:
        response = await ctx.request(aiocoap.Message(code=Code.GET, uri=url + "/profiles")).response
        return json.loads(response.payload)
    finally:
        await shutdown(ctx)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (/proc/PID/stat fields 14 and 15), in seconds."""
    with open("/proc/%d/stat" % pid) as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
