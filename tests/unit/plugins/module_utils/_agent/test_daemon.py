# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The whole service against a small aiocoap registry: a report at start, beats, a device plugged into the
node's hardware folder reported within the debounce, a registry that says "missing" gets the profile again,
and a clean stop."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import typing as t

import pytest

from ansible_collections.nanoedge.core.plugins.module_utils._agent import daemon, reports
from ansible_collections.nanoedge.core.plugins.module_utils._agent.config import CONFIG_KEYS

aiocoap = pytest.importorskip("aiocoap")
import aiocoap.resource  # noqa: E402  pylint: disable=wrong-import-position


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Registry:
    """PUT and GET /profiles/w1 and POST /beat/w1, as much of a registry as the agent needs."""

    def __init__(self) -> None:
        self.puts: t.List[t.Tuple[float, t.Dict[str, t.Any]]] = []
        self.beats: t.List[t.Dict[str, t.Any]] = []
        self.missing_once = False
        registry = self

        class Profile(aiocoap.resource.Resource):
            async def render_get(self, request):
                return aiocoap.Message(code=aiocoap.NOT_FOUND)

            async def render_put(self, request):
                registry.puts.append((asyncio.get_event_loop().time(), json.loads(request.payload)))
                return aiocoap.Message(code=aiocoap.CREATED)

        class Beat(aiocoap.resource.Resource):
            async def render_post(self, request):
                registry.beats.append(json.loads(request.payload))
                state = "current"
                if registry.missing_once:
                    registry.missing_once = False
                    state = "missing"
                return aiocoap.Message(code=aiocoap.CHANGED, payload=json.dumps({"profile": state}).encode())

        class Instances(aiocoap.resource.Resource):
            async def render_put(self, request):
                registry.instances.append(json.loads(request.payload))
                return aiocoap.Message(code=aiocoap.CHANGED)

        self.instances: t.List[t.Dict[str, t.Any]] = []
        self.site = aiocoap.resource.Site()
        self.site.add_resource(["profiles", "w1"], Profile())
        self.site.add_resource(["beat", "w1"], Beat())
        self.site.add_resource(["instances", "w1"], Instances())


async def wait_for(condition: t.Callable[[], bool], seconds: float = 5.0) -> None:
    for _tick in range(int(seconds / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("not within %gs" % seconds)


def test_service(tmp_path, monkeypatch):
    monkeypatch.setattr(reports, "HOLD_OFF", 0.3)
    (tmp_path / "sys/bus/usb/devices").mkdir(parents=True)
    (tmp_path / "state").mkdir()
    registry = Registry()
    port = free_port()
    config = {key: spec[1] for key, spec in CONFIG_KEYS.items()}
    config.update(registries=["coap://127.0.0.1:%d" % port], lifetime=30, interval=10, node="w1",
                  root=str(tmp_path), state_dir=str(tmp_path / "state"), retries=0, timeout=2,
                  beat_interval=0.2, debounce=0.1, poll_interval=0.1, storage_path="/",
                  device_catalog=[{"capability": "pom", "kind": "sensor", "name": "BM1000B", "usb": "0403:6001"}])
    times: t.Dict[str, float] = {}

    async def scenario() -> None:
        server = await aiocoap.Context.create_server_context(registry.site, bind=("127.0.0.1", port))
        stop = asyncio.Event()
        agent = daemon.Agent(config, logging.getLogger("test"))
        service = asyncio.ensure_future(agent.serve(stop))
        try:
            await wait_for(lambda: len(registry.puts) == 1 and len(registry.beats) >= 2)
            assert registry.puts[0][1]["capabilities"] == []
            assert registry.beats[-1] == {"etag": reports.profile_etag(registry.puts[0][1]), "term": 0}
            device = tmp_path / "sys/bus/usb/devices/1-1.3"
            device.mkdir()
            (device / "idVendor").write_text("0403\n")
            (device / "idProduct").write_text("6001\n")
            times["plugged"] = asyncio.get_event_loop().time()
            await wait_for(lambda: len(registry.puts) == 2)
            times["reported"] = registry.puts[1][0]
            assert registry.puts[1][1]["capabilities"] == ["pom"]
            await wait_for(lambda: registry.beats[-1]["etag"] == reports.profile_etag(registry.puts[1][1]))
            await asyncio.sleep(0.4)  # past the hold-off after the last report
            registry.missing_once = True
            await wait_for(lambda: len(registry.puts) == 3)
            assert registry.puts[2][1] == registry.puts[1][1]  # the same profile again, no new discovery
            stop.set()
            await asyncio.wait_for(service, 5)
        finally:
            service.cancel()
            await server.shutdown()

    asyncio.run(scenario())
    assert times["reported"] - times["plugged"] < 1.0


def test_the_service_directory_on_loopback(tmp_path):
    """With a directory port the agent serves its node's directory: a local registration reaches the registry."""
    (tmp_path / "state").mkdir()
    registry = Registry()
    port, directory_port = free_port(), free_port()
    config = {key: spec[1] for key, spec in CONFIG_KEYS.items()}
    config.update(registries=["coap://127.0.0.1:%d" % port], lifetime=30, interval=10, node="w1",
                  root=str(tmp_path), state_dir=str(tmp_path / "state"), retries=0, timeout=2,
                  beat_interval=0.2, directory_port=directory_port)

    async def scenario() -> None:
        server = await aiocoap.Context.create_server_context(registry.site, bind=("127.0.0.1", port))
        client = await aiocoap.Context.create_client_context()
        stop = asyncio.Event()
        service = asyncio.ensure_future(daemon.Agent(config, logging.getLogger("test")).serve(stop))
        try:
            await wait_for(lambda: len(registry.beats) >= 1)
            register = aiocoap.Message(code=aiocoap.PUT, uri="coap://127.0.0.1:%d/local/instances/spo2" % directory_port,
                                       payload=json.dumps({"uri": "coap://10.0.0.1:5701/spo2"}).encode())
            answer = await asyncio.wait_for(client.request(register).response, 5)
            assert answer.code == aiocoap.CREATED
            await wait_for(lambda: len(registry.instances) == 1)
            assert [i["uri"] for i in registry.instances[0]["instances"]] == ["coap://10.0.0.1:5701/spo2"]
            stop.set()
            await asyncio.wait_for(service, 5)
        finally:
            service.cancel()
            await client.shutdown()
            await server.shutdown()

    asyncio.run(scenario())
