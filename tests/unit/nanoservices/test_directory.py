# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Finding producers through the node's directory: the configured value, the choice of the newest
registration, a producer's registration (renewed, removed at a clean exit), a consumer's resolver against a
small local directory on loopback (observed: a move is taken at once; a failure looks again; no agent: the
URI given) and a follower that re-targets to a moved producer without losing its place."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import time
import typing as t

import pytest

aiocoap = pytest.importorskip("aiocoap")
import aiocoap.resource  # noqa: E402  pylint: disable=wrong-import-position

from nanoedge_ns import coapio, directory  # noqa: E402  (after the skip)
from nanoedge_ns.follower import Follower  # noqa: E402
from nanoedge_ns.readings import Producer  # noqa: E402


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def entry(uri: str, registered: float, node: str = "w4") -> t.Dict[str, t.Any]:
    return {"service": "spo2", "instance": "main", "node": node, "uri": uri, "port": 5701, "registered": registered}


@pytest.mark.parametrize("value, expected", [
    ("service:spo2", ("spo2", "")),
    ("coap://10.0.0.4:5701/spo2", ("", "coap://10.0.0.4:5701/spo2")),
])
def test_a_configured_producer_is_a_name_or_an_address(value: str, expected: t.Tuple[str, str]) -> None:
    assert directory.split_target(value) == expected


@pytest.mark.parametrize("instances, expected", [
    ([], None),
    ([entry("coap://a/spo2", 1.0), entry("coap://b/spo2", 2.0, "w2")], "coap://b/spo2"),
    ([entry("coap://a/spo2", 3.0), entry("coap://b/spo2", 2.0, "w2")], "coap://a/spo2"),
    ([{"uri": 5}, entry("coap://a/spo2", 1.0)], "coap://a/spo2"),
])
def test_the_newest_registration_wins(instances: t.Any, expected: t.Optional[str]) -> None:
    assert directory.newest_uri(instances) == expected


def test_what_the_resolver_takes() -> None:
    async def scenario() -> t.List[t.Any]:
        resolver = directory.Resolver(coapio.Client(), "", "spo2", fallback="coap://given/spo2")
        seen = [resolver.current()]
        resolver.take([entry("coap://a/spo2", 1.0)])
        seen += [resolver.current(), resolver.changed.is_set()]
        resolver.changed.clear()
        resolver.take([])  # every instance gone: the address given
        seen += [resolver.current(), resolver.changed.is_set()]
        named = directory.Resolver(coapio.Client(), "", "spo2")
        named.take([entry("coap://a/spo2", 1.0)])
        named.take([])  # no address given: the last one known, until a new one registers
        seen.append(named.current())
        with pytest.raises(ValueError, match=r"^the directory answered \{\}, not a list of instances$"):
            named.take({})
        return seen

    assert asyncio.run(scenario()) == ["coap://given/spo2", "coap://a/spo2", True, "coap://given/spo2", True,
                                       "coap://a/spo2"]


class LocalDirectory:
    """The agent's loopback resources as far as the library uses them: registrations recorded, lookups
    answered from ``listed`` (observable: ``move`` notifies)."""

    def __init__(self) -> None:
        self.listed: t.List[t.Dict[str, t.Any]] = []
        self.registrations: t.List[t.Tuple[str, t.Any]] = []
        self.lookups = 0
        self.refuse_since = False  # as an agent older than the key does
        self.by_service = False  # answer each name with its own instances, not every one listed
        owner = self

        class Instances(aiocoap.resource.PathCapable, aiocoap.resource.Resource):
            async def render_put(self, request: t.Any) -> t.Any:
                body = json.loads(request.payload)
                if owner.refuse_since and "since" in body:
                    owner.registrations.append(("PUT " + "/".join(request.opt.uri_path), "refused"))
                    return aiocoap.Message(code=aiocoap.BAD_REQUEST,
                                           payload=b"nanoedge-agent: spo2: unknown key(s) since (uri, instance, lifetime)")
                owner.registrations.append(("PUT " + "/".join(request.opt.uri_path), body))
                return aiocoap.Message(code=aiocoap.CHANGED, payload=b'{"lifetime":3}')

            async def render_delete(self, request: t.Any) -> t.Any:
                owner.registrations.append(("DELETE " + "/".join(request.opt.uri_path), list(request.opt.uri_query)))
                return aiocoap.Message(code=aiocoap.DELETED)

        class Services(aiocoap.resource.PathCapable, aiocoap.resource.ObservableResource):
            async def render_get(self, request: t.Any) -> t.Any:
                owner.lookups += 1
                listed = [item for item in owner.listed if not owner.by_service
                          or item["service"] == request.opt.uri_path[-1]]
                return aiocoap.Message(payload=json.dumps(listed).encode(), content_format=50)

        self.services = Services()
        self.site = aiocoap.resource.Site()
        self.site.add_resource(["local", "instances"], Instances())
        self.site.add_resource(["local", "services"], self.services)

    def move(self, *instances: t.Dict[str, t.Any]) -> None:
        self.listed = list(instances)
        self.services.updated_state()


