# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The CoAP reporting client against an in-process CoAP server on loopback
that answers like the registry (docs/contracts.md, "The CoAP API") and can be told to stay silent or refuse."""

from __future__ import annotations

import asyncio
import json
import random
import socket
import typing as t

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import aiocoap
import aiocoap.resource

from ansible_collections.nanoedge.core.plugins.module_utils import _coap
from ansible_collections.nanoedge.core.plugins.module_utils._canonical_json import canonical_json
from ansible_collections.nanoedge.core.plugins.module_utils._profile import ProfileError


def make_profile(node: str = "w4", **changes: t.Any) -> t.Dict[str, t.Any]:
    profile = {
        "schema": 1, "node": node, "collected_at": "2026-11-26T02:30:00Z", "arch": "armv7l",
        "model": "Raspberry Pi 3 Model B Plus Rev 1.3",
        "cpu": {"cores": 4, "bogomips": 89.6, "load1": 0.31},
        "memory_mb": {"total": 926, "available": 640},
        "storage_mb": {"total": 29820, "free": 21033},
        "power": {"source": "ac", "battery_percent": None, "battery_health": None, "charging": None},
        "network": ["bluetooth", "ethernet", "wifi"],
        "capabilities": ["pom"],
        "devices": [{"capability": "pom", "kind": "sensor", "name": "BerryMed BM1000B", "bus": "usb", "id": "0403:6001"}],
        "labels": {},
    }
    for dotted, value in changes.items():
        target = profile
        keys = dotted.split("__")
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
    return profile


# --- a registry stand-in ---------------------------------------------------------

class FakeRegistry(aiocoap.resource.Resource, aiocoap.resource.PathCapable):
    def __init__(self) -> None:
        super().__init__()
        self.profiles: t.Dict[str, bytes] = {}
        self.log: t.List[t.Tuple[str, str, t.Optional[str], t.Optional[int], int]] = []
        self.silent = 0          # requests to leave unanswered (as if lost)
        self.refuse: t.Optional[t.Tuple[aiocoap.numbers.codes.Code, bytes]] = None
        self.refuse_count = 0
        self.refuse_reads = False
        self.lose_put_answers = 0  # PUTs to store and then leave unanswered

    async def render(self, request: aiocoap.Message) -> aiocoap.Message:
        if request.opt.uri_path[:1] != ("profiles",):
            return aiocoap.Message(code=aiocoap.NOT_FOUND)
        path = "/".join(request.opt.uri_path[1:])
        query = "&".join(request.opt.uri_query) or None
        self.log.append((str(request.code), path, query, request.opt.content_format, len(request.payload)))
        if self.silent:
            self.silent -= 1
            await asyncio.sleep(3600)
        if self.refuse_reads and request.code == aiocoap.GET:
            return aiocoap.Message(code=aiocoap.UNAUTHORIZED, payload=b"reading profiles needs OSCORE as a manager")
        if self.refuse is not None and self.refuse_count:
            self.refuse_count -= 1
            return aiocoap.Message(code=self.refuse[0], payload=self.refuse[1])
        if request.code == aiocoap.GET and not path:
            body = {k: json.loads(v) for k, v in self.profiles.items()}
            return aiocoap.Message(code=aiocoap.CONTENT, payload=json.dumps(body).encode(), content_format=50)
        node = path
        if request.code == aiocoap.GET:
            if node not in self.profiles:
                return aiocoap.Message(code=aiocoap.NOT_FOUND)
            return aiocoap.Message(code=aiocoap.CONTENT, payload=self.profiles[node], content_format=50)
        if request.code == aiocoap.PUT:
            if request.opt.content_format == 60:
                value = cbor2.loads(request.payload)
            elif request.opt.content_format == 50:
                value = json.loads(request.payload)
            else:
                return aiocoap.Message(code=aiocoap.UNSUPPORTED_CONTENT_FORMAT)
            if value.get("node") != node:
                return aiocoap.Message(code=aiocoap.BAD_REQUEST, payload=b"node does not match the path")
            existed = node in self.profiles
            self.profiles[node] = json.dumps(value).encode()
            if self.lose_put_answers:
                self.lose_put_answers -= 1
                await asyncio.sleep(3600)
            return aiocoap.Message(code=aiocoap.CHANGED if existed else aiocoap.CREATED, etag=b"\x01\x02")
        return aiocoap.Message(code=aiocoap.METHOD_NOT_ALLOWED)


def free_udp_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def run_with_registry(test: t.Callable[[FakeRegistry, str], t.Awaitable[t.Any]], host: str = "127.0.0.1") -> t.Any:
    async def main() -> t.Any:
        resource = FakeRegistry()
        port = free_udp_port(host)
        # The resource is the whole site, so it sees every path, /profiles included.
        server = await aiocoap.Context.create_server_context(resource, bind=(host, port), transports=["udp6"])
        try:
            return await test(resource, _coap.registry_uri(host, port))
        finally:
            await server.shutdown()
    return asyncio.run(main())


async def no_sleep(delay: float) -> None:
    await asyncio.sleep(0)


FAST = _coap.ReportSettings(timeout=1.0, retries=2, backoff=0.01, backoff_max=0.02)


# --- against the stand-in -------------------------------------------------------

def test_first_report_creates_then_renews_unchanged():
    async def scenario(server, url):
        first = await _coap.report(make_profile(), [url], FAST._replace(lifetime=90))
        again = await _coap.report(make_profile(collected_at="2026-11-26T03:00:00Z", cpu__load1=1.5), [url],
                                   FAST._replace(lifetime=90))
        return first, again
    (first,), (again,) = outcome = run_with_registry(scenario)
    assert first.as_result() == {"registry": first.registry, "stored": True, "changed": True, "action": "created",
                                 "code": "2.01 Created", "etag": "0102", "attempts": 1, "error": None}
    assert first.before is None
    assert (again.action, again.changed, again.stored, again.code) == ("renewed", False, True, "2.04 Changed")
    assert again.before == make_profile()
    assert outcome


def test_requests_on_the_wire():
    async def scenario(server, url):
        await _coap.report(make_profile(), [url], FAST._replace(lifetime=90))
        await _coap.report(make_profile(), [url], FAST._replace(renew=False))
        await _coap.report(make_profile(capabilities=["pom", "bot"]), [url], FAST._replace(fmt="cbor"))
        return server.log, server.profiles
    log, profiles = run_with_registry(scenario)
    body = len(canonical_json(make_profile()))
    assert [entry[:4] for entry in log] == [
        ("GET", "w4", None, None), ("PUT", "w4", "lt=90", 50),
        ("GET", "w4", None, None),  # unchanged and renew=False: nothing sent
        ("GET", "w4", None, None), ("PUT", "w4", None, 60),
    ]
    assert log[1][4] == body
    assert json.loads(profiles["w4"])["capabilities"] == ["pom", "bot"]


def test_real_change_is_reported():
    async def scenario(server, url):
        await _coap.report(make_profile(), [url], FAST)
        return await _coap.report(make_profile(memory_mb__total=2048, memory_mb__available=2000), [url], FAST)
    (outcome,) = run_with_registry(scenario)
    assert (outcome.action, outcome.changed) == ("updated", True)


def test_check_mode_writes_nothing():
    async def scenario(server, url):
        created = await _coap.report(make_profile(), [url], FAST._replace(check_mode=True))
        return created, dict(server.profiles), [e[0] for e in server.log]
    (outcome,), profiles, methods = run_with_registry(scenario)
    assert (outcome.action, outcome.changed, outcome.stored) == ("would_create", True, False)
    assert profiles == {}
    assert methods == ["GET"]


def test_lost_answers_are_retried_and_change_stays_reported():
    async def scenario(server, url):
        server.silent = 2  # the first GET and the PUT after it go unanswered
        return await _coap.report(make_profile(), [url], FAST._replace(timeout=0.3, retries=3), sleep=no_sleep)
    (outcome,) = run_with_registry(scenario)
    assert (outcome.action, outcome.changed, outcome.stored, outcome.attempts) == ("created", True, True, 3)


def test_unreadable_copy_is_sent_and_reported_changed():
    async def scenario(server, url):
        server.refuse_reads = True
        first = await _coap.report(make_profile(), [url], FAST)
        again = await _coap.report(make_profile(), [url], FAST)
        check = await _coap.report(make_profile(), [url], FAST._replace(check_mode=True))
        return first + again + check, [e[0] for e in server.log]
    (first, again, check), methods = run_with_registry(scenario)
    assert (first.action, first.changed, first.stored) == ("created", True, True)
    assert (again.action, again.changed, again.stored) == ("updated", True, True)
    assert (check.action, check.changed, check.stored) == ("would_update", True, False)
    assert methods == ["GET", "PUT", "GET", "PUT", "GET"]


def test_stored_but_answer_lost_is_still_a_change():
    async def scenario(server, url):
        server.lose_put_answers = 1
        outcome = await _coap.report(make_profile(), [url], FAST._replace(timeout=0.3), sleep=no_sleep)
        return outcome, [e[0] for e in server.log]
    (outcome,), methods = run_with_registry(scenario)
    assert (outcome.action, outcome.changed, outcome.attempts, outcome.code) == ("created", True, 2, "2.04 Changed")
    assert methods == ["GET", "PUT", "PUT"]  # the retry does not ask again


def test_gives_up_after_retries_with_last_error():
    async def scenario(server, url):
        server.silent = 100
        return await _coap.report(make_profile(), [url], FAST._replace(timeout=0.2, retries=1), sleep=no_sleep)
    (outcome,) = run_with_registry(scenario)
    assert outcome.action == "failed" and not outcome.stored and outcome.attempts == 2
    assert outcome.error.endswith(": no answer within 0.2s (gave up after 2 attempts)")


@pytest.mark.parametrize("code, retried", [
    (aiocoap.BAD_REQUEST, False), (aiocoap.UNSUPPORTED_CONTENT_FORMAT, False), (aiocoap.REQUEST_ENTITY_TOO_LARGE, False),
    (aiocoap.SERVICE_UNAVAILABLE, True), (aiocoap.INTERNAL_SERVER_ERROR, True),
])
def test_refusals(code, retried):
    async def scenario(server, url):
        server.refuse, server.refuse_count = (code, b"profile.cpu: bad"), 1
        return await _coap.report(make_profile(), [url], FAST, sleep=no_sleep)
    (outcome,) = run_with_registry(scenario)
    if retried:
        assert (outcome.action, outcome.attempts) == ("created", 2)
    else:
        assert outcome.action == "failed" and outcome.attempts == 1
        assert outcome.error == "%s: GET /profiles/w4 answered %s %s: profile.cpu: bad" % (
            outcome.registry, code.dotted, code.name_printable)


def test_one_registry_down_does_not_hold_up_the_other():
    async def scenario(server, url):
        dead = "coap://127.0.0.1:%d" % free_udp_port()
        return await _coap.report(make_profile(), [dead, url], FAST._replace(timeout=0.3, retries=1),
                                  sleep=no_sleep)
    dead, live = run_with_registry(scenario)
    assert dead.action == "failed" and "gave up after 2 attempts" in dead.error
    assert live.action == "created"


def test_large_profile_goes_block_wise():
    big = make_profile(labels={"k%03d" % i: "v" * 40 for i in range(200)})

    async def scenario(server, url):
        outcome = await _coap.report(big, [url], FAST)
        return outcome, server.profiles["w4"], server.log
    (outcome,), stored, log = run_with_registry(scenario)
    assert outcome.action == "created"
    assert json.loads(stored) == big
    assert log[-1][4] > 8 * _coap.BLOCK_SIZE  # reassembled from Block1 transfers


class Relay(asyncio.DatagramProtocol):
    """A UDP relay between client and server that records what the client sends."""

    def __init__(self, server: t.Tuple[str, int]) -> None:
        self.server = server
        self.client: t.Optional[t.Tuple[str, int]] = None
        self.sent: t.List[bytes] = []
        self.transport: t.Any = None

    def connection_made(self, transport: t.Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: t.Tuple[str, int]) -> None:
        if addr[:2] == self.server:
            self.transport.sendto(data, self.client)
        else:
            self.client = addr
            self.sent.append(data)
            self.transport.sendto(data, self.server)


def test_block1_uses_1024_byte_blocks():
    big = make_profile(labels={"k%03d" % i: "v" * 40 for i in range(200)})
    body = canonical_json(big)

    async def scenario(server, url):
        port = int(url.rsplit(":", 1)[1])
        loop = asyncio.get_running_loop()
        transport, relay = await loop.create_datagram_endpoint(lambda: Relay(("127.0.0.1", port)),
                                                               local_addr=("127.0.0.1", 0))
        try:
            relay_url = "coap://127.0.0.1:%d" % transport.get_extra_info("sockname")[1]
            (outcome,) = await _coap.report(big, [relay_url], FAST._replace(timeout=5))
            return outcome, relay.sent
        finally:
            transport.close()
    outcome, sent = run_with_registry(scenario)
    assert outcome.action == "created"
    puts = [m for m in (aiocoap.Message.decode(d) for d in sent) if m.code == aiocoap.PUT]
    blocks = [m.opt.block1 for m in puts]
    assert len(puts) == -(-len(body) // 1024)  # one datagram per block, no retransmission on loopback
    assert all(block.size_exponent == _coap.BLOCK_SIZE_EXP for block in blocks)
    assert [block.block_number for block in blocks] == list(range(len(puts)))
    assert [len(m.payload) for m in puts[:-1]] == [1024] * (len(puts) - 1)
    assert b"".join(bytes(m.payload) for m in puts) == body


def test_fetch_profiles():
    async def scenario(server, url):
        for node in ("w1", "w2"):
            await _coap.report(make_profile(node), [url], FAST)
        return await _coap.fetch_profiles(url, timeout=1)
    assert sorted(run_with_registry(scenario)) == ["w1", "w2"]


@pytest.mark.parametrize("host", ["::1", "127.0.0.1"])
def test_report_and_fetch_over_ipv6_and_ipv4(host):
    async def scenario(server, url):
        outcomes = await _coap.report(make_profile(), [url], FAST)
        return url, outcomes, await _coap.fetch_profiles(url, timeout=1), server.log
    url, outcomes, profiles, log = run_with_registry(scenario, host)
    assert url.startswith("coap://[::1]:" if host == "::1" else "coap://127.0.0.1:")
    assert [(o.registry, o.action) for o in outcomes] == [(url, "created")]
    assert list(profiles) == ["w4"]
    assert [entry[:2] for entry in log] == [("GET", "w4"), ("PUT", "w4"), ("GET", "")]


def test_invalid_profile_is_not_sent():
    with pytest.raises(ProfileError, match=r"^cpu.cores: must be an integer >= 1, got 0$"):
        asyncio.run(_coap.report(make_profile(cpu__cores=0), ["coap://127.0.0.1"], FAST))


# --- pure helpers ---------------------------------------------------------------

@pytest.mark.parametrize("url, expected", [
    ("coap://m1", ("m1", 5683)),
    ("coap://m1:5684/", ("m1", 5684)),
    ("coap://10.0.0.5", ("10.0.0.5", 5683)),
    ("coap://[fd00::1]:6000", ("fd00::1", 6000)),
])
def test_parse_registry(url, expected):
    registry = _coap.parse_registry(url)
    assert (registry.host, registry.port) == expected


@pytest.mark.parametrize("url, message", [
    ("http://m1", "registry 'http://m1': scheme must be coap://, got 'http://'"),
    ("coap://", "registry 'coap://': no host"),
    ("coap://m1/profiles", "registry 'coap://m1/profiles': give only coap://host[:port]; the paths are fixed (/profiles/{node})"),
    ("coap://m1?x=1", "registry 'coap://m1?x=1': give only coap://host[:port]; the paths are fixed (/profiles/{node})"),
    ("coap://u@m1", "registry 'coap://u@m1': user information is not allowed"),
    ("coap://m1:99999", "registry 'coap://m1:99999': Port out of range 0-65535"),
    (5683, "registry 5683: must be a string coap://host[:port]"),
    ("coap://m1\n", "registry 'coap://m1\\n': must not contain spaces or control characters"),
    ("coap://m\n1", "registry 'coap://m\\n1': must not contain spaces or control characters"),
    (" coap://m1", "registry ' coap://m1': must not contain spaces or control characters"),
    ("coap://m1\t:5683", "registry 'coap://m1\\t:5683': must not contain spaces or control characters"),
    ("coap://m1:0", "registry 'coap://m1:0': port must be from 1 to 65535"),
    ("coap://fd00::1:5683", "registry 'coap://fd00::1:5683': Port could not be cast to integer value as ':1:5683'"),
])
def test_parse_registry_errors(url, message):
    with pytest.raises(ValueError) as info:
        _coap.parse_registry(url)
    assert str(info.value) == message


@pytest.mark.parametrize("host, port, expected", [
    ("m1", 5683, "coap://m1:5683"),
    ("172.30.0.11", "5684", "coap://172.30.0.11:5684"),
    ("fd00::1", 5683, "coap://[fd00::1]:5683"),
    ("[fd00::1]", 5683, "coap://[fd00::1]:5683"),
    ("::1", " 6000 ", "coap://[::1]:6000"),
    ("fe80::1%eth0", 65535, "coap://[fe80::1%eth0]:65535"),
])
def test_registry_uri(host, port, expected):
    uri = _coap.registry_uri(host, port)
    assert uri == expected
    assert _coap.parse_registry(uri).authority == expected[len("coap://"):]


def test_registry_uri_default_port():
    assert _coap.registry_uri("::1") == "coap://[::1]:%d" % _coap.DEFAULT_PORT


@pytest.mark.parametrize("host, port, message", [
    ("m1:5684", 5683, "host 'm1:5684': has a ':' but is not an IPv6 address (give the port separately)"),
    ("[fd00::1]:5683", 5683, "host '[fd00::1]:5683': has a ':' but is not an IPv6 address (give the port separately)"),
    ("[m1]", 5683, "host '[m1]': brackets are for IPv6 addresses only"),
    ("", 5683, "host '': must be a host name or an IP address"),
    ("m 1", 5683, "host 'm 1': must be a host name or an IP address"),
    ("m1\n", 5683, "host 'm1\\n': must be a host name or an IP address"),
    (None, 5683, "host None: must be a host name or an IP address"),
    ("u@m1", 5683, "registry 'coap://u@m1:5683': user information is not allowed"),
    ("m1", 0, "port 0: must be an integer from 1 to 65535"),
    ("m1", 65536, "port 65536: must be an integer from 1 to 65535"),
    ("m1", "x", "port 'x': must be an integer from 1 to 65535"),
    ("m1", "\u0665", "port '\u0665': must be an integer from 1 to 65535"),
    ("m1", 5683.0, "port 5683.0: must be an integer from 1 to 65535"),
    ("m1", False, "port False: must be an integer from 1 to 65535"),
])
def test_registry_uri_errors(host, port, message):
    with pytest.raises(ValueError) as info:
        _coap.registry_uri(host, port)
    assert str(info.value) == message


def test_uri_quotes_and_brackets():
    assert _coap.parse_registry("coap://[::1]:7000").uri("profiles", "w.1", query="lt=5") == "coap://[::1]:7000/profiles/w.1?lt=5"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2 ** 64), max_value=2 ** 64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_cbor_matches_cbor2(value):
    encoded = _coap.encode_cbor(value)
    assert cbor2.loads(encoded) == value
    # deterministic: the same encoding as cbor2's canonical mode
    assert encoded == cbor2.dumps(value, canonical=True)


def test_cbor_profile_is_smaller_than_json():
    body, fmt = _coap.encode_profile(make_profile(), "cbor")
    assert fmt == 60 and cbor2.loads(body) == make_profile()
    assert len(body) < len(_coap.encode_profile(make_profile(), "json")[0]) < 2048


@pytest.mark.parametrize("value, message", [
    (float("nan"), "nan has no place in a profile"),
    (2 ** 64, "integer 18446744073709551616 does not fit in CBOR's 64-bit argument"),
    ({1, 2}, "cannot encode set as CBOR"),
])
def test_cbor_errors(value, message):
    with pytest.raises(ValueError) as info:
        _coap.encode_cbor(value)
    assert str(info.value) == message


def test_unknown_format():
    with pytest.raises(ValueError, match=r"^format must be one of json, cbor, got 'xml'$"):
        _coap.encode_profile(make_profile(), "xml")


@pytest.mark.parametrize("new, differs", [
    (make_profile(), False),
    (make_profile(collected_at="2030-01-01T00:00:00Z", cpu__load1=3.0, memory_mb__available=1, storage_mb__free=5), False),
    (make_profile(memory_mb__total=1024), True),
    (make_profile(capabilities=[], devices=[]), True),
    (make_profile(power__source="dc"), True),
    (make_profile(labels={"room": "3"}), True),
])
def test_profile_differs(new, differs):
    assert _coap.profile_differs(make_profile(), new) is differs


def test_profile_differs_custom_ignore_and_absent():
    assert _coap.profile_differs(make_profile(), make_profile(cpu__load1=2.0), ignore=()) is True
    assert _coap.profile_differs(None, make_profile()) is True
    assert _coap.profile_differs({"odd": 1}, make_profile(), ignore=("cpu.load1", "nope.deeper")) is True


def test_backoff_grows_with_jitter_and_cap():
    rng = random.Random(7)
    delays = [_coap.backoff_delay(n, 0.5, 4.0, rng) for n in range(6)]
    for n, delay in enumerate(delays):
        ceiling = min(4.0, 0.5 * 2 ** n)
        assert ceiling / 2 <= delay <= ceiling
    assert len(set(delays)) == len(delays)


@pytest.mark.parametrize("name, number", [("CF_TEXT", 0), ("CF_JSON", 50), ("CF_CBOR", 60), ("DEFAULT_PORT", 5683)])
def test_wire_numbers(name, number):
    """The numbers RFC 7252 assigns: every CoAP speaker of the collection takes them from _coap."""
    assert getattr(_coap, name) == number
