# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers for the registry server tests: the real server (the collection's
package ``_registry_server``, run with ``python -m``) as a subprocess, sample
profiles (docs/contracts.md, "The profile") and a small aiocoap client."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import os
import re
import signal
import struct
import subprocess
import sys
import time
import typing as t
from pathlib import Path

import aiocoap
from aiocoap.numbers.codes import Code

from ansible_collections.nanoedge.core.plugins.module_utils._canonical_json import canonical_json

COLLECTION_ROOT = Path(__file__).resolve().parents[2]
# .../ansible_collections/nanoedge/core -> the folder holding ansible_collections
COLLECTIONS_PATH = COLLECTION_ROOT.parents[2]
SERVER_MODULE = "ansible_collections.nanoedge.core.plugins.module_utils._registry_server"
READY_RE = re.compile(r"ready on udp \[(?P<host>[^\]]+)\]:(?P<port>\d+)")

BASE_PROFILE: t.Dict[str, t.Any] = {
    "schema": 1,
    "node": "w4",
    "collected_at": "2026-11-26T02:30:00Z",
    "arch": "armv7l",
    "model": "Raspberry Pi 3 Model B Plus Rev 1.3",
    "cpu": {"cores": 4, "bogomips": 89.6, "load1": 0.31},
    "memory_mb": {"total": 926, "available": 640},
    "storage_mb": {"total": 29820, "free": 21033},
    "power": {"source": "ac", "battery_percent": None, "battery_health": None, "charging": None},
    "network": ["bluetooth", "ethernet", "wifi"],
    "capabilities": ["pom"],
    "devices": [{"capability": "pom", "kind": "sensor", "name": "BerryMed BM1000B", "bus": "usb", "id": "0403:6001"}],
    "labels": {},
}


def profile(node: str, **changes: t.Any) -> t.Dict[str, t.Any]:
    result = copy.deepcopy(BASE_PROFILE)
    result["node"] = node
    result.update(changes)
    return result


def canonical(value: t.Any) -> bytes:
    """The form the registry serves a value in: the collection's one canonical JSON."""
    return canonical_json(value)


def etag(value: t.Any) -> bytes:
    """The registry's ETag: first 8 bytes of SHA-256 over the canonical JSON."""
    return hashlib.sha256(canonical(value)).digest()[:8]


