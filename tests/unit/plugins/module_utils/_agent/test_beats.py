# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Beats and their answers: what a beat carries, a stale or missing profile reported at once, asks granted
with the witness file written first and one extra beat, a silent or garbled registry logged once;
and the beats over CoAP to a small aiocoap server, NON, one client context."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import typing as t

import pytest

from ansible_collections.nanoedge.core.plugins.module_utils import _coap
from ansible_collections.nanoedge.core.plugins.module_utils._agent import beats, witness

ETAG = "0123456789abcdef"
URL = "coap://127.0.0.1:5683"
ASK = {"manager": "m1", "term": 7, "n": 12, "lease": 4.0, "priority": 0}


class Fake:
    """A sender with scripted answers, and what the beater asked for."""

    def __init__(self, answers: t.List[t.Any]) -> None:
        self.answers = list(answers)
        self.sent: t.List[t.Dict[str, t.Any]] = []
        self.reports: t.List[t.Tuple[str, str]] = []
        self.file_at_send: t.List[t.Any] = []
        self.path = None

    async def send(self, registry, node, payload, timeout):
        self.sent.append(json.loads(payload))
        self.file_at_send.append(json.loads(self.path.read_text())["highest_term"] if self.path.exists() else None)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        code, body = answer
        return code, body if isinstance(body, bytes) else json.dumps(body).encode()


def make(tmp_path, answers) -> t.Tuple[beats.Beater, Fake, beats.Link]:
    fake = Fake(answers)
    fake.path = tmp_path / "witness.json"
    keeper = witness.WitnessKeeper(str(tmp_path), priority_window=2.0)
    beater = beats.Beater("w1", keeper, lambda: ETAG, fake.send, lambda url, why: fake.reports.append((url, why)),
                          1.0, logging.getLogger("test"))
    return beater, fake, None


def run_beats(tmp_path, answers) -> t.Tuple[beats.Beater, Fake, beats.Link]:
    beater, fake, _link = make(tmp_path, answers)

    async def scenario() -> beats.Link:
        link = beats.Link(URL)
        for _answer in answers:
            await beater.beat(link)
        return link

    return beater, fake, asyncio.run(scenario())


@pytest.mark.parametrize("answer, reports", [
    ({"profile": "current"}, []),
    ({"profile": "stale"}, [(URL, "coap://127.0.0.1:5683 says the profile is stale")]),
    ({"profile": "missing"}, [(URL, "coap://127.0.0.1:5683 says the profile is missing")]),
])
def test_profile_state_in_the_answer(tmp_path, answer, reports):
    _beater, fake, _link = run_beats(tmp_path, [("2.04", answer)])
    assert fake.sent == [{"etag": ETAG, "term": 0}]
    assert fake.reports == reports


def test_a_new_grant_is_written_then_carried_and_woken(tmp_path):
    beater, fake, link = run_beats(tmp_path, [
        ("2.04", {"profile": "current", "ask": ASK}),
        ("2.04", {"profile": "current", "ask": dict(ASK, n=13)}),
        ("2.04", {"profile": "current"}),
    ])
    assert fake.sent == [
        {"etag": ETAG, "term": 0},
        {"etag": ETAG, "term": 7, "grant": {"term": 7, "ask": 12}, "holder": "m1"},
        {"etag": ETAG, "term": 7, "grant": {"term": 7, "ask": 13}, "holder": "m1"},
    ]
    # the file said term 7 before the first beat that carried the grant went out
    assert fake.file_at_send == [None, 7, 7]
    assert link.wake.is_set()
    assert beater.keeper.witness.holder == "m1"


def test_a_grant_that_cannot_be_written_is_not_carried(tmp_path, caplog):
    beater, fake, _link = make(tmp_path, [("2.04", {"profile": "current", "ask": ASK}),
                                          ("2.04", {"profile": "current"}), ("2.04", {"profile": "current"})])
    beater.keeper.path = str(tmp_path / "no" / "witness.json")

    async def scenario() -> None:
        link = beats.Link(URL)
        for _beat in range(3):
            await beater.beat(link)

    asyncio.run(scenario())
    assert fake.sent == [{"etag": ETAG, "term": 0}, {"etag": ETAG, "term": 7, "holder": "m1"},
                         {"etag": ETAG, "term": 7, "holder": "m1"}]
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == [
        "witness file %s: No such file or directory; beats carry no grant until it can be written"
        % (tmp_path / "no" / "witness.json")]


