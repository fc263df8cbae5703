# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""nanoedge.core CoAP profile registry (DESIGN.md, Contract 4).

Workers PUT their resource profile (Contract 1) to ``/profiles/{node}``;
managers read ``/profiles`` and may observe it. Profiles are validated with
the collection's one schema (``_profile.py``, loaded by path), kept in SQLite
(WAL, committed before the response) and expire ``lt`` seconds after their
last PUT.

Run by hand::

    python3 nanoedge_registry.py --bind 127.0.0.1 --port 5683 --db /tmp/registry.sqlite

Representations: a profile is served as its canonical JSON (keys sorted,
no whitespace, UTF-8); ``/profiles`` is the canonical JSON object
node -> profile. The ETag of every representation is the first 8 bytes of
the SHA-256 of that canonical JSON, so a client can tell whether the stored
profile equals its own without fetching it (CBOR answers carry the same
ETag: it names the content, not the encoding).

Security (``--oscore-contexts``): every write must be OSCORE-protected as
the node written. ``--managers`` also restricts reads: the listed
identities may GET (and observe) everything, an authenticated worker only
``/profiles/{its own node}`` (so a reporter can compare before writing);
``/profiles``, other nodes' profiles and unprotected GETs get 4.01.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import heapq
import importlib.util
import json
import logging
import math
import os
import signal
import socket
import sqlite3
import sys
import time
import typing as t
from pathlib import Path

import aiocoap
import aiocoap.error
import aiocoap.resource
from aiocoap.numbers.codes import Code
from aiocoap.optiontypes import BlockOption

try:
    import cbor2
except ImportError:  # pragma: no cover - the role always installs cbor2
    cbor2 = None

PROG = "nanoedge.core.registry"
LOG = logging.getLogger("nanoedge.registry")

CF_TEXT = 0
CF_LINK_FORMAT = 40
CF_JSON = 50
CF_CBOR = 60

# RFC 7959 keeps a half-received body for at most EXCHANGE_LIFETIME-ish; this
# matches aiocoap's own spool (MAX_TRANSMIT_WAIT).
BLOCK1_TIMEOUT = 93.0
# Bound on memory held by unfinished block-wise uploads from all clients.
BLOCK1_SPOOL_LIMIT = 64 * 1024 * 1024
SWEEP_INTERVAL = 1.0


# --------------------------------------------------------------------------
# The one profile schema, loaded by path (never copied).

def _profile_module_candidates(explicit: t.Optional[str]) -> t.List[Path]:
    here = Path(__file__).resolve().parent
    candidates = []
    if explicit:
        candidates.append(Path(explicit))
    # Installed by the role: _profile.py copied from the collection beside us.
    candidates.append(here / "_profile.py")
    # Running from a checkout: roles/registry/files -> plugins/module_utils.
    if len(here.parents) > 2:
        candidates.append(here.parents[2] / "plugins" / "module_utils" / "_profile.py")
    return candidates


def load_profile_schema(explicit: t.Optional[str] = None) -> t.Any:
    for path in _profile_module_candidates(explicit):
        if path.is_file():
            spec = importlib.util.spec_from_file_location("nanoedge_profile", str(path))
            if spec is None or spec.loader is None:
                continue
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
    raise SystemExit("%s: cannot find the profile schema _profile.py (looked in %s)" % (
        PROG, ", ".join(str(p) for p in _profile_module_candidates(explicit))))


# --------------------------------------------------------------------------
# Canonical form, ETags and input decoding.

