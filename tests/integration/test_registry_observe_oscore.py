# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Observing ``/profiles`` under OSCORE on the real registry (docs/contracts.md, "The CoAP API"): a
manager that observes the collection hears of every change, block-wise collections and observations
registered again (as the reconcile service does after every change and every interval) included."""

from __future__ import annotations

import asyncio
import json
import typing as t

import aiocoap
import pytest
from aiocoap.numbers.codes import Code

from _registry_server import profile
# cluster: the fixture, imported for pytest to find
from test_registry_beats_oscore import Peers, cluster, run  # noqa: F401 pylint: disable=unused-import

NODES = ("w1", "w2", "w3")


async def put_profile(peers: Peers, url: str, node: str, **changes: t.Any) -> None:
    answer = await peers.request(node, url, Code.PUT, "/profiles/%s?lt=600" % node, profile(node, **changes))
    assert answer.code in (Code.CREATED, Code.CHANGED), (answer, answer.payload)


async def observe(peers: Peers, url: str) -> t.Tuple[t.Any, t.Dict[str, t.Any], t.Any]:
    """m1's observation of /profiles, its first answer and the iterator of its notifications."""
    await peers.request("m1", url, Code.GET, "/leadership")  # the context exists before the observation
    context = peers.contexts[("m1", url)]
    request = context.request(aiocoap.Message(code=Code.GET, uri=url + "/profiles", observe=0))
    first = await asyncio.wait_for(request.response, 10)
    assert first.code == Code.CONTENT and first.opt.observe is not None, (first, first.payload)
    return request.observation, json.loads(first.payload), request.observation.__aiter__()


async def next_nodes(notifications: t.Any) -> t.Set[str]:
    notification = await asyncio.wait_for(notifications.__anext__(), 5)
    return set(json.loads(notification.payload))


@pytest.mark.parametrize("rounds", [0, 20], ids=["first-observation", "after-20-re-observations"])
def test_a_new_profile_is_notified_to_an_oscore_observer(cluster, rounds):
    """20 is more than the registry's observations per peer (16): aiocoap never ends one it cancels."""
    async def scenario(peers: Peers, url: str) -> None:
        for node in NODES[:2]:
            await put_profile(peers, url, node, labels={"pad": "x" * 600})  # block-wise from here on
        for _round in range(rounds):
            observation, _first, _notifications = await observe(peers, url)
            observation.cancel()
        observation, first, notifications = await observe(peers, url)
        assert set(first) == set(NODES[:2])
        await put_profile(peers, url, "w3")
        assert await next_nodes(notifications) == set(NODES)
        observation.cancel()

    run(cluster, scenario)


def test_every_lease_answer_names_the_etag_of_profiles(cluster):
    async def scenario(peers: Peers, url: str) -> None:
        await put_profile(peers, url, "w1")
        for method in (Code.GET, Code.PUT):
            body = {"candidate": True, "ttl": 3} if method == Code.PUT else None
            status = await peers.json("m1", url, method, "/leadership", body)
            whole = await peers.request("m1", url, Code.GET, "/profiles")
            assert status["profiles"] == bytes(whole.opt.etag).hex()
        await put_profile(peers, url, "w2")
        status = await peers.json("m1", url, Code.GET, "/leadership")
        assert status["profiles"] == bytes((await peers.request("m1", url, Code.GET, "/profiles")).opt.etag).hex()
        assert status["profiles"] != bytes(whole.opt.etag).hex()

    run(cluster, scenario)
