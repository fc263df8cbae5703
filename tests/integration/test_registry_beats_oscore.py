# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Beats and leadership under OSCORE on the real registry (docs/contracts.md,
"The CoAP API"; docs/leadership.md, proof sketch): a replayed or forged beat
is refused and changes nothing, and only the manager itself stands.

What a beat changes is observed exactly through two things a processed beat
always moves: the ask number ``n`` (every member's beat answered while the
manager stands takes the next one, so a beat that was processed in between
shows as a gap) and the node's entry in ``GET /liveness`` (a node that never
beat has none; ``last_beat`` is reset by every processed beat)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import typing as t
from pathlib import Path

import aiocoap
import pytest
from aiocoap.numbers.codes import Code
from aiocoap.oscore import NotAProtectedMessage

from _registry_server import RegistryServer, payload_of
from test_registry_oscore_pairs import write_settings
from ansible_collections.nanoedge.core.plugins.plugin_utils._oscore_material import pair_material

MANAGER = "m1"
PEERS = ("m1", "m2", "w1", "w2", "w3")
BEAT = {"etag": "0123456789abcdef", "term": 0}
WRONG_SECRET = "w1-wrong-secret"  # w1's ids and ID context, another master secret
UNAUTHORIZED_401 = 0x81  # 4.01 as the code byte of a raw datagram
PREFIX = b"nanoedge.core.registry: "  # before every diagnostic of the registry


@pytest.fixture()
def cluster(tmp_path) -> t.Iterator[t.Dict[str, t.Any]]:
    """m1's registry with security on, its pairs as the registry role writes them, and the peers' halves."""
    material = str(tmp_path / "material")
    clients: t.Dict[str, Path] = {}
    for peer in PEERS:
        pair = pair_material(material, MANAGER, peer)
        write_settings(tmp_path / "server" / peer, pair["server"])
        clients[peer] = tmp_path / "clients" / peer
        write_settings(clients[peer], pair["client"])
    forged = dict(pair_material(material, MANAGER, "w1")["client"])
    forged["secret_hex"] = "%064x" % (int(forged["secret_hex"], 16) ^ 1)
    clients[WRONG_SECRET] = tmp_path / "clients" / WRONG_SECRET
    write_settings(clients[WRONG_SECRET], forged)
    server = RegistryServer(tmp_path / "m1" / "registry.sqlite", "--security", "on",
                            "--oscore-contexts", str(tmp_path / "server"), "--managers", "m1,m2",
                            "--name", MANAGER, "--cluster-managers", "m1,m2", "--members", ",".join(PEERS))
    with server:
        yield {"server": server, "clients": clients}
        assert server.alive(), server.log_text()


class Peers:
    """One aiocoap client context per identity (None: unprotected), each bound to one URL."""

    def __init__(self, clients: t.Dict[str, Path]) -> None:
        self.clients = clients
        self.contexts: t.Dict[t.Tuple[t.Optional[str], str], aiocoap.Context] = {}

    async def request(self, identity: t.Optional[str], url: str, code: Code, path: str, body: t.Any = None,
                      tuning: t.Any = aiocoap.Reliable) -> aiocoap.Message:
        key = (identity, url)
        if key not in self.contexts:
            context = await aiocoap.Context.create_client_context(transports=["oscore", "udp6"])
            if identity is not None:
                context.client_credentials.load_from_dict(
                    {url + "/*": {"oscore": {"basedir": "%s/" % self.clients[identity]}}})
            self.contexts[key] = context
        payload = b"" if body is None else json.dumps(body).encode()
        options = {"content_format": 50} if body is not None else {}
        message = aiocoap.Message(code=code, uri=url + path, payload=payload, transport_tuning=tuning, **options)
        return await asyncio.wait_for(self.contexts[key].request(message).response, 10)

    async def json(self, identity: str, url: str, code: Code, path: str, body: t.Any = None) -> t.Any:
        answer = await self.request(identity, url, code, path, body)
        assert answer.code in (Code.CONTENT, Code.CHANGED), (answer, answer.payload)
        return json.loads(answer.payload)

    async def close(self) -> None:
        for context in self.contexts.values():
            await context.shutdown()


def run(cluster: t.Dict[str, t.Any], scenario: t.Callable[[Peers, str], t.Awaitable[t.Any]]) -> t.Any:
    async def main() -> t.Any:
        peers = Peers(cluster["clients"])
        try:
            return await scenario(peers, cluster["server"].url)
        finally:
            await peers.close()

    return asyncio.run(main())