def test_a_silent_or_garbled_registry_is_logged_once_each_way(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    answers = [_coap.CoapError("no answer within 1s")] * 3 + [("2.04", {"profile": "current"})] * 2 + [
        ("2.04", b"\xff"), ("2.04", {"profile": "fresh"}), ("4.00", b"beat: unknown key(s) x"),
        ("4.00", b"beat: unknown key(s) x"), ("2.04", {"profile": "current"})]
    run_beats(tmp_path, answers)
    assert [r.getMessage() for r in caplog.records] == [
        "coap://127.0.0.1:5683: beat not answered: no answer within 1s (logged once until it answers)",
        "coap://127.0.0.1:5683: beats answered again",
        "coap://127.0.0.1:5683: beat answered what is no beat answer: 'utf-8' codec can't decode byte 0xff in "
        "position 0: invalid start byte (logged once until it answers)",
        "coap://127.0.0.1:5683: beat answered 4.00: beat: unknown key(s) x (logged once until it answers)",
        "coap://127.0.0.1:5683: beats answered again",
    ]


def test_a_registry_that_may_have_restarted_is_told(tmp_path):
    """Silent then answering again, or answering that it lost the profile: the directory observes it anew.
    A refusal or garbage that ends is no sign of a restart."""
    answers = [_coap.CoapError("no answer within 1s")] * 2 + [("2.04", {"profile": "current"})] * 2 + [
        ("2.04", {"profile": "missing"}), ("2.04", {"profile": "stale"}), ("4.00", b"beat: unknown key(s) x"),
        ("2.04", {"profile": "current"})]
    beater, fake, _link = make(tmp_path, answers)
    restarts: t.List[t.Tuple[str, str]] = []
    beater.on_restart = lambda url, why: restarts.append((url, why))

    async def scenario() -> None:
        link = beats.Link(URL)
        for _answer in answers:
            await beater.beat(link)

    asyncio.run(scenario())
    assert restarts == [(URL, "it answers again"), (URL, "it lost this node's profile")]
    assert len(fake.sent) == len(answers)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_beats_over_coap(tmp_path):
    """A registry's /beat/{node} in a small aiocoap server: NON requests, the ask granted, the extra beat at once."""
    aiocoap = pytest.importorskip("aiocoap")
    import aiocoap.resource  # pylint: disable=import-outside-toplevel

    received: t.List[t.Tuple[t.Any, t.Dict[str, t.Any], float]] = []

    class BeatResource(aiocoap.resource.Resource):
        async def render_post(self, request):
            beat = json.loads(request.payload)
            received.append((request.mtype, beat, asyncio.get_event_loop().time()))
            answer = {"profile": "current" if len(received) > 1 else "stale"}
            if len(received) == 1:
                answer["ask"] = ASK
            return aiocoap.Message(code=aiocoap.CHANGED, payload=json.dumps(answer).encode())

    reports: t.List[t.Tuple[str, str]] = []

    async def scenario() -> None:
        port = free_port()
        site = aiocoap.resource.Site()
        site.add_resource(["beat", "w1"], BeatResource())
        server = await aiocoap.Context.create_server_context(site, bind=("127.0.0.1", port))
        client = beats.BeatClient(None)
        url = "coap://127.0.0.1:%d" % port
        try:
            await client.open([_coap.parse_registry(url)])
            keeper = witness.WitnessKeeper(str(tmp_path), priority_window=2.0)
            beater = beats.Beater("w1", keeper, lambda: ETAG, client.send, lambda u, why: reports.append((u, why)),
                                  0.5, logging.getLogger("test"))
            task = asyncio.ensure_future(beater.run(beats.Link(url)))
            for _tick in range(200):
                await asyncio.sleep(0.01)
                if len(received) >= 3:
                    break
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        finally:
            await client.close()
            await server.shutdown()
        assert reports == [(url, "%s says the profile is stale" % url)]

    asyncio.run(scenario())
    assert [entry[0] for entry in received[:3]] == [aiocoap.NON] * 3
    assert [entry[1] for entry in received[:3]] == [
        {"etag": ETAG, "term": 0},
        {"etag": ETAG, "term": 7, "grant": {"term": 7, "ask": 12}, "holder": "m1"},
        {"etag": ETAG, "term": 7, "grant": {"term": 7, "ask": 12}, "holder": "m1"},
    ]
    # the beat with the new grant followed the answer at once, the next one a beat interval later
    assert received[1][2] - received[0][2] < 0.25
    assert received[2][2] - received[1][2] > 0.4


def test_a_registry_that_is_down_costs_no_beat_to_one_that_is_up():
    """The ICMP error of a dead registry's port lands on the socket that sent to it, never on another's."""
    aiocoap = pytest.importorskip("aiocoap")
    import aiocoap.resource  # pylint: disable=import-outside-toplevel

    class BeatResource(aiocoap.resource.Resource):
        async def render_post(self, request):
            return aiocoap.Message(code=aiocoap.CHANGED, payload=b'{"profile": "current"}')

    async def scenario() -> t.List[str]:
        port, dead = free_port(), free_port()
        site = aiocoap.resource.Site()
        site.add_resource(["beat", "w1"], BeatResource())
        server = await aiocoap.Context.create_server_context(site, bind=("127.0.0.1", port))
        live, gone = (_coap.parse_registry("coap://127.0.0.1:%d" % p) for p in (port, dead))
        client = beats.BeatClient(None)
        outcomes = []
        try:
            await client.open([gone, live])
            for _round in range(8):  # both beats go out at the same moment, as the beat loops send them
                results = await asyncio.gather(client.send(gone, "w1", b"{}", 0.5), client.send(live, "w1", b"{}", 0.5),
                                               return_exceptions=True)
                outcomes.append(results[1][0] if isinstance(results[1], tuple) else repr(results[1]))
        finally:
            await client.close()
            await server.shutdown()
        return outcomes

    assert asyncio.run(scenario()) == ["2.04"] * 8
