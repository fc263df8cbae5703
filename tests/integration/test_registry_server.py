# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The CoAP profile registry (docs/contracts.md, "The CoAP API") as a real subprocess,
driven by aiocoap clients: every row of the contract, leases, durability
across kill -9, Observe, and every 4.xx answer leaving the data unchanged."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import time
import typing as t

import aiocoap
import cbor2
import pytest
from aiocoap.numbers.codes import Code
from aiocoap.optiontypes import BlockOption

from _registry_server import (Client, RegistryServer, canonical, etag, profile, run_client, udp_drops,
                              udp_receive_buffer)


@pytest.fixture()
def server(tmp_path):
    with RegistryServer(tmp_path / "registry.sqlite") as srv:
        yield srv
        assert srv.alive(), "the registry died:\n" + srv.log_text()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory):
    """One registry for the bad-input table, seeded with w1 (the control profile)."""
    path = tmp_path_factory.mktemp("registry") / "registry.sqlite"
    with RegistryServer(path, "--max-lifetime", "3600") as srv:
        async def seed(client: Client) -> None:
            response = await client.put("w1", profile("w1"), "?lt=3600")
            assert response.code == Code.CREATED, response.payload
        run_client(srv.url, seed)
        yield srv


# -- the CoAP API, row by row ---------------------------------------------------

def test_put_creates_then_changes_with_etag(server):
    p4 = profile("w4")

    async def scenario(client: Client) -> None:
        first = await client.put("w4", p4)
        assert first.code == Code.CREATED, first.payload
        assert first.opt.etag == etag(p4)
        assert first.opt.location_path == ("profiles", "w4")
        again = await client.put("w4", p4)
        assert again.code == Code.CHANGED
        assert again.opt.etag == etag(p4)
        changed = profile("w4", memory_mb={"total": 926, "available": 100})
        third = await client.put("w4", changed)
        assert third.code == Code.CHANGED
        assert third.opt.etag == etag(changed) != etag(p4)
        got = await client.get("/profiles/w4")
        assert got.code == Code.CONTENT
        assert got.opt.content_format == 50
        assert got.opt.etag == etag(changed)
        assert got.payload == canonical(changed)

    run_client(server.url, scenario)
    assert "stored node=w4" in server.log_text()


def test_put_cbor_get_json_and_cbor(server):
    p5 = profile("w5", capabilities=["dd"], devices=[])

    async def scenario(client: Client) -> None:
        put = await client.put("w5", cbor2.dumps(p5), content_format=60)
        assert put.code == Code.CREATED, put.payload
        assert put.opt.etag == etag(p5)
        as_json = await client.get("/profiles/w5")
        assert json.loads(as_json.payload) == p5
        as_cbor = await client.get("/profiles/w5", accept=60)
        assert as_cbor.code == Code.CONTENT
        assert as_cbor.opt.content_format == 60
        assert cbor2.loads(as_cbor.payload) == p5
        assert as_cbor.opt.etag == etag(p5)
        collection = await client.get("/profiles", accept=60)
        assert cbor2.loads(collection.payload) == {"w5": p5}

    run_client(server.url, scenario)


def test_get_with_current_etag_is_valid(server):
    p6 = profile("w6")

    async def scenario(client: Client) -> None:
        await client.put("w6", p6)
        valid = await client.get("/profiles/w6", etags=[etag(p6)])
        assert valid.code == Code.VALID
        assert valid.payload == b""
        stale = await client.get("/profiles/w6", etags=[b"\x00" * 8])
        assert stale.code == Code.CONTENT
        assert stale.payload == canonical(p6)

    run_client(server.url, scenario)


def test_get_unknown_node_is_not_found(server):
    async def scenario(client: Client) -> None:
        response = await client.get("/profiles/nope")
        assert response.code == Code.NOT_FOUND
        assert b"no live profile for node 'nope'" in response.payload

    run_client(server.url, scenario)


