# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Attacks on a live registry, one regression test each: the shared-reference
bomb, unknown critical options, a corrupt, truncated or empty database, a
second registry on the same database or port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import typing as t

import pytest
from aiocoap.numbers.codes import Code

from _registry_server import (SERVER_MODULE, Client, RegistryServer, canonical, encode, payload_of, profile,
                              run_client, server_environment)

CON = 0
GET, PUT = 1, 3
OPT_URI_PATH, OPT_CONTENT_FORMAT = 11, 12
PREFIX = b"nanoedge.core.registry: "


def shared_reference_bomb(levels: int = 40) -> bytes:
    """257 bytes that a decoder honouring CBOR tags 28/29 turns into 2^40 paths."""
    body = b"\xd8\x1c\x82\x00\x00"
    for index in range(levels - 1, 0, -1):
        reference = bytes([index]) if index < 24 else bytes([0x18, index])
        body = b"\xd8\x1c\x82" + body + b"\xd8\x1d" + reference
    return b"\x81\x81" + body


def exchange(port: int, datagram: bytes, timeout: float = 5.0) -> t.Tuple[int, bytes]:
    """Send one raw datagram, return (code, payload) of the answer."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(datagram, ("127.0.0.1", port))
        answer = sock.recv(65536)
    return answer[1], payload_of(answer)


@pytest.fixture()
def seeded(tmp_path):
    with RegistryServer(tmp_path / "registry.sqlite") as srv:
        run_client(srv.url, lambda c: c.put("w1", profile("w1"), "?lt=600"))
        yield srv
        assert srv.alive(), srv.log_text()[-3000:]
        assert run_client(srv.url, lambda c: c.get("/profiles")).payload == b'{"w1":' + canonical(profile("w1")) + b"}"


def test_the_shared_reference_bomb_is_refused_at_once(seeded):
    bomb = shared_reference_bomb()
    assert len(bomb) == 257
    datagram = encode(CON, PUT, 0x1234, b"\x01", [(OPT_URI_PATH, b"profiles"), (OPT_URI_PATH, b"w1"),
                                                  (OPT_CONTENT_FORMAT, b"\x3c")], bomb)
    started = time.monotonic()
    code, payload = exchange(seeded.port, datagram)
    elapsed = time.monotonic() - started
    diagnostic = b"malformed CBOR: tag 28 (shared value) is not accepted (a profile uses no CBOR tags but bignums 2 and 3)"
    assert (code, payload) == (int(Code.BAD_REQUEST), PREFIX + diagnostic)
    assert elapsed < 1.0
    print("bomb of %d bytes refused in %.1f ms" % (len(bomb), elapsed * 1000))


@pytest.mark.parametrize("options, code, diagnostic", [
    ([(2049, b"x")], Code.BAD_OPTION, b"critical option 2049 is not supported (RFC 7252, 5.4.1)"),
    ([(1, b"\x00")], Code.BAD_OPTION, b"critical option 1 (If-Match) is not supported (RFC 7252, 5.4.1)"),
    ([(35, b"coap://elsewhere/")], Code.BAD_OPTION,
     b"critical option 35 (Proxy-Uri) is not supported (RFC 7252, 5.4.1)"),
    ([(9, b"")], Code.BAD_OPTION, b"critical option 9 (Oscore) is not supported (RFC 7252, 5.4.1)"),
    ([(2048, b"x")], Code.CONTENT, None),  # elective: ignored
], ids=["unknown-2049", "if-match", "proxy-uri", "oscore-while-off", "elective-2048"])
def test_unknown_critical_options_get_4_02(seeded, options, code, diagnostic):
    datagram = encode(CON, GET, 0x4321, b"\x02", [(OPT_URI_PATH, b"profiles")] + options)
    answer_code, payload = exchange(seeded.port, datagram)
    assert answer_code == int(code)
    if diagnostic is not None:
        assert payload == PREFIX + diagnostic


@pytest.mark.parametrize("content, reason", [
    (b"", "the file is empty (0 bytes)"),
    (b"SQLite format 3\x00" + b"\xff" * 200, "file is not a database"),
    (b"garbage" * 1000, "file is not a database"),
], ids=["zero-length", "truncated-header", "garbage"])
def test_a_damaged_database_is_moved_aside_and_the_registry_starts_empty(tmp_path, content, reason):
    db = tmp_path / "registry.sqlite"
    db.write_bytes(content)
    with RegistryServer(db) as srv:
        assert run_client(srv.url, lambda c: c.stored()) == {}
        assert (run_client(srv.url, lambda c: c.put("w2", profile("w2")))).code == Code.CREATED
        moved = [name for name in os.listdir(tmp_path) if ".corrupt-" in name]
        assert len(moved) == 1 and (tmp_path / moved[0]).read_bytes() == content
        lines = [line for line in srv.log_text().splitlines() if "unusable" in line]
        assert len(lines) == 1
        assert lines[0].endswith("database %s is unusable (%s): moved aside to %s, starting with no profiles"
                                 % (db, reason, tmp_path / moved[0]))
        assert "Traceback" not in srv.log_text()


def second_registry(db: str, port: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", SERVER_MODULE, "--bind", "127.0.0.1", "--port", str(port), "--db", db],
        capture_output=True, text=True, env=server_environment(), timeout=60, check=False)


def test_a_second_registry_on_the_same_database_exits(tmp_path):
    db = tmp_path / "registry.sqlite"
    with RegistryServer(db) as first:
        assert first.proc is not None
        proc = second_registry(str(db), 0)
        assert (proc.returncode, proc.stderr) == (1, (
            "nanoedge.core.registry: another registry (pid %d) is running on the database %s (it holds %s.lock)\n"
            % (first.proc.pid, db, db)))
        assert first.alive()
        assert run_client(first.url, lambda c: c.put("w1", profile("w1"))).code == Code.CREATED


def test_a_second_registry_on_the_same_port_exits(tmp_path):
    with RegistryServer(tmp_path / "first.sqlite") as first:
        proc = second_registry(str(tmp_path / "second.sqlite"), first.port)
        assert proc.returncode == 1
        assert proc.stderr.rstrip("\n").endswith(
            "nanoedge.registry ERROR cannot serve on [127.0.0.1]:%d: [Errno 98] Address already in use" % first.port)
        assert first.alive()

        async def scenario(client: Client) -> None:
            for index in range(20):  # every report reaches the one registry
                assert (await client.put("w%d" % index, profile("w%d" % index))).code == Code.CREATED

        run_client(first.url, scenario)


def test_the_registry_tells_systemd_it_is_ready_and_feeds_the_watchdog(tmp_path, monkeypatch):
    notify_path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as manager:
        manager.bind(notify_path)
        manager.settimeout(10)
        monkeypatch.setenv("NOTIFY_SOCKET", notify_path)
        monkeypatch.setenv("WATCHDOG_USEC", "400000")
        monkeypatch.delenv("WATCHDOG_PID", raising=False)
        srv = RegistryServer(tmp_path / "registry.sqlite").start()
        try:
            states = [manager.recv(256) for _state in range(4)]
            assert states == [b"READY=1", b"WATCHDOG=1", b"WATCHDOG=1", b"WATCHDOG=1"]
            assert "systemd watchdog: WATCHDOG=1 every 0.2 s" in srv.log_text()
        finally:
            assert srv.stop() == 0
        assert manager.recv(256) == b"STOPPING=1"