async def until(condition: t.Callable[[], bool], seconds: float = 5.0) -> None:
    for _tick in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not within %gs" % seconds)


def test_a_producer_registers_renews_and_leaves() -> None:
    port = _free_port()
    local = LocalDirectory()

    async def scenario() -> None:
        server = await aiocoap.Context.create_server_context(local.site, bind=("127.0.0.1", port))
        client = coapio.Client(timeout=2)
        registrar = directory.Registrar(client, "coap://127.0.0.1:%d" % port, "spo2", "coap://10.0.0.4:5701/spo2",
                                        lifetime=3)
        task = asyncio.ensure_future(registrar.run())
        try:
            await until(lambda: len(local.registrations) == 2)  # registered, then renewed a third of 3 s later
            task.cancel()
            await registrar.close()
        finally:
            await client.close()
            await server.shutdown()

    started = time.time()
    asyncio.run(scenario())
    since = local.registrations[0][1]["since"]
    assert started - 1 <= since <= time.time()  # the process's start: the same in every renewal
    body = {"uri": "coap://10.0.0.4:5701/spo2", "instance": "main", "lifetime": 3, "since": since}
    assert local.registrations == [("PUT spo2", body), ("PUT spo2", body), ("DELETE spo2", ["instance=main"])]


def test_an_agent_that_does_not_know_since_gets_the_registration_without_it() -> None:
    port = _free_port()
    local = LocalDirectory()
    local.refuse_since = True

    async def scenario() -> bool:
        server = await aiocoap.Context.create_server_context(local.site, bind=("127.0.0.1", port))
        client = coapio.Client(timeout=2)
        registrar = directory.Registrar(client, "coap://127.0.0.1:%d" % port, "spo2", "coap://10.0.0.4:5701/spo2")
        try:
            return await registrar.register()
        finally:
            await client.close()
            await server.shutdown()

    assert asyncio.run(scenario()) is True
    assert [body for _what, body in local.registrations] == [
        "refused", {"uri": "coap://10.0.0.4:5701/spo2", "instance": "main", "lifetime": 30}]


def test_a_registrar_only_with_a_directory_and_an_own_uri(monkeypatch) -> None:
    client = coapio.Client()
    monkeypatch.delenv(directory.DIRECTORY_ENV, raising=False)
    monkeypatch.setenv(directory.SELF_URI_ENV, "coap://10.0.0.4:5701/spo2")
    assert directory.registrar_for(client, "spo2") is None
    monkeypatch.setenv(directory.DIRECTORY_ENV, "coap://127.0.0.1:5690/")
    registrar = directory.registrar_for(client, "spo2", "b")
    assert (registrar.target, registrar.body["instance"]) == ("coap://127.0.0.1:5690/local/instances/spo2", "b")
    monkeypatch.delenv(directory.SELF_URI_ENV)
    assert directory.registrar_for(client, "spo2") is None