def test_collection_is_block_wise_when_large(server):
    profiles = {"n%03d" % i: profile("n%03d" % i, labels={"room": "ward %d" % i}) for i in range(40)}

    async def scenario(client: Client) -> None:
        results = await asyncio.gather(*(client.put(node, body) for node, body in profiles.items()))
        assert {r.code for r in results} == {Code.CREATED}
        response = await client.get("/profiles")
        assert response.code == Code.CONTENT
        assert response.opt.content_format == 50
        # the assembled answer still carries the last Block2 option
        assert response.opt.block2 is not None and response.opt.block2.block_number > 10
        assert json.loads(response.payload) == profiles
        assert response.payload == b"{" + b",".join(
            json.dumps(n).encode() + b":" + canonical(profiles[n]) for n in sorted(profiles)) + b"}"
        assert response.opt.etag is not None
        # an explicit block request returns exactly one 1024-byte block
        block = await client.get("/profiles", block2=BlockOption.BlockwiseTuple(3, False, 6),
                                 handle_blockwise=False)
        assert block.payload == response.payload[3 * 1024:4 * 1024]

    run_client(server.url, scenario)


def test_delete_removes_from_every_answer(server):
    async def scenario(client: Client) -> None:
        await client.put("w7", profile("w7"))
        await client.put("w8", profile("w8"))
        deleted = await client.delete("w7")
        assert deleted.code == Code.DELETED
        assert (await client.get("/profiles/w7")).code == Code.NOT_FOUND
        assert set(await client.stored()) == {"w8"}
        links = (await client.get("/.well-known/core")).payload.decode()
        assert "</profiles/w8>" in links and "</profiles/w7>" not in links
        # leaving twice is not an error (a retried DELETE whose ACK was lost)
        assert (await client.delete("w7")).code == Code.DELETED

    run_client(server.url, scenario)
    assert "deleted node=w7" in server.log_text()


def test_well_known_core_link_format(server):
    async def scenario(client: Client) -> None:
        await client.put("w1", profile("w1"))
        response = await client.get("/.well-known/core")
        assert response.code == Code.CONTENT
        assert response.opt.content_format == 40
        assert response.opt.etag is not None
        links = response.payload.decode()
        assert '</profiles>;ct="50 60";rt="nanoedge.profiles";obs' in links
        assert '</profiles/w1>;rt="nanoedge.profile";ct="50 60";obs' in links

    run_client(server.url, scenario)


# -- leases -------------------------------------------------------------------

def test_lease_expires_without_grace_and_refresh_extends_it(server):
    async def scenario(client: Client) -> float:
        await client.put("short", profile("short"), "?lt=1")
        await client.put("renewed", profile("renewed"), "?lt=1")
        await client.put("long", profile("long"), "?lt=60")
        assert set(await client.stored()) == {"short", "renewed", "long"}
        await asyncio.sleep(0.5)
        assert (await client.put("renewed", profile("renewed"), "?lt=30")).code == Code.CHANGED
        await asyncio.sleep(0.7)
        stored_at = time.monotonic()
        assert set(await client.stored()) == {"renewed", "long"}
        assert (await client.get("/profiles/short")).code == Code.NOT_FOUND
        assert "</profiles/short>" not in (await client.get("/.well-known/core")).payload.decode()
        return stored_at

    run_client(server.url, scenario)
    assert "expired node=short" in server.log_text()
    assert "expired node=renewed" not in server.log_text()


def test_default_and_maximum_lifetime_are_configurable(tmp_path):
    with RegistryServer(tmp_path / "r.sqlite", "--default-lifetime", "1", "--max-lifetime", "5") as srv:
        async def scenario(client: Client) -> None:
            assert (await client.put("d1", profile("d1"))).code == Code.CREATED
            too_long = await client.put("d2", profile("d2"), "?lt=6")
            assert too_long.code == Code.BAD_REQUEST
            assert b"lt must be from 1 to 5 seconds, got 6" in too_long.payload
            assert (await client.put("d3", profile("d3"), "?lt=5")).code == Code.CREATED
            await asyncio.sleep(1.3)
            assert set(await client.stored()) == {"d3"}

        run_client(srv.url, scenario)


def test_sweeper_notifies_observers_of_expiry(server):
    async def scenario(client: Client) -> None:
        await client.put("keep", profile("keep"), "?lt=60")
        request = client.context.request(
            aiocoap.Message(code=Code.GET, uri=server.url + "/profiles", observe=0))
        first = await request.response
        assert set(json.loads(first.payload)) == {"keep"}
        await client.put("brief", profile("brief"), "?lt=1")
        seen = []
        # no request reads the registry: only the periodic sweeper can notice the expiry
        async for notification in request.observation:
            seen.append(set(json.loads(notification.payload)))
            if seen[-1] == {"keep"}:
                break
        assert seen == [{"keep", "brief"}, {"keep"}]
        request.observation.cancel()

    run_client(server.url, lambda c: asyncio.wait_for(scenario(c), 10))


