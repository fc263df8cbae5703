# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The OSCORE context of a request is found by its kid in a dict; the
registry's OSCORE site answers exactly as aiocoap's OscoreSiteWrapper
(both run on the same requests, the answers decrypted by the client), the
replay windows are marked before serving, and the answer's external AAD is
the one aiocoap computes."""

from __future__ import annotations

import asyncio
import json
import typing as t
from pathlib import Path

import pytest
from aiocoap import CON, NON, Message, error, oscore
from aiocoap.credentials import CredentialsMap
from aiocoap.numbers.codes import Code
from aiocoap.oscore import COSE_KID, COSE_KID_CONTEXT
from aiocoap.oscore_sitewrapper import OscoreSiteWrapper

from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.oscore_site import (
    _indexed, kept_external_aad, load_credentials, mark_replay_windows, oscore_site,
)
from ansible_collections.nanoedge.core.plugins.plugin_utils._oscore_material import pair_material


def write_pair(base: Path, peer: str) -> Path:
    """The server and client halves of one peer's context, as the registry role writes them; the client's folder."""
    pair = pair_material(str(base / "material"), "m1", peer)
    for side in ("server", "client"):
        folder = base / side / peer
        folder.mkdir(parents=True)
        (folder / "settings.json").write_text(json.dumps(pair[side]))
    return base / "client" / peer


def over_the_wire(message: Message, mtype: t.Any = CON) -> Message:
    """``message`` as the peer decodes it."""
    if message.mtype is None:
        message.mtype = mtype
    if message.mid is None:
        message.mid = 1
    return Message.decode(message.encode(), remote=object())


def sequence(folder: Path) -> t.Any:
    return json.loads((folder / "sequence.json").read_text())


class Outer:
    """The pipe aiocoap's server hands the site: it records the answers."""

    def __init__(self, request: Message) -> None:
        self.request = request
        self.answers: t.List[t.Tuple[Message, bool]] = []

    def add_response(self, message: Message, is_last: bool = False) -> None:
        self.answers.append((message, is_last))

    def on_interest_end(self, _callback: t.Callable[[], t.Any]) -> None:
        return None


class Inner:
    """A site behind OSCORE: answers with the request's payload, fails, or notifies once before its last answer."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.seen: t.List[t.Tuple[str, t.Any]] = []

    async def render_to_pipe(self, pipe: t.Any) -> None:
        request = pipe.request
        self.seen.append((request.payload.decode(), request.remote.authenticated_claims))
        if self.behaviour == "not found":
            raise error.NotFound()
        if self.behaviour == "bug":
            raise RuntimeError("a bug")
        if self.behaviour == "notifies":
            pipe.add_response(Message(code=Code.CONTENT, payload=b"first"), is_last=False)
            await asyncio.sleep(0)
        pipe.add_response(Message(code=Code.CHANGED, payload=b"got " + request.payload, content_format=50),
                          is_last=True)


def exchange(tmp_path: Path, wrap: t.Callable[[t.Any, t.Any], t.Any], behaviour: str, mtype: t.Any = CON,
             replay: bool = False, forged: bool = False) -> t.Tuple[t.List[t.Tuple[t.Any, ...]], t.List[t.Any]]:
    """One protected request through ``wrap``'s site (twice with ``replay``); the answers as the client reads them."""
    client_dir = write_pair(tmp_path, "w1")
    if forged:
        settings = json.loads((client_dir / "settings.json").read_text())
        settings["secret_hex"] = settings["secret_hex"][::-1]
        (client_dir / "settings.json").write_text(json.dumps(settings))
    credentials, _names = load_credentials(str(tmp_path / "server"))
    client = oscore.FilesystemSecurityContext(str(client_dir) + "/")
    inner = Inner(behaviour)
    site = wrap(inner, credentials)

    async def run() -> t.List[t.Tuple[t.Any, ...]]:
        request = Message(code=Code.POST, uri_path=("beat", "w1"), payload=b"hello", content_format=50)
        protected, request_id = client.protect(request)
        protected = over_the_wire(protected, mtype)
        seen = []
        for _attempt in range(2 if replay else 1):
            outer = Outer(protected)
            try:
                await site.render_to_pipe(outer)
            except error.RenderableError as exc:  # aiocoap's server answers with exc.to_message()
                seen.append(("raised", str(exc.to_message().code)))
            for message, is_last in outer.answers:
                if message.opt.oscore is None:
                    seen.append(("plain", str(message.code), message.payload, is_last))
                    continue
                answer = client.unprotect(over_the_wire(message), request_id)[0]
                seen.append(("protected", str(answer.code), answer.payload, answer.opt.content_format, is_last,
                             message.opt.observe is not None))
        return seen

    try:
        return asyncio.run(run()), inner.seen
    finally:
        client._destroy()  # pylint: disable=protected-access
        for context in credentials.values():
            context._destroy()  # pylint: disable=protected-access


@pytest.mark.parametrize("behaviour, options, expected", [
    ("answers", {}, [("protected", "2.04 Changed", b"got hello", 50, True, False)]),
    ("not found", {}, [("protected", "4.04 Not Found", b"", None, True, False)]),
    ("bug", {}, [("protected", "5.00 Internal Server Error", b"", None, True, False)]),
    ("notifies", {}, [("protected", "2.05 Content", b"first", None, False, True),
                      ("protected", "2.04 Changed", b"got hello", 50, True, False)]),
    ("answers", {"replay": True}, [("protected", "2.04 Changed", b"got hello", 50, True, False),
                                   ("plain", "4.01 Unauthorized", b"Replay detected", True)]),
    ("answers", {"replay": True, "mtype": NON}, [("protected", "2.04 Changed", b"got hello", 50, True, False)]),
    ("answers", {"forged": True}, [("raised", "4.00 Bad Request")]),
    ("answers", {"forged": True, "mtype": NON}, []),
])
def test_the_site_answers_as_aiocoaps_wrapper(tmp_path: Path, behaviour: str, options: t.Dict[str, t.Any],
                                              expected: t.List[t.Tuple[t.Any, ...]]) -> None:
    ours = exchange(tmp_path / "ours", oscore_site, behaviour, **options)
    theirs = exchange(tmp_path / "theirs", OscoreSiteWrapper, behaviour, **options)
    assert ours == theirs
    assert ours[0] == expected
    assert ours[1] == ([] if options.get("forged") else [("hello", [":w1"])])


