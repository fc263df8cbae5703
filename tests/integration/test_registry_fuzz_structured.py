# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Structure-aware fuzzing of a live registry over UDP: Hypothesis builds the
CBOR and JSON documents of the codec's fuzzing (tests/unit/.../test_codec_fuzz.py),
option sets and block-wise sequences, and sends them as raw datagrams. Every
request gets an answer within a bound, never 5.xx but 5.03, and a refused
request leaves the stored collection as it was."""

from __future__ import annotations

import socket
import time
import typing as t

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _registry_server import RegistryServer, canonical, encode, payload_of, profile, run_client, uint
from ansible_collections.nanoedge.core.tests.unit.plugins.module_utils._registry_server.test_codec_fuzz import (
    cbor_documents, json_documents,
)

CON, ACK, RST = 0, 2, 3
GET, PUT, DELETE = 1, 3, 4
OPT_URI_PATH, OPT_CONTENT_FORMAT, OPT_URI_QUERY, OPT_BLOCK1 = 11, 12, 15, 27
ANSWER_BOUND = 5.0
SERVICE_UNAVAILABLE = (5 << 5) | 3
EXAMPLES = {"documents": 200, "options": 120, "blockwise": 60}

LIVE = settings(deadline=None, database=None, suppress_health_check=list(HealthCheck))


def code_text(code: int) -> str:
    return "%d.%02d" % (code >> 5, code & 31)


class Peer:
    """A raw CoAP peer: one confirmable request at a time, its answer by token."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.connect(("127.0.0.1", port))
        self.mid = 0

    def close(self) -> None:
        self.sock.close()

    def ask(self, code: int, options: t.Sequence[t.Tuple[int, bytes]], payload: bytes = b"") -> t.Optional[int]:
        """The answer's code, 0 for a reset, None for silence (a datagram
        the registry drops as unparsable)."""
        answer = self.exchange(code, options, payload)
        return None if answer is None else answer[0]

    def exchange(self, code: int, options: t.Sequence[t.Tuple[int, bytes]],
                 payload: bytes = b"") -> t.Optional[t.Tuple[int, bytes]]:
        """(code, raw answer datagram) as for ``ask``."""
        self.mid = (self.mid + 1) & 0xFFFF
        token = self.mid.to_bytes(2, "big")
        self.sock.send(encode(CON, code, self.mid, token, options, payload))
        deadline = time.monotonic() + ANSWER_BOUND
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                answer = self.sock.recv(65536)
            except socket.timeout:
                return None
            mtype, answer_code, mid = (answer[0] >> 4) & 3, answer[1], int.from_bytes(answer[2:4], "big")
            if mtype == RST and mid == self.mid:
                return 0, answer
            if answer[4:4 + (answer[0] & 0x0F)] != token or answer_code == 0:
                continue  # an empty ACK (the answer follows), or a late answer to an earlier request
            if mtype == CON:  # a separate response: acknowledge it
                self.sock.send(bytes([0x60, 0]) + answer[2:4])
            return answer_code, answer
        return None


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "registry.sqlite"
    # one peer sends everything here: the per-peer rate limit is for another test
    with RegistryServer(path, "--max-lifetime", "3600", "--rate-limit", "0") as srv:
        run_client(srv.url, lambda c: c.put("w1", profile("w1"), "?lt=3600"))
        peer = Peer(srv.port)
        yield srv, peer
        peer.close()
        assert srv.alive(), srv.log_text()[-3000:]
        log = srv.log_text()
        assert "Traceback" not in log and "unexpected error" not in log, log[-3000:]


def collection(peer: Peer) -> bytes:
    """The stored collection as one datagram answers it, over the same
    socket (no new client per read). Only the control collection needs to
    be compared whole, and it fits in one block."""
    answer = peer.exchange(GET, [(OPT_URI_PATH, b"profiles")])
    assert answer is not None and answer[0] == (2 << 5) | 5, answer
    return payload_of(answer[1])


def check_answer(code: t.Optional[int], allowed: t.Callable[[int], bool]) -> None:
    assert code is not None, "no answer within %.0f s" % ANSWER_BOUND
    assert code == 0 or code == SERVICE_UNAVAILABLE or code >> 5 != 5, code_text(code)
    assert code == 0 or allowed(code), code_text(code)


CONTROL = b'{"w1":' + canonical(profile("w1")) + b"}"