# -- Observe ------------------------------------------------------------------

def test_observe_node_and_collection(server):
    async def scenario(client: Client) -> None:
        await client.put("obs", profile("obs"))
        node_req = client.context.request(aiocoap.Message(code=Code.GET, uri=server.url + "/profiles/obs", observe=0))
        coll_req = client.context.request(aiocoap.Message(code=Code.GET, uri=server.url + "/profiles", observe=0))
        node_first = await node_req.response
        coll_first = await coll_req.response
        assert node_first.opt.observe is not None and coll_first.opt.observe is not None
        node_iter = node_req.observation.__aiter__()
        coll_iter = coll_req.observation.__aiter__()

        changed = profile("obs", cpu={"cores": 4, "bogomips": 89.6, "load1": 2.5})
        await client.put("obs", changed)
        assert (await asyncio.wait_for(node_iter.__anext__(), 5)).payload == canonical(changed)
        assert json.loads((await asyncio.wait_for(coll_iter.__anext__(), 5)).payload) == {"obs": changed}

        await client.put("other", profile("other"))
        assert set(json.loads((await asyncio.wait_for(coll_iter.__anext__(), 5)).payload)) == {"obs", "other"}

        await client.delete("obs")
        # a node that leaves ends its observation with a final 4.04 (RFC 7641);
        # aiocoap hands that over as a last message or just ends the iteration
        try:
            final = await asyncio.wait_for(node_iter.__anext__(), 5)
        except StopAsyncIteration:
            pass
        else:
            assert final.code == Code.NOT_FOUND, final
            assert b"no live profile for node 'obs'" in final.payload
            with pytest.raises(StopAsyncIteration):
                await asyncio.wait_for(node_iter.__anext__(), 5)
        assert set(json.loads((await asyncio.wait_for(coll_iter.__anext__(), 5)).payload)) == {"other"}
        coll_req.observation.cancel()

    run_client(server.url, scenario)


def test_observe_large_collection_is_block_wise(server):
    many = {"b%02d" % i: profile("b%02d" % i) for i in range(12)}

    async def scenario(client: Client) -> None:
        await asyncio.gather(*(client.put(node, body) for node, body in many.items()))
        request = client.context.request(aiocoap.Message(code=Code.GET, uri=server.url + "/profiles", observe=0))
        first = await request.response
        assert len(canonical(many)) > 4096
        assert json.loads(first.payload) == many
        notifications = request.observation.__aiter__()
        extra = profile("b99")
        await client.put("b99", extra)
        notification = await asyncio.wait_for(notifications.__anext__(), 5)
        assert json.loads(notification.payload) == dict(many, b99=extra)
        request.observation.cancel()

    run_client(server.url, scenario)


# -- durability ---------------------------------------------------------------

def test_acknowledged_puts_survive_kill_9(tmp_path):
    srv = RegistryServer(tmp_path / "durable.sqlite").start()
    nodes = {"d%03d" % i: profile("d%03d" % i, labels={"seq": str(i)}) for i in range(200)}
    try:
        async def put_all(client: Client) -> t.Tuple[t.Dict[str, bytes], float]:
            answers = await asyncio.gather(*(client.put(n, p, "?lt=600") for n, p in nodes.items()))
            assert all(a.code == Code.CREATED for a in answers)
            sent_at = time.monotonic()
            assert (await client.put("short", profile("short"), "?lt=5")).code == Code.CREATED
            return {n: a.opt.etag for n, a in zip(nodes, answers)}, sent_at

        etags, short_sent_at = run_client(srv.url, put_all)
        srv.kill()  # immediately after the last acknowledgement: no shutdown code runs
        assert srv.proc is not None and srv.proc.returncode == -9
        srv.start()

        async def read_all(client: Client) -> None:
            stored = await client.stored()
            assert set(stored) == set(nodes) | {"short"}
            for node, body in nodes.items():
                assert stored[node] == body
                response = await client.get("/profiles/%s" % node)
                assert response.opt.etag == etags[node]
            # reloaded leases keep their absolute expiry time
            await asyncio.sleep(max(0.0, short_sent_at + 5.3 - time.monotonic()))
            assert "short" not in await client.stored()

        run_client(srv.url, read_all)
        assert "loaded 201 live profile(s)" in srv.log_text()
    finally:
        srv.stop()