def test_the_resolver_follows_a_move_within_a_second_and_looks_again_on_failure() -> None:
    port = _free_port()
    local = LocalDirectory()
    local.listed = [entry("coap://10.0.0.4:5701/spo2", 100.0)]

    async def scenario() -> t.Dict[str, t.Any]:
        server = await aiocoap.Context.create_server_context(local.site, bind=("127.0.0.1", port))
        client = coapio.Client(timeout=2)
        resolver = directory.Resolver(client, "coap://127.0.0.1:%d" % port, "spo2")
        watch = asyncio.ensure_future(resolver.watch())
        try:
            await until(lambda: resolver.current() == "coap://10.0.0.4:5701/spo2")
            resolver.changed.clear()
            moved = time.monotonic()
            local.move(entry("coap://10.0.0.4:5701/spo2", 100.0), entry("coap://10.0.0.2:5701/spo2", 200.0, "w2"))
            await asyncio.wait_for(resolver.changed.wait(), 1.0)
            took = time.monotonic() - moved
            lookups = local.lookups
            resolver.failed()  # the consumer could not reach it: a fresh lookup at once
            await until(lambda: local.lookups > lookups, 1.0)
            return {"uri": resolver.current(), "took": took}
        finally:
            watch.cancel()
            await client.close()
            await server.shutdown()

    result = asyncio.run(scenario())
    assert result["uri"] == "coap://10.0.0.2:5701/spo2" and result["took"] < 1.0


def test_without_an_agent_the_address_given_is_used(caplog) -> None:
    async def scenario() -> t.Optional[str]:
        client = coapio.Client(timeout=0.3)
        resolver = directory.Resolver(client, "coap://127.0.0.1:%d" % _free_port(), "spo2",
                                      fallback="coap://10.0.0.4:5701/spo2")
        try:
            return await resolver.lookup()
        finally:
            await client.close()

    assert asyncio.run(scenario()) == "coap://10.0.0.4:5701/spo2"
    assert "spo2: the node's directory at coap://127.0.0.1:" in caplog.text
    assert "does not answer" in caplog.text and "; using coap://10.0.0.4:5701/spo2" in caplog.text


def test_a_follower_re_targets_to_a_moved_producer_without_losing_its_place(tmp_path) -> None:
    ports = {"agent": _free_port(), "w4": _free_port(), "w2": _free_port()}
    local = LocalDirectory()
    first = Producer("spo2", str(tmp_path / "w4"), fsync=False)
    for value in range(5):
        first.publish({"spo2": 95 + value})
    local.listed = [entry("coap://127.0.0.1:%d/spo2" % ports["w4"], 100.0)]
    seen: t.List[int] = []

    async def scenario() -> float:
        agent = await aiocoap.Context.create_server_context(local.site, bind=("127.0.0.1", ports["agent"]))
        old = await coapio.serve({"spo2/history": coapio.make_history_resource(first.answer)}, "127.0.0.1",
                                 ports["w4"])
        client = coapio.Client(timeout=1)
        resolver = directory.Resolver(client, "coap://127.0.0.1:%d" % ports["agent"], "spo2")
        consumer = Follower("alert", "", lambda reading: seen.append(reading["seq"]))
        tasks = [asyncio.ensure_future(resolver.watch()),
                 asyncio.ensure_future(consumer.follow(client, lambda: None if resolver.current() is None
                                                       else resolver.current() + "/history", poll=5.0,
                                                       resolver=resolver))]
        try:
            await until(lambda: seen == [1, 2, 3, 4, 5])
            # the producer moves with its state folder: w2 continues the numbering
            await old.shutdown()
            shutil.copytree(str(tmp_path / "w4"), str(tmp_path / "w2"))
            moved = Producer("spo2", str(tmp_path / "w2"), fsync=False)
            for value in range(3):
                moved.publish({"spo2": 90 + value})
            new = await coapio.serve({"spo2/history": coapio.make_history_resource(moved.answer)}, "127.0.0.1",
                                     ports["w2"])
            started = time.monotonic()
            local.move(entry("coap://127.0.0.1:%d/spo2" % ports["w2"], 200.0, "w2"))
            await until(lambda: len(seen) == 8, 2.0)
            took = time.monotonic() - started
            await new.shutdown()
            return took
        finally:
            for task in tasks:
                task.cancel()
            await client.close()
            await agent.shutdown()

    took = asyncio.run(scenario())
    assert seen == [1, 2, 3, 4, 5, 6, 7, 8]  # in order, once: no reading lost or repeated across the move
    assert took < 1.0  # the directory's notification, not the 5 s poll


