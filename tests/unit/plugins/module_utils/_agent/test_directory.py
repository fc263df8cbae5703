# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node's service directory: local registrations (rules, renewal, lifetime), the merged view of the
managers' directories, and the loopback resources against two real registry directories (the registry's own
resources on aiocoap servers): a registration reaches both at once, a lookup is answered from their
/services and an observer hears of a moved producer."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import typing as t

import pytest

from ansible_collections.nanoedge.core.plugins.module_utils._agent.directory import LocalInstances, ManagersView
from ansible_collections.nanoedge.core.plugins.module_utils._agent.directory_server import LocalDirectory

aiocoap = pytest.importorskip("aiocoap")

from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.directory import (  # noqa: E402
    Directory, parse_instances,
)
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.directory_resources import (  # noqa: E402
    InstancesResource, ServicesResource,
)
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.limits import ObserverCount  # noqa: E402
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.resources import (  # noqa: E402
    ProfilesResource, Settings, build_site, diagnostic,
)

URI = "coap://10.0.0.4:5701/spo2"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("service, body, expected", [
    ("sp o2", {"uri": URI}, "invalid service name 'sp o2': must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"),
    ("spo2", [URI], "the registration must be a JSON object with uri, and optionally instance and lifetime"),
    ("spo2", {"uri": URI, "port": 1}, "unknown key(s) port (uri, instance, lifetime, since)"),
    ("spo2", {"uri": URI, "instance": "a b"}, "instance 'a b' must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"),
    ("spo2", {"uri": URI, "lifetime": 0}, "lifetime must be whole seconds from 1 to 3600, got 0"),
    ("spo2", {"uri": URI, "lifetime": 1.5}, "lifetime must be whole seconds from 1 to 3600, got 1.5"),
    ("spo2", {}, "uri must be the instance's coap:// URI, got None"),
    ("spo2", {"uri": "http://10.0.0.4/spo2"}, "uri 'http://10.0.0.4/spo2' must be coap://host[:port]/path"),
    ("spo2", {"uri": "coap://10.0.0.4:99999/spo2"}, "uri 'coap://10.0.0.4:99999/spo2': Port out of range 0-65535"),
    ("spo2", {"uri": "coap://10.0.0.4/sp o2"},
     "uri 'coap://10.0.0.4/sp o2' must match ^coaps?(\\+tcp)?://[!-~]{1,240}$"),
])
def test_a_bad_registration_is_refused_naming_the_fault(service: str, body: t.Any, expected: str) -> None:
    local = LocalInstances("w4")
    with pytest.raises(ValueError) as caught:
        local.register(service, body)
    assert str(caught.value) == expected
    assert local.items == {}


def test_register_renew_move_and_expire() -> None:
    clock = Clock()
    local = LocalInstances("w4", clock)
    assert local.register("spo2", {"uri": URI, "lifetime": 10}) == (True, True, 10)
    item = {"service": "spo2", "instance": "main", "uri": URI, "port": 5701, "registered": 1000.0}
    assert local.listing() == {"node": "w4", "instances": [item]}
    clock.now += 9
    assert local.register("spo2", {"uri": URI, "lifetime": 10}) == (False, False, 10)  # a renewal: no change
    assert local.listing()["instances"] == [item]  # registered stays the first registration's time
    clock.now += 9.5
    assert local.expire() == []
    assert local.register("spo2", {"uri": "coap://10.0.0.4:5801/spo2"}) == (False, True, 30)  # a new port
    assert local.listing()["instances"][0]["registered"] == 1018.5
    clock.now += 30
    assert local.expire() == [("spo2", "main")] and local.listing() == {"node": "w4", "instances": []}
    assert local.register("hr", {"uri": "coap://10.0.0.4/hr"})[0] and local.listing()["instances"][0]["port"] == 5683
    assert local.remove("hr") and not local.remove("hr")


