# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The service directory under OSCORE on the real registry (docs/contracts.md, "The CoAP API"): a node
lists only its own instances (another node's, a manager's or an unprotected write gets 4.01 naming the
node, and changes nothing), any authenticated peer reads and observes /services/{name}, a move is notified
at once and a node whose profile is deleted leaves the directory."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
import typing as t

import aiocoap
from aiocoap.numbers.codes import Code

from _registry_server import profile
from ansible_collections.nanoedge.core.plugins.module_utils._agent.directory_server import LocalDirectory
# cluster: the fixture, imported for pytest to find
from test_registry_beats_oscore import PREFIX, Peers, cluster, run  # noqa: F401 pylint: disable=unused-import


def listing(node: str, registered: float = 100.0) -> t.Dict[str, t.Any]:
    return {"node": node, "instances": [{"service": "spo2", "instance": "main", "port": 5701,
                                         "uri": "coap://%s.lan:5701/spo2" % node, "registered": registered}]}


async def put_instances(peers: Peers, url: str, identity: t.Optional[str], node: str,
                        registered: float = 100.0) -> aiocoap.Message:
    return await peers.request(identity, url, Code.PUT, "/instances/%s?lt=600" % node, listing(node, registered))


async def services(peers: Peers, url: str, identity: str = "w3") -> t.Any:
    return await peers.json(identity, url, Code.GET, "/services/spo2")


def test_a_node_lists_only_its_own_instances(cluster):
    async def scenario(peers: Peers, url: str) -> t.List[t.Tuple[str, bytes]]:
        refused = []
        for identity in ("w2", "m1", None):
            answer = await put_instances(peers, url, identity, "w1")
            refused.append((str(answer.code), answer.payload))
            answer = await peers.request(identity, url, Code.DELETE, "/instances/w1")
            refused.append((str(answer.code), answer.payload))
        assert await services(peers, url) == []
        created = await put_instances(peers, url, "w1", "w1")
        assert created.code == Code.CREATED, (created, created.payload)
        assert [i["node"] for i in await services(peers, url)] == ["w1"]
        unprotected = await peers.request(None, url, Code.GET, "/services/spo2")
        refused.append((str(unprotected.code), unprotected.payload))
        return refused

    assert run(cluster, scenario) == [
        ("4.01 Unauthorized", PREFIX + b"OSCORE identity 'w2' may not write /instances/w1"),
        ("4.01 Unauthorized", PREFIX + b"OSCORE identity 'w2' may not write /instances/w1"),
        ("4.01 Unauthorized", PREFIX + b"OSCORE identity 'm1' may not write /instances/w1"),
        ("4.01 Unauthorized", PREFIX + b"OSCORE identity 'm1' may not write /instances/w1"),
        ("4.01 Unauthorized", PREFIX + b"writing /instances/w1 needs OSCORE as node 'w1'"),
        ("4.01 Unauthorized", PREFIX + b"writing /instances/w1 needs OSCORE as node 'w1'"),
        ("4.01 Unauthorized", PREFIX + b"reading /services needs OSCORE (as a node or a manager)"),
    ]


def test_a_move_is_notified_at_once_and_a_deleted_node_leaves(cluster):
    async def scenario(peers: Peers, url: str) -> t.Dict[str, t.Any]:
        answer = await peers.request("w1", url, Code.PUT, "/profiles/w1?lt=600", profile("w1"))
        assert answer.code == Code.CREATED, (answer, answer.payload)
        await put_instances(peers, url, "w1", "w1")
        await services(peers, url)  # w3's context exists before its observation
        context = peers.contexts[("w3", url)]
        request = context.request(aiocoap.Message(code=Code.GET, uri=url + "/services/spo2", observe=0))
        first = await asyncio.wait_for(request.response, 10)
        assert first.opt.observe is not None, first
        notifications = request.observation.__aiter__()
        started = time.monotonic()
        await put_instances(peers, url, "w2", "w2", registered=200.0)  # the producer moved to w2
        moved = json.loads((await asyncio.wait_for(notifications.__anext__(), 5)).payload)
        took = time.monotonic() - started
        deleted = await peers.request("w1", url, Code.DELETE, "/profiles/w1")  # w1 leaves: its instances too
        assert deleted.code == Code.DELETED
        left = json.loads((await asyncio.wait_for(notifications.__anext__(), 5)).payload)
        request.observation.cancel()
        return {"first": json.loads(first.payload), "moved": moved, "left": left, "took": took}

    result = run(cluster, scenario)
    assert [i["node"] for i in result["first"]] == ["w1"]
    assert [i["node"] for i in result["moved"]] == ["w1", "w2"]
    assert [i["node"] for i in result["left"]] == ["w2"]
    assert result["took"] < 1.0


def test_an_agents_local_directory_over_oscore(cluster):
    """The agent's loopback directory as w1, its client context OSCORE-protected like its beats: a local
    registration reaches the registry, and a lookup is answered from the registry's observed /services."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def scenario(peers: Peers, url: str) -> t.Tuple[t.Any, t.Any]:
        await peers.request("w1", url, Code.GET, "/profiles/w1")  # w1's OSCORE context for the registry
        authority = url[len("coap://"):]
        local = LocalDirectory("w1", [url], {authority: peers.contexts[("w1", url)]}.get, lifetime=600, renew=3600,
                               log=logging.getLogger("agent"))
        await local.start(port)
        plain = await aiocoap.Context.create_client_context()
        try:
            base = "coap://127.0.0.1:%d/local" % port
            register = aiocoap.Message(code=Code.PUT, uri=base + "/instances/spo2",
                                       payload=json.dumps({"uri": "coap://w1.lan:5701/spo2"}).encode())
            answer = await asyncio.wait_for(plain.request(register).response, 10)
            assert answer.code == Code.CREATED, (answer, answer.payload)
            for _attempt in range(100):
                listed = await services(peers, url)
                if listed:
                    break
                await asyncio.sleep(0.05)
            lookup = await asyncio.wait_for(plain.request(aiocoap.Message(code=Code.GET,
                                                                          uri=base + "/services/spo2")).response, 10)
            return listed, json.loads(lookup.payload)
        finally:
            await plain.shutdown()
            await local.close()

    listed, looked_up = run(cluster, scenario)
    assert [(i["node"], i["uri"]) for i in listed] == [("w1", "coap://w1.lan:5701/spo2")]
    assert looked_up == listed
