# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What hostile load costs the CoAP profile registry (role nanoedge.core.registry).

Starts the real registry on loopback and measures, each against a baseline taken in the same run:

- its memory (VmRSS from /proc/PID/status) after 20,000 unfinished block-wise uploads (block 0 of a
  PUT, more to come, never continued), sent from 100 loopback addresses (127.0.0.2 and up), against
  the same registry idle and against as many GETs (aiocoap keeps every request with its answer for
  EXCHANGE_LIFETIME, 247 s, to answer duplicates: that share is the same for any request);
- its memory after 5,000 observation requests on ``/profiles`` from those addresses, how many were
  accepted as observations, and the bytes of notifications one PUT then sends, against idle;
- the time to encode ``/profiles`` (CBOR and JSON) after a change at 10,000 profiles, in process,
  against encoding the whole collection from the decoded profiles (one ``cbor2.dumps`` of it).

Run from the collection in its ``ansible_collections/nanoedge/core`` layout (``make bench`` does):
``python bench/bench_registry_limits.py``. Further registry options (e.g. larger limits) go after
``--server-arg``. Loopback only; every loop is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import struct
import sys
import tempfile
import time
import typing as t
from pathlib import Path

import cbor2
# Run as a script: this folder is on sys.path.
from bench_registry import Server as RegistryServer  # pylint: disable=import-error

ROOT = Path(__file__).resolve().parents[1]
COLLECTIONS_PATH = ROOT.parents[2]
ADDRESSES = ["127.0.0.%d" % i for i in range(2, 102)]
WINDOW = 200
OPT_OBSERVE, OPT_URI_PATH, OPT_CONTENT_FORMAT, OPT_BLOCK1 = 6, 11, 12, 27


def sample_profile(node: str, seq: int = 0) -> t.Dict[str, t.Any]:
    return {
        "schema": 1, "node": node, "collected_at": "2026-11-26T02:30:00Z", "arch": "armv7l",
        "model": "Raspberry Pi 3 Model B Plus Rev 1.3", "cpu": {"cores": 4, "bogomips": 89.6, "load1": 0.31},
        "memory_mb": {"total": 926, "available": 640}, "storage_mb": {"total": 29820, "free": 21033},
        "power": {"source": "ac", "battery_percent": None, "battery_health": None, "charging": None},
        "network": ["bluetooth", "ethernet", "wifi"], "capabilities": ["pom"],
        "devices": [{"capability": "pom", "kind": "sensor", "name": "BerryMed BM1000B", "bus": "usb",
                     "id": "0403:6001"}],
        "labels": {"room": "ward 3", "seq": str(seq)},
    }


def encode(code: int, mid: int, token: bytes, options: t.Sequence[t.Tuple[int, bytes]], payload: bytes = b"") -> bytes:
    out = bytearray([0x40 | len(token), code]) + struct.pack("!H", mid) + token
    last = 0
    for number, value in sorted(options, key=lambda o: o[0]):
        delta, length = number - last, len(value)
        assert delta < 269 and length < 269
        out += bytes([(min(delta, 13) << 4) | min(length, 13)])
        out += bytes([delta - 13]) if delta >= 13 else b""
        out += bytes([length - 13]) if length >= 13 else b""
        out += value
        last = number
    if payload:
        out += b"\xff" + payload
    return bytes(out)


def has_observe(datagram: bytes) -> bool:
    """Whether a CoAP answer carries the Observe option."""
    position, number = 4 + (datagram[0] & 0x0F), 0
    while position < len(datagram) and datagram[position] != 0xFF:
        delta, length = datagram[position] >> 4, datagram[position] & 0x0F
        position += 1
        if delta == 13:
            delta, position = datagram[position] + 13, position + 1
        elif delta == 14:
            delta, position = struct.unpack("!H", datagram[position:position + 2])[0] + 269, position + 2
        if length == 13:
            length, position = datagram[position] + 13, position + 1
        elif length == 14:
            length, position = struct.unpack("!H", datagram[position:position + 2])[0] + 269, position + 2
        number += delta
        if number == OPT_OBSERVE:
            return True
        position += length
    return False


class Server(RegistryServer):
    """The registry process of bench_registry.py, with its memory."""

    def __init__(self, workdir: Path, extra: t.Sequence[str]) -> None:
        super().__init__(workdir, *extra)

    def rss_kib(self) -> int:
        with open("/proc/%d/status" % self.proc.pid) as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise SystemExit("no VmRSS for the registry")


