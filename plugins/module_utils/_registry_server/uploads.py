# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unfinished block-wise uploads (RFC 7959 Block1) of the registry, bounded
in count and memory per peer and in all, and dropped when they take too long."""

from __future__ import annotations

import collections
import time
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.aiocoap_dep import Code
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.codec import BadInput
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.limits import (
    UPLOAD_OVERHEAD, Clock, Limits, max_age,
)

# RFC 7959 keeps a half-received body for about EXCHANGE_LIFETIME; this
# matches aiocoap's own spool (MAX_TRANSMIT_WAIT). Counted from the first block.
BLOCK1_TIMEOUT = 93.0

Key = t.Tuple[t.Any, ...]


class Upload:
    __slots__ = ("payload", "content_format", "started", "peer")

    def __init__(self, content_format: t.Optional[int], started: float, peer: str) -> None:
        self.payload = bytearray()
        self.content_format = content_format
        self.started = started
        self.peer = peer

    @property
    def charge(self) -> int:
        return UPLOAD_OVERHEAD + len(self.payload)


class UploadSpool:
    """The uploads in progress by key, oldest first (an upload keeps its place
    while it grows, so expiry only ever looks at the front)."""

    def __init__(self, limits: Limits, timeout: float = BLOCK1_TIMEOUT, clock: Clock = time.monotonic) -> None:
        self.limits = limits
        self.timeout = timeout
        self.clock = clock
        self._uploads: "collections.OrderedDict[Key, Upload]" = collections.OrderedDict()
        self.memory = 0
        self._by_peer: t.Dict[str, t.List[int]] = {}  # peer -> [count, memory]

    def __len__(self) -> int:
        return len(self._uploads)

    def held_by(self, peer: str) -> t.Tuple[int, int]:
        """(count, memory) of ``peer``'s uploads."""
        count, memory = self._by_peer.get(peer, (0, 0))
        return count, memory

    def expire(self) -> None:
        limit = self.clock() - self.timeout
        while self._uploads:
            key, upload = next(iter(self._uploads.items()))
            if upload.started > limit:
                return
            self.drop(key)

    def get(self, key: Key) -> t.Optional[Upload]:
        return self._uploads.get(key)

    def drop(self, key: Key) -> None:
        upload = self._uploads.pop(key, None)
        if upload is not None:
            self._account(upload.peer, -1, -upload.charge)

    def start(self, key: Key, content_format: t.Optional[int], peer: str, first: bytes) -> None:
        """Keep a new upload with its first block, or refuse it (5.03 with Max-Age)."""
        count, memory = self.held_by(peer)
        limits = self.limits
        if count >= limits.max_uploads_per_peer:
            raise self._busy("%d block-wise uploads in progress from %s (at most %d per peer)"
                             % (count, peer, limits.max_uploads_per_peer), peer)
        if len(self._uploads) >= limits.max_uploads:
            raise self._busy("%d block-wise uploads in progress (at most %d)"
                             % (len(self._uploads), limits.max_uploads), None)
        upload = Upload(content_format, self.clock(), peer)
        self._check_memory(peer, UPLOAD_OVERHEAD + len(first))
        upload.payload += first
        self._uploads[key] = upload
        self._account(peer, 1, upload.charge)

    def extend(self, key: Key, block: bytes) -> None:
        """Add a further block to the upload under ``key``; over a memory cap it is dropped (5.03)."""
        upload = self._uploads[key]
        try:
            self._check_memory(upload.peer, len(block))
        except BadInput:
            self.drop(key)
            raise
        upload.payload += block
        self._account(upload.peer, 0, len(block))

    def finish(self, key: Key) -> Upload:
        upload = self._uploads[key]
        self.drop(key)
        return upload

    def _check_memory(self, peer: str, more: int) -> None:
        held = self.held_by(peer)[1]
        if held + more > self.limits.upload_memory_per_peer:
            raise self._busy("block-wise uploads in progress from %s would hold %d bytes (at most %d per peer)"
                             % (peer, held + more, self.limits.upload_memory_per_peer), peer)
        if self.memory + more > self.limits.upload_memory:
            raise self._busy("block-wise uploads in progress would hold %d bytes (at most %d)"
                             % (self.memory + more, self.limits.upload_memory), None)

    def _busy(self, why: str, peer: t.Optional[str]) -> BadInput:
        """5.03 with Max-Age: until the oldest upload in the way (the peer's, or any) expires."""
        oldest = next((u.started for u in self._uploads.values() if peer is None or u.peer == peer), self.clock())
        wait = max_age(oldest + self.timeout - self.clock())
        return BadInput(Code.SERVICE_UNAVAILABLE, "%s, retry in %d s" % (why, wait), max_age=wait)

    def _account(self, peer: str, count: int, memory: int) -> None:
        self.memory += memory
        held = self._by_peer.setdefault(peer, [0, 0])
        held[0] += count
        held[1] += memory
        if held[0] <= 0:
            del self._by_peer[peer]
