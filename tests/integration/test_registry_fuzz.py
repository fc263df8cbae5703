# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fuzzing the real registry over UDP: more than 10,000 malformed datagrams
and payloads (random bytes, truncated CBOR, huge numbers, deep nesting, wrong
types, broken CoAP headers and options). The registry must never crash or
answer 5.xx: only 4.xx, a reset, an empty ACK or silence; the stored data
must be exactly what it was."""

from __future__ import annotations

import copy
import json
import random
import socket
import struct
import time
import typing as t

import cbor2
import pytest
from aiocoap.numbers.codes import Code

from _registry_server import Client, RegistryServer, canonical, encode, etag, profile, run_client, uint

SEED = 20261126
CON, NON, ACK, RST = 0, 1, 2, 3
PUT, POST, DELETE, GET = 3, 2, 4, 1
OPT_URI_PATH, OPT_CONTENT_FORMAT, OPT_URI_QUERY, OPT_ACCEPT, OPT_BLOCK1, OPT_SIZE1 = 11, 12, 15, 17, 27, 60


def path_options(*segments: str) -> t.List[t.Tuple[int, bytes]]:
    return [(OPT_URI_PATH, s.encode()) for s in segments]


# -- payload generators ---------------------------------------------------------

WRONG_VALUES: t.Dict[t.Tuple[str, ...], t.List[t.Any]] = {
    ("schema",): [2, "1", None, 1.0, [], True],
    ("node",): [5, None, "", "UPPER", "x" * 70, ["fz"], "fz!"],
    ("arch",): [7, None, [], {}],
    ("cpu",): ["4", [], None, 4],
    ("cpu", "cores"): ["4", 0, -1, 1.5, None, True, [4], {"n": 4}],
    ("cpu", "bogomips"): ["fast", -1, [], {}],
    ("memory_mb",): [926, "926", None],
    ("memory_mb", "available"): [-5, 2 ** 70, "640", 640.5, None, 10 ** 6],
    ("storage_mb", "free"): [-1, "x", None, 10 ** 9],
    ("power", "source"): ["solar", 1, None, "AC"],
    ("power", "battery_percent"): [101, -1, "50", []],
    ("power", "charging"): ["yes", 1, 0],
    ("network",): ["wifi", [1], ["wifi", "wifi"], ["carrier-pigeon"], {}],
    ("capabilities",): ["pom", ["POM"], [1], ["pom", "pom"], None],
    ("devices",): [{}, "none", [1], [{"capability": "pom"}],
                   [{"capability": "xyz", "kind": "sensor", "name": "n", "bus": "usb", "id": "1"}]],
    ("labels",): [[], "x", {"a": 1}, {"a": None}, {"a": ["b"]}],
}


def wrong_type_profile(rng: random.Random) -> t.Dict[str, t.Any]:
    body = profile("fz")
    for _mutation in range(rng.randint(1, 3)):
        path = rng.choice(list(WRONG_VALUES))
        target = body
        for key in path[:-1]:
            if not isinstance(target.get(key), dict):
                target[key] = copy.deepcopy(profile("fz")[key])
            target = target[key]
        target[path[-1]] = rng.choice(WRONG_VALUES[path])
    if rng.random() < 0.3:
        body.pop(rng.choice(list(body)))
    return body


def huge_number_payload(rng: random.Random) -> t.Tuple[bytes, int]:
    body = profile("fz")
    field = rng.choice(["bogomips", "load1", "cores"])
    text = json.dumps(body)
    replacement = rng.choice([
        "1e999999", "-1e400", "9" * rng.randint(17, 900), "1" + "0" * 5000, "NaN", "Infinity", "-Infinity",
        "9007199254740992", "-9007199254740992",
    ])
    text = text.replace('"%s": ' % field + json.dumps(body["cpu"][field]), '"%s": %s' % (field, replacement), 1)
    if rng.random() < 0.5:
        return text.encode()[:1000], 50
    body["cpu"][field] = rng.choice([2 ** rng.randint(64, 4000), -(2 ** 200), float("inf"), float("nan"),
                                     10 ** rng.randint(20, 300)])
    return cbor2.dumps(body)[:1000], 60


def deep_nesting_payload(rng: random.Random) -> t.Tuple[bytes, int]:
    depth = rng.randint(65, 950)
    kind = rng.randrange(4)
    if kind == 0:
        return b"[" * depth + b"]" * depth, 50
    if kind == 1:
        return (b'{"a":' * depth + b"1" + b"}" * depth)[:1000], 50
    if kind == 2:
        return b"\x81" * depth + b"\x01", 60
    body = profile("fz")
    nested: t.Any = "x"
    for _level in range(min(depth, 300)):
        nested = {"k": nested}
    body["labels"] = nested
    return cbor2.dumps(body)[:1000], 60


def truncated_cbor_payload(rng: random.Random) -> t.Tuple[bytes, int]:
    encoded = cbor2.dumps(profile("fz"))
    cut = rng.randint(0, len(encoded) - 1)
    data = bytearray(encoded[:cut])
    if data and rng.random() < 0.5:
        data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data), 60


def random_payload(rng: random.Random) -> t.Tuple[bytes, t.Optional[int]]:
    data = rng.randbytes(rng.randint(0, 900))
    return data, rng.choice([50, 60, 0, 41, None, 11542, 65535])


# -- message generators ---------------------------------------------------------

class Fuzzer:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.mid = rng.randrange(65536)

    def next_mid(self) -> int:
        self.mid = (self.mid + 1) % 65536
        return self.mid

    def request(self, payload: bytes, content_format: t.Optional[int], extra: t.Sequence[t.Tuple[int, bytes]] = (),
                code: int = PUT, path: t.Sequence[str] = ("profiles", "fz")) -> t.Tuple[bytes, int]:
        options = list(path_options(*path)) + list(extra)
        if content_format is not None:
            options.append((OPT_CONTENT_FORMAT, uint(content_format)))
        token = self.rng.randbytes(self.rng.randint(1, 8))
        mid = self.next_mid()
        return encode(CON, code, mid, token, options, payload), mid

    def header_mutation(self) -> t.Tuple[bytes, t.Optional[int]]:
        rng = self.rng
        body = canonical(profile("fz"))[:rng.randint(0, 400)]
        choice = rng.randrange(9)
        if choice == 0:  # unknown method codes and response codes sent as requests
            code = rng.choice([5, 6, 7, 8, 9, 17, 31, 65, 69, 132, 160, 255])
            return self.request(body, 50, code=code)
        if choice == 1:  # invalid token length (9..15)
            mid = self.next_mid()
            data = bytearray(encode(CON, PUT, mid, b"", path_options("profiles", "fz"), body))
            data[0] = (data[0] & 0xF0) | rng.randint(9, 15)
            return bytes(data), None
        if choice == 2:  # unknown critical / elective options
            number = rng.choice([9, 13, 19, 25, 29, 41, 2049, 2051, 65001])
            return self.request(body, 50, extra=[(number, rng.randbytes(rng.randint(0, 20)))])
        if choice == 3:  # oversized / malformed uint options
            opt = rng.choice([OPT_CONTENT_FORMAT, OPT_ACCEPT, OPT_SIZE1, OPT_BLOCK1])
            return self.request(body, None, extra=[(opt, rng.randbytes(rng.randint(4, 12)))])
        if choice == 4:  # truncated datagram
            data, mid = self.request(body, 50)
            return data[:rng.randint(1, max(1, len(data) - 1))], None
        if choice == 5:  # garbage and odd paths and queries
            path = rng.choice([("profiles",), ("profiles", "fz", "x"), ("profiles", ""), ("profiles", "Ä"),
                               ("profiles", "a" * 200), (".well-known", "core", "x"), ("nothing",)])
            query = [(OPT_URI_QUERY, rng.choice([b"lt=", b"lt=0", b"lt=-1", b"lt=1e9", b"lt=99999999999",
                                                 b"lt", b"=5", b"lt=\xff", b"x=y"]))]
            code = rng.choice([PUT, POST, DELETE]) if path != ("profiles", "fz", "x") else PUT
            if path == (".well-known", "core", "x") or path == ("nothing",):
                code = rng.choice([PUT, POST, DELETE, GET])
            return self.request(body, 50, extra=query, code=code, path=path)
        if choice == 6:  # block-wise nonsense: gaps, wrong sizes, Size1 lies
            num = rng.randint(1, 5000)
            szx = rng.randint(0, 7)
            block = uint((num << 4) | (rng.randint(0, 1) << 3) | szx)
            return self.request(rng.randbytes(rng.randint(0, 600)), 50, extra=[(OPT_BLOCK1, block)])
        if choice == 7:  # NON requests with bad content: answered NON or not at all
            token = rng.randbytes(2)
            mid = self.next_mid()
            return encode(NON, PUT, mid, token, path_options("profiles", "fz") + [(OPT_CONTENT_FORMAT, b"\x32")],
                          rng.randbytes(rng.randint(0, 300))), None
        # payload marker without payload, or option after marker
        mid = self.next_mid()
        data = encode(CON, PUT, mid, b"\x01", path_options("profiles", "fz")) + b"\xff"
        return data, mid


def generate(count: int) -> t.Iterator[t.Tuple[str, bytes, t.Optional[int]]]:
    rng = random.Random(SEED)
    fuzzer = Fuzzer(rng)
    kinds = ["random-datagram", "random-payload", "truncated-cbor", "huge-numbers", "deep-nesting",
             "wrong-types", "header"]
    for index in range(count):
        kind = kinds[index % len(kinds)]
        if kind == "random-datagram":
            yield kind, rng.randbytes(rng.randint(0, 1200)), None
            continue
        if kind == "header":
            data, mid = fuzzer.header_mutation()
            yield kind, data, mid
            continue
        if kind == "random-payload":
            payload, cf = random_payload(rng)
        elif kind == "truncated-cbor":
            payload, cf = truncated_cbor_payload(rng)
        elif kind == "huge-numbers":
            payload, cf = huge_number_payload(rng)
        elif kind == "deep-nesting":
            payload, cf = deep_nesting_payload(rng)
        else:
            as_cbor = rng.random() < 0.5
            body = wrong_type_profile(rng)
            payload, cf = (cbor2.dumps(body), 60) if as_cbor else (json.dumps(body).encode(), 50)
        data, mid = fuzzer.request(payload, cf)
        yield kind, data, mid


def classify(datagram: bytes) -> t.Tuple[int, int, int]:
    """(type, code, mid) of an answer; raises on a datagram that is not CoAP."""
    assert len(datagram) >= 4 and datagram[0] >> 6 == 1, datagram[:8]
    return (datagram[0] >> 4) & 3, datagram[1], struct.unpack("!H", datagram[2:4])[0]


@pytest.fixture()
def server(tmp_path):
    # no request rate limit: the fuzzed datagrams are for the decoders, not for the limiter's 4.29
    with RegistryServer(tmp_path / "fuzz.sqlite", "--rate-limit", "0") as srv:
        yield srv


def test_fuzzed_datagrams_get_only_4xx_and_change_nothing(server):
    control = profile("w1")

    async def seed(client: Client) -> bytes:
        assert (await client.put("w1", control, "?lt=3600")).code == Code.CREATED
        before = await client.get("/profiles")
        return before.opt.etag

    before_etag = run_client(server.url, seed)

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    sock.connect(("127.0.0.1", server.port))
    sock.settimeout(0.25)
    total = 10_500
    sent: t.Dict[str, int] = {}
    answers: t.Dict[str, int] = {}
    bad: t.List[str] = []
    window: t.List[t.Tuple[str, bytes, t.Optional[int]]] = []
    started = time.monotonic()

    def drain(expected: t.Set[int], quiet_until_done: bool = False) -> None:
        deadline = time.monotonic() + (30.0 if quiet_until_done else 2.0)
        while (expected or quiet_until_done) and time.monotonic() < deadline:
            try:
                datagram = sock.recv(65536)
            except socket.timeout:
                if quiet_until_done:
                    return
                break
            except ConnectionRefusedError:
                bad.append("ICMP port unreachable: the registry is gone")
                return
            mtype, code, mid = classify(datagram)
            expected.discard(mid)
            cls = code >> 5
            label = "%d.%02d" % (cls, code & 31)
            answers[label] = answers.get(label, 0) + 1
            if mtype == RST or code == 0:
                continue
            if cls != 4:
                bad.append("answer %s to mid %d: %r" % (label, mid, datagram[:120]))

    for kind, data, mid in generate(total):
        sent[kind] = sent.get(kind, 0) + 1
        window.append((kind, data, mid))
        sock.send(data)
        if len(window) == 100:
            drain({entry[2] for entry in window if entry[2] is not None})
            window = []
    drain({entry[2] for entry in window if entry[2] is not None})
    # late answers of earlier windows, until the registry has been quiet a while
    sock.settimeout(1.0)
    drain(set(), quiet_until_done=True)
    elapsed = time.monotonic() - started
    sock.close()

    assert sum(sent.values()) == total >= 10_000
    assert not bad, "%d bad answer(s), first: %s" % (len(bad), bad[:5])
    assert server.alive(), server.log_text()[-3000:]
    assert sum(v for k, v in answers.items() if k.startswith("4.")) > 7000, answers

    async def check(client: Client) -> None:
        after = await client.get("/profiles")
        assert after.code == Code.CONTENT
        assert after.payload == b'{"w1":' + canonical(control) + b"}"
        assert after.opt.etag == before_etag
        assert (await client.get("/profiles/w1")).opt.etag == etag(control)
        assert (await client.put("w2", profile("w2"))).code == Code.CREATED  # still serving writes

    run_client(server.url, check)
    log = server.log_text()
    assert "Traceback" not in log and "unexpected error" not in log, log[-3000:]
    print("fuzz: %d datagrams in %.1f s, by kind %s, answers %s" % (total, elapsed, sent, answers))