class Peers:
    """One UDP socket per loopback address, each a distinct peer of the registry."""

    def __init__(self, port: int) -> None:
        self.socks = []
        for address in ADDRESSES:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
            sock.bind((address, 0))
            sock.connect(("127.0.0.1", port))
            sock.setblocking(False)
            self.socks.append(sock)
        self.codes: t.Dict[str, int] = {}
        self.observing = 0
        self.received_bytes = 0

    def send_all(self, datagrams: t.Iterable[bytes]) -> None:
        sent = 0
        for datagram in datagrams:
            self.socks[sent % len(self.socks)].send(datagram)
            sent += 1
            if sent % WINDOW == 0:
                self.drain(0.5, until=sent)
        self.drain(3.0, until=sent)

    def drain(self, quiet: float, until: t.Optional[int] = None) -> None:
        """Read answers until ``until`` have come (every datagram sent has one) or none for ``quiet`` s."""
        last = time.monotonic()
        while time.monotonic() - last < quiet:
            if until is not None and sum(self.codes.values()) >= until:
                return
            got = False
            for sock in self.socks:
                try:
                    datagram = sock.recv(65536)
                except BlockingIOError:
                    continue
                got = True
                if datagram[0] >> 4 & 3 == 0:  # a confirmable notification: acknowledge it (NSTART = 1)
                    sock.send(bytes([0x60, 0x00]) + datagram[2:4])
                self.received_bytes += len(datagram)
                label = "%d.%02d" % (datagram[1] >> 5, datagram[1] & 31)
                self.codes[label] = self.codes.get(label, 0) + 1
                self.observing += has_observe(datagram)
            if got:
                last = time.monotonic()
            else:
                time.sleep(0.002)

    def close(self) -> None:
        for sock in self.socks:
            sock.close()


def upload_datagrams(count: int) -> t.Iterator[bytes]:
    block = b"{" + b" " * 1023
    for index in range(count):
        node = ("u%05d" % index).encode()
        yield encode(3, index & 0xFFFF, struct.pack("!I", index),
                     [(OPT_URI_PATH, b"profiles"), (OPT_URI_PATH, node), (OPT_CONTENT_FORMAT, bytes([50])),
                      (OPT_BLOCK1, bytes([0x0E]))], block)  # block 0, more, 1024 bytes


def get_datagrams(count: int) -> t.Iterator[bytes]:
    for index in range(count):
        yield encode(1, index & 0xFFFF, struct.pack("!I", index),
                     [(OPT_URI_PATH, b"profiles"), (OPT_URI_PATH, ("g%05d" % index).encode())])


def observe_datagrams(count: int) -> t.Iterator[bytes]:
    for index in range(count):
        yield encode(1, index & 0xFFFF, struct.pack("!I", index), [(OPT_OBSERVE, b""), (OPT_URI_PATH, b"profiles")])


def put_datagram(node: str, seq: int) -> bytes:
    body = json.dumps(sample_profile(node, seq)).encode()
    options = [(OPT_URI_PATH, b"profiles"), (OPT_URI_PATH, node.encode()), (OPT_CONTENT_FORMAT, bytes([50]))]
    return encode(3, 0xFF00 + seq, b"put" + bytes([seq]), options, body)


def measure_requests(workdir: Path, extra: t.Sequence[str], datagrams: t.Iterable[bytes], name: str,
                     ) -> t.Dict[str, t.Any]:
    (workdir / name).mkdir()
    server = Server(workdir / name, extra)
    try:
        time.sleep(0.5)
        idle = server.rss_kib()
        peers = Peers(server.port)
        started = time.perf_counter()
        peers.send_all(datagrams)
        elapsed = time.perf_counter() - started
        loaded = server.rss_kib()
        peers.close()
    finally:
        server.stop()
    return {"idle_kib": idle, "loaded_kib": loaded, "codes": peers.codes, "seconds": elapsed}


def measure_observers(workdir: Path, extra: t.Sequence[str], count: int) -> t.Dict[str, t.Any]:
    (workdir / "observers").mkdir()
    server = Server(workdir / "observers", extra)
    try:
        peers = Peers(server.port)
        peers.send_all([put_datagram("w1", 0)])
        time.sleep(0.5)
        idle = server.rss_kib()
        peers.codes.clear()
        peers.send_all(observe_datagrams(count))
        loaded = server.rss_kib()
        observing = peers.observing
        peers.received_bytes = 0
        peers.socks[0].send(put_datagram("w1", 1))  # one change: every observer of /profiles hears of it
        peers.drain(3.0)
        notification_bytes = peers.received_bytes
        peers.close()
    finally:
        server.stop()
    return {"idle_kib": idle, "loaded_kib": loaded, "codes": peers.codes, "observing": observing,
            "notification_bytes": notification_bytes}