@pytest.mark.parametrize("with_directory", [True, False], ids=["service-name", "plain-uri"])
def test_follow_producer_in_a_few_lines(tmp_path, monkeypatch, with_directory: bool) -> None:
    ports = {"agent": _free_port(), "producer": _free_port()}
    uri = "coap://127.0.0.1:%d/resp" % ports["producer"]
    local = LocalDirectory()
    local.listed = [dict(entry(uri, 100.0), service="resp")]
    producer = Producer("resp", str(tmp_path / "resp"), fsync=False)
    for rate in (14, 15, 16):
        producer.publish({"breaths_per_min": rate})
    if with_directory:
        monkeypatch.setenv(directory.DIRECTORY_ENV, "coap://127.0.0.1:%d" % ports["agent"])
    else:
        monkeypatch.delenv(directory.DIRECTORY_ENV, raising=False)
    seen: t.List[int] = []

    async def scenario() -> None:
        agent = await aiocoap.Context.create_server_context(local.site, bind=("127.0.0.1", ports["agent"]))
        server = await coapio.serve({"resp/history": coapio.make_history_resource(producer.answer)}, "127.0.0.1",
                                    ports["producer"])
        client = coapio.Client(timeout=2)
        consumer = Follower("apnea", "", lambda reading: seen.append(reading["breaths_per_min"]))
        task = asyncio.ensure_future(consumer.follow_producer(client, "service:resp" if with_directory else uri,
                                                              "resp"))
        try:
            await until(lambda: len(seen) == 3)
        finally:
            task.cancel()
            await client.close()
            await server.shutdown()
            await agent.shutdown()

    asyncio.run(scenario())
    assert seen == [14, 15, 16]
    assert (local.lookups > 0) == with_directory


def test_a_service_registers_once_it_serves_and_leaves_when_it_stops(monkeypatch) -> None:
    from nanoedge_ns import service

    ports = {"agent": _free_port(), "service": _free_port()}
    local = LocalDirectory()
    monkeypatch.setenv(directory.DIRECTORY_ENV, "coap://127.0.0.1:%d" % ports["agent"])
    monkeypatch.setenv(directory.SELF_URI_ENV, "coap://10.0.0.4:%d/spo2" % ports["service"])
    args = service.parser("spo2", None, ports["service"]).parse_args(["--bind", "127.0.0.1"])
    before_serving: t.List[int] = []

    async def main(arguments: t.Any) -> None:
        await asyncio.sleep(0.3)
        before_serving.append(len(local.registrations))  # nothing registered before the server serves
        context = await coapio.serve({"spo2": coapio.make_json_resource(lambda: {})}, arguments.bind, arguments.port)
        await until(lambda: len(local.registrations) == 1)
        await context.shutdown()

    async def scenario() -> None:
        agent = await aiocoap.Context.create_server_context(local.site, bind=("127.0.0.1", ports["agent"]))
        try:
            await service.registered(main, args)
        finally:
            await agent.shutdown()

    asyncio.run(scenario())
    assert before_serving == [0]
    assert local.registrations == [
        ("PUT spo2", {"uri": "coap://10.0.0.4:%d/spo2" % ports["service"], "instance": "main", "lifetime": 30,
                      "since": local.registrations[0][1]["since"]}),
        ("DELETE spo2", ["instance=main"])]


