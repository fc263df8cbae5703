# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The CoAP plumbing against a real aiocoap server and client on loopback."""

from __future__ import annotations

import asyncio
import socket

import pytest

aiocoap = pytest.importorskip("aiocoap")

from nanoedge_ns import coapio  # noqa: E402  (after the skip)


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_json_resource_get_put_and_errors(service_module, tmp_path):
    oc = service_module("oc")
    port = _free_udp_port()
    state = {"open": False, "flow_lpm": 0.0, "reason": None}

    def change(command):
        state.update(oc.apply_command(state, command, 15.0))
        return state

    async def scenario():
        server = await coapio.serve({"valve": coapio.make_json_resource(lambda: state, change),
                                     "ro": coapio.make_json_resource(lambda: {"x": 1})}, "127.0.0.1", port)
        client = coapio.Client(timeout=5)
        base = "coap://127.0.0.1:%d" % port
        try:
            before = await client.get(base + "/valve")
            after = await client.put(base + "/valve", {"flow_lpm": 2.5, "reason": "test"})
            with pytest.raises(ValueError) as bad:
                await client.put(base + "/valve", {"flow_lpm": 99})
            with pytest.raises(ValueError) as readonly:
                await client.put(base + "/ro", {"x": 2})
            with pytest.raises(ValueError) as missing:
                await client.get(base + "/nothing")
            listing = await (await client._ctx()).request(
                aiocoap.Message(code=aiocoap.GET, uri=base + "/.well-known/core")).response
            return before, after, str(bad.value), str(readonly.value), str(missing.value), listing.payload
        finally:
            await client.close()
            await server.shutdown()

    before, after, bad, readonly, missing, listing = asyncio.run(scenario())
    assert before == {"open": False, "flow_lpm": 0.0, "reason": None}
    assert after == {"open": True, "flow_lpm": 2.5, "reason": "test"} == state
    assert bad == "PUT coap://127.0.0.1:%d/valve: 4.00 Bad Request oc: flow_lpm=99 out of range 0..15 L/min" % port
    assert readonly.startswith("PUT coap://127.0.0.1:%d/ro: 4.05 Method Not Allowed" % port)
    assert missing.startswith("GET coap://127.0.0.1:%d/nothing: 4.04 Not Found" % port)
    assert b"</valve>" in listing and b"</ro>" in listing


def test_encode_json_is_compact_and_stable():
    assert coapio.encode_json({"b": 1, "a": [1, 2]}) == b'{"a":[1,2],"b":1}'