async def stand(peers: Peers, url: str) -> None:
    status = await peers.json("m1", url, Code.PUT, "/leadership", {"candidate": True, "ttl": 60})
    # the first manager of two takes the even terms: 2 is the smallest above 0
    assert (status["manager"], status["candidate"], status["term"]) == ("m1", True, 2), status


async def own_beat(peers: Peers, url: str, node: str, tuning: t.Any = aiocoap.Reliable) -> t.Dict[str, t.Any]:
    answer = await peers.request(node, url, Code.POST, "/beat/%s" % node, BEAT, tuning=tuning)
    assert answer.code == Code.CHANGED, (answer, answer.payload)
    return json.loads(answer.payload)


def ask(n: int) -> t.Dict[str, t.Any]:
    return {"manager": "m1", "term": 2, "n": n, "lease": 4.0, "priority": 0}


class Relay:
    """A UDP relay between one client and the registry that records every datagram the client sends."""

    def __init__(self) -> None:
        self.requests: t.List[bytes] = []
        self.front: t.Optional[asyncio.DatagramTransport] = None
        self.back: t.Optional[asyncio.DatagramTransport] = None
        self.client: t.Optional[t.Tuple[t.Any, ...]] = None

    @classmethod
    async def open(cls, port: int) -> "Relay":
        relay = cls()
        loop = asyncio.get_running_loop()
        front = await loop.create_datagram_endpoint(lambda: _Side(relay.from_client), local_addr=("127.0.0.1", 0))
        back = await loop.create_datagram_endpoint(lambda: _Side(relay.from_registry), remote_addr=("127.0.0.1", port))
        relay.front, relay.back = front[0], back[0]
        return relay

    @property
    def url(self) -> str:
        assert self.front is not None
        return "coap://127.0.0.1:%d" % self.front.get_extra_info("sockname")[1]

    def from_client(self, data: bytes, addr: t.Tuple[t.Any, ...]) -> None:
        assert self.back is not None
        self.client = addr
        self.requests.append(data)
        self.back.sendto(data)

    def from_registry(self, data: bytes, _addr: t.Tuple[t.Any, ...]) -> None:
        assert self.front is not None
        if self.client is not None:
            self.front.sendto(data, self.client)

    def close(self) -> None:
        for side in (self.front, self.back):
            if side is not None:
                side.close()


class _Side(asyncio.DatagramProtocol):
    def __init__(self, received: t.Callable[[bytes, t.Tuple[t.Any, ...]], None]) -> None:
        self.received = received

    def datagram_received(self, data: bytes, addr: t.Tuple[t.Any, ...]) -> None:
        self.received(data, addr)


