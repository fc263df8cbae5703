# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unfinished block-wise uploads with an injected clock: the caps on count
and memory, per peer and in all, their 5.03 answers, and expiry."""

from __future__ import annotations

import pytest
from aiocoap.numbers.codes import Code

from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.codec import BadInput
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.limits import UPLOAD_OVERHEAD, Limits
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.uploads import UploadSpool

BLOCK = b"x" * 1024
LIMITS = Limits(max_uploads=3, max_uploads_per_peer=2, upload_memory=3 * (UPLOAD_OVERHEAD + 2048),
                upload_memory_per_peer=2 * (UPLOAD_OVERHEAD + 2048))


class Clock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def clock():
    return Clock()


@pytest.fixture()
def spool(clock):
    return UploadSpool(LIMITS, timeout=93.0, clock=clock)


def refusal(action) -> BadInput:
    with pytest.raises(BadInput) as info:
        action()
    assert info.value.code == Code.SERVICE_UNAVAILABLE
    return info.value


def test_an_upload_grows_and_finishes_counting_its_overhead(spool):
    spool.start("k", 50, "a", BLOCK)
    assert (len(spool), spool.memory, spool.held_by("a")) == (1, UPLOAD_OVERHEAD + 1024, (1, UPLOAD_OVERHEAD + 1024))
    spool.extend("k", BLOCK)
    assert spool.memory == UPLOAD_OVERHEAD + 2048
    upload = spool.finish("k")
    assert (bytes(upload.payload), upload.content_format, upload.peer) == (BLOCK * 2, 50, "a")
    assert (len(spool), spool.memory, spool.held_by("a")) == (0, 0, (0, 0))


def test_uploads_per_peer_are_capped_until_the_oldest_expires(spool, clock):
    spool.start("k1", 50, "a", BLOCK)
    clock.now += 10
    spool.start("k2", 50, "a", BLOCK)
    refused = refusal(lambda: spool.start("k3", 50, "a", BLOCK))
    assert (str(refused), refused.options) == (
        "2 block-wise uploads in progress from a (at most 2 per peer), retry in 83 s", {"max_age": 83})
    spool.start("k4", 50, "b", BLOCK)  # another peer still may
    clock.now += 83
    spool.expire()  # k1 started 93 s ago
    assert (spool.get("k1"), spool.held_by("a")[0]) == (None, 1)
    spool.start("k3", 50, "a", BLOCK)


def test_uploads_in_all_are_capped(spool, clock):
    for key, peer in (("k1", "a"), ("k2", "b"), ("k3", "c")):
        spool.start(key, 50, peer, BLOCK)
    refused = refusal(lambda: spool.start("k4", 50, "d", BLOCK))
    assert str(refused) == "3 block-wise uploads in progress (at most 3), retry in 93 s"
    spool.drop("k2")
    spool.start("k4", 50, "d", BLOCK)


def test_memory_per_peer_is_capped_and_the_growing_upload_dropped(spool):
    spool.start("k1", 50, "a", BLOCK * 2)
    spool.start("k2", 50, "a", BLOCK)
    refused = refusal(lambda: spool.extend("k2", BLOCK * 2))
    assert str(refused) == ("block-wise uploads in progress from a would hold %d bytes (at most %d per peer),"
                            " retry in 93 s" % (2 * UPLOAD_OVERHEAD + 5120, LIMITS.upload_memory_per_peer))
    assert spool.get("k2") is None and spool.held_by("a") == (1, UPLOAD_OVERHEAD + 2048)


def test_memory_in_all_is_capped(clock):
    spool = UploadSpool(LIMITS._replace(upload_memory=2 * UPLOAD_OVERHEAD + 3072), clock=clock)
    spool.start("k1", 50, "a", BLOCK * 2)
    refused = refusal(lambda: spool.start("k2", 50, "b", BLOCK * 2))
    assert str(refused) == ("block-wise uploads in progress would hold %d bytes (at most %d), retry in 93 s"
                            % (2 * UPLOAD_OVERHEAD + 4096, 2 * UPLOAD_OVERHEAD + 3072))
    assert (len(spool), spool.held_by("b")) == (1, (0, 0))


def test_expiry_looks_at_the_oldest_only_and_keeps_growing_uploads_in_place(spool, clock):
    spool.start("old", 50, "a", BLOCK)
    clock.now += 50
    spool.start("young", 50, "b", BLOCK)
    spool.extend("old", BLOCK)  # growing does not make an upload younger
    clock.now += 43
    spool.expire()
    assert (spool.get("old"), spool.get("young") is not None) == (None, True)
    clock.now += 50
    spool.expire()
    assert (len(spool), spool.memory) == (0, 0)
