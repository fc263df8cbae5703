# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The registry's state: live profiles, their leases and the collection."""

from __future__ import annotations

import heapq
import json
import time
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._canonical_json import canonical_json
from ansible_collections.nanoedge.core.plugins.module_utils._coap import CF_CBOR
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server import LOG
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.aiocoap_dep import cbor2
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.codec import etag_of
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.store import Committer, Store


class Entry:
    """One live profile: its canonical JSON, ETag and lease end; the decoded
    value only when a CBOR answer needs it."""

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


Clock = t.Callable[[], float]


class Registry:
    """The live profiles by node, each with a lease: a PUT stores a profile
    until ``lt`` seconds after it, expired ones go at the next look (a heap of
    lease ends, so a look costs nothing when none is due). ``clock`` gives the
    wall-clock time that leases are measured in (the database keeps them
    across restarts)."""

    def __init__(self, store: Store, committer: Committer, clock: Clock = time.time) -> None:
        self.store = store
        self.committer = committer
        self.clock = clock
        self.entries: t.Dict[str, Entry] = {}
        self._expiry_heap: t.List[t.Tuple[float, str]] = []
        self.version = 0
        self._collection_cache: t.Dict[t.Tuple[int, int], t.Tuple[bytes, bytes]] = {}
        self.listeners: t.List[t.Callable[[str], None]] = []

    def load(self) -> None:
        live, expired = self.store.load(self.clock())
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
            self._changed(node)

    def get(self, node: str) -> t.Optional[Entry]:
        self.expire_due()
        return self.entries.get(node)

    async def put(self, node: str, value: t.Any, body: bytes, lifetime: int) -> t.Tuple[bool, Entry]:
        """Store ``body`` (the canonical JSON of ``value``) once it is durable; (created, entry)."""
        now = self.clock()
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
        """(payload, ETag) of ``/profiles``, kept until the next change. The
        canonical JSON of the object node -> profile is assembled from the
        stored canonical bodies rather than encoding every profile again."""
        self.expire_due()
        key = (self.version, content_format)
        cached = self._collection_cache.get(key)
        if cached is not None:
            return cached
        nodes = sorted(self.entries)
        canonical = b"{" + b",".join(
            canonical_json(node) + b":" + self.entries[node].body for node in nodes
        ) + b"}"
        etag = etag_of(canonical)
        if content_format == CF_CBOR:
            payload = cbor2.dumps({node: self.entries[node].value for node in nodes}, canonical=True)
        else:
            payload = canonical
        self._collection_cache[key] = (payload, etag)
        return payload, etag