def test_a_restarted_instance_is_registered_anew_at_the_same_uri() -> None:
    """A renewal keeps the first registration's time; a new process (another since) gets a new one, so that
    it is taken over an instance of the same service that registered elsewhere while it was away."""
    clock = Clock()
    local = LocalInstances("w3", clock)
    assert local.register("alert", {"uri": URI, "since": 990.0}) == (True, True, 30)
    clock.now += 9
    assert local.register("alert", {"uri": URI, "since": 990.0}) == (False, False, 30)  # a renewal
    assert local.listing()["instances"][0]["registered"] == 1000.0
    clock.now += 12  # the process was killed, and another one started before the lifetime ended
    assert local.register("alert", {"uri": URI, "since": 1020.5}) == (False, True, 30)
    assert local.listing()["instances"][0]["registered"] == 1021.0
    clock.now += 9  # a service that gives no since (an older library) renews as before
    assert local.register("alert", {"uri": URI}) == (False, True, 30)
    clock.now += 9
    assert local.register("alert", {"uri": URI}) == (False, False, 30)
    assert local.listing()["instances"][0]["registered"] == 1030.0
    for bad in (True, "1020", 0, -5, 1e12):
        with pytest.raises(ValueError, match="since must be the process's start in seconds since the epoch"):
            local.register("alert", {"uri": URI, "since": bad})


def test_registrations_are_bounded() -> None:
    local = LocalInstances("w4")
    for number in range(32):
        local.register("s%d" % number, {"uri": URI})
    with pytest.raises(ValueError, match=r"^32 instances are registered on this node \(at most 32\)$"):
        local.register("s32", {"uri": URI})
    assert local.register("s0", {"uri": URI})[:2] == (False, False)  # a renewal still works


def instance(node: str, registered: float, instance_id: str = "main") -> t.Dict[str, t.Any]:
    return {"service": "spo2", "instance": instance_id, "node": node, "uri": "coap://%s:5701/spo2" % node,
            "port": 5701, "registered": registered}


def test_the_managers_views_merge_newest_first() -> None:
    view = ManagersView()
    assert view.update("m1", {"spo2": [instance("w4", 100.0)]}) == {"spo2"}
    assert view.update("m2", {"spo2": [instance("w4", 100.0)]}) == set()  # the same answer: nothing changed
    # the producer moved: m1 heard of it first; the new one comes first everywhere
    assert view.update("m1", {"spo2": [instance("w2", 200.0)], "hr": []}) == {"spo2"}
    assert [i["node"] for i in view.instances("spo2")] == ["w2", "w4"]
    assert view.update("m2", {"spo2": [instance("w2", 200.0)]}) == {"spo2"}
    assert view.instances("spo2") == [instance("w2", 200.0)] and view.instances("nothing") == []
    with pytest.raises(ValueError, match="^/services must be an object of service name to a list of instances$"):
        view.update("m1", [1])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FakeRegistry:
    """The registry's directory resources on their own; the profiles' lifetime rule and reassembly come along."""

    def __init__(self) -> None:
        self.entries: t.Dict[str, t.Any] = {}
        self.hidden: t.Set[str] = set()
        self.listeners: t.List[t.Any] = []
        self.directory = Directory(self)
        profiles = ProfilesResource(self, Settings(300, 3600, 65536, False, frozenset()))
        self.services = ServicesResource(self.directory, False, ObserverCount(8, 16), diagnostic)
        self.site = build_site(profiles, subtrees=[
            ("instances", InstancesResource(self.directory, profiles, diagnostic)), ("services", self.services)])


async def until(condition: t.Callable[[], bool], seconds: float = 5.0) -> None:
    for _tick in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not within %gs" % seconds)


