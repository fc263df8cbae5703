# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The registry's limits against a live server on loopback: stored profiles,
unfinished block-wise uploads, observers and the request rate per peer, each
answered with its code, Max-Age and diagnostic. Peers are loopback addresses
(127.0.0.1, 127.0.0.2, ...): the limits count per IP address."""

from __future__ import annotations

import asyncio
import json
import typing as t

import aiocoap
import aiocoap.resource
import pytest
from aiocoap.numbers.codes import Code
from aiocoap.optiontypes import BlockOption

from _registry_server import Client, RegistryServer, profile, run_client

MORE = BlockOption.BlockwiseTuple(0, True, 6)  # block 0 of 1024 bytes, more to come


def run_client_from(address: str, base: str, scenario: t.Callable[[Client], t.Awaitable[t.Any]]) -> t.Any:
    """Run ``scenario`` with a client whose requests come from ``address``."""

    async def main() -> t.Any:
        context = await aiocoap.Context.create_server_context(aiocoap.resource.Site(), bind=(address, 0),
                                                              transports=["udp6"])
        try:
            return await scenario(Client(context, base))
        finally:
            await context.shutdown()

    return asyncio.run(main())


def diagnostic(response: aiocoap.Message) -> str:
    return response.payload.decode()


def first_block(node: str) -> bytes:
    return json.dumps(profile(node, labels={"pad": "p" * 2000})).encode()[:1024]


async def start_upload(client: Client, node: str) -> aiocoap.Message:
    return await client.put(node, first_block(node), block1=MORE, handle_blockwise=False)


@pytest.fixture()
def start(tmp_path):
    servers: t.List[RegistryServer] = []

    def started(*options: str) -> RegistryServer:
        server = RegistryServer(tmp_path / ("registry%d.sqlite" % len(servers)), *options).start()
        servers.append(server)
        return server

    yield started
    for server in servers:
        assert server.alive(), server.log_text()
        server.stop()


def test_a_new_node_beyond_the_cap_gets_5_03_updates_still_work(start):
    server = start("--max-profiles", "2")

    async def scenario(client: Client) -> None:
        assert (await client.put("w1", profile("w1"), "?lt=40")).code == Code.CREATED
        assert (await client.put("w2", profile("w2"), "?lt=300")).code == Code.CREATED
        refused = await client.put("w3", profile("w3"))
        assert (refused.code, refused.opt.max_age) == (Code.SERVICE_UNAVAILABLE, 40)
        assert diagnostic(refused) == ("nanoedge.core.registry: 2 profiles are stored (at most 2): node 'w3' not"
                                       " added, retry in 40 s")
        assert (await client.put("w1", profile("w1", labels={"room": "2"}))).code == Code.CHANGED
        assert set(await client.stored()) == {"w1", "w2"}
        assert (await client.delete("w2")).code == Code.DELETED
        assert (await client.put("w3", profile("w3"))).code == Code.CREATED

    run_client(server.url, scenario)


def test_unfinished_uploads_are_capped_per_peer_and_in_all(start):
    server = start("--max-uploads-per-peer", "2", "--max-uploads", "3")

    async def first_peer(client: Client) -> None:
        assert [(await start_upload(client, n)).code for n in ("a", "b")] == [Code.CONTINUE, Code.CONTINUE]
        refused = await start_upload(client, "c")
        assert (refused.code, refused.opt.max_age) == (Code.SERVICE_UNAVAILABLE, 93)
        assert diagnostic(refused) == ("nanoedge.core.registry: 2 block-wise uploads in progress from 127.0.0.1"
                                       " (at most 2 per peer), retry in 93 s")

    async def second_peer(client: Client) -> None:
        assert (await start_upload(client, "d")).code == Code.CONTINUE
        refused = await start_upload(client, "e")
        assert (refused.code, refused.opt.max_age) == (Code.SERVICE_UNAVAILABLE, 93)
        assert diagnostic(refused) == ("nanoedge.core.registry: 3 block-wise uploads in progress (at most 3),"
                                       " retry in 93 s")
        # a profile in one datagram needs no room among the uploads
        assert (await client.put("e", profile("e"))).code == Code.CREATED

    run_client(server.url, first_peer)
    run_client_from("127.0.0.2", server.url, second_peer)


def test_upload_memory_counts_the_overhead_and_a_finished_upload_frees_it(start):
    # room for one upload of the largest profile (8192 + 4096 bytes of overhead) per peer
    server = start("--max-body", "8192", "--upload-memory-per-peer", "12288")

    async def block(client: Client, node: str, number: int, more: bool = True) -> aiocoap.Message:
        return await client.put(node, b"x" * (1024 if more else 10),
                                block1=BlockOption.BlockwiseTuple(number, more, 6), handle_blockwise=False)

    async def scenario(client: Client) -> None:
        assert (await start_upload(client, "a")).code == Code.CONTINUE  # 1024 + 4096
        assert (await start_upload(client, "b")).code == Code.CONTINUE  # 2 x 5120
        refused = await start_upload(client, "c")
        assert (refused.code, refused.opt.max_age) == (Code.SERVICE_UNAVAILABLE, 93)
        assert diagnostic(refused) == ("nanoedge.core.registry: block-wise uploads in progress from 127.0.0.1 would"
                                       " hold 15360 bytes (at most 12288 per peer), retry in 93 s")
        assert [(await block(client, "a", n)).code for n in (1, 2)] == [Code.CONTINUE, Code.CONTINUE]
        dropped = await block(client, "a", 3)  # does not fit: the upload is dropped
        assert dropped.code == Code.SERVICE_UNAVAILABLE
        assert "would hold 13312 bytes (at most 12288 per peer)" in diagnostic(dropped)
        assert (await block(client, "a", 4)).code == Code.REQUEST_ENTITY_INCOMPLETE
        finished = await block(client, "b", 1, more=False)  # the upload of "b" ends (as malformed JSON) and leaves
        assert finished.code == Code.BAD_REQUEST
        assert (await client.put("big", profile("big", labels={"pad": "q" * 6000}))).code == Code.CREATED

    run_client(server.url, scenario)


PUSHED_OUT = (b"nanoedge.core.registry: observation ended: its peer observes again beyond 1 observations at once"
              b" (the oldest ends)")


def test_a_peers_newest_observation_pushes_out_its_oldest_the_total_cap_refuses(start):
    server = start("--max-observers-per-peer", "1", "--max-observers", "2")

    def observe(client: Client, path: str) -> t.Any:
        return client.context.request(aiocoap.Message(code=Code.GET, uri=server.url + path, observe=0))

    async def first_peer(client: Client) -> None:
        await client.put("obs", profile("obs"))
        held = observe(client, "/profiles/obs")
        first = await held.response
        assert (first.code, first.opt.observe) == (Code.CONTENT, 0)
        newer = await observe(client, "/profiles").response
        assert (newer.code, newer.opt.observe) == (Code.CONTENT, 0)
        # the older observation ends with a last, unsuccessful notification (which aiocoap hands over
        # or turns into the end of the iteration)
        try:
            last = await asyncio.wait_for(held.observation.__aiter__().__anext__(), 5)
        except StopAsyncIteration:
            last = None
        assert last is None or (last.code, last.payload) == (Code.SERVICE_UNAVAILABLE, PUSHED_OUT), last

    async def second_peer(client: Client) -> None:
        assert (await observe(client, "/profiles").response).opt.observe == 0

    async def third_peer(client: Client) -> None:
        plain = await observe(client, "/profiles").response
        assert (plain.code, plain.opt.observe) == (Code.CONTENT, None)
        assert set(json.loads(plain.payload)) == {"obs"}

    run_client_from("127.0.0.1", server.url, first_peer)  # its last observation stays held
    run_client_from("127.0.0.2", server.url, second_peer)
    run_client_from("127.0.0.3", server.url, third_peer)


def test_requests_beyond_the_rate_get_4_29_block2_continuations_are_free(start):
    server = start("--rate-limit", "1", "--rate-burst", "14")
    many = {"r%02d" % i: profile("r%02d" % i, labels={"pad": "r" * 300}) for i in range(12)}  # one datagram each

    async def scenario(client: Client) -> None:
        assert {(await client.put(n, p)).code for n, p in many.items()} == {Code.CREATED}  # 12 tokens
        whole = await client.get("/profiles")  # 1 token, then about 13 blocks that cost none
        assert whole.code == Code.CONTENT and whole.opt.block2.block_number >= 8
        assert json.loads(whole.payload) == many
        assert (await client.get("/profiles/r00")).code == Code.CONTENT  # the 14th
        refused = await client.get("/profiles/r00")
        assert (refused.code, refused.opt.max_age) == (Code.TOO_MANY_REQUESTS, 1)
        assert diagnostic(refused) == ("nanoedge.core.registry: too many requests from 127.0.0.1 (at most 1 per"
                                       " second, 14 at once), retry in 1 s")
        await asyncio.sleep(1.1)
        assert (await client.get("/profiles/r00")).code == Code.CONTENT

    async def other_peer(client: Client) -> None:
        assert (await client.get("/profiles/r01")).code == Code.CONTENT

    run_client(server.url, scenario)
    run_client_from("127.0.0.2", server.url, other_peer)
    assert "refused 1 request(s) over the limits since the last warning, the last: too many requests from" \
        " 127.0.0.1" in server.log_text()