def test_the_alert_follows_spo2_that_moved_and_says_where_it_reads(service_module, tmp_path, monkeypatch) -> None:
    alert = service_module("alert")
    ports = {"agent": _free_port(), "w4": _free_port(), "w2": _free_port(), "alert": _free_port()}
    local = LocalDirectory()
    monkeypatch.setenv(directory.DIRECTORY_ENV, "coap://127.0.0.1:%d" % ports["agent"])
    monkeypatch.delenv(directory.SELF_URI_ENV, raising=False)
    first = Producer("spo2", str(tmp_path / "w4"), fsync=False)
    for value in (97, 96):
        first.publish({"spo2": value})
    local.listed = [entry("coap://127.0.0.1:%d/spo2" % ports["w4"], 100.0)]
    arguments = alert.make_parser().parse_args(["--bind", "127.0.0.1", "--port", str(ports["alert"]), "--poll", "5",
                                                "--spo2-uri", "service:spo2", "--state-dir", str(tmp_path / "alert")])

    async def scenario() -> t.Tuple[t.Any, t.Any, t.Any, t.Any]:
        agent = await aiocoap.Context.create_server_context(local.site, bind=("127.0.0.1", ports["agent"]))
        old = await coapio.serve({"spo2/history": coapio.make_history_resource(first.answer)}, "127.0.0.1",
                                 ports["w4"])
        client = coapio.Client(timeout=2)
        running = asyncio.ensure_future(alert.main(arguments))
        base = "coap://127.0.0.1:%d" % ports["alert"]
        new = None
        try:
            async def counters() -> t.Any:
                try:
                    return await client.get(base + "/counters")
                except (OSError, ValueError, asyncio.TimeoutError):
                    return {}

            for _attempt in range(200):
                if (await counters()).get("received") == 2:
                    break
                await asyncio.sleep(0.02)
            before = await client.get(base + "/alert")
            counted_before = await counters()
            await old.shutdown()
            shutil.copytree(str(tmp_path / "w4"), str(tmp_path / "w2"))
            moved = Producer("spo2", str(tmp_path / "w2"), fsync=False)
            moved.publish({"spo2": 95})
            new = await coapio.serve({"spo2/history": coapio.make_history_resource(moved.answer)}, "127.0.0.1",
                                     ports["w2"])
            local.move(entry("coap://127.0.0.1:%d/spo2" % ports["w2"], 200.0, "w2"))
            for _attempt in range(100):  # within 1 s, though the alert polls every 5 s
                if (await counters()).get("received") == 3:
                    break
                await asyncio.sleep(0.01)
            return before, await client.get(base + "/alert"), counted_before, await counters()
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
            if new is not None:
                await new.shutdown()
            await client.close()
            await agent.shutdown()

    before, after, counted_before, counted = asyncio.run(scenario())
    assert before["spo2_uri"] == "coap://127.0.0.1:%d/spo2" % ports["w4"]
    assert after["spo2_uri"] == "coap://127.0.0.1:%d/spo2" % ports["w2"]
    assert (after["last_seq"], after["last_value"]) == (3, 95)
    assert (counted["received"], counted["duplicates"], counted["missing"]) == (3, 0, 0)
    # since when readings flow, and from where: anew once they come from the new node
    assert counted_before["flowing_from"] == "coap://127.0.0.1:%d/spo2/history" % ports["w4"]
    assert counted["flowing_from"] == "coap://127.0.0.1:%d/spo2/history" % ports["w2"]
    assert counted_before["flowing_since"] < counted["flowing_since"]


def test_a_polling_consumer_sleeps_less_when_a_producer_moved() -> None:
    async def scenario() -> t.List[t.Any]:
        client = coapio.Client(timeout=1)
        first = directory.Resolver(client, "", "alert", "coap://10.0.0.2:5705/alert")
        second = directory.Resolver(client, "", "spo2", "coap://10.0.0.4:5701/spo2")
        loop = asyncio.get_running_loop()
        started = loop.time()
        quiet = await directory.sleep_unless_moved([first, second], 0.2)
        slept = loop.time() - started
        loop.call_later(0.05, second.take, [entry("coap://10.0.0.1:5701/spo2", 200.0)])
        started = loop.time()
        moved = await directory.sleep_unless_moved([first, second], 5.0)
        woken = loop.time() - started
        await client.close()
        return [quiet, slept >= 0.19, moved, woken < 1.0, second.changed.is_set(), second.current()]

    assert asyncio.run(scenario()) == [False, True, True, True, False, "coap://10.0.0.1:5701/spo2"]