def test_loopback_directory_against_two_registries(caplog) -> None:
    caplog.set_level(logging.INFO)

    async def scenario() -> None:
        registries, servers, urls = [FakeRegistry(), FakeRegistry()], [], []
        for registry in registries:
            port = free_port()
            servers.append(await aiocoap.Context.create_server_context(registry.site, bind=("127.0.0.1", port)))
            urls.append("coap://127.0.0.1:%d" % port)
        client = await aiocoap.Context.create_client_context()
        contexts = {url[len("coap://"):]: client for url in urls}
        local = LocalDirectory("w4", urls, contexts.get, lifetime=60, renew=3600, log=logging.getLogger("test"))
        port = free_port()
        await local.start(port)
        base = "coap://127.0.0.1:%d/local" % port

        async def request(code: t.Any, path: str, body: t.Any = None, **options: t.Any) -> t.Any:
            message = aiocoap.Message(code=code, uri=base + path, **options)
            if body is not None:
                message.payload = json.dumps(body).encode()
            return await asyncio.wait_for(client.request(message).response, 5)

        try:
            answer = await request(aiocoap.PUT, "/instances/spo2", {"uri": URI, "lifetime": 20})
            assert answer.code == aiocoap.CREATED and json.loads(answer.payload) == {"lifetime": 20}
            await until(lambda: all(r.directory.value("spo2") for r in registries))
            assert registries[1].directory.value("spo2")[0]["uri"] == URI
            # a lookup: the managers' answer, with the Observe option
            observed = client.request(aiocoap.Message(code=aiocoap.GET, uri=base + "/services/spo2", observe=0))
            first = await asyncio.wait_for(observed.response, 5)
            assert [i["node"] for i in json.loads(first.payload)] == ["w4"] and first.opt.observe is not None
            notifications = observed.observation.__aiter__()
            # the producer moves to w2: its agent lists it there (here: straight into both registries)
            moved = {"service": "spo2", "instance": "main", "uri": "coap://10.0.0.2:5701/spo2", "port": 5701,
                     "registered": 2e9}
            for registry in registries:
                registry.directory.put("w2", parse_instances("w2", {"node": "w2", "instances": [moved]}), 60)
            started = asyncio.get_event_loop().time()
            newest = None
            while newest != "coap://10.0.0.2:5701/spo2":  # (a notification of the first answer may come first)
                newest = json.loads((await asyncio.wait_for(notifications.__anext__(), 1)).payload)[0]["uri"]
            assert asyncio.get_event_loop().time() - started < 1.0
            # a clean exit: the instance leaves both registries
            assert (await request(aiocoap.DELETE, "/instances/spo2")).code == aiocoap.DELETED
            await until(lambda: not any(r.directory.value("spo2")[-1]["node"] == "w4" for r in registries))
            assert (await request(aiocoap.DELETE, "/instances/spo2")).code == aiocoap.NOT_FOUND
            bad = await request(aiocoap.PUT, "/instances/spo2", {"uri": "http://x"})
            assert bad.code == aiocoap.BAD_REQUEST
            assert bad.payload == b"nanoedge-agent: spo2: uri 'http://x' must be coap://host[:port]/path"
            assert (await request(aiocoap.POST, "/instances/spo2", {})).code == aiocoap.METHOD_NOT_ALLOWED
            assert (await request(aiocoap.PUT, "/services/spo2", {})).code == aiocoap.METHOD_NOT_ALLOWED
        finally:
            await local.close()
            await client.shutdown()
            for server in servers:
                await server.shutdown()

    asyncio.run(scenario())


def test_a_restarted_registry_is_observed_anew(caplog) -> None:
    """A registry that restarts forgets its observers without a word: the observation stays silent until the
    beats tell the directory (refresh), which then observes it anew and sends it the node's list again."""
    caplog.set_level(logging.INFO)

    async def scenario() -> None:
        port = free_port()
        url = "coap://127.0.0.1:%d" % port
        registry = FakeRegistry()
        server = await aiocoap.Context.create_server_context(registry.site, bind=("127.0.0.1", port))
        client = await aiocoap.Context.create_client_context()
        local = LocalDirectory("w4", [url], {url[len("coap://"):]: client}.get, lifetime=60, renew=3600,
                               log=logging.getLogger("test"))
        local_port = free_port()
        await local.start(local_port)
        base = "coap://127.0.0.1:%d/local" % local_port
        moved = {"service": "alert", "instance": "main", "uri": "coap://10.0.0.3:5705/alert", "port": 5705,
                 "registered": 2e9}
        try:
            message = aiocoap.Message(code=aiocoap.PUT, uri=base + "/instances/spo2",
                                      payload=json.dumps({"uri": URI, "lifetime": 20}).encode())
            await asyncio.wait_for(client.request(message).response, 5)
            lookup = aiocoap.Message(code=aiocoap.GET, uri=base + "/services/spo2")
            assert json.loads((await asyncio.wait_for(client.request(lookup).response, 5)).payload)[0]["node"] == "w4"
            await until(lambda: url in local.view.views)  # the registry is observed
            # The registry restarts without a word (killed, then started again on the same port): here, the same
            # socket serves a new registry, with an empty directory and no observers.
            registry = FakeRegistry()
            server.serversite = registry.site
            registry.directory.put("w3", parse_instances("w3", {"node": "w3", "instances": [moved]}), 60)
            await asyncio.sleep(0.3)
            assert "alert" not in local.view.names()  # the old observation heard nothing of it
            local.refresh(url, "it answers again")
            await until(lambda: "alert" in local.view.names())
            # and it has this node's list again
            await until(lambda: bool(registry.directory.value("spo2")))
            assert registry.directory.value("spo2")[0]["uri"] == URI
            assert "%s: observing its services anew (it answers again)" % url in caplog.text
        finally:
            await local.close()
            await client.shutdown()
            await server.shutdown()

    asyncio.run(scenario())