async def _encode_times(workdir: Path, entries: int, repeats: int) -> t.Dict[str, float]:
    from ansible_collections.nanoedge.core.plugins.module_utils._canonical_json import canonical_json
    from ansible_collections.nanoedge.core.plugins.module_utils._coap import CF_CBOR, CF_JSON
    from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.model import Registry
    from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.store import Committer, Store

    store = Store(str(workdir / "encode.sqlite"))
    committer = Committer(store)
    committer.start()
    registry = Registry(store, committer)
    values = [sample_profile("n%05d" % i) for i in range(entries)]
    await asyncio.gather(*(registry.put(v["node"], v, canonical_json(v), 3600) for v in values))
    times: t.Dict[str, t.List[float]] = {"cbor": [], "json": [], "baseline": []}
    registry.collection(CF_CBOR)  # what a first reader pays once after a start
    for seq in range(1, repeats + 1):
        for turn, (name, content_format) in enumerate((("cbor", CF_CBOR), ("json", CF_JSON))):
            changed = sample_profile("n%05d" % seq, 2 * seq + turn)  # a change: the next reader pays for it
            await registry.put(changed["node"], changed, canonical_json(changed), 3600)
            started = time.perf_counter()
            registry.collection(content_format)
            times[name].append(time.perf_counter() - started)
        started = time.perf_counter()
        cbor2.dumps({node: json.loads(registry.entries[node].body) for node in sorted(registry.entries)},
                    canonical=True)
        times["baseline"].append(time.perf_counter() - started)
    await committer.stop()
    store.close()
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=20_000)
    parser.add_argument("--observers", type=int, default=5_000)
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--server-arg", action="append", default=[], help="a further registry option")
    args = parser.parse_args()
    sys.path.insert(0, str(COLLECTIONS_PATH))

    with tempfile.TemporaryDirectory(prefix="nanoedge-bench-limits-") as tmp:
        workdir = Path(tmp)
        uploads = measure_requests(workdir, args.server_arg, upload_datagrams(args.uploads), "uploads")
        # the baseline: as many GETs of unknown nodes, what aiocoap keeps of any request for 247 s
        gets = measure_requests(workdir, args.server_arg, get_datagrams(args.uploads), "gets")
        observers = measure_observers(workdir, args.server_arg, args.observers)
        encode_times = asyncio.run(_encode_times(workdir, args.entries, args.repeats))

    print("uploads: %d unfinished block-wise uploads from %d addresses in %.1f s, answers %s"
          % (args.uploads, len(ADDRESSES), uploads["seconds"], uploads["codes"]))
    grown, grown_gets = (1024 * (run["loaded_kib"] - run["idle_kib"]) for run in (uploads, gets))
    print("uploads: registry RSS %.1f MiB (idle %.1f MiB), %.2f kB more per upload sent; baseline %d GETs: RSS %.1f"
          " MiB, %.2f kB per GET; the uploads' own share: %.2f kB each, %.2fx the baseline"
          % (uploads["loaded_kib"] / 1024, uploads["idle_kib"] / 1024, grown / 1000 / args.uploads, args.uploads,
             gets["loaded_kib"] / 1024, grown_gets / 1000 / args.uploads, (grown - grown_gets) / 1000 / args.uploads,
             grown / max(1, grown_gets)))
    print("observers: %d observe requests on /profiles, %d accepted (answers %s)"
          % (args.observers, observers["observing"], observers["codes"]))
    print("observers: registry RSS %.1f MiB (idle baseline %.1f MiB): %.2fx idle; one PUT then sent %d bytes"
          " of notifications" % (observers["loaded_kib"] / 1024, observers["idle_kib"] / 1024,
                                 observers["loaded_kib"] / observers["idle_kib"], observers["notification_bytes"]))
    print("encode /profiles after a change at %d profiles: CBOR %.1f ms, JSON %.1f ms; baseline (cbor2.dumps of"
          " the whole collection) %.1f ms: CBOR %.0fx faster"
          % (args.entries, 1000 * encode_times["cbor"], 1000 * encode_times["json"],
             1000 * encode_times["baseline"], encode_times["baseline"] / encode_times["cbor"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