class RegistryServer:
    """The registry server as a subprocess.

    ``extra`` are further server options. ``bind`` is the listening address;
    ``port`` 0 takes a free port, and once started (or when given) the port is
    kept, so a restart listens where clients already point. ``prefix`` goes
    before the command, e.g. ``["ip", "netns", "exec", "ns1"]`` to run the
    server inside a network namespace.
    """

    def __init__(self, db: Path, *extra: str, log: t.Optional[Path] = None, python: str = sys.executable,
                 bind: str = "127.0.0.1", port: int = 0, prefix: t.Sequence[str] = ()) -> None:
        self.db = db
        self.extra = extra
        self.log = log or db.with_suffix(".log")
        self.python = python
        self.bind = bind
        self.prefix = list(prefix)
        self.proc: t.Optional[subprocess.Popen] = None
        self.port = port
        self._log_offset = 0

    def start(self, timeout: float = 20.0) -> "RegistryServer":
        self.db.parent.mkdir(parents=True, exist_ok=True)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._log_offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [*self.prefix, self.python, "-m", SERVER_MODULE, "--bind", self.bind, "--port", str(self.port),
                 "--db", str(self.db), *self.extra],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=server_environment(),
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = READY_RE.search(self.new_log())
            if match:
                self.port = int(match.group("port"))
                return self
            if self.proc.poll() is not None:
                raise AssertionError("registry exited with %s:\n%s" % (self.proc.returncode, self.new_log()))
            time.sleep(0.05)
        self.proc.kill()
        self.proc.wait(timeout=10)
        raise AssertionError("registry not ready after %.0f s:\n%s" % (timeout, self.new_log()))

    def new_log(self) -> str:
        data = self.log.read_bytes() if self.log.exists() else b""
        return data[self._log_offset:].decode(errors="replace")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    @property
    def url(self) -> str:
        host = "[%s]" % self.bind if ":" in self.bind else self.bind
        return "coap://%s:%d" % (host, self.port)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs (the crash case)."""
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> int:
        if self.proc is None:
            return 0
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return int(self.proc.returncode or 0)

    def __enter__(self) -> "RegistryServer":
        return self.start()

    def __exit__(self, *exc: t.Any) -> None:
        self.stop()


class Client:
    """A thin aiocoap client bound to one registry."""

    def __init__(self, context: aiocoap.Context, base: str) -> None:
        self.context = context
        self.base = base

    async def request(self, code: Code, path: str, payload: bytes = b"", timeout: float = 30.0,
                      handle_blockwise: bool = True, **options: t.Any) -> aiocoap.Message:
        message = aiocoap.Message(code=code, uri=self.base + path, payload=payload, **options)
        return await asyncio.wait_for(self.context.request(message, handle_blockwise=handle_blockwise).response,
                                      timeout)

    async def put(self, node: str, body: t.Any, query: str = "", content_format: t.Optional[int] = 50,
                  **options: t.Any) -> aiocoap.Message:
        if not isinstance(body, (bytes, bytearray)):
            body = json.dumps(body).encode()
        if content_format is not None:
            options["content_format"] = content_format
        return await self.request(Code.PUT, "/profiles/%s%s" % (node, query), bytes(body), **options)

    async def get(self, path: str = "/profiles", **options: t.Any) -> aiocoap.Message:
        return await self.request(Code.GET, path, **options)

    async def delete(self, node: str) -> aiocoap.Message:
        return await self.request(Code.DELETE, "/profiles/%s" % node)

    async def stored(self) -> t.Dict[str, t.Any]:
        response = await self.get("/profiles")
        assert response.code == Code.CONTENT, response
        return json.loads(response.payload)


def run_client(base: str, scenario: t.Callable[[Client], t.Awaitable[t.Any]],
               transports: t.Sequence[str] = ("udp6",)) -> t.Any:
    """Run ``scenario(client)`` in a fresh event loop with a fresh client context."""

    async def main() -> t.Any:
        context = await aiocoap.Context.create_client_context(transports=list(transports))
        try:
            return await scenario(Client(context, base))
        finally:
            await context.shutdown()

    return asyncio.run(main())


def server_environment() -> t.Dict[str, str]:
    """This environment with the collection under test first on PYTHONPATH
    (for the server and any other program that imports the collection)."""
    paths = [str(COLLECTIONS_PATH)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(paths))


def udp_receive_buffer(port: int) -> int:
    """The kernel's receive buffer size (skmem rb) of the UDP socket on ``port``."""
    out = subprocess.run(["ss", "-H", "-u", "-a", "-m", "-n", "sport", "=", ":%d" % port],
                         capture_output=True, text=True, check=True, timeout=10).stdout
    match = re.search(r"rb(\d+)", out)
    assert match, "no socket on udp port %d: %r" % (port, out)
    return int(match.group(1))


def udp_drops(port: int) -> int:
    """Datagrams the kernel dropped on the registry's socket (/proc/net/udp6, last column)."""
    for table in ("/proc/net/udp6", "/proc/net/udp"):
        with open(table) as handle:
            next(handle)
            for line in handle:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port:
                    return int(fields[-1])
    raise AssertionError("no socket on udp port %d" % port)


def environment_python() -> str:
    return os.environ.get("NANOEDGE_REGISTRY_PYTHON", sys.executable)


# -- raw CoAP datagrams (RFC 7252, 3) ----------------------------------------------

def _option_header(delta: int, length: int) -> t.Tuple[int, bytes]:
    def nibble(value: int) -> t.Tuple[int, bytes]:
        if value < 13:
            return value, b""
        if value < 269:
            return 13, bytes([value - 13])
        return 14, struct.pack("!H", value - 269)

    d, dext = nibble(delta)
    n, lext = nibble(length)
    return (d << 4) | n, dext + lext


def encode(mtype: int, code: int, mid: int, token: bytes, options: t.Sequence[t.Tuple[int, bytes]],
           payload: bytes = b"") -> bytes:
    out = bytearray([0x40 | (mtype << 4) | len(token), code]) + struct.pack("!H", mid) + token
    last = 0
    for number, value in sorted(options, key=lambda o: o[0]):
        first, ext = _option_header(number - last, len(value))
        out += bytes([first]) + ext + value
        last = number
    if payload:
        out += b"\xff" + payload
    return bytes(out)


def uint(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big") if value else b""


def payload_of(datagram: bytes) -> bytes:
    """The payload of a CoAP datagram: after the options, which may hold 0xff bytes themselves."""
    pos = 4 + (datagram[0] & 0x0F)
    while pos < len(datagram) and datagram[pos] != 0xFF:
        first = datagram[pos]
        pos += 1
        for nibble in (first >> 4, first & 0x0F):
            pos += {13: 1, 14: 2}.get(nibble, 0)
        length = first & 0x0F
        if length == 13:
            length = datagram[pos - 1] + 13
        elif length == 14:
            length = int.from_bytes(datagram[pos - 2:pos], "big") + 269
        pos += length
    return datagram[pos + 1:]