class RecordingContext:
    """An aiocoap client context that records the requests and answers each 2.04."""

    def __init__(self) -> None:
        self.sent: t.List[t.Tuple[str, t.Any]] = []

    def request(self, message: t.Any) -> t.Any:
        self.sent.append((message.get_request_uri(), json.loads(message.payload)))
        response = asyncio.get_event_loop().create_future()
        response.set_result(aiocoap.Message(code=aiocoap.CHANGED))
        return type("Request", (), {"response": response})()


def test_a_restarted_agent_does_not_empty_the_registries_before_its_services_renew() -> None:
    async def scenario() -> t.List[t.Tuple[str, t.Any]]:
        context = RecordingContext()
        local = LocalDirectory("w4", ["coap://10.0.0.1"], {"10.0.0.1:5683": context}.get, lifetime=900, renew=5,
                               log=logging.getLogger("test"))
        local.forward_all()  # the renewal (or a registry observed anew) right after a restart: nothing known yet
        await asyncio.sleep(0.05)
        assert context.sent == []
        local.register("spo2", {"uri": URI})
        await until(lambda: len(context.sent) == 1)
        local.unregister("spo2", "main")  # from here on an empty list is what the node runs
        await until(lambda: len(context.sent) == 2)
        return context.sent

    sent = asyncio.run(scenario())
    assert [uri for uri, _body in sent] == ["coap://10.0.0.1:5683/instances/w4?lt=900"] * 2
    assert [len(body["instances"]) for _uri, body in sent] == [1, 0]


def test_a_list_that_changes_while_it_comes_in_blocks_is_asked_again_at_once(caplog) -> None:
    """A /services longer than a block that changes between two blocks (a service moving registers on one node
    and leaves another) fails the transfer with aiocoap's ResourceChanged. That is no fault of the registry:
    the directory asks again at once, logs no trouble, and has the new list well within a second (it used to
    wait out a doubling backoff, 1 s and then 2 s, with consumers left on the old node meanwhile)."""
    caplog.set_level(logging.INFO)

    async def scenario() -> float:
        port = free_port()
        url = "coap://127.0.0.1:%d" % port
        registry = FakeRegistry()
        # many instances: the list takes several blocks
        many = [{"service": "s%02d" % n, "instance": "main", "uri": "coap://10.0.0.9:%d/s" % (6000 + n),
                 "port": 6000 + n, "registered": 1e9 + n} for n in range(40)]
        for node in range(6, 9):  # 10 on each of w6, w7 and w8, the other 10 on w9
            name, chunk = "w%d" % node, many[(node - 5) * 10:(node - 4) * 10]
            registry.directory.put(name, parse_instances(name, {"node": name, "instances": chunk}), 60)
        registry.directory.put("w9", parse_instances("w9", {"node": "w9", "instances": many[:10]}), 60)
        services = registry.services
        original, renders = services.render, [0]

        async def changing(request: t.Any) -> t.Any:
            # the list changes under the first five answers' blocks
            renders[0] += 1
            if renders[0] <= 5:
                moved = dict(many[0], uri="coap://10.0.0.%d:6000/s" % renders[0], registered=2e9 + renders[0])
                registry.directory.put("w9", parse_instances("w9", {"node": "w9", "instances": [moved] + many[1:10]}),
                                       60)
            return await original(request)

        services.render = changing
        server = await aiocoap.Context.create_server_context(registry.site, bind=("127.0.0.1", port))
        client = await aiocoap.Context.create_client_context()
        local = LocalDirectory("w4", [url], {url[len("coap://"):]: client}.get, lifetime=60, renew=3600,
                               log=logging.getLogger("test"))
        started = asyncio.get_event_loop().time()
        try:
            local.observe_managers()
            await until(lambda: "s00" in local.view.names())
            return asyncio.get_event_loop().time() - started
        finally:
            await local.close()
            await client.shutdown()
            await server.shutdown()

    took = asyncio.run(scenario())
    assert took < 1.0
    assert "lookup failed" not in caplog.text
