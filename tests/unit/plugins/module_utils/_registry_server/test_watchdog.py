# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The watchdogs: sd_notify datagrams to a local AF_UNIX socket (a path and
an abstract name), when systemd expects them, and the registry's own thread
that ends a stalled loop."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import uuid

import pytest

from ansible_collections.nanoedge.core.plugins.module_utils._registry_server import watchdog
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.watchdog import (
    LoopWatchdog, notify, systemd_watchdog_interval,
)


@pytest.fixture(params=["path", "abstract"])
def listener(request, tmp_path):
    """(the NOTIFY_SOCKET value, the receiving socket)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param == "path":
        address = name = str(tmp_path / "notify")
    else:
        name = "@nanoedge-test-%s" % uuid.uuid4().hex
        address = "\0" + name[1:]
    sock.bind(address)
    sock.settimeout(5)
    yield name, sock
    sock.close()


def test_notify_sends_the_state_as_one_datagram(listener):
    name, sock = listener
    assert notify("READY=1", {"NOTIFY_SOCKET": name}) is True
    assert notify("WATCHDOG=1", {"NOTIFY_SOCKET": name}) is True
    assert [sock.recv(256), sock.recv(256)] == [b"READY=1", b"WATCHDOG=1"]


@pytest.mark.parametrize("environ", [{}, {"NOTIFY_SOCKET": ""}])
def test_notify_without_a_service_manager_does_nothing(environ):
    assert notify("READY=1", environ) is False


def test_notify_to_a_socket_nobody_holds_warns_and_carries_on(tmp_path, caplog):
    gone = str(tmp_path / "gone")
    assert notify("READY=1", {"NOTIFY_SOCKET": gone}) is False
    assert [r.getMessage() for r in caplog.records] == [
        "cannot notify the service manager at %s: [Errno 2] No such file or directory" % gone]


@pytest.mark.parametrize("environ, expected", [
    ({"NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": "30000000"}, 15.0),
    ({"NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}, 15.0),
    ({"NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),
    ({"NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "x"}, None),
    ({"NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": "0"}, None),
    ({"NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": "-5"}, None),
    ({"NOTIFY_SOCKET": "/run/n"}, None),
    ({"WATCHDOG_USEC": "30000000"}, None),
])
def test_systemd_watchdog_interval_is_half_of_watchdog_sec(environ, expected):
    assert systemd_watchdog_interval(environ, pid=4242) == expected


def test_own_watchdog_calls_on_stall_when_the_loop_stops_beating():
    stalls = []
    called = threading.Event()
    dog = LoopWatchdog(0.2, on_stall=lambda seconds: (stalls.append(seconds), called.set()))
    dog.start()
    try:
        assert called.wait(5)
    finally:
        dog.stop()
    assert len(stalls) == 1 and 0.2 < stalls[0] < 2.0


def test_own_watchdog_stays_quiet_while_the_loop_beats():
    stalls = []
    dog = LoopWatchdog(0.3, on_stall=stalls.append)
    dog.start()
    try:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            dog.beat()
            time.sleep(0.02)
    finally:
        dog.stop()
    assert stalls == []


def test_start_watchdogs_feeds_systemd_from_the_loop(listener, monkeypatch):
    name, sock = listener
    monkeypatch.setenv("NOTIFY_SOCKET", name)
    monkeypatch.setenv("WATCHDOG_USEC", "100000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))

    async def run() -> None:
        task, own = watchdog.start_watchdogs(asyncio.get_running_loop(), 30.0)
        assert own is None
        await asyncio.sleep(0.12)
        task.cancel()

    asyncio.run(run())
    received = [sock.recv(256) for _state in range(3)]
    assert received == [b"READY=1", b"WATCHDOG=1", b"WATCHDOG=1"]


def test_start_watchdogs_without_systemd_uses_its_own_thread(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)

    async def run() -> None:
        task, own = watchdog.start_watchdogs(asyncio.get_running_loop(), 30.0)
        assert own is not None and own.timeout == 30.0
        task.cancel()
        own.stop()
        assert watchdog.start_watchdogs(asyncio.get_running_loop(), 0) == (None, None)

    asyncio.run(run())