@settings(LIVE, max_examples=EXAMPLES["documents"])
@given(st.one_of(cbor_documents().map(lambda d: (d, 60)), json_documents().map(lambda d: (d, 50))))
def test_documents_are_refused_and_change_nothing(live, document):
    _srv, peer = live
    payload, content_format = document
    # no generated document names node "fz", so none may be stored
    code = peer.ask(PUT, [(OPT_URI_PATH, b"profiles"), (OPT_URI_PATH, b"fz"),
                          (OPT_CONTENT_FORMAT, uint(content_format))], payload)
    check_answer(code, lambda c: c >> 5 == 4)
    assert collection(peer) == CONTROL


options = st.lists(st.tuples(st.integers(1, 65000), st.binary(max_size=12)), max_size=6)


@settings(LIVE, max_examples=EXAMPLES["options"])
@given(options, st.sampled_from([GET, PUT, DELETE]))
def test_option_sets_get_an_answer_and_change_nothing(live, extra, method):
    _srv, peer = live
    path = [(OPT_URI_PATH, b"profiles")] + ([(OPT_URI_PATH, b"fz")] if method != GET else [])
    body = cbor2.dumps(profile("fz")) if method == PUT else b""
    extra = [(n, v) for n, v in extra if n not in (OPT_URI_PATH, OPT_URI_QUERY)]
    code = peer.ask(method, path + [(OPT_CONTENT_FORMAT, b"\x3c")] * (method == PUT) + extra, body)
    if code is None:
        # aiocoap drops a datagram whose options do not parse; the next one is served
        code = peer.ask(GET, [(OPT_URI_PATH, b"profiles")])
    check_answer(code, lambda c: c >> 5 in (2, 4))
    stored = collection(peer)
    if stored != CONTROL:  # the PUT of fz was valid and stored: undo it
        assert peer.ask(DELETE, [(OPT_URI_PATH, b"profiles"), (OPT_URI_PATH, b"fz")]) == (2 << 5) | 2
        assert collection(peer) == CONTROL


@st.composite
def block_sequences(draw: st.DrawFn) -> t.List[t.Tuple[int, bool, int, bytes]]:
    """(num, more, szx, payload) of Block1 requests cut from a profile,
    shuffled, repeated, dropped or resized."""
    body = cbor2.dumps(profile("bw", labels={"pad": "x" * draw(st.integers(0, 3000))}))
    szx = draw(st.integers(0, 6))
    size = 16 << szx
    blocks = [(i, (i + 1) * size < len(body), szx, body[i * size:(i + 1) * size])
              for i in range((len(body) + size - 1) // size)]
    for _step in range(draw(st.integers(0, 3))):
        how = draw(st.sampled_from(["swap", "repeat", "drop", "resize", "huge-number"]))
        index = draw(st.integers(0, len(blocks) - 1))
        num, more, block_szx, piece = blocks[index]
        if how == "swap":
            other = draw(st.integers(0, len(blocks) - 1))
            blocks[index], blocks[other] = blocks[other], blocks[index]
        elif how == "repeat":
            blocks.insert(index, blocks[index])
        elif how == "drop" and len(blocks) > 1:
            del blocks[index]
        elif how == "resize":
            blocks[index] = (num, more, draw(st.integers(0, 7)), piece)
        else:
            blocks[index] = (draw(st.integers(2 ** 16, 2 ** 19)), more, block_szx, piece)
    return blocks


@settings(LIVE, max_examples=EXAMPLES["blockwise"])
@given(block_sequences())
def test_block_wise_sequences_get_answers_and_store_at_most_their_node(live, blocks):
    _srv, peer = live
    answers = []
    for num, more, szx, piece in blocks:
        option = uint(num << 4 | int(more) << 3 | szx)
        code = peer.ask(PUT, [(OPT_URI_PATH, b"profiles"), (OPT_URI_PATH, b"bw"), (OPT_CONTENT_FORMAT, b"\x3c"),
                              (OPT_BLOCK1, option)], piece)
        check_answer(code, lambda c: c in ((2 << 5) | 1, (2 << 5) | 4, (2 << 5) | 31) or c >> 5 == 4)
        answers.append(code_text(code or 0))
    if collection(peer) != CONTROL:
        answers.append(code_text(peer.ask(DELETE, [(OPT_URI_PATH, b"profiles"), (OPT_URI_PATH, b"bw")]) or 0))
        assert answers[-1] == "2.02", answers
    assert collection(peer) == CONTROL, answers