def canonical_json(value: t.Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def etag_of(canonical: bytes) -> bytes:
    return hashlib.sha256(canonical).digest()[:8]


class BadInput(Exception):
    """A request the registry refuses; carries the CoAP code and a diagnostic."""

    def __init__(self, code: Code, message: str, **options: t.Any) -> None:
        super().__init__(message)
        self.code = code
        self.options = options


def _reject_constant(name: str) -> t.NoReturn:
    raise ValueError("%s is not allowed in a profile" % name)


# RFC 7493 (I-JSON): integers beyond 2^53 do not survive most JSON readers,
# and no resource count comes anywhere near it.
INT_LIMIT = 2 ** 53 - 1


def _check_numbers(value: t.Any, where: str = "profile", depth: int = 0) -> None:
    """Refuse what JSON cannot carry faithfully: NaN/Infinity (1e400 parses to
    inf) and integers outside the I-JSON range; also bound the nesting."""
    if depth > 64:
        raise ValueError("%s: nested too deeply" % where)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("%s: must be a finite number, got %r" % (where, value))
    if isinstance(value, int) and not isinstance(value, bool) and not -INT_LIMIT <= value <= INT_LIMIT:
        raise ValueError("%s: integer out of range (more than 2^53)" % where)
    if isinstance(value, dict):
        for key, item in value.items():
            _check_numbers(item, "%s.%s" % (where, key) if where != "profile" else str(key), depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_numbers(item, "%s[%d]" % (where, index), depth + 1)


def decode_body(payload: bytes, content_format: int) -> t.Any:
    if content_format == CF_JSON:
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadInput(Code.BAD_REQUEST, "malformed JSON: not UTF-8 (%s)" % exc) from None
        try:
            value = json.loads(text, parse_constant=_reject_constant)
        except RecursionError:
            raise BadInput(Code.BAD_REQUEST, "malformed JSON: nested too deeply") from None
        except ValueError as exc:
            raise BadInput(Code.BAD_REQUEST, "malformed JSON: %s" % exc) from None
    else:
        if cbor2 is None:
            raise BadInput(Code.UNSUPPORTED_CONTENT_FORMAT, "CBOR (60) needs cbor2 on the registry; send JSON (50)")
        try:
            value = cbor2.loads(payload)
        except RecursionError:
            raise BadInput(Code.BAD_REQUEST, "malformed CBOR: nested too deeply") from None
        except Exception as exc:  # cbor2 raises a family of decode errors, ValueError, OverflowError...
            raise BadInput(Code.BAD_REQUEST, "malformed CBOR: %s" % exc) from None
    try:
        _check_numbers(value)
    except ValueError as exc:
        raise BadInput(Code.BAD_REQUEST, "invalid profile: %s" % exc) from None
    return value


# --------------------------------------------------------------------------
# Durable storage with group commit.

class Store:
    """SQLite in WAL mode; every batch is committed (fsync'd) before any of
    its requests is answered."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        # FULL: the WAL is fsync'd on every commit, so an acknowledged PUT
        # survives power loss, not only a process crash.
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS profiles ("
            " node TEXT PRIMARY KEY, body BLOB NOT NULL, etag BLOB NOT NULL,"
            " expires_at REAL NOT NULL, updated_at REAL NOT NULL)"
        )

    def load(self, now: float) -> t.Tuple[t.List[t.Tuple[str, bytes, bytes, float]], t.List[str]]:
        rows = self.conn.execute("SELECT node, body, etag, expires_at FROM profiles ORDER BY node").fetchall()
        live = [(str(r[0]), bytes(r[1]), bytes(r[2]), float(r[3])) for r in rows if float(r[3]) > now]
        expired = [str(r[0]) for r in rows if float(r[3]) <= now]
        if expired:
            self.conn.execute("BEGIN")
            self.conn.execute("DELETE FROM profiles WHERE expires_at <= ?", (now,))
            self.conn.execute("COMMIT")
        return live, expired

    def apply(self, ops: t.Sequence[t.Tuple[t.Any, ...]]) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            for op in ops:
                if op[0] == "put":
                    node, body, etag, expires_at, now = op[1:]
                    self.conn.execute(
                        "INSERT INTO profiles (node, body, etag, expires_at, updated_at) VALUES (?, ?, ?, ?, ?)"
                        " ON CONFLICT(node) DO UPDATE SET body=excluded.body, etag=excluded.etag,"
                        " expires_at=excluded.expires_at, updated_at=excluded.updated_at",
                        (node, body, etag, expires_at, now),
                    )
                elif op[0] == "delete":
                    self.conn.execute("DELETE FROM profiles WHERE node = ?", (op[1],))
                elif op[0] == "expire":
                    self.conn.execute("DELETE FROM profiles WHERE node = ? AND expires_at <= ?", (op[1], op[2]))
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.conn.close()


class Committer:
    """Collects writes from concurrent requests into one transaction."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._pending: t.List[t.Tuple[t.Tuple[t.Any, ...], t.Optional[asyncio.Future]]] = []
        self._wakeup = asyncio.Event()
        self._task: t.Optional[asyncio.Task] = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="registry-committer")

    async def commit(self, op: t.Tuple[t.Any, ...]) -> None:
        future = asyncio.get_running_loop().create_future()
        self._pending.append((op, future))
        self._wakeup.set()
        await future

    def enqueue(self, op: t.Tuple[t.Any, ...]) -> None:
        self._pending.append((op, None))
        self._wakeup.set()

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            batch, self._pending = self._pending, []
            if not batch:
                continue
            try:
                await asyncio.to_thread(self.store.apply, [item[0] for item in batch])
            except Exception as exc:
                LOG.error("storage failure, %d write(s) not stored: %s", len(batch), exc)
                for _op, future in batch:
                    if future is not None and not future.done():
                        future.set_exception(exc)
            else:
                for _op, future in batch:
                    if future is not None and not future.done():
                        future.set_result(None)

    async def stop(self) -> None:
        while self._pending:
            await asyncio.sleep(0.01)
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass


# --------------------------------------------------------------------------
# The registry state.

class Entry:
    __slots__ = ("body", "etag", "expires_at", "_value")

    def __init__(self, body: bytes, etag: bytes, expires_at: float, value: t.Any = None) -> None:
        self.body = body
        self.etag = etag
        self.expires_at = expires_at
        self._value = value

    @property
    def value(self) -> t.Any:
        if self._value is None:
            self._value = json.loads(self.body)
        return self._value


class Registry:
    def __init__(self, store: Store, committer: Committer) -> None:
        self.store = store
        self.committer = committer
        self.entries: t.Dict[str, Entry] = {}
        self._expiry_heap: t.List[t.Tuple[float, str]] = []
        self.version = 0
        self._collection_cache: t.Dict[t.Tuple[int, int], t.Tuple[bytes, bytes]] = {}
        self.listeners: t.List[t.Callable[[str], None]] = []

    def load(self) -> None:
        live, expired = self.store.load(time.time())
        for node in expired:
            LOG.info("expired node=%s (lease ran out while the registry was down)", node)
        for node, body, etag, expires_at in live:
            self.entries[node] = Entry(body, etag, expires_at)
            heapq.heappush(self._expiry_heap, (expires_at, node))
        LOG.info("loaded %d live profile(s) from %s", len(live), self.store.path)

    def _changed(self, node: str) -> None:
        self.version += 1
        self._collection_cache.clear()
        for listener in self.listeners:
            listener(node)

    def expire_due(self, now: t.Optional[float] = None) -> None:
        now = time.time() if now is None else now
        heap = self._expiry_heap
        while heap and heap[0][0] <= now:
            expires_at, node = heapq.heappop(heap)
            entry = self.entries.get(node)
            if entry is None or entry.expires_at != expires_at:
                continue  # refreshed or deleted since this heap item was pushed
            del self.entries[node]
            LOG.info("expired node=%s lease ended %.3f s ago", node, now - expires_at)
            self.committer.enqueue(("expire", node, expires_at))
            self._changed(node)

    def get(self, node: str) -> t.Optional[Entry]:
        self.expire_due()
        return self.entries.get(node)

    async def put(self, node: str, value: t.Any, body: bytes, lifetime: int) -> t.Tuple[bool, Entry]:
        now = time.time()
        etag = etag_of(body)
        expires_at = now + lifetime
        await self.committer.commit(("put", node, body, etag, expires_at, now))
        self.expire_due()
        previous = self.entries.get(node)
        entry = Entry(body, etag, expires_at, value)
        self.entries[node] = entry
        heapq.heappush(self._expiry_heap, (expires_at, node))
        created = previous is None
        if created:
            LOG.info("stored node=%s lt=%d size=%d etag=%s (new)", node, lifetime, len(body), etag.hex())
        else:
            LOG.debug("stored node=%s lt=%d size=%d etag=%s", node, lifetime, len(body), etag.hex())
        if previous is None or previous.etag != etag:
            self._changed(node)
        return created, entry

    async def delete(self, node: str) -> bool:
        await self.committer.commit(("delete", node))
        self.expire_due()
        existed = self.entries.pop(node, None) is not None
        if existed:
            LOG.info("deleted node=%s", node)
            self._changed(node)
        return existed

    def collection(self, content_format: int) -> t.Tuple[bytes, bytes]:
        self.expire_due()
        key = (self.version, content_format)
        cached = self._collection_cache.get(key)
        if cached is not None:
            return cached
        nodes = sorted(self.entries)
        canonical = b"{" + b",".join(
            json.dumps(node, ensure_ascii=False).encode("utf-8") + b":" + self.entries[node].body for node in nodes
        ) + b"}"
        etag = etag_of(canonical)
        if content_format == CF_CBOR:
            payload = cbor2.dumps({node: self.entries[node].value for node in nodes}, canonical=True)
        else:
            payload = canonical
        self._collection_cache[key] = (payload, etag)
        return payload, etag


# --------------------------------------------------------------------------
# The CoAP resource.

class Settings(t.NamedTuple):
    default_lifetime: int
    max_lifetime: int
    max_body: int
    security: bool
    managers: t.FrozenSet[str]


class _Upload:
    __slots__ = ("payload", "content_format", "started")

    def __init__(self, payload: bytes, content_format: t.Optional[int]) -> None:
        self.payload = payload
        self.content_format = content_format
        self.started = time.monotonic()


def _diagnostic(code: Code, message: str, **options: t.Any) -> aiocoap.Message:
    response = aiocoap.Message(code=code, payload=("%s: %s" % (PROG, message)).encode("utf-8"),
                               content_format=CF_TEXT)
    for name, value in options.items():
        setattr(response.opt, name, value)
    return response


def authenticated_identity(request: aiocoap.Message) -> t.Optional[str]:
    """The OSCORE identity of the sender (``:name`` in the credentials map), or None."""
    try:
        claims = request.remote.authenticated_claims
    except Exception:
        return None
    for claim in claims or ():
        if isinstance(claim, str) and claim.startswith(":"):
            return claim[1:]
    return None


class ProfilesResource(aiocoap.resource.ObservableResource, aiocoap.resource.PathCapable):
    """``/profiles`` and ``/profiles/{node}``."""

    def __init__(self, registry: Registry, schema: t.Any, settings: Settings) -> None:
        super().__init__()
        self.registry = registry
        self.schema = schema
        self.settings = settings
        self._uploads: t.Dict[t.Any, _Upload] = {}
        self._spooled = 0
        self._observers: t.Dict[t.Optional[str], t.Set[t.Any]] = {}
        registry.listeners.append(self._notify)

    # -- link format ---------------------------------------------------

    def get_resources_as_linkheader(self) -> t.Any:
        from aiocoap.util.linkformat import Link, LinkFormat
        self.registry.expire_due()
        return LinkFormat([Link("/" + node, rt="nanoedge.profile", ct="50 60", obs=None)
                           for node in sorted(self.registry.entries)])

    # -- observation -------------------------------------------------------

    async def add_observation(self, request: aiocoap.Message, serverobservation: t.Any) -> None:
        if request.code != Code.GET:
            return
        path = request.opt.uri_path
        if len(path) > 1:
            return
        key = path[0] if path else None
        observers = self._observers.setdefault(key, set())
        observers.add(serverobservation)

        def _cancel(observers: t.Set[t.Any] = observers, obs: t.Any = serverobservation, key: t.Any = key) -> None:
            observers.discard(obs)
            if not observers and self._observers.get(key) is observers:
                del self._observers[key]

        serverobservation.accept(_cancel)

    def _notify(self, node: str) -> None:
        for key in (node, None):
            for observation in list(self._observers.get(key, ())):
                observation.trigger()

    # -- dispatch ------------------------------------------------------------

    async def needs_blockwise_assembly(self, request: aiocoap.Message) -> bool:
        # Block1 is reassembled here, with the size limit applied while it
        # arrives; Block2 is cut from the cached representation.
        return False

    async def render(self, request: aiocoap.Message) -> aiocoap.Message:
        try:
            return await self._render(request)
        except BadInput as exc:
            return _diagnostic(exc.code, str(exc), **exc.options)
        except Exception:  # the registry must keep serving whatever arrives
            LOG.exception("unexpected error while handling %s %s", request.code, request.opt.uri_path)
            return _diagnostic(Code.INTERNAL_SERVER_ERROR, "internal error (see the registry log)")

    async def _render(self, request: aiocoap.Message) -> aiocoap.Message:
        path = request.opt.uri_path
        if len(path) > 1:
            raise BadInput(Code.NOT_FOUND, "no resource /profiles/%s" % "/".join(path))
        node = path[0] if path else None
        if node is not None and not self.schema.NODE_NAME_RE.match(node):
            raise BadInput(Code.BAD_REQUEST, "invalid node name %r in the path: must match %s"
                           % (node, self.schema.NODE_NAME_RE.pattern))
        if request.code == Code.GET:
            return self._get(request, node)
        if node is None:
            raise BadInput(Code.METHOD_NOT_ALLOWED, "%s is not allowed on /profiles (GET only)" % request.code)
        if request.code == Code.PUT:
            return await self._put(request, node)
        if request.code == Code.DELETE:
            return await self._delete(request, node)
        raise BadInput(Code.METHOD_NOT_ALLOWED, "%s is not allowed on /profiles/%s (GET, PUT, DELETE)"
                       % (request.code, node))

    # -- access control ---------------------------------------------------

    def _check_write(self, request: aiocoap.Message, node: str) -> None:
        if not self.settings.security:
            return
        identity = authenticated_identity(request)
        if identity is None:
            raise BadInput(Code.UNAUTHORIZED, "writing /profiles/%s needs OSCORE as node %r" % (node, node))
        if identity != node:
            LOG.warning("refused write to /profiles/%s by OSCORE identity %r", node, identity)
            raise BadInput(Code.UNAUTHORIZED, "OSCORE identity %r may not write /profiles/%s" % (identity, node))

    def _check_read(self, request: aiocoap.Message, node: t.Optional[str]) -> None:
        if not self.settings.security or not self.settings.managers:
            return
        identity = authenticated_identity(request)
        if identity in self.settings.managers:
            return
        if node is None:
            raise BadInput(Code.UNAUTHORIZED, "reading /profiles needs OSCORE as one of the managers")
        # A worker may read back its own profile: the reporter compares it
        # before writing, so an unchanged profile costs no write (and no
        # notification to every observer). Other nodes' profiles stay hidden.
        if identity == node:
            return
        if identity is not None:
            LOG.warning("refused read of /profiles/%s by OSCORE identity %r", node, identity)
        raise BadInput(Code.UNAUTHORIZED, "reading /profiles/%s needs OSCORE as one of the managers or as node %r"
                       % (node, node))

    # -- GET ------------------------------------------------------------------

    def _get(self, request: aiocoap.Message, node: t.Optional[str]) -> aiocoap.Message:
        if request.payload:
            raise BadInput(Code.BAD_REQUEST, "GET takes no payload")
        self._check_read(request, node)
        accept = request.opt.accept
        if accept is None:
            accept = CF_JSON
        if accept not in (CF_JSON, CF_CBOR) or (accept == CF_CBOR and cbor2 is None):
            raise BadInput(Code.NOT_ACCEPTABLE, "Accept %d: profiles are served as JSON (50) or CBOR (60)"
                           % int(accept))
        if node is None:
            payload, etag = self.registry.collection(accept)
        else:
            entry = self.registry.get(node)
            if entry is None:
                raise BadInput(Code.NOT_FOUND, "no live profile for node %r" % node)
            etag = entry.etag
            payload = entry.body if accept == CF_JSON else cbor2.dumps(entry.value, canonical=True)
        if request.opt.etags and etag in request.opt.etags:
            return aiocoap.Message(code=Code.VALID, etag=etag)
        response = aiocoap.Message(code=Code.CONTENT, payload=payload, content_format=accept, etag=etag)
        return self._cut_block2(request, response)

    @staticmethod
    def _cut_block2(request: aiocoap.Message, response: aiocoap.Message) -> aiocoap.Message:
        block2 = request.opt.block2
        if block2 is None:
            if len(response.payload) <= request.remote.maximum_payload_size:
                return response
            block2 = BlockOption.BlockwiseTuple(0, False, request.remote.maximum_block_size_exp)
        elif block2.block_number == 0 and len(response.payload) <= block2.size:
            return response
        if block2.start >= len(response.payload) and block2.block_number != 0:
            raise BadInput(Code.BAD_REQUEST, "Block2 %d is beyond the end of the representation" % block2.block_number)
        return response._extract_block(block2.block_number, block2.size_exponent,
                                       request.remote.maximum_payload_size)

    # -- PUT ------------------------------------------------------------------

    def _lifetime(self, request: aiocoap.Message) -> int:
        lifetime = self.settings.default_lifetime
        seen = set()
        for item in request.opt.uri_query:
            name, sep, value = item.partition("=")
            if name in seen:
                raise BadInput(Code.BAD_REQUEST, "query parameter %r given twice" % name)
            seen.add(name)
            if name != "lt":
                raise BadInput(Code.BAD_REQUEST, "unknown query parameter %r (only lt=SECONDS)" % name)
            if not sep or not value.isascii() or not value.isdigit() or len(value) > 10:
                raise BadInput(Code.BAD_REQUEST, "lt must be a whole number of seconds, got %r" % value)
            lifetime = int(value)
            if not 1 <= lifetime <= self.settings.max_lifetime:
                raise BadInput(Code.BAD_REQUEST, "lt must be from 1 to %d seconds, got %d"
                               % (self.settings.max_lifetime, lifetime))
        return lifetime

    def _check_content_format(self, content_format: t.Optional[int]) -> None:
        if content_format not in (CF_JSON, CF_CBOR):
            raise BadInput(Code.UNSUPPORTED_CONTENT_FORMAT,
                           "Content-Format %s is not accepted: send JSON (50) or CBOR (60)"
                           % ("none" if content_format is None else int(content_format)))

    def _too_large(self, size: int) -> BadInput:
        return BadInput(Code.REQUEST_ENTITY_TOO_LARGE, "profile of %d bytes exceeds the limit of %d bytes"
                        % (size, self.settings.max_body), size1=self.settings.max_body)

    def _expire_uploads(self) -> None:
        limit = time.monotonic() - BLOCK1_TIMEOUT
        for key in [k for k, upload in self._uploads.items() if upload.started < limit]:
            self._drop_upload(key)

    def _drop_upload(self, key: t.Any) -> None:
        upload = self._uploads.pop(key, None)
        if upload is not None:
            self._spooled -= len(upload.payload)

    def _assemble(self, request: aiocoap.Message, node: str) -> t.Optional[t.Tuple[bytes, t.Optional[int]]]:
        """The complete body, or None when more blocks are expected (2.31 sent)."""
        if request.opt.size1 is not None and request.opt.size1 > self.settings.max_body:
            raise self._too_large(request.opt.size1)
        block1 = request.opt.block1
        if block1 is None:
            if len(request.payload) > self.settings.max_body:
                raise self._too_large(len(request.payload))
            return request.payload, request.opt.content_format
        key = (request.remote.blockwise_key, node, tuple(request.opt.uri_query))
        self._expire_uploads()
        if block1.more and len(request.payload) != block1.size:
            self._drop_upload(key)
            raise BadInput(Code.BAD_REQUEST, "Block1 payload of %d bytes does not match the block size %d"
                           % (len(request.payload), block1.size))
        if block1.block_number == 0:
            self._drop_upload(key)
            self._check_content_format(request.opt.content_format)
            upload = _Upload(b"", request.opt.content_format)
        else:
            upload = self._uploads.get(key)
            if upload is None or block1.start != len(upload.payload):
                if upload is not None and block1.start + len(request.payload) == len(upload.payload) \
                        and upload.payload.endswith(request.payload) and block1.more:
                    # a repeated block (its acknowledgement was lost): acknowledge again
                    return None
                self._drop_upload(key)
                raise BadInput(Code.REQUEST_ENTITY_INCOMPLETE, "Block1 %d does not continue an upload in progress"
                               % block1.block_number)
            self._uploads.pop(key)
            self._spooled -= len(upload.payload)
        total = len(upload.payload) + len(request.payload)
        if total > self.settings.max_body:
            raise self._too_large(total)
        if block1.more and self._spooled + total > BLOCK1_SPOOL_LIMIT:
            raise BadInput(Code.SERVICE_UNAVAILABLE, "too many block-wise uploads in progress, retry later",
                           max_age=5)
        upload.payload += request.payload
        if block1.more:
            self._uploads[key] = upload
            self._spooled += len(upload.payload)
            return None
        return upload.payload, upload.content_format

    async def _put(self, request: aiocoap.Message, node: str) -> aiocoap.Message:
        self._check_write(request, node)
        lifetime = self._lifetime(request)
        block1 = request.opt.block1
        assembled = self._assemble(request, node)
        if assembled is None:
            return aiocoap.Message(code=Code.CONTINUE, block1=block1)
        body, content_format = assembled
        self._check_content_format(content_format)
        value = decode_body(body, content_format)
        try:
            self.schema.validate_profile(value)
        except self.schema.ProfileError as exc:
            raise BadInput(Code.BAD_REQUEST, "invalid profile: %s" % exc) from None
        if value["node"] != node:
            raise BadInput(Code.BAD_REQUEST, "profile node %r does not match the path /profiles/%s"
                           % (value["node"], node))
        try:
            canonical = canonical_json(value)
        except (ValueError, TypeError) as exc:  # e.g. a CBOR bignum beyond int-to-text limits
            raise BadInput(Code.BAD_REQUEST, "invalid profile: %s" % exc) from None
        try:
            created, entry = await self.registry.put(node, value, canonical, lifetime)
        except Exception as exc:
            raise BadInput(Code.INTERNAL_SERVER_ERROR, "profile not stored: %s" % exc) from None
        response = aiocoap.Message(code=Code.CREATED if created else Code.CHANGED, etag=entry.etag)
        if block1 is not None:
            response.opt.block1 = block1
        if created:
            response.opt.location_path = ("profiles", node)
        return response

    # -- DELETE -------------------------------------------------------------------

    async def _delete(self, request: aiocoap.Message, node: str) -> aiocoap.Message:
        self._check_write(request, node)
        if request.payload:
            raise BadInput(Code.BAD_REQUEST, "DELETE takes no payload")
        if request.opt.uri_query:
            raise BadInput(Code.BAD_REQUEST, "DELETE takes no query parameters")
        try:
            await self.registry.delete(node)
        except Exception as exc:
            raise BadInput(Code.INTERNAL_SERVER_ERROR, "profile not deleted: %s" % exc) from None
        return aiocoap.Message(code=Code.DELETED)


class CollectionResource(aiocoap.resource.ObservableResource):
    """``/profiles`` itself: a Site hands a path-capable child only the paths
    below it, so the collection is this thin front for the same resource."""

    rt = "nanoedge.profiles"
    ct = "50 60"

    def __init__(self, profiles: ProfilesResource) -> None:
        super().__init__()
        self.profiles = profiles

    async def needs_blockwise_assembly(self, request: aiocoap.Message) -> bool:
        return False

    async def add_observation(self, request: aiocoap.Message, serverobservation: t.Any) -> None:
        await self.profiles.add_observation(request, serverobservation)

    async def render(self, request: aiocoap.Message) -> aiocoap.Message:
        return await self.profiles.render(request)


class WellKnownCore(aiocoap.resource.WKCResource):
    """RFC 6690 link format, with an ETag like every other representation."""

    async def render_get(self, request: aiocoap.Message) -> aiocoap.Message:
        response = await super().render_get(request)
        aiocoap.resource.hashing_etag(request, response)
        return response


# --------------------------------------------------------------------------
# Server setup.

class RegistrySite(aiocoap.resource.Site):
    """The root. Requests below /profiles are the hot path: they reach their
    resource with the path stripped in place, where Site would deep-copy all
    options of every request first."""

    def __init__(self, profiles: ProfilesResource) -> None:
        super().__init__()
        self.profiles = profiles
        self.collection = CollectionResource(profiles)
        self.add_resource([".well-known", "core"], WellKnownCore(self.get_resources_as_linkheader, impl_info=None))
        self.add_resource(["profiles"], self.collection)
        self.add_resource(["profiles"], profiles)

    async def render_to_pipe(self, pipe: t.Any) -> None:
        request = pipe.request
        path = request.opt.uri_path
        if path and path[0] == "profiles" and request.opt.uri_path_abbrev is None:
            rest = path[1:]
            if rest == ("",):
                rest = ()
            request.opt.uri_path = rest
            target = self.profiles if rest else self.collection
            return await target.render_to_pipe(pipe)
        return await super().render_to_pipe(pipe)


def build_site(resource: ProfilesResource) -> aiocoap.resource.Site:
    return RegistrySite(resource)


def load_credentials(directory: str) -> t.Tuple[t.Any, t.List[str]]:
    """One OSCORE security context per peer: DIR/<name>/settings.json (+ secret.json)."""
    from aiocoap.credentials import CredentialsMap

    base = Path(directory)
    if not base.is_dir():
        raise SystemExit("%s: --oscore-contexts %s is not a directory" % (PROG, directory))
    entries = {}
    names = []
    for child in sorted(base.iterdir()):
        if child.is_dir() and ((child / "settings.json").is_file() or (child / "secret.json").is_file()):
            entries[":" + child.name] = {"oscore": {"basedir": str(child) + "/"}}
            names.append(child.name)
    if not names:
        raise SystemExit("%s: no OSCORE security context (NAME/settings.json) under %s" % (PROG, directory))
    credentials = CredentialsMap()
    try:
        credentials.load_from_dict(entries)
    except Exception as exc:
        raise SystemExit("%s: cannot load OSCORE contexts from %s: %s" % (PROG, directory, exc)) from None
    return credentials, names


def tolerate_undecodable_datagrams() -> None:
    """aiocoap 0.4.17 lets e.g. invalid UTF-8 in a Uri-Path escape its
    datagram handler as UnicodeDecodeError (a traceback per datagram) instead
    of its own UnparsableMessage, which it drops quietly: turn the one into
    the other where the udp6 transport decodes."""
    from aiocoap import error
    from aiocoap.transports import udp6

    base = aiocoap.Message

    class TolerantMessage(base):  # type: ignore[misc,valid-type]
        @classmethod
        def decode(cls, rawdata: bytes, remote: t.Any = None) -> aiocoap.Message:
            try:
                return base.decode(rawdata, remote)
            except error.UnparsableMessage:
                raise
            except Exception as exc:
                raise error.UnparsableMessage("undecodable datagram: %s" % exc) from None

    if getattr(udp6, "Message", None) is base:
        udp6.Message = TolerantMessage


def server_sockets(context: aiocoap.Context) -> t.List[t.Any]:
    sockets = []
    for interface in context.request_interfaces:
        message_interface = getattr(getattr(interface, "token_interface", None), "message_interface", None)
        transport = getattr(message_interface, "transport", None)
        if transport is not None:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sockets.append(sock)
    return sockets


def enlarge_receive_buffer(sock: t.Any, size: int) -> int:
    """Set SO_RCVBUF; as root, SO_RCVBUFFORCE passes net.core.rmem_max."""
    force = getattr(socket, "SO_RCVBUFFORCE", None)
    try:
        if force is None:
            raise PermissionError
        sock.setsockopt(socket.SOL_SOCKET, force, size)
    except PermissionError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    # Linux reports twice the requested size (bookkeeping overhead).
    return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))