def test_leases_that_ran_out_while_down_are_dropped_at_startup(tmp_path):
    srv = RegistryServer(tmp_path / "down.sqlite").start()
    try:
        async def put(client: Client) -> None:
            await client.put("gone", profile("gone"), "?lt=1")
            await client.put("stays", profile("stays"), "?lt=120")

        run_client(srv.url, put)
        srv.stop()
        time.sleep(1.2)
        srv.start()
        assert set(run_client(srv.url, lambda c: c.stored())) == {"stays"}
        assert "expired node=gone (lease ran out while the registry was down)" in srv.log_text()
    finally:
        srv.stop()


def test_server_socket_has_a_large_receive_buffer(server):
    # Linux doubles the requested size for bookkeeping; the default is 208 KiB.
    assert udp_receive_buffer(server.port) >= 4 * 1024 * 1024


def test_receive_buffer_is_configurable(tmp_path):
    with RegistryServer(tmp_path / "rb.sqlite", "--rcvbuf", "1048576") as srv:
        size = udp_receive_buffer(srv.port)
    assert 1048576 <= size < 4 * 1024 * 1024


def _burst(port: int, count: int) -> int:
    """Send ``count`` confirmable PUTs of distinct nodes at once; return the 2.01 answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    sock.connect(("127.0.0.1", port))
    for index in range(count):
        node = ("burst%03d" % index).encode()
        header = bytes([0x42, 0x03]) + struct.pack("!HH", index, index)  # CON PUT, MID and 2-byte token
        options = bytes([0xB8]) + b"profiles" + bytes([0x08]) + node + bytes([0x11, 50])
        body = json.dumps(profile(node.decode())).encode()
        sock.send(header + options + b"\xff" + body)
    created: t.Set[bytes] = set()
    sock.settimeout(5.0)
    try:
        while len(created) < count:
            answer = sock.recv(2048)
            if answer[0] >> 4 & 3 == 0:
                # a separate (confirmable) response: acknowledge it, or aiocoap
                # holds back the next one to this peer (NSTART = 1)
                sock.send(bytes([0x60, 0x00]) + answer[2:4])
            if answer[1] == 0x41:  # 2.01 Created
                created.add(answer[4:4 + (answer[0] & 0x0F)])
    except socket.timeout:
        pass
    finally:
        sock.close()
    return len(created)


def test_burst_of_500_reports_is_not_dropped(tmp_path):
    # 500 reports arriving together: with the registry's 4 MiB receive buffer
    # the kernel drops none; with a small buffer (the baseline) it does.
    with RegistryServer(tmp_path / "burst.sqlite") as large:
        created = _burst(large.port, 500)
        assert udp_drops(large.port) == 0
        assert created == 500
        assert len(run_client(large.url, lambda c: c.stored())) == 500
    with RegistryServer(tmp_path / "small.sqlite", "--rcvbuf", "16384") as small:
        _burst(small.port, 500)
        assert udp_drops(small.port) > 0


# -- every 4.xx: diagnostic, registry still serving, data unchanged --------------

NAN_BODY = json.dumps(profile("w9")).replace('"load1": 0.31', '"load1": NaN').encode()
HUGE_BODY = json.dumps(profile("w9")).replace('"bogomips": 89.6', '"bogomips": 1e400').encode()

BAD_REQUESTS: t.List[t.Tuple[str, t.Dict[str, t.Any], Code, bytes]] = [
    ("malformed-json", dict(node="w9", body=b'{"schema": 1,'), Code.BAD_REQUEST, b"malformed JSON"),
    ("not-utf8", dict(node="w9", body=b'{"node": "\xff"}'), Code.BAD_REQUEST, b"malformed JSON: not UTF-8"),
    ("malformed-cbor", dict(node="w9", body=b"\x1c\x00", cf=60), Code.BAD_REQUEST, b"malformed CBOR"),
    ("truncated-cbor", dict(node="w9", body=cbor2.dumps(profile("w9"))[:-7], cf=60), Code.BAD_REQUEST,
     b"malformed CBOR"),
    ("cbor-not-a-map", dict(node="w9", body=cbor2.dumps([1, 2]), cf=60), Code.BAD_REQUEST,
     b"invalid profile: profile: must be an object, got list"),
    ("json-array", dict(node="w9", body=b"[]"), Code.BAD_REQUEST, b"profile: must be an object, got list"),
    ("missing-key", dict(node="w9", body={k: v for k, v in profile("w9").items() if k != "cpu"}),
     Code.BAD_REQUEST, b"profile: missing key(s) cpu"),
    ("unknown-key", dict(node="w9", body=dict(profile("w9"), extra=1)), Code.BAD_REQUEST,
     b"profile: unknown key(s) extra"),
    ("wrong-type", dict(node="w9", body=profile("w9", cpu={"cores": "4", "bogomips": 1.0, "load1": 0.1})),
     Code.BAD_REQUEST, b"cpu.cores: must be an integer >= 1, got '4'"),
    ("negative-memory", dict(node="w9", body=profile("w9", memory_mb={"total": 10, "available": -5})),
     Code.BAD_REQUEST, b"memory_mb.available: must be >= 0, got -5"),
    ("bad-power", dict(node="w9", body=profile("w9", power={"source": "solar", "battery_percent": None,
                                                            "battery_health": None, "charging": None})),
     Code.BAD_REQUEST, b"power.source: must be one of ac, dc, got 'solar'"),
    ("nan", dict(node="w9", body=NAN_BODY), Code.BAD_REQUEST, b"NaN is not allowed"),
    ("infinity", dict(node="w9", body=HUGE_BODY), Code.BAD_REQUEST, b"cpu.bogomips: must be a finite number"),
    ("big-int", dict(node="w9", body=profile("w9", memory_mb={"total": 2 ** 53, "available": 1})),
     Code.BAD_REQUEST, b"memory_mb.total: integer out of range (more than 2^53)"),
    ("cbor-bignum", dict(node="w9", body=cbor2.dumps(profile("w9", storage_mb={"total": 10 ** 40, "free": 1})),
                         cf=60), Code.BAD_REQUEST, b"storage_mb.total: integer out of range"),
    ("deep-nesting", dict(node="w9", body=b"[" * 100000 + b"]" * 100000), Code.BAD_REQUEST, b"nested too deeply"),
    ("node-not-path", dict(node="w9", body=profile("w1")), Code.BAD_REQUEST,
     b"profile node 'w1' does not match the path /profiles/w9"),
    ("bad-node-in-path", dict(node="W9!", body=profile("w9")), Code.BAD_REQUEST, b"invalid node name 'W9!'"),
    ("newline-node-in-path", dict(node="w9%0A", body=profile("w9")), Code.BAD_REQUEST,
     b"invalid node name 'w9\\n'"),
    ("newline-node-in-body", dict(node="w9", body=profile("w9\n")), Code.BAD_REQUEST,
     b"node: must match ^[a-z0-9][a-z0-9._-]{0,62}$, got 'w9\\n'"),
    ("lt-zero", dict(node="w9", body=profile("w9"), query="?lt=0"), Code.BAD_REQUEST,
     b"lt must be from 1 to 3600 seconds, got 0"),
    ("lt-too-long", dict(node="w9", body=profile("w9"), query="?lt=3601"), Code.BAD_REQUEST,
     b"lt must be from 1 to 3600 seconds, got 3601"),
    ("lt-text", dict(node="w9", body=profile("w9"), query="?lt=soon"), Code.BAD_REQUEST,
     b"lt must be a whole number of seconds, got 'soon'"),
    ("lt-negative", dict(node="w9", body=profile("w9"), query="?lt=-5"), Code.BAD_REQUEST,
     b"lt must be a whole number of seconds, got '-5'"),
    ("lt-twice", dict(node="w9", body=profile("w9"), query="?lt=5&lt=6"), Code.BAD_REQUEST,
     b"query parameter 'lt' given twice"),
    ("unknown-query", dict(node="w9", body=profile("w9"), query="?ttl=5"), Code.BAD_REQUEST,
     b"unknown query parameter 'ttl'"),
    ("text-plain", dict(node="w9", body=profile("w9"), cf=0), Code.UNSUPPORTED_CONTENT_FORMAT,
     b"Content-Format 0 is not accepted"),
    ("xml", dict(node="w9", body=b"<profile/>", cf=41), Code.UNSUPPORTED_CONTENT_FORMAT,
     b"Content-Format 41 is not accepted"),
    ("no-content-format", dict(node="w9", body=profile("w9"), cf=None), Code.UNSUPPORTED_CONTENT_FORMAT,
     b"Content-Format none is not accepted"),
    ("over-limit", dict(node="w9", body=profile("w9", labels={"pad": "x" * 270000})),
     Code.REQUEST_ENTITY_TOO_LARGE, b"exceeds the limit of 262144 bytes"),
    ("post", dict(method=Code.POST, path="/profiles/w9", body=profile("w9")), Code.METHOD_NOT_ALLOWED,
     b"POST is not allowed on /profiles/w9"),
    ("put-collection", dict(method=Code.PUT, path="/profiles", body=profile("w9")), Code.METHOD_NOT_ALLOWED,
     b"PUT is not allowed on /profiles"),
    ("delete-collection", dict(method=Code.DELETE, path="/profiles"), Code.METHOD_NOT_ALLOWED,
     b"DELETE is not allowed on /profiles"),
    ("fetch", dict(method=Code.FETCH, path="/profiles/w1"), Code.METHOD_NOT_ALLOWED, b"FETCH is not allowed"),
    ("get-unknown", dict(method=Code.GET, path="/profiles/w9"), Code.NOT_FOUND, b"no live profile for node 'w9'"),
    ("get-too-deep", dict(method=Code.GET, path="/profiles/w1/cpu"), Code.NOT_FOUND, b"no resource"),
    ("accept-xml", dict(method=Code.GET, path="/profiles/w1", accept=41), Code.NOT_ACCEPTABLE,
     b"Accept 41"),
    ("delete-with-query", dict(method=Code.DELETE, path="/profiles/w1?lt=3"), Code.BAD_REQUEST,
     b"DELETE takes no query parameters"),
]


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_bad_input_is_refused_and_changes_nothing(shared_server, case):
    spec, code, diagnostic = case[1:]

    async def scenario(client: Client) -> None:
        before = await client.get("/profiles")
        assert before.code == Code.CONTENT
        body = spec.get("body", b"")
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
        options: t.Dict[str, t.Any] = {}
        if "accept" in spec:
            options["accept"] = spec["accept"]
        if "method" in spec:
            if body:
                options["content_format"] = 50
            response = await client.request(spec["method"], spec["path"], body, **options)
        else:
            response = await client.put(spec["node"], body, spec.get("query", ""), content_format=spec.get("cf", 50))
        assert response.code == code, response.payload
        assert diagnostic in response.payload, response.payload
        assert response.payload.startswith(b"nanoedge.core.registry: ")
        after = await client.get("/profiles")
        assert after.code == Code.CONTENT
        assert after.opt.etag == before.opt.etag
        assert after.payload == before.payload == b'{"w1":' + canonical(profile("w1")) + b"}"

    run_client(shared_server.url, scenario)
    assert shared_server.alive()


def test_block_wise_upload_over_the_limit_is_refused_while_it_arrives(tmp_path):
    with RegistryServer(tmp_path / "small.sqlite", "--max-body", "4096") as srv:
        async def scenario(client: Client) -> None:
            big = profile("big", labels={"pad": "x" * 10000})
            response = await client.put("big", big)
            assert response.code == Code.REQUEST_ENTITY_TOO_LARGE
            assert b"exceeds the limit of 4096 bytes" in response.payload
            assert response.opt.size1 == 4096
            # announcing the size up front is refused before any data is kept
            announced = await client.put("big", json.dumps(big).encode()[:1024], size1=10100,
                                         block1=BlockOption.BlockwiseTuple(0, True, 6), handle_blockwise=False)
            assert announced.code == Code.REQUEST_ENTITY_TOO_LARGE
            assert await client.stored() == {}
            assert (await client.put("small", profile("small"))).code == Code.CREATED

        run_client(srv.url, scenario)


def test_out_of_order_block_is_incomplete(server):
    async def scenario(client: Client) -> None:
        body = json.dumps(profile("ooo", labels={"pad": "y" * 3000})).encode()
        response = await client.put("ooo", body[1024:2048], block1=BlockOption.BlockwiseTuple(1, True, 6),
                                    handle_blockwise=False)
        assert response.code == Code.REQUEST_ENTITY_INCOMPLETE
        assert await client.stored() == {}

    run_client(server.url, scenario)