def test_an_unprotected_request_reaches_the_site_as_it_is(tmp_path: Path) -> None:
    write_pair(tmp_path, "w1")
    credentials, names = load_credentials(str(tmp_path / "server"))
    inner = Inner("answers")
    request = Message(code=Code.POST, uri_path=("beat", "w1"), payload=b"plain")
    request.remote = type("Remote", (), {"authenticated_claims": ()})()
    outer = Outer(request)
    asyncio.run(oscore_site(inner, credentials).render_to_pipe(outer))
    assert names == ["w1"]
    assert [(str(m.code), m.payload, m.opt.oscore, last) for m, last in outer.answers] == [
        ("2.04 Changed", b"got plain", None, True)]


def test_every_replay_window_is_marked_unknown_before_serving(tmp_path: Path) -> None:
    for peer in ("m1", "w1", "w2"):
        write_pair(tmp_path, peer)
    # w2's window is known from an earlier run; m1's was already unknown (a crash): not written again
    (tmp_path / "server" / "w2" / "sequence.json").write_text(json.dumps(
        {"next-to-send": 20, "received": {"index": 5, "bitfield": 3}}))
    (tmp_path / "server" / "m1" / "sequence.json").write_text(json.dumps({"next-to-send": 7, "received": "unknown"}))
    before = (tmp_path / "server" / "m1" / "sequence.json").stat().st_mtime_ns
    credentials, _names = load_credentials(str(tmp_path / "server"))
    try:
        assert [sequence(tmp_path / "server" / peer) for peer in ("m1", "w1", "w2")] == [
            {"next-to-send": 7, "received": "unknown"},
            {"next-to-send": 0, "received": "unknown"},
            {"next-to-send": 20, "received": "unknown"},
        ]
        assert (tmp_path / "server" / "m1" / "sequence.json").stat().st_mtime_ns == before
        assert mark_replay_windows(credentials.values()) == 0  # nothing left to mark
    finally:
        for context in credentials.values():
            context._destroy()  # pylint: disable=protected-access


class Unwritable:
    """A context whose folder refuses the write."""

    basedir = "/oscore/w9/"

    def __init__(self) -> None:
        self.replay_window_persisted = True

    def _replay_window_changed(self) -> None:
        self.replay_window_persisted = False
        raise PermissionError("read-only")


def test_a_window_that_cannot_be_marked_is_left_to_the_first_request(caplog) -> None:
    context = Unwritable()
    assert mark_replay_windows([context]) == 0
    # aiocoap writes it again before it accepts the first message
    assert context.replay_window_persisted is True
    assert "OSCORE context /oscore/w9/: cannot write its replay window ahead (read-only)" in caplog.text


def test_the_kept_external_aad_is_aiocoaps(tmp_path: Path) -> None:
    write_pair(tmp_path, "w1")
    original = oscore.FilesystemSecurityContext._extract_external_aad  # pylint: disable=protected-access
    original = getattr(original, "__wrapped__", original)  # kept already by another test
    kept_external_aad()
    kept_external_aad()  # once only
    context = oscore.FilesystemSecurityContext(str(tmp_path / "server" / "w1") + "/")
    try:
        for kid, piv, code in ((b"\x01", b"\x05", Code.POST), (b"\x01", b"\x06", Code.FETCH), (b"\x02", b"\x06", Code.POST)):
            request_id = oscore.RequestIdentifiers(kid, piv, True, code)
            expected = original(context, Message(code=Code.CHANGED), request_id, False)
            for local_is_sender in (False, True, False):
                assert context._extract_external_aad(  # pylint: disable=protected-access
                    Message(code=Code.CHANGED), request_id, local_is_sender) == expected
    finally:
        context._destroy()  # pylint: disable=protected-access


class Context:
    """A security context as aiocoap's lookup sees it."""

    def __init__(self, kid: bytes, id_context: bytes) -> None:
        self.recipient_id = kid
        self.id_context = id_context

    def get_oscore_context_for(self, unprotected: t.Mapping[int, t.Any]) -> t.Optional["Context"]:
        if unprotected.get(COSE_KID) == self.recipient_id and unprotected.get(COSE_KID_CONTEXT) == self.id_context:
            return self
        return None


@pytest.mark.parametrize("kid, id_context, expected", [
    (b"\x01", b"m1", ":w1"), (b"\x02", b"m1", ":w2"), (b"\x02", b"m2", None), (b"\xfe", b"m1", None),
])
def test_the_context_is_found_by_its_kid(kid: bytes, id_context: bytes, expected: t.Optional[str]) -> None:
    credentials = _indexed(CredentialsMap)()
    contexts = {":w%d" % i: Context(bytes([i]), b"m1") for i in range(1, 250)}
    credentials.update(contexts)
    credentials.reindex()
    request = {COSE_KID: kid, COSE_KID_CONTEXT: id_context}
    if expected is None:
        with pytest.raises(KeyError):
            credentials.find_oscore(request)
    else:
        assert credentials.find_oscore(request) is contexts[expected]