async def serve(args: argparse.Namespace) -> None:
    schema = load_profile_schema(args.profile_schema)
    store = Store(args.db)
    committer = Committer(store)
    committer.start()
    registry = Registry(store, committer)
    registry.load()

    security = args.security == "on"
    managers = frozenset(m for m in (args.managers or "").split(",") if m)
    settings = Settings(args.default_lifetime, args.max_lifetime, args.max_body, security, managers)
    resource = ProfilesResource(registry, schema, settings)
    site: t.Any = build_site(resource)

    tolerate_undecodable_datagrams()
    bind = (args.bind, args.port)
    if security:
        from aiocoap.oscore_sitewrapper import OscoreSiteWrapper

        credentials, names = load_credentials(args.oscore_contexts)
        site = OscoreSiteWrapper(site, credentials)
        transports = ["oscore", "udp6"]
        LOG.info("OSCORE on: %d security context(s) (%s); GETs %s", len(names), ", ".join(names),
                 "restricted to " + ", ".join(sorted(managers)) if managers else "open")
    else:
        transports = ["udp6"]
        credentials = None
    try:
        context = await aiocoap.Context.create_server_context(
            site, bind, server_credentials=credentials, transports=transports)
    except aiocoap.error.ResolutionError:
        if args.bind != "::":
            raise
        # Where IPv6 is switched off (Docker's default networks), "::" is not
        # routable; the dual-stack socket still serves IPv4 via 0.0.0.0.
        LOG.warning("IPv6 is not available here, listening on IPv4 only")
        context = await aiocoap.Context.create_server_context(
            site, ("0.0.0.0", args.port), server_credentials=credentials, transports=transports)

    for sock in server_sockets(context):
        effective = enlarge_receive_buffer(sock, args.rcvbuf)
        if effective < args.rcvbuf:
            LOG.warning("SO_RCVBUF is %d bytes, asked for %d: raise net.core.rmem_max", effective, args.rcvbuf)
        host, port = sock.getsockname()[:2]
        LOG.info("ready on udp [%s]:%d (SO_RCVBUF %d bytes, db %s)", host, port, effective, args.db)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    async def sweeper() -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            registry.expire_due()
            resource._expire_uploads()

    sweep = loop.create_task(sweeper(), name="registry-sweeper")
    await stop.wait()
    LOG.info("shutting down")
    sweep.cancel()
    await context.shutdown()
    await committer.stop()
    store.close()


