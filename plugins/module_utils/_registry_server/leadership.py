# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The leadership face of a manager's registry (docs/contracts.md, "The CoAP
API"): ``PUT /leadership`` (the manager's reconcile daemon stands as a
candidate for ``ttl`` seconds, or withdraws) and ``GET /leadership`` (the
status), backed by the grant book of ``_leadership.py``; and the term file
that keeps terms growing across restarts.

The highest term is written (atomically, fsync'd) before any ask carrying it
goes out in a beat answer: a registry restarted after a crash never asks
with a term it used before."""

from __future__ import annotations

import json
import time
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._atomic import write_atomically
from ansible_collections.nanoedge.core.plugins.module_utils._canonical_json import canonical_json
from ansible_collections.nanoedge.core.plugins.module_utils._coap import CF_CBOR, CF_JSON
from ansible_collections.nanoedge.core.plugins.module_utils._leadership import (
    MAX_BEAT_BYTES, Ask, Beat, GrantBook, LeadershipError,
)
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server import LOG, PROG
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.access import (
    check_manager, check_node_identity,
)
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.aiocoap_dep import Code, Resource, aiocoap
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.codec import BadInput, decode_small_body, guarded

TERM_FILE = "leadership.json"
MAX_TTL = 60.0


class TermFileError(Exception):
    """The term file cannot be read: the registry refuses to start."""


def read_term(path: str) -> int:
    """The highest term in ``path`` (0 when the file does not exist)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return 0
    except OSError as exc:
        raise TermFileError("%s: cannot read the leadership term file %s: %s" % (PROG, path, exc)) from None
    try:
        value = json.loads(data.decode("utf-8"))
        if not isinstance(value, dict) or "highest_term" not in value:
            raise ValueError("not a JSON object with highest_term")
        term = value["highest_term"]
        if isinstance(term, bool) or not isinstance(term, int) or not 0 <= term <= 2 ** 53:
            raise ValueError("highest_term must be an integer from 0 to 2**53, got %r" % (term,))
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError included
        # Starting from 0 could reuse a term this manager already asked with:
        # a person decides (see the user guide, "Failure detection and leadership").
        raise TermFileError("%s: the leadership term file %s is corrupt (%s); the registry does not start with an "
                            "unknown term: restore the file, or remove it to start from the terms the members report"
                            % (PROG, path, exc)) from None
    return term


def write_term(path: str, term: int, manager: str) -> None:
    """Replace ``path`` atomically with the term, durable before it returns."""
    body = canonical_json({"highest_term": term, "manager": manager,
                           "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    write_atomically(path, body + b"\n", mode=0o644)


class Leadership:
    """The grant book and its term file: every term is on disk before an ask carries it."""

    def __init__(self, book: GrantBook, path: str, saved: int) -> None:
        self.book = book
        self.path = path
        self.saved = saved
        self._last_leader = False

    def _save(self) -> bool:
        """Persist a grown term; False when that failed (no ask may go out then)."""
        term = self.book.highest_term
        if term <= self.saved:
            return True
        try:
            write_term(self.path, term, self.book.name)
        except OSError as exc:
            LOG.error("cannot write the leadership term %d to %s: %s; no asks until it can", term, self.path, exc)
            return False
        self.saved = term
        return True

    def on_beat(self, member: str, beat: Beat) -> None:
        self.book.on_beat(member, beat)

    def ask(self) -> t.Optional[Ask]:
        """The ask for a beat answer, once its term is on disk."""
        ask = self.book.next_ask()
        if ask is None or not self._save():
            return None
        return ask

    def status(self) -> t.Dict[str, t.Any]:
        status = self.book.status()
        self._save()
        if status["leader"] != self._last_leader:
            self._last_leader = status["leader"]
            LOG.info("leadership manager=%s %s at term %d (granted by %s; %d of %d members needed)",
                     self.book.name, "leader" if status["leader"] else "not leader", status["term"],
                     ", ".join(status["granted_by"]) or "nobody", status["majority"], status["members"])
        return status

    def stand(self, ttl: t.Optional[float]) -> None:
        """Stand as a candidate for ``ttl`` seconds more, or withdraw (None)."""
        if ttl is None:
            self.book.withdraw()
        else:
            self.book.set_candidate(ttl)
        self._save()


def parse_candidacy(value: t.Any) -> t.Optional[float]:
    """``{"candidate": true, "ttl": 3.0}`` -> 3.0; ``{"candidate": false}`` -> None; else LeadershipError."""
    if not isinstance(value, dict):
        raise LeadershipError("candidacy must be an object, got %s" % type(value).__name__)
    unknown = sorted(str(key) for key in value if key not in ("candidate", "ttl"))
    if unknown:
        raise LeadershipError("candidacy has unknown key(s) %s" % ", ".join(unknown))
    candidate = value.get("candidate")
    if not isinstance(candidate, bool):
        raise LeadershipError("candidacy.candidate must be true or false, got %r" % (candidate,))
    if not candidate:
        return None
    ttl = value.get("ttl")
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not 0 < ttl <= MAX_TTL:
        raise LeadershipError("candidacy.ttl must be a number of seconds in (0, %g], got %r" % (MAX_TTL, ttl))
    return float(ttl)


def json_answer(code: Code, value: t.Any) -> aiocoap.Message:
    return aiocoap.Message(code=code, payload=canonical_json(value), content_format=CF_JSON)


def small_body(request: aiocoap.Message, what: str, limit: int = MAX_BEAT_BYTES) -> t.Any:
    """The decoded body of a small request (a beat, a candidacy): its size checked before it is decoded."""
    return decode_small_body(request.payload, check_small_body(request, what, limit))


def check_small_body(request: aiocoap.Message, what: str, limit: int = MAX_BEAT_BYTES) -> int:
    """The Content-Format of a small request's body, once its options and size are checked; else BadInput."""
    if request.opt.uri_query:
        raise BadInput(Code.BAD_REQUEST, "%s takes no query parameters" % what)
    size = len(request.payload)
    if request.opt.block1 is not None or (request.opt.size1 or 0) > limit or size > limit:
        raise BadInput(Code.REQUEST_ENTITY_TOO_LARGE, "a %s is at most %d bytes in one datagram, got %s"
                       % (what, limit, "a block-wise one" if request.opt.block1 is not None else "%d bytes"
                          % max(size, request.opt.size1 or 0)), size1=limit)
    content_format = request.opt.content_format
    if content_format not in (CF_JSON, CF_CBOR):
        raise BadInput(Code.UNSUPPORTED_CONTENT_FORMAT, "Content-Format %s is not accepted: send JSON (50) or CBOR (60)"
                       % ("none" if content_format is None else int(content_format)))
    return int(content_format)


class LeadershipResource(Resource):
    """``/leadership``: PUT from the manager's own reconcile daemon, GET for the managers."""

    def __init__(self, leadership: Leadership, security: bool, managers: t.FrozenSet[str],
                 diagnostic: t.Callable[..., aiocoap.Message], profiles_etag: t.Callable[[], str] = lambda: "") -> None:
        super().__init__()
        self.leadership = leadership
        self.security = security
        self.managers = managers
        self.diagnostic = diagnostic
        # The ETag of /profiles as it stands, in every answer: the manager renews its lease every second,
        # so a change whose notification was lost (they are NON, and UDP) is noticed within a renewal.
        self.profiles_etag = profiles_etag

    def _status(self, code: Code) -> aiocoap.Message:
        status = self.leadership.status()
        etag = self.profiles_etag()
        if etag:
            status["profiles"] = etag
        return json_answer(code, status)

    async def needs_blockwise_assembly(self, request: aiocoap.Message) -> bool:
        return False

    async def render(self, request: aiocoap.Message) -> aiocoap.Message:
        return guarded(self._render, request, self.diagnostic, "/leadership")

    def _render(self, request: aiocoap.Message) -> aiocoap.Message:
        name = self.leadership.book.name
        if request.code == Code.GET:
            if request.payload:
                raise BadInput(Code.BAD_REQUEST, "GET takes no payload")
            check_manager(self.security, self.managers, request, "reading /leadership")
            return self._status(Code.CONTENT)
        if request.code != Code.PUT:
            raise BadInput(Code.METHOD_NOT_ALLOWED, "%s is not allowed on /leadership (GET, PUT)" % request.code)
        check_node_identity(self.security, request, name, "writing /leadership", "write /leadership")
        value = small_body(request, "candidacy")
        try:
            ttl = parse_candidacy(value)
        except LeadershipError as exc:
            raise BadInput(Code.BAD_REQUEST, "invalid candidacy: %s" % exc) from None
        self.leadership.stand(ttl)
        return self._status(Code.CHANGED)
