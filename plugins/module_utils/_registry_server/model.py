# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The registry's state: live profiles, their leases and the collection."""

from __future__ import annotations

import heapq
import json
import time
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._canonical_json import canonical_json
from ansible_collections.nanoedge.core.plugins.module_utils._coap import CF_CBOR, CF_JSON
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server import LOG
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.aiocoap_dep import cbor2
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.codec import etag_of
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.store import Committer, Store


class Entry:
    """One live profile: its canonical JSON, ETag and lease end; the decoded
    value and the canonical CBOR only once a CBOR answer needs them."""

    __slots__ = ("body", "etag", "expires_at", "_value", "_cbor")

    def __init__(self, body: bytes, etag: bytes, expires_at: float, value: t.Any = None) -> None:
        self.body = body
        self.etag = etag
        self.expires_at = expires_at
        self._value = value
        self._cbor: t.Optional[bytes] = None

    @property
    def value(self) -> t.Any:
        if self._value is None:
            self._value = json.loads(self.body)
        return self._value

    @property
    def cbor(self) -> bytes:
        """The canonical CBOR of the profile, encoded once."""
        if self._cbor is None:
            self._cbor = cbor2.dumps(self.value, canonical=True)
        return self._cbor


class RegistryFull(Exception):
    """A new node beyond the cap on stored profiles; ``retry_after`` is the
    seconds until the next lease ends (when there may be room)."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _cbor_map_header(length: int) -> bytes:
    """The head of a CBOR map of ``length`` pairs (RFC 8949, major type 5, shortest form)."""
    if length < 24:
        return bytes([0xA0 | length])
    for marker, size in ((0xB8, 1), (0xB9, 2), (0xBA, 4), (0xBB, 8)):
        if length < 1 << (8 * size):
            return bytes([marker]) + length.to_bytes(size, "big")
    raise ValueError("map of %d pairs" % length)


def _canonical_cbor_order(encoded_key: bytes) -> t.Tuple[int, bytes]:
    # Canonical CBOR (RFC 7049, section 3.9, as cbor2's canonical=True does):
    # shorter encoded keys first, then bytewise.
    return len(encoded_key), encoded_key


Clock = t.Callable[[], float]


class Registry:
    """The live profiles by node, each with a lease: a PUT stores a profile
    until ``lt`` seconds after it, expired ones go at the next look (a heap of
    lease ends, so a look costs nothing when none is due). ``clock`` gives the
    wall-clock time that leases are measured in (the database keeps them
    across restarts)."""

    def __init__(self, store: Store, committer: Committer, clock: Clock = time.time,
                 max_profiles: t.Optional[int] = None) -> None:
        self.store = store
        self.committer = committer
        self.clock = clock
        self.max_profiles = max_profiles
        self.entries: t.Dict[str, Entry] = {}
        # new nodes whose write is being committed: they count against the cap already
        self._adding: t.Set[str] = set()
        self._expiry_heap: t.List[t.Tuple[float, str]] = []
        self.version = 0
        self._collection_cache: t.Dict[int, t.Tuple[bytes, bytes]] = {}
        self._collection_version = -1
        # Each node's key as it appears in either form, and the order of the
        # nodes in either form; the order only changes when a node comes or goes.
        self._json_keys: t.Dict[str, bytes] = {}
        self._cbor_keys: t.Dict[str, bytes] = {}
        self._orders: t.Dict[int, t.List[str]] = {}
        self.listeners: t.List[t.Callable[[str], None]] = []
        # Nodes the failure detector confirmed lost: their profiles are kept
        # but left out of every answer until they beat again.
        self.hidden: t.Set[str] = set()

    def load(self) -> None:
        live, expired = self.store.load(self.clock())
        for node in expired:
            LOG.info("expired node=%s (lease ran out while the registry was down)", node)
        for node, body, etag, expires_at in live:
            self.entries[node] = Entry(body, etag, expires_at)
            heapq.heappush(self._expiry_heap, (expires_at, node))
        LOG.info("loaded %d live profile(s) from %s", len(live), self.store.path)

    def _changed(self, node: str, membership: bool = False) -> None:
        self.version += 1
        if membership:
            self._orders.clear()
            self._json_keys.pop(node, None)
            self._cbor_keys.pop(node, None)
        for listener in self.listeners:
            listener(node)

    def expire_due(self, now: t.Optional[float] = None) -> None:
        now = self.clock() if now is None else now
        heap = self._expiry_heap
        while heap and heap[0][0] <= now:
            expires_at, node = heapq.heappop(heap)
            entry = self.entries.get(node)
            if entry is None or entry.expires_at != expires_at:
                continue  # refreshed or deleted since this heap item was pushed
            del self.entries[node]
            LOG.info("expired node=%s lease ended %.3f s ago", node, now - expires_at)
            self.committer.enqueue(("expire", node, expires_at))
            self._changed(node, membership=True)

    def get(self, node: str) -> t.Optional[Entry]:
        self.expire_due()
        return None if node in self.hidden else self.entries.get(node)

    def hide(self, node: str, hidden: bool = True) -> None:
        """Leave ``node``'s profile out of the answers (lost) or show it again (back); observers hear of it."""
        if hidden == (node in self.hidden):
            return
        if hidden:
            self.hidden.add(node)
        else:
            self.hidden.discard(node)
        if node in self.entries:
            self._changed(node, membership=True)

    async def put(self, node: str, value: t.Any, body: bytes, lifetime: int) -> t.Tuple[bool, Entry]:
        """Store ``body`` (the canonical JSON of ``value``) once it is durable; (created, entry)."""
        now = self.clock()
        etag = etag_of(body)
        expires_at = now + lifetime
        adding = node not in self.entries and node not in self._adding
        if adding:
            self._check_room(node, now)
            self._adding.add(node)
        try:
            await self.committer.commit(("put", node, body, etag, expires_at, now))
        finally:
            if adding:
                self._adding.discard(node)
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
            self._changed(node, membership=created)
        return created, entry

    def _check_room(self, node: str, now: float) -> None:
        if self.max_profiles is None:
            return
        self.expire_due(now)
        held = len(self.entries) + len(self._adding)
        if held < self.max_profiles:
            return
        # a hint only: the first lease in the heap may have been renewed since
        retry_after = self._expiry_heap[0][0] - now if self._expiry_heap else 1.0
        raise RegistryFull("%d profiles are stored (at most %d): node %r not added"
                           % (held, self.max_profiles, node), retry_after)

    async def delete(self, node: str) -> bool:
        await self.committer.commit(("delete", node))
        self.expire_due()
        existed = self.entries.pop(node, None) is not None
        if existed:
            LOG.info("deleted node=%s", node)
            self._changed(node, membership=True)
        return existed

    def collection(self, content_format: int) -> t.Tuple[bytes, bytes]:
        """(payload, ETag) of ``/profiles``, kept until the next change. Both
        forms are assembled from each profile's own encoding (kept with the
        profile), so a change costs one profile's encoding and a join, never
        encoding the whole collection on the event loop."""
        self.expire_due()
        cached = self._collection_cache.get(content_format)
        if cached is not None and self._collection_version == self.version:
            return cached
        if self._collection_version != self.version:
            self._collection_cache.clear()
            self._collection_version = self.version
        entries = self.entries
        if CF_JSON not in self._collection_cache:
            keys = self._keys(CF_JSON)
            canonical = b"{" + b",".join(keys[node] + entries[node].body for node in self._order(CF_JSON)) + b"}"
            self._collection_cache[CF_JSON] = (canonical, etag_of(canonical))
        etag = self._collection_cache[CF_JSON][1]
        if content_format == CF_CBOR:
            keys = self._keys(CF_CBOR)
            payload = _cbor_map_header(len(self._order(CF_CBOR))) + b"".join(
                keys[node] + entries[node].cbor for node in self._order(CF_CBOR))
            self._collection_cache[CF_CBOR] = (payload, etag)
        return self._collection_cache[content_format]

    def collection_etag(self) -> str:
        """The ETag of ``/profiles`` as JSON, in hex (both forms share it)."""
        return self.collection(CF_JSON)[1].hex()

    def _keys(self, content_format: int) -> t.Dict[str, bytes]:
        """Node -> its encoded key in ``content_format`` (for JSON with the colon), for every live node."""
        keys = self._cbor_keys if content_format == CF_CBOR else self._json_keys
        if len(keys) != len(self.entries):  # nodes gone are dropped from keys, so only new ones are missing
            for node in self.entries.keys() - keys.keys():
                keys[node] = cbor2.dumps(node) if content_format == CF_CBOR else canonical_json(node) + b":"
        return keys

    def _order(self, content_format: int) -> t.List[str]:
        order = self._orders.get(content_format)
        if order is None:
            shown = [node for node in self.entries if node not in self.hidden] if self.hidden else list(self.entries)
            if content_format == CF_CBOR:
                keys = self._cbor_keys
                order = sorted(shown, key=lambda node: _canonical_cbor_order(keys[node]))
            else:
                order = sorted(shown)
            self._orders[content_format] = order
        return order
