# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The registry's state with an injected clock: leases, expiry, renewals,
change notifications and the collection /profiles."""

from __future__ import annotations

import asyncio
import logging
import typing as t

import cbor2
import pytest

from ansible_collections.nanoedge.core.plugins.module_utils._canonical_json import canonical_json
from ansible_collections.nanoedge.core.plugins.module_utils._coap import CF_CBOR, CF_JSON
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.codec import etag_of
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.model import Entry, Registry, RegistryFull
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.store import Committer, Store


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class World:
    """A registry on a real database in a tmp folder, driven in one event loop."""

    def __init__(self, path: str, clock: Clock) -> None:
        self.path = path
        self.clock = clock
        self.loop = asyncio.new_event_loop()
        self.store = Store(path)
        self.committer = Committer(self.store)
        self.loop.run_until_complete(self._start())
        self.registry = Registry(self.store, self.committer, clock)
        self.changes: t.List[str] = []
        self.registry.listeners.append(self.changes.append)

    async def _start(self) -> None:
        self.committer.start()

    def run(self, awaitable: t.Awaitable[t.Any]) -> t.Any:
        return self.loop.run_until_complete(awaitable)

    def put(self, node: str, value: t.Any, lifetime: int) -> t.Tuple[bool, Entry]:
        return self.run(self.registry.put(node, value, canonical_json(value), lifetime))

    def close(self) -> None:
        self.run(self.committer.stop())
        self.store.close()
        self.loop.close()


@pytest.fixture()
def clock():
    return Clock()


@pytest.fixture()
def world(tmp_path, clock):
    made = World(str(tmp_path / "registry.sqlite"), clock)
    yield made
    made.close()


def test_a_put_creates_then_renews(world, clock):
    created, entry = world.put("w1", {"node": "w1"}, 60)
    assert (created, entry.body, entry.etag, entry.expires_at) == (
        True, b'{"node":"w1"}', etag_of(b'{"node":"w1"}'), 1060.0)
    clock.now = 1030.0
    created, entry = world.put("w1", {"node": "w1"}, 60)
    assert (created, entry.expires_at) == (False, 1090.0)
    assert world.changes == ["w1"]  # the same profile again is no change
    world.put("w1", {"node": "w1", "x": 1}, 60)
    assert world.changes == ["w1", "w1"]


@pytest.mark.parametrize("now, live", [(1059.999, True), (1060.0, False), (5000.0, False)])
def test_the_lease_ends_lt_seconds_after_the_put(world, clock, now, live):
    world.put("w1", {"node": "w1"}, 60)
    clock.now = now
    assert (world.registry.get("w1") is not None) == live
    assert world.changes == (["w1"] if live else ["w1", "w1"])


def test_a_renewal_outlives_the_first_lease(world, clock):
    world.put("w1", {"node": "w1"}, 10)
    clock.now = 1005.0
    world.put("w1", {"node": "w1"}, 10)
    clock.now = 1010.0  # the first lease's heap item comes due and is skipped
    assert world.registry.get("w1") is not None
    clock.now = 1015.0
    assert world.registry.get("w1") is None


def test_expiry_is_written_to_the_database(world, clock, caplog):
    world.put("w1", {"node": "w1"}, 10)
    world.put("w2", {"node": "w2"}, 100)
    with caplog.at_level(logging.INFO, logger="nanoedge.registry"):
        world.registry.expire_due(now=1012.5)
    assert caplog.messages == ["expired node=w1 lease ended 2.500 s ago"]
    world.run(world.committer.commit(("delete", "nobody")))  # flush the queued expiry
    assert [row[0] for row in world.store.load(0.0)[0]] == ["w2"]


def test_delete(world):
    world.put("w1", {"node": "w1"}, 60)
    assert world.run(world.registry.delete("w1")) is True
    assert world.run(world.registry.delete("w1")) is False
    assert world.registry.get("w1") is None
    assert world.changes == ["w1", "w1"]


def test_load_after_a_restart_drops_what_expired_meanwhile(tmp_path, clock, caplog):
    first = World(str(tmp_path / "registry.sqlite"), clock)
    first.put("w1", {"node": "w1"}, 10)
    first.put("w2", {"node": "w2", "room": "f\u00fcr"}, 100)
    first.close()

    clock.now = 1050.0
    again = World(str(tmp_path / "registry.sqlite"), clock)
    try:
        with caplog.at_level(logging.INFO, logger="nanoedge.registry"):
            again.registry.load()
        assert caplog.messages == ["expired node=w1 (lease ran out while the registry was down)",
                                   "loaded 1 live profile(s) from %s" % again.path]
        entry = again.registry.get("w2")
        assert (entry.expires_at, entry.value) == (1100.0, {"node": "w2", "room": "f\u00fcr"})
    finally:
        again.close()


def test_the_collection_is_the_canonical_object_node_to_profile(world, clock):
    profiles = {"w2": {"node": "w2", "labels": {"room": "f\u00fcr"}}, "w1": {"node": "w1", "cpu": {"load1": 0.5}}}
    for node, value in profiles.items():
        world.put(node, value, 60)
    payload, etag = world.registry.collection(CF_JSON)
    assert payload == canonical_json(profiles)
    assert etag == etag_of(canonical_json(profiles))
    assert world.registry.collection(CF_CBOR) == (cbor2.dumps(profiles, canonical=True), etag)
    assert world.registry.collection(CF_JSON)[0] is payload  # kept until something changes

    clock.now = 1060.0
    assert world.registry.collection(CF_JSON) == (b"{}", etag_of(b"{}"))


def test_an_entry_decodes_its_body_only_when_asked():
    entry = Entry(b'{"node":"w1"}', b"12345678", 60.0)
    assert entry.value == {"node": "w1"}
    assert Entry(b"not json", b"12345678", 60.0, value={"node": "given"}).value == {"node": "given"}


@pytest.mark.parametrize("count", [0, 1, 23, 24, 300])
def test_the_cbor_collection_is_assembled_as_cbor2_encodes_it_canonically(world, count):
    # node names of different lengths: canonical CBOR puts shorter keys first
    profiles = {"n%d" % i: {"node": "n%d" % i, "cpu": {"load1": i / 7}} for i in range(count)}
    for node, value in profiles.items():
        world.put(node, value, 60)
    assert world.registry.collection(CF_CBOR)[0] == cbor2.dumps(profiles, canonical=True)


def test_a_change_encodes_one_profile_again_not_the_collection(world):
    for node in ("w1", "w2"):
        world.put(node, {"node": node}, 60)
    world.registry.collection(CF_CBOR)
    kept = world.registry.entries["w1"].cbor
    world.put("w2", {"node": "w2", "x": 1}, 60)
    payload, etag = world.registry.collection(CF_CBOR)
    assert world.registry.entries["w1"].cbor is kept
    assert cbor2.loads(payload) == {"w1": {"node": "w1"}, "w2": {"node": "w2", "x": 1}}
    assert etag == world.registry.collection(CF_JSON)[1]


@pytest.fixture()
def small(tmp_path, clock):
    made = World(str(tmp_path / "small.sqlite"), clock)
    made.registry.max_profiles = 2
    yield made
    made.close()


def test_a_new_node_beyond_the_cap_is_refused_updates_and_room_from_expiry_are_not(small, clock):
    small.put("w1", {"node": "w1"}, 30)
    small.put("w2", {"node": "w2"}, 60)
    with pytest.raises(RegistryFull) as info:
        small.put("w3", {"node": "w3"}, 60)
    assert (str(info.value), info.value.retry_after) == ("2 profiles are stored (at most 2): node 'w3' not added", 30.0)
    assert small.put("w1", {"node": "w1", "x": 1}, 60)[0] is False  # an update still works
    assert set(small.registry.entries) == {"w1", "w2"}
    clock.now = 1060.0  # w1's first lease (30 s) is stale in the heap; both leases end now
    assert small.put("w3", {"node": "w3"}, 60)[0] is True


def test_new_nodes_being_committed_count_against_the_cap(small):
    async def three_at_once() -> list:
        return await asyncio.gather(*(small.registry.put(n, {"node": n}, canonical_json({"node": n}), 60)
                                      for n in ("a", "b", "c")), return_exceptions=True)

    results = small.run(three_at_once())
    assert [type(r).__name__ for r in results] == ["tuple", "tuple", "RegistryFull"]
    assert set(small.registry.entries) == {"a", "b"}


def test_nodes_coming_and_going_keep_both_forms_in_order(world, clock):
    def expect(profiles: t.Dict[str, t.Any]) -> None:
        assert world.registry.collection(CF_JSON)[0] == canonical_json(profiles)
        assert world.registry.collection(CF_CBOR)[0] == cbor2.dumps(profiles, canonical=True)

    world.put("bb", {"node": "bb"}, 60)
    world.put("a", {"node": "a"}, 10)
    expect({"a": {"node": "a"}, "bb": {"node": "bb"}})
    world.run(world.registry.delete("bb"))
    world.put("ccc", {"node": "ccc"}, 60)
    expect({"a": {"node": "a"}, "ccc": {"node": "ccc"}})
    clock.now = 1010.0  # "a" expires, "bb" comes back
    world.put("bb", {"node": "bb", "x": 2}, 60)
    expect({"bb": {"node": "bb", "x": 2}, "ccc": {"node": "ccc"}})
