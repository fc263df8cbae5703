# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The service directory, model and CoAP resources rendered directly on a real
registry with an injected clock: register, renew, expiry (its own lifetime and
the node's lease), lost nodes hidden, lookup, observation, bounds, and the
identity rule under OSCORE."""

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
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.directory import (
    MAX_INSTANCES, Directory, DirectoryError, DirectoryFull, parse_instances,
)
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.directory_resources import (
    InstancesResource, ServicesResource,
)
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.limits import Limits, ObserverCount
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.model import Registry
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.resources import (
    ProfilesResource, Settings, diagnostic,
)
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.store import Committer, Store


def spo2(node: str = "w4", instance: str = "main", registered: float = 100.0, **changes: t.Any) -> t.Dict[str, t.Any]:
    item = {"service": "spo2", "instance": instance, "uri": "coap://10.0.0.%s:5701/spo2" % node[1:], "port": 5701,
            "registered": registered}
    item.update(changes)
    return item


def listing(node: str, *items: t.Dict[str, t.Any]) -> t.Dict[str, t.Any]:
    return {"node": node, "instances": list(items)}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Remote:
    def __init__(self, *claims: str) -> None:
        self.authenticated_claims = claims
        self.maximum_payload_size = 1024
        self.maximum_block_size_exp = 6
        self.blockwise_key = ("peer",)


class Observation:
    """aiocoap's ServerObservation, as far as the resource uses it."""

    def __init__(self) -> None:
        self.triggered = 0
        self.accepted: t.Optional[t.Callable[[], None]] = None
        self.deregistered = False

    def accept(self, cancel: t.Callable[[], None]) -> None:
        self.accepted = cancel

    def deregister(self) -> None:
        self.deregistered = True

    def trigger(self, **_kwargs: t.Any) -> None:
        self.triggered += 1


class World:
    def __init__(self, path: str, security: bool = False, max_nodes: int = 1000) -> None:
        self.clock = Clock()
        self.loop = asyncio.new_event_loop()
        self.store = Store(path)
        self.committer = Committer(self.store)
        self.loop.run_until_complete(self._start())
        self.registry = Registry(self.store, self.committer, self.clock)
        self.directory = Directory(self.registry, self.clock, max_nodes=max_nodes)
        settings = Settings(300, 3600, 65536, security, frozenset(["m1"]), Limits())
        self.profiles = ProfilesResource(self.registry, settings)
        self.instances = InstancesResource(self.directory, self.profiles, diagnostic)
        self.services = ServicesResource(self.directory, security, ObserverCount(2, 3), diagnostic)
        self.security = security

    async def _start(self) -> None:
        self.committer.start()

    def remote(self, node: str) -> t.Any:
        return Remote(":" + node) if self.security else Remote()

    def put(self, node: str, value: t.Any, query: t.Sequence[str] = ("lt=60",), remote: t.Any = None,
            **options: t.Any) -> Message:
        payload = value if isinstance(value, bytes) else canonical_json(value)
        options.setdefault("content_format", CF_JSON)
        request = Message(code=Code.PUT, uri_path=(node,), uri_query=tuple(query), payload=payload, **options)
        request.remote = remote or self.remote(node)
        return self.loop.run_until_complete(self.instances.render(request))

    def delete(self, node: str, remote: t.Any = None) -> Message:
        request = Message(code=Code.DELETE, uri_path=(node,))
        request.remote = remote or self.remote(node)
        return self.loop.run_until_complete(self.instances.render(request))

    def get(self, name: t.Optional[str] = None, remote: t.Any = None, **options: t.Any) -> Message:
        request = Message(code=Code.GET, uri_path=(name,) if name else (), **options)
        request.remote = remote or self.remote("m1")
        return self.loop.run_until_complete(self.services.render(request))

    def value(self, name: t.Optional[str] = None) -> t.Any:
        response = self.get(name)
        assert response.code == Code.CONTENT, response.payload
        return json.loads(response.payload)

    def observe(self, name: t.Optional[str], peer: str = "10.0.0.9") -> Observation:
        observation = Observation()
        request = Message(code=Code.GET, uri_path=(name,) if name else (), observe=0)
        request.remote = self.remote("m1")
        request.remote.sockaddr = (peer, 5683)
        self.loop.run_until_complete(self.services.add_observation(request, observation))
        return observation

    def profile(self, node: str, **more: t.Any) -> None:
        value = dict({"node": node, "schema": 1}, **more)
        self.loop.run_until_complete(self.registry.put(node, value, canonical_json(value), 30))

    def close(self) -> None:
        self.loop.run_until_complete(self.committer.stop())
        self.store.close()
        self.loop.close()


@pytest.fixture()
def world(tmp_path):
    instance = World(str(tmp_path / "registry.sqlite"))
    yield instance
    instance.close()


def refusal(response: Message) -> t.Tuple[str, str]:
    return str(response.code), response.payload.decode().split(": ", 1)[1]


def test_register_look_up_and_renew(world: World) -> None:
    created = world.put("w4", listing("w4", spo2()))
    assert created.code == Code.CREATED and created.opt.location_path == ("instances", "w4")
    expected = [dict(spo2(), node="w4")]
    assert world.value("spo2") == expected
    assert world.value() == {"spo2": expected}
    assert world.value("hr") == []  # a service not (yet) listed: an empty list, observable
    etag = world.get("spo2").opt.etag
    world.clock.now += 50
    assert world.put("w4", listing("w4", spo2())).code == Code.CHANGED  # renewed: the same answer
    assert world.get("spo2").opt.etag == etag
    assert world.get("spo2", etags=[etag]).code == Code.VALID
    world.clock.now += 50  # 100 s after the first PUT, 50 after the renewal: still listed
    assert world.value("spo2") == expected


def test_an_entry_expires_after_its_own_lifetime(world: World) -> None:
    world.put("w4", listing("w4", spo2()), query=("lt=5",))
    observation = world.observe("spo2")
    world.clock.now += 4.9
    world.directory.expire_due()
    assert world.value("spo2") != [] and observation.triggered == 0
    world.clock.now += 0.1
    world.directory.expire_due()
    assert observation.triggered == 1
    assert world.value("spo2") == [] and world.directory.nodes == {}


def test_instances_leave_with_the_nodes_lease_and_while_it_is_lost(world: World) -> None:
    world.profile("w4")
    world.profile("w2")
    world.put("w4", listing("w4", spo2()), query=("lt=3600",))
    world.put("w2", listing("w2", spo2("w2", "b")), query=("lt=3600",))
    observation = world.observe("spo2")
    world.profile("w4", battery=50)  # a new profile of a listed node changes no answer of the directory
    assert observation.triggered == 0
    world.registry.hide("w4")  # the failure detector confirmed w4 lost
    assert observation.triggered == 1 and [i["node"] for i in world.value("spo2")] == ["w2"]
    world.registry.hide("w4", False)  # back within its lease: listed again
    assert observation.triggered == 2 and [i["node"] for i in world.value("spo2")] == ["w2", "w4"]
    world.clock.now += 31  # the profiles' leases (30 s) end
    world.registry.expire_due()
    assert world.value("spo2") == [] and world.directory.nodes == {}
    assert observation.triggered == 4  # one notification per node whose lease ended


def test_a_moved_producer_notifies_its_observers_in_the_same_call(world: World) -> None:
    world.put("w4", listing("w4", spo2()))
    one, every, other = world.observe("spo2", "10.0.0.1"), world.observe(None, "10.0.0.2"), world.observe("hr")
    world.put("w2", listing("w2", spo2("w2", registered=200.0)))
    world.delete("w4")
    assert (one.triggered, every.triggered, other.triggered) == (2, 2, 0)
    assert world.value("spo2") == [dict(spo2("w2", registered=200.0), node="w2")]
    world.put("w2", listing("w2", spo2("w2", registered=200.0)))  # a renewal changes no answer
    assert one.triggered == 2


def test_observations_are_bounded_per_peer_and_in_all(world: World) -> None:
    first, second = world.observe("spo2", "10.0.0.1"), world.observe("spo2", "10.0.0.1")
    third = world.observe("spo2", "10.0.0.1")  # the peer's third pushes out its first
    assert first.triggered == 1 and not third.deregistered
    world.observe("spo2", "10.0.0.2")
    refused = world.observe("spo2", "10.0.0.3")  # three held: answered as a plain GET
    assert refused.deregistered and not second.deregistered
    second.accepted()  # the client ended it: room again
    assert not world.observe("spo2", "10.0.0.3").deregistered


@pytest.mark.parametrize("value, expected", [
    ([], "must be an object with exactly node and instances"),
    (listing("w2", spo2()), "node 'w2' does not match the path /instances/w4"),
    ({"node": "w4", "instances": {}}, "instances must be a list"),
    (listing("w4", *[spo2(instance="i%d" % n) for n in range(MAX_INSTANCES + 1)]), "33 instances, at most 32 per node"),
    (listing("w4", spo2(), spo2()), "an instance is listed twice (service and instance must be unique)"),
    (listing("w4", "spo2"), "instances[0]: must be an object, got str"),
    (listing("w4", spo2(extra=1)), "instances[0]: unknown key(s) extra"),
    (listing("w4", {"service": "spo2"}), "instances[0]: instance, port, registered, uri missing"),
    (listing("w4", spo2(service="spo 2")), "instances[0]: service 'spo 2' must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"),
    (listing("w4", spo2(uri="http://x/spo2")), "instances[0]: uri 'http://x/spo2' must match ^coaps?(\\+tcp)?://[!-~]{1,240}$"),
    (listing("w4", spo2(port=0)), "instances[0]: port must be from 1 to 65535, got 0"),
    (listing("w4", spo2(port=True)), "instances[0]: port must be from 1 to 65535, got True"),
    (listing("w4", spo2(registered=-1)), "instances[0]: registered must be a time in seconds since the epoch, got -1"),
])
def test_a_bad_list_is_refused_naming_the_fault(world: World, value: t.Any, expected: str) -> None:
    with pytest.raises(DirectoryError) as caught:
        parse_instances("w4", value)
    assert str(caught.value) == expected
    assert refusal(world.put("w4", value)) == ("4.00 Bad Request", "invalid instance list: " + expected)
    assert world.directory.nodes == {}


@pytest.mark.parametrize("node, value, query, options, expected", [
    ("w4", b"{", ("lt=60",), {}, ("4.00 Bad Request", "malformed JSON: Expecting property name enclosed in double"
                                                      " quotes: line 1 column 2 (char 1)")),
    ("w4", listing("w4"), ("lt=0",), {}, ("4.00 Bad Request", "lt must be from 1 to 3600 seconds, got 0")),
    ("w4", listing("w4"), ("x=1",), {}, ("4.00 Bad Request", "unknown query parameter 'x' (only lt=SECONDS)")),
    ("w4", listing("w4"), (), {"content_format": 0},
     ("4.15 Unsupported Content Format", "Content-Format 0 is not accepted: send JSON (50) or CBOR (60)")),
    ("w4", b" " * 8193, (), {}, ("4.13 Request Entity Too Large",
                                 "instance list of 8193 bytes exceeds the limit of 8192 bytes")),
    ("w4", b" " * 64, (), {"block1": BlockOption.BlockwiseTuple(128, True, 2)},
     ("4.13 Request Entity Too Large", "instance list of 8256 bytes exceeds the limit of 8192 bytes")),
    ("w4", b"{}", (), {"size1": 9000}, ("4.13 Request Entity Too Large",
                                        "instance list of 9000 bytes exceeds the limit of 8192 bytes")),
    ("W 4", listing("w4"), (), {}, ("4.00 Bad Request",
                                    "invalid node name 'W 4' in the path: must match ^[a-z0-9][a-z0-9._-]{0,62}$")),
])
def test_a_bad_put_is_refused(world: World, node: str, value: t.Any, query: t.Sequence[str],
                              options: t.Dict[str, t.Any], expected: t.Tuple[str, str]) -> None:
    assert refusal(world.put(node, value, query=query, **options)) == expected


def test_a_cbor_list_and_a_cbor_answer(world: World) -> None:
    assert world.put("w4", cbor2.dumps(listing("w4", spo2())), content_format=CF_CBOR).code == Code.CREATED
    response = world.get("spo2", accept=CF_CBOR)
    assert response.opt.content_format == CF_CBOR and cbor2.loads(response.payload) == [dict(spo2(), node="w4")]
    assert response.opt.etag == world.get("spo2").opt.etag  # the ETag names the content, not the encoding


def test_the_nodes_listed_are_bounded(tmp_path) -> None:
    world = World(str(tmp_path / "small.sqlite"), max_nodes=1)
    try:
        world.put("w1", listing("w1"))
        response = world.put("w2", listing("w2"))
        assert refusal(response) == ("5.03 Service Unavailable",
                                     "1 nodes list instances (at most 1): node 'w2' not added")
        assert response.opt.max_age == 60
        with pytest.raises(DirectoryFull):
            world.directory.put("w3", (), 60)
        assert world.put("w1", listing("w1", spo2("w1"))).code == Code.CHANGED  # the node listed still renews
    finally:
        world.close()


@pytest.mark.parametrize("method, path, expected", [
    (Code.POST, ("w4",), ("4.05 Method Not Allowed", "POST is not allowed on /instances/w4 (PUT, DELETE)")),
    (Code.PUT, (), ("4.04 Not Found", "no resource /instances: a node's list is /instances/{node}")),
    (Code.PUT, ("w4", "x"), ("4.04 Not Found", "no resource /instances/w4/x: a node's list is /instances/{node}")),
])
def test_instances_paths_and_methods(world: World, method: Code, path: t.Tuple[str, ...],
                                     expected: t.Tuple[str, str]) -> None:
    request = Message(code=method, uri_path=path)
    request.remote = Remote()
    assert refusal(world.loop.run_until_complete(world.instances.render(request))) == expected


@pytest.mark.parametrize("name, options, expected", [
    ("spo2/x", {}, ("4.04 Not Found", "no resource /services/spo2/x")),
    ("sp o2", {}, ("4.00 Bad Request", "invalid service name 'sp o2' in the path: must match "
                                       "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")),
    ("spo2", {"accept": 0}, ("4.06 Not Acceptable", "Accept 0: services are served as JSON (50) or CBOR (60)")),
    ("spo2", {"code": Code.PUT}, ("4.05 Method Not Allowed", "PUT is not allowed on /services (GET only)")),
    ("spo2", {"payload": b"x"}, ("4.00 Bad Request", "GET takes no payload")),
])
def test_services_refusals(world: World, name: str, options: t.Dict[str, t.Any], expected: t.Tuple[str, str]) -> None:
    code = options.pop("code", Code.GET)
    request = Message(code=code, uri_path=tuple(name.split("/")), **options)
    request.remote = Remote()
    assert refusal(world.loop.run_until_complete(world.services.render(request))) == expected


@pytest.mark.parametrize("remote, expected", [
    (Remote(), ("4.01 Unauthorized", "writing /instances/w4 needs OSCORE as node 'w4'")),
    (Remote(":w2"), ("4.01 Unauthorized", "OSCORE identity 'w2' may not write /instances/w4")),
    (Remote(":m1"), ("4.01 Unauthorized", "OSCORE identity 'm1' may not write /instances/w4")),
])
def test_under_oscore_a_node_lists_only_its_own_instances(tmp_path, remote: t.Any,
                                                          expected: t.Tuple[str, str]) -> None:
    world = World(str(tmp_path / "secure.sqlite"), security=True)
    try:
        assert refusal(world.put("w4", listing("w4", spo2()), remote=remote)) == expected
        assert refusal(world.delete("w4", remote=remote)) == expected
        assert world.directory.nodes == {}
        assert world.put("w4", listing("w4", spo2()), remote=Remote(":w4")).code == Code.CREATED
        # any authenticated peer reads (every node resolves its producers); an unprotected GET does not
        assert world.get("spo2", remote=Remote(":w2")).code == Code.CONTENT
        assert refusal(world.get("spo2", remote=Remote())) == (
            "4.01 Unauthorized", "reading /services needs OSCORE (as a node or a manager)")
    finally:
        world.close()