def send_raw(port: int, datagram: bytes, wait: float) -> t.Optional[bytes]:
    """Send ``datagram`` from a socket of its own (so it is no CoAP duplicate of the
    relay's, RFC 7252 4.5, and reaches the OSCORE check) and return the answer, if any."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(wait)
        sock.sendto(datagram, ("127.0.0.1", port))
        try:
            return sock.recv(2048)
        except socket.timeout:
            return None


@pytest.mark.parametrize("tuning", [aiocoap.Reliable, aiocoap.Unreliable], ids=["CON", "NON"])
def test_a_members_own_beat_is_answered_with_an_ask(cluster, tuning):
    async def scenario(peers: Peers, url: str) -> None:
        assert await own_beat(peers, url, "w1", tuning) == {"profile": "missing"}  # no candidacy yet: no ask
        await stand(peers, url)
        assert await own_beat(peers, url, "w1", tuning) == {"profile": "missing", "ask": ask(1)}
        assert await own_beat(peers, url, "w3", tuning) == {"profile": "missing", "ask": ask(2)}
        liveness = await peers.json("m1", url, Code.GET, "/liveness")
        assert sorted(liveness) == ["w1", "w3"]
        assert liveness["w1"]["state"] == "alive"

    run(cluster, scenario)


@pytest.mark.parametrize("tuning", [aiocoap.Reliable, aiocoap.Unreliable], ids=["CON", "NON"])
def test_a_replayed_beat_is_not_taken(cluster, tuning):
    port = cluster["server"].port

    async def scenario(peers: Peers, url: str) -> None:
        await stand(peers, url)
        relay = await Relay.open(port)
        try:
            assert await own_beat(peers, relay.url, "w1", tuning) == {"profile": "missing", "ask": ask(1)}
            answered = time.monotonic()
            (captured,) = relay.requests
            assert b"etag" not in captured  # the protected datagram, not the plain beat
            # let the beat age, so a replay taken as a beat would show as a reset last_beat
            await asyncio.sleep(0.5)
            answer = await asyncio.get_running_loop().run_in_executor(None, send_raw, port, captured, 1.0)
            if tuning is aiocoap.Reliable:
                # aiocoap's OSCORE replay window: an unprotected 4.01, no 2.04 of a beat
                assert answer is not None
                assert (answer[1], payload_of(answer)) == (UNAUTHORIZED_401, b"Replay detected"), answer
            else:
                assert answer is None, answer  # a replayed NON is dropped silently
            asked = time.monotonic()
            liveness = await peers.json("m1", url, Code.GET, "/liveness")
            # last_beat counts from the original beat, at least as long as it has been since its answer
            assert liveness["w1"]["last_beat"] >= round(asked - answered, 3) - 0.001, liveness
            # the replay took no ask: the next beat gets the very next number
            assert await own_beat(peers, relay.url, "w1", tuning) == {"profile": "missing", "ask": ask(2)}
        finally:
            relay.close()

    run(cluster, scenario)


@pytest.mark.parametrize("identity, node, code, diagnostic, protected", [
    ("w1", "w2", Code.UNAUTHORIZED, b"OSCORE identity 'w1' may not POST /beat/w2", True),
    (WRONG_SECRET, "w1", Code.BAD_REQUEST, b"Decryption failed", False),
    (None, "w1", Code.UNAUTHORIZED, b"POST /beat/w1 needs OSCORE as node 'w1'", True),
], ids=["another-nodes-beat", "wrong-master-secret", "unprotected"])
def test_a_forged_beat_is_refused_and_changes_nothing(cluster, identity, node, code, diagnostic, protected):
    async def scenario(peers: Peers, url: str) -> None:
        await stand(peers, url)
        if protected:
            answer = await peers.request(identity, url, Code.POST, "/beat/%s" % node, BEAT)
        else:
            # the registry cannot decrypt, so it cannot protect its answer either
            with pytest.raises(NotAProtectedMessage) as refused:
                await peers.request(identity, url, Code.POST, "/beat/%s" % node, BEAT)
            answer = refused.value.plain_message
        assert (answer.code, answer.payload) == (code, (PREFIX if protected else b"") + diagnostic)
        assert await peers.json("m1", url, Code.GET, "/liveness") == {}
        # the refused beat took no ask
        assert await own_beat(peers, url, "w3") == {"profile": "missing", "ask": ask(1)}
        assert sorted(await peers.json("m1", url, Code.GET, "/liveness")) == ["w3"]

    run(cluster, scenario)
    if identity == "w1":
        assert "refused POST to /beat/w2 by OSCORE identity 'w1'" in cluster["server"].log_text()


@pytest.mark.parametrize("identity, diagnostic", [
    ("w1", b"OSCORE identity 'w1' may not write /leadership"),
    ("m2", b"OSCORE identity 'm2' may not write /leadership"),
    (None, b"writing /leadership needs OSCORE as node 'm1'"),
], ids=["worker", "other-manager", "unprotected"])
def test_only_the_manager_itself_stands(cluster, identity, diagnostic):
    async def put(peers: Peers, url: str, body: t.Dict[str, t.Any]) -> None:
        answer = await peers.request(identity, url, Code.PUT, "/leadership", body)
        assert (answer.code, answer.payload) == (Code.UNAUTHORIZED, PREFIX + diagnostic)

    async def scenario(peers: Peers, url: str) -> None:
        await put(peers, url, {"candidate": True, "ttl": 60})
        status = await peers.json("m1", url, Code.GET, "/leadership")
        assert (status["candidate"], status["term"], status["highest_term"]) == (False, 0, 0), status
        assert await own_beat(peers, url, "w1") == {"profile": "missing"}
        await stand(peers, url)
        # nor can it withdraw m1's candidacy
        await put(peers, url, {"candidate": False})
        status = await peers.json("m1", url, Code.GET, "/leadership")
        assert (status["candidate"], status["term"]) == (True, 2), status
        assert await own_beat(peers, url, "w1") == {"profile": "missing", "ask": ask(1)}

    run(cluster, scenario)
