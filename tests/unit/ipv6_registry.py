# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A stand-in CoAP profile registry on the IPv6 loopback, served from a thread,
for the plugins that take registry URIs and run their own event loop (the
lookup, the inventory plugin, the coap_report module): GET /profiles, and GET
and PUT /profiles/{node} with JSON bodies."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import typing as t

import aiocoap
import aiocoap.resource

LOOPBACK = "::1"


class _Profiles(aiocoap.resource.Resource, aiocoap.resource.PathCapable):
    def __init__(self, profiles: t.Dict[str, t.Any]) -> None:
        super().__init__()
        self.profiles = profiles

    async def render(self, request: aiocoap.Message) -> aiocoap.Message:
        path = request.opt.uri_path
        if path == ("profiles",) and request.code == aiocoap.GET:
            return aiocoap.Message(code=aiocoap.CONTENT, payload=json.dumps(self.profiles).encode(), content_format=50)
        if len(path) != 2 or path[0] != "profiles":
            return aiocoap.Message(code=aiocoap.NOT_FOUND)
        if request.code == aiocoap.GET:
            if path[1] not in self.profiles:
                return aiocoap.Message(code=aiocoap.NOT_FOUND)
            return aiocoap.Message(code=aiocoap.CONTENT, payload=json.dumps(self.profiles[path[1]]).encode(),
                                   content_format=50)
        if request.code == aiocoap.PUT:
            existed = path[1] in self.profiles
            self.profiles[path[1]] = json.loads(request.payload)
            return aiocoap.Message(code=aiocoap.CHANGED if existed else aiocoap.CREATED)
        return aiocoap.Message(code=aiocoap.METHOD_NOT_ALLOWED)


def _free_port() -> int:
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def ipv6_registry(profiles: t.Dict[str, t.Any]) -> t.Iterator[str]:
    """Serve ``profiles`` (node -> profile, updated by PUTs) at the URI yielded, ``coap://[::1]:port``."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    port = _free_port()
    server = asyncio.run_coroutine_threadsafe(aiocoap.Context.create_server_context(
        _Profiles(profiles), bind=(LOOPBACK, port), transports=["udp6"]), loop).result(timeout=10)
    try:
        yield "coap://[%s]:%d" % (LOOPBACK, port)
    finally:
        asyncio.run_coroutine_threadsafe(server.shutdown(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
