# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""POST /beat/{node} and GET /liveness rendered directly, on a real registry
with an injected clock: validation, the profile's state, the identity rule,
lost nodes hidden from /profiles with notifications, and the grant book fed."""

from __future__ import annotations

import asyncio
import json
import typing as t

import cbor2
import pytest
from aiocoap import Message
from aiocoap.numbers.codes import Code
from aiocoap.optiontypes import BlockOption

from ansible_collections.nanoedge.core.plugins.module_utils._canonical_json import canonical_json
from ansible_collections.nanoedge.core.plugins.module_utils._coap import CF_CBOR, CF_JSON
from ansible_collections.nanoedge.core.plugins.module_utils._leadership import Ask, GrantBook, answer_payload
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server import beats as beats_module
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.beats import (
    BeatResource, LivenessResource, answer_template, wire,
)
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.leadership import Leadership
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.limits import ObserverCount
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.liveness import Liveness
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.model import Registry
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.resources import diagnostic
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.store import Committer, Store

PROFILE = {"node": "w1", "schema": 1}
ETAG = "0123456789abcdef"


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Remote:
    """An OSCORE-authenticated sender."""

    def __init__(self, *claims: str) -> None:
        self.authenticated_claims = claims


class World:
    def __init__(self, path: str, security: bool = False, members: t.Sequence[str] = ("m1", "w1", "w2"),
                 leadership: bool = True) -> None:
        self.clock = Clock()
        self.loop = asyncio.new_event_loop()
        self.store = Store(path)
        self.committer = Committer(self.store)
        self.loop.run_until_complete(self._start())
        self.registry = Registry(self.store, self.committer, self.clock)
        self.liveness = Liveness(2.0, 3.5, always=members, tracked=lambda node: node in self.registry.entries,
                                 clock=self.clock)
        self.view = LivenessResource(self.liveness, security, frozenset(["m1"]), ObserverCount(4, 8), diagnostic)
        wire(self.registry, self.liveness, self.view)
        self.notified: t.List[str] = []
        self.registry.listeners.append(self.notified.append)
        self.book = GrantBook("m1", ["m1", "m2"], members, clock=self.clock)
        self.leadership = Leadership(self.book, path + ".term", 0) if leadership else None
        self.beats = BeatResource(self.registry, self.liveness, security, self.leadership, diagnostic)

    async def _start(self) -> None:
        self.committer.start()

    def put(self, node: str, value: t.Any) -> str:
        body = canonical_json(value)
        _created, entry = self.loop.run_until_complete(self.registry.put(node, value, body, 300))
        return entry.etag.hex()

    def beat(self, node: str, payload: t.Any = None, remote: t.Any = None, **options: t.Any) -> Message:
        if payload is None:
            payload = {"etag": ETAG, "term": 0}
        if not isinstance(payload, bytes):
            payload = json.dumps(payload).encode()
        options.setdefault("content_format", CF_JSON)
        options.setdefault("code", Code.POST)
        request = Message(uri_path=(node,) if node else (), payload=payload, **options)
        if remote is not None:
            request.remote = remote
        return self.loop.run_until_complete(self.beats.render(request))

    def close(self) -> None:
        self.loop.run_until_complete(self.committer.stop())
        self.store.close()
        self.loop.close()


@pytest.fixture()
def world(tmp_path):
    instance = World(str(tmp_path / "registry.sqlite"))
    yield instance
    instance.close()


def answer(response: Message) -> t.Any:
    assert response.code == Code.CHANGED, response.payload
    assert response.opt.content_format == CF_JSON
    return json.loads(response.payload)


def refusal(response: Message) -> t.Tuple[str, str]:
    return str(response.code), response.payload.decode().split(": ", 1)[1]


@pytest.mark.parametrize("node, payload, options, expected", [
    ("w1", b"{not json", {}, ("4.00 Bad Request", "malformed JSON: Expecting property name enclosed in double quotes:"
                                                  " line 1 column 2 (char 1)")),
    ("w1", b"{" + b" " * 512 + b"}", {}, ("4.13 Request Entity Too Large",
                                          "a beat is at most 512 bytes in one datagram, got 514 bytes")),
    ("w1", {"etag": ETAG, "term": 0, "extra": 1}, {}, ("4.00 Bad Request", "invalid beat: beat has unknown key(s) extra")),
    ("w1", {"etag": "ABC", "term": 0}, {}, ("4.00 Bad Request",
                                            "invalid beat: beat.etag must be 16 lowercase hex digits, got 'ABC'")),
    ("w1", {"etag": ETAG}, {}, ("4.00 Bad Request", "invalid beat: beat lacks term")),
    ("w1", {"etag": ETAG, "term": -1}, {}, ("4.00 Bad Request",
                                            "invalid beat: beat.term must be an integer from 0 to 2**53, got -1")),
    ("w1", {"etag": ETAG, "term": 1, "grant": {"term": 1}}, {},
     ("4.00 Bad Request", "invalid beat: beat.grant lacks ask")),
    ("w1", [1, 2], {}, ("4.00 Bad Request", "invalid beat: beat must be an object, got list")),
    ("w1", {"etag": ETAG, "term": 2 ** 60}, {},
     ("4.00 Bad Request", "invalid beat: beat.term must be an integer from 0 to 2**53, got 1152921504606846976")),
    ("w1", b'{"etag": "0123456789abcdef", "term": NaN}', {},
     ("4.00 Bad Request", "malformed JSON: NaN is not allowed in a profile")),
    ("w1", b"[" * 256 + b"]" * 256, {}, ("4.00 Bad Request", "invalid beat: beat must be an object, got list")),
    ("w1", cbor2.dumps({"etag": ETAG, "term": cbor2.CBORTag(1, 0)}), {"content_format": CF_CBOR},
     ("4.00 Bad Request", "malformed CBOR: tag 1 (epoch date/time) is not accepted (a profile uses no CBOR tags"
                          " but bignums 2 and 3)")),
    ("w1", None, {"content_format": 0}, ("4.15 Unsupported Content Format",
                                         "Content-Format 0 is not accepted: send JSON (50) or CBOR (60)")),
    ("w1", None, {"uri_query": ("lt=3",)}, ("4.00 Bad Request", "beat takes no query parameters")),
    ("w1", None, {"block1": BlockOption.BlockwiseTuple(0, True, 2)},
     ("4.13 Request Entity Too Large", "a beat is at most 512 bytes in one datagram, got a block-wise one")),
    ("w1", None, {"code": Code.PUT}, ("4.05 Method Not Allowed", "PUT is not allowed on /beat/w1 (POST only)")),
    ("", None, {}, ("4.04 Not Found", "no resource /beat: beats go to POST /beat/{node}")),
    ("W 1", None, {}, ("4.00 Bad Request", "invalid node name 'W 1' in the path: must match ^[a-z0-9][a-z0-9._-]{0,62}$")),
])
def test_a_malformed_beat_is_refused_naming_the_fault(world: World, node: str, payload: t.Any,
                                                      options: t.Dict[str, t.Any], expected: t.Tuple[str, str]) -> None:
    assert refusal(world.beat(node, payload, **options)) == expected
    assert world.liveness.nodes == {}


def test_an_oversized_beat_is_refused_before_it_is_decoded(world: World) -> None:
    response = world.beat("w1", b"\xff" * 600)
    assert str(response.code) == "4.13 Request Entity Too Large" and response.opt.size1 == 512


def test_the_answer_says_whether_the_stored_profile_is_current(world: World) -> None:
    assert answer(world.beat("w1", {"etag": ETAG, "term": 0}))["profile"] == "missing"
    etag = world.put("w1", PROFILE)
    version = world.registry.version
    assert answer(world.beat("w1", {"etag": etag, "term": 0}))["profile"] == "current"
    assert answer(world.beat("w1", {"etag": ETAG, "term": 0}))["profile"] == "stale"
    # a beat never writes the store
    assert world.registry.version == version and world.committer._pending == []  # pylint: disable=protected-access


def test_a_cbor_beat(world: World) -> None:
    etag = world.put("w1", PROFILE)
    response = world.beat("w1", cbor2.dumps({"etag": etag, "term": 0}), content_format=CF_CBOR)
    assert answer(response) == {"profile": "current"}


@pytest.mark.parametrize("remote, expected", [
    (None, ("4.01 Unauthorized", "POST /beat/w1 needs OSCORE as node 'w1'")),
    (Remote(":w2"), ("4.01 Unauthorized", "OSCORE identity 'w2' may not POST /beat/w1")),
    (Remote(":m1"), ("4.01 Unauthorized", "OSCORE identity 'm1' may not POST /beat/w1")),
])
def test_under_security_only_the_node_itself_beats(tmp_path, remote: t.Any, expected: t.Tuple[str, str]) -> None:
    world = World(str(tmp_path / "secure.sqlite"), security=True)
    try:
        assert refusal(world.beat("w1", remote=remote or object())) == expected
        assert answer(world.beat("w1", remote=Remote(":w1"))) == {"profile": "missing"}
        assert answer(world.beat("w1", remote=Remote(":w1+controller"))) == {"profile": "missing"}
    finally:
        world.close()


def test_a_lost_node_is_hidden_and_observers_hear_of_it_both_ways(world: World) -> None:
    world.put("w1", PROFILE)
    world.put("w2", dict(PROFILE, node="w2"))
    world.beat("w1")
    world.beat("w2")
    world.notified.clear()
    world.clock.now += 2.5
    world.beat("w2")
    world.liveness.tick()
    assert world.liveness.state("w1") == "suspected"
    assert world.notified == [] and world.registry.get("w1") is not None  # suspected changes no answer
    world.clock.now += 1.25
    world.liveness.tick()
    assert world.liveness.state("w1") == "lost"
    assert world.notified == ["w1"]
    assert world.registry.get("w1") is None and "w1" in world.registry.entries
    assert list(json.loads(world.registry.collection(CF_JSON)[0])) == ["w2"]
    assert list(cbor2.loads(world.registry.collection(CF_CBOR)[0])) == ["w2"]
    world.clock.now += 5
    assert answer(world.beat("w1"))["profile"] == "stale"  # back: the stored profile is seen again
    assert world.notified == ["w1", "w1"]
    assert sorted(json.loads(world.registry.collection(CF_JSON)[0])) == ["w1", "w2"]


def test_a_node_whose_profile_is_gone_is_no_longer_tracked_unless_a_member(world: World) -> None:
    world.put("x9", dict(PROFILE, node="x9"))
    world.beat("x9")
    world.beat("w1")
    assert sorted(world.liveness.nodes) == ["w1", "x9"]
    world.loop.run_until_complete(world.registry.delete("x9"))
    assert sorted(world.liveness.nodes) == ["w1"]
    world.beat("x9")  # no profile, no member: not tracked
    assert sorted(world.liveness.nodes) == ["w1"]


def test_liveness_view_and_its_notifications(world: World) -> None:
    class Observation:
        triggered = 0

        def trigger(self, response: t.Any = None) -> None:
            Observation.triggered += 1

    world.view._observations.add(Observation())  # pylint: disable=protected-access
    world.beat("w1")
    world.clock.now += 2.0
    world.liveness.tick()
    response = world.loop.run_until_complete(world.view.render(Message(code=Code.GET)))
    assert response.code == Code.CONTENT
    assert json.loads(response.payload) == {"w1": {"state": "suspected", "since": 0.0, "last_beat": 2.0}}
    assert Observation.triggered == 2  # the first beat and the suspicion


@pytest.mark.parametrize("remote, code", [(None, "4.01 Unauthorized"), (Remote(":w1"), "4.01 Unauthorized"),
                                          (Remote(":m1"), "2.05 Content")])
def test_liveness_is_for_the_managers_under_security(tmp_path, remote: t.Any, code: str) -> None:
    world = World(str(tmp_path / "secure.sqlite"), security=True)
    try:
        request = Message(code=Code.GET)
        request.remote = remote or object()
        assert str(world.loop.run_until_complete(world.view.render(request)).code) == code
    finally:
        world.close()


def test_beats_feed_the_grant_book_and_carry_its_asks(world: World) -> None:
    assert "ask" not in answer(world.beat("w1"))
    world.leadership.stand(3.0)
    first = answer(world.beat("w1"))["ask"]
    assert first == {"manager": "m1", "term": 2, "n": 1, "lease": 4.0, "priority": 0}
    # m1 is manager 0 of 2: its terms are even; the term is on disk before the ask went out
    assert world.leadership.saved == 2
    world.clock.now += 0.5
    second = answer(world.beat("w1", {"etag": ETAG, "term": 2, "grant": {"term": 2, "ask": 1}}))["ask"]
    assert second["n"] == 2
    status = world.leadership.status()
    assert status["granted_by"] == ["w1"] and status["leader"] is True and status["majority"] == 2
    # a beat from a non-member gets no ask and counts for nothing
    world.put("x9", dict(PROFILE, node="x9"))
    assert "ask" not in answer(world.beat("x9", {"etag": ETAG, "term": 40}))
    assert world.book.highest_term == 2
    # the daemon stopped renewing: the candidacy lapsed with its ttl, no more asks
    world.clock.now += 4.0
    assert world.leadership.status()["candidate"] is False
    assert "ask" not in answer(world.beat("w1"))
    # standing again takes a new term; a member that has seen a higher one moves it past that
    world.leadership.stand(3.0)
    assert world.leadership.saved == 4
    assert answer(world.beat("w2", {"etag": ETAG, "term": 7}))["ask"]["term"] == 8
    assert world.leadership.saved == 8


@pytest.mark.parametrize("state, ask", [
    ("current", Ask("m1", 2, 1, 4.0, 0)),
    ("stale", Ask("m2", 9007199254740991, 2 ** 53, 0.25, 1)),
    ("missing", Ask("manager-2.x_y", 1, 0, 60.0, 12)),
])
@pytest.mark.parametrize("n", [0, 7, 123456, 2 ** 53])
def test_an_answer_from_its_template_is_the_canonical_json(state: str, ask: Ask, n: int) -> None:
    template = answer_template(state, ask)
    assert template is not None
    assert template[0] + b"%d" % n + template[1] == canonical_json(answer_payload(state, ask._replace(n=n)))


class Pipe:
    def __init__(self, request: Message) -> None:
        self.request = request
        self.answers: t.List[t.Tuple[Message, bool]] = []

    def add_response(self, message: Message, is_last: bool = False) -> None:
        self.answers.append((message, is_last))


def test_an_answer_through_the_pipe_is_the_rendered_one(world: World) -> None:
    world.leadership.stand(3.0)
    rendered = world.beat("w1")
    request = Message(code=Code.POST, uri_path=("w1",), payload=json.dumps({"etag": ETAG, "term": 0}).encode(),
                      content_format=CF_JSON)
    pipe = Pipe(request)
    world.loop.run_until_complete(world.beats.render_to_pipe(pipe))
    [(piped, is_last)] = pipe.answers
    assert is_last and (piped.code, piped.opt.content_format) == (rendered.code, rendered.opt.content_format)
    assert json.loads(piped.payload) == dict(json.loads(rendered.payload), ask=dict(answer(rendered)["ask"], n=2))
    assert request.payload == b""  # not kept with aiocoap's duplicate answer
    refused = Pipe(Message(code=Code.POST, uri_path=("w1",), payload=b"{", content_format=CF_JSON))
    world.loop.run_until_complete(world.beats.render_to_pipe(refused))
    assert [(str(m.code), last) for m, last in refused.answers] == [("4.00 Bad Request", True)]


def test_the_same_beat_is_decoded_once_and_the_decoded_beats_are_bounded(world: World, monkeypatch) -> None:
    monkeypatch.setattr(beats_module, "MAX_PARSED_BEATS", 3)
    parsed = world.beats._parsed  # pylint: disable=protected-access
    world.beat("w1")
    world.beat("w2")
    assert len(parsed) == 1  # the same bytes from both
    beat = next(iter(parsed.values()))
    world.beat("w1", cbor2.dumps({"etag": ETAG, "term": 0}), content_format=CF_CBOR)
    assert len(parsed) == 2 and beat in parsed.values()
    world.beat("w1", {"etag": ETAG, "term": 3})
    world.beat("w1", {"etag": ETAG, "term": 4})  # full: the decoded beats start again
    assert list(parsed.values()) == [(ETAG, 4, None, None)]
    assert refusal(world.beat("w1", {"etag": ETAG, "term": -1}))[0] == "4.00 Bad Request"
    assert len(parsed) == 1


def test_an_unexpected_error_is_answered_500_and_logged(world: World, monkeypatch, caplog) -> None:
    def broken(*_args: t.Any) -> None:
        raise RuntimeError("broken")

    monkeypatch.setattr(world.liveness, "beat", broken)
    assert refusal(world.beat("w1")) == ("5.00 Internal Server Error", "internal error (see the registry log)")
    assert "unexpected error while handling POST /beat/w1" in caplog.text