class _ArgumentParser(argparse.ArgumentParser):
    """@FILE holds one argument per line; blank lines and # comments are skipped."""

    def convert_arg_line_to_args(self, arg_line: str) -> t.List[str]:
        line = arg_line.strip()
        return [] if not line or line.startswith("#") else [line]


def parse_args(argv: t.Optional[t.Sequence[str]] = None) -> argparse.Namespace:
    parser = _ArgumentParser(
        prog="nanoedge_registry.py", fromfile_prefix_chars="@",
        description="nanoedge.core CoAP profile registry (PUT/GET/DELETE /profiles/{node}, GET /profiles)."
                    " Options can also come from a file, one per line: @FILE.")
    parser.add_argument("--bind", default="::", help="address to listen on (default: all, IPv6 and IPv4)")
    parser.add_argument("--port", type=int, default=5683, help="UDP port (default 5683; 0 picks a free one)")
    parser.add_argument("--db", required=True, help="SQLite database file (created when missing)")
    parser.add_argument("--default-lifetime", type=int, default=300, metavar="SECONDS",
                        help="lease when a PUT has no ?lt= (default 300)")
    parser.add_argument("--max-lifetime", type=int, default=86400, metavar="SECONDS",
                        help="largest accepted ?lt= (default 86400)")
    parser.add_argument("--max-body", type=int, default=262144, metavar="BYTES",
                        help="largest accepted profile, also for block-wise uploads (default 262144)")
    parser.add_argument("--rcvbuf", type=int, default=4 * 1024 * 1024, metavar="BYTES",
                        help="UDP receive buffer of the server socket (default 4 MiB)")
    parser.add_argument("--security", choices=("on", "off"), default=None,
                        help="OSCORE: on requires --oscore-contexts (default: on when that is given)")
    parser.add_argument("--oscore-contexts", metavar="DIR",
                        help="one OSCORE security context per peer: DIR/<node or manager>/settings.json")
    parser.add_argument("--managers", default="", metavar="ID[,ID...]",
                        help="with security on, only these OSCORE identities may GET /profiles and any"
                             " /profiles/{node}; an authenticated worker may still GET its own profile"
                             " (default: GETs open)")
    parser.add_argument("--profile-schema", metavar="PATH", help="path of _profile.py (default: found automatically)")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    args = parser.parse_args(argv)
    if args.security is None:
        args.security = "on" if args.oscore_contexts else "off"
    if args.security == "on" and not args.oscore_contexts:
        parser.error("--security on needs --oscore-contexts DIR")
    if args.default_lifetime < 1 or args.max_lifetime < 1 or args.default_lifetime > args.max_lifetime:
        parser.error("need 1 <= --default-lifetime <= --max-lifetime")
    if args.max_body < 1:
        parser.error("--max-body must be positive")
    if not 0 <= args.port <= 65535:
        parser.error("--port must be from 0 to 65535")
    return args


def main(argv: t.Optional[t.Sequence[str]] = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # aiocoap logs every malformed datagram at warning level; a fuzzing or
    # misconfigured peer must not flood the journal.
    logging.getLogger("coap-server").setLevel(max(logging.ERROR, logging.getLogger().level))
    os.makedirs(os.path.dirname(os.path.abspath(args.db)), exist_ok=True)
    try:
        asyncio.run(serve(args))
    except (OSError, aiocoap.error.Error) as exc:
        LOG.error("cannot serve on [%s]:%d: %s", args.bind, args.port, exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