def test_the_display_keeps_drawing_past_a_silent_source_and_asks_a_moved_one_at_once(
        service_module, tmp_path, monkeypatch) -> None:
    """The alert's node died (a socket that never answers): the display's other sources are drawn all the
    same, and once the alert registers elsewhere its request to the dead node is dropped for the new one,
    not waited out for the client's timeout (4 s here)."""
    display = service_module("display")
    ports = {"agent": _free_port(), "spo2": _free_port(), "alert": _free_port(), "display": _free_port()}
    local = LocalDirectory()
    local.by_service = True
    monkeypatch.setenv(directory.DIRECTORY_ENV, "coap://127.0.0.1:%d" % ports["agent"])
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # the dead node: bound, never answers
    silent.bind(("127.0.0.1", 0))
    dead = "coap://127.0.0.1:%d/alert" % silent.getsockname()[1]
    local.listed = [dict(entry(dead, 100.0, "w2"), service="alert")]
    arguments = ["--bind", "127.0.0.1", "--port", str(ports["display"]), "--interval", "2",
                 "--output", str(tmp_path / "screen.txt"),
                 "--source", "spo2=coap://127.0.0.1:%d/spo2,alert=service:alert" % ports["spo2"]]

    async def scenario() -> t.Dict[str, t.Any]:
        agent = await aiocoap.Context.create_server_context(local.site, bind=("127.0.0.1", ports["agent"]))
        producers = await coapio.serve({
            "spo2": coapio.make_json_resource(lambda: {"spo2": 96, "seq": 1, "source": "spo2/w4", "epoch": "e"}),
            "alert": coapio.make_json_resource(lambda: {"state": "normal"})}, "127.0.0.1", ports["spo2"])
        client = coapio.Client(timeout=2)
        base = "coap://127.0.0.1:%d" % ports["display"]
        running = asyncio.ensure_future(display.main(display.make_parser().parse_args(arguments)))
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async def get(path: str) -> t.Any:
                try:
                    return await client.get(base + path)
                except (OSError, ValueError, asyncio.TimeoutError):
                    return {}

            for _attempt in range(300):
                if "spo2" in (await get("/screen")).get("readings", {}):
                    break
                await asyncio.sleep(0.01)
            spo2_drawn = loop.time() - started
            await asyncio.sleep(0.3)  # the request to the dead node is under way
            moved = loop.time()
            local.move(dict(entry("coap://127.0.0.1:%d/alert" % ports["spo2"], 200.0, "w3"), service="alert"))
            screen: t.Any = {}
            for _attempt in range(300):
                screen = await get("/screen")
                if "alert" in screen.get("readings", {}):
                    break
                await asyncio.sleep(0.01)
            return {"spo2_drawn": spo2_drawn, "alert_after": loop.time() - moved, "screen": screen,
                    "counted": await get("/counters")}
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
            await producers.shutdown()
            await client.close()
            await agent.shutdown()
            silent.close()

    result = asyncio.run(scenario())
    assert result["spo2_drawn"] < 1.5, result  # not after the dead alert's 4 s timeout
    assert result["alert_after"] < 1.5, result
    alert = result["counted"]["sources"]["alert"]
    assert alert["flowing_from"] == "coap://127.0.0.1:%d/alert" % ports["spo2"]
    assert result["screen"]["readings"]["alert"] == {"state": "normal"}
    assert result["counted"]["sources"]["spo2"]["flowing_since"] <= alert["flowing_since"]


def test_a_request_to_a_producer_that_moved_is_dropped_and_cancelled() -> None:
    async def scenario() -> t.List[t.Any]:
        client = coapio.Client(timeout=1)
        resolver = directory.Resolver(client, "", "alert", "coap://10.0.0.2:5705/alert")
        never = asyncio.get_running_loop().create_future()  # a dead node: no answer, ever

        async def asking() -> str:
            await never
            return "answer"

        asyncio.get_running_loop().call_later(0.05, resolver.take, [entry("coap://10.0.0.3:5705/alert", 2.0)])
        task = asyncio.ensure_future(asking())
        moved = await asyncio.wait_for(directory.ask_unless_moved(resolver, task), 2.0)
        still_set = resolver.changed.is_set()  # for the caller, who clears it before it reads the URI to ask
        resolver.changed.clear()
        unmoved = await directory.ask_unless_moved(resolver, asyncio.sleep(0.01, "answer"))
        await client.close()
        return [moved, task.cancelled(), still_set, unmoved, resolver.current()]

    assert asyncio.run(scenario()) == [(False, None), True, True, (True, "answer"), "coap://10.0.0.3:5705/alert"]
