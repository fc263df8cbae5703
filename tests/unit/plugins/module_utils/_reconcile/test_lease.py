# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lease kept over CoAP: the daemon's requests to /leadership against an
in-process registry stand-in that answers from a real grant book (one manager:
the leader whenever it stands), goes silent or answers garbage; and --once,
which stands for the lease before it runs."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import sys
import typing as t

import aiocoap
import aiocoap.resource

from ansible_collections.nanoedge.core.plugins.module_utils._leadership import GrantBook
from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.config import validate_config
from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.daemon import EXIT_OK, Reconciler
from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.election import Election, RoleChange
from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.lease import LeaseKeeper
from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.watch import Watcher

HOST = "127.0.0.1"
PROFILE = {"node": "w1", "capabilities": ["pom"], "power": {"source": "ac"}, "network": ["wifi"], "arch": "armv7l"}


class Registry(aiocoap.resource.Resource, aiocoap.resource.PathCapable):
    """/leadership from a grant book (or ``mode``: "silent", "garbage", "refuse"), and GET /profiles."""

    def __init__(self, book: GrantBook) -> None:
        super().__init__()
        self.book = book
        self.mode = "book"
        self.requests: t.List[t.Tuple[str, t.Any]] = []
        self.released = asyncio.Event()

    async def render(self, request: aiocoap.Message) -> aiocoap.Message:
        if request.opt.uri_path == ("profiles",):
            return aiocoap.Message(code=aiocoap.CONTENT, payload=json.dumps({"w1": PROFILE}).encode(),
                                   content_format=50)
        body = json.loads(request.payload) if request.payload else None
        self.requests.append((str(request.code), body))
        if self.mode == "silent":
            await self.released.wait()
        if self.mode == "garbage":
            return aiocoap.Message(code=aiocoap.CHANGED, payload=b'{"leader": "yes"}', content_format=50)
        if self.mode == "refuse":
            return aiocoap.Message(code=aiocoap.UNAUTHORIZED)
        if request.code == aiocoap.PUT:
            if body["candidate"]:
                self.book.set_candidate(body["ttl"])
            else:
                self.book.withdraw()
        return aiocoap.Message(code=aiocoap.CHANGED, payload=json.dumps(self.book.status()).encode(), content_format=50)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def book(managers: t.Sequence[str] = ("m1",)) -> GrantBook:
    return GrantBook("m1", list(managers), list(managers) + ["w1", "w2"])


def raw_config(url: str, tmp_path: t.Any, **settings: t.Any) -> t.Dict[str, t.Any]:
    raw = {"registry": url, "command": ["true"], "state_dir": str(tmp_path / "state"), "lease_poll": 0.1,
           "lease_ttl": 0.5, "request_timeout": 2, "debounce": 0.1}
    raw.update(settings)
    return raw


def with_registry(grant_book: GrantBook, scenario: t.Callable[[Registry, str], t.Awaitable[t.Any]]) -> t.Any:
    async def main() -> t.Any:
        resource = Registry(grant_book)
        port = free_port()
        server = await aiocoap.Context.create_server_context(resource, bind=(HOST, port), transports=["udp6"])
        try:
            return await scenario(resource, "coap://%s:%d" % (HOST, port))
        finally:
            resource.released.set()
            await server.shutdown()
    return asyncio.run(main())


async def keeping(url: str, tmp_path: t.Any, during: t.Callable[[Election], t.Awaitable[None]],
                  **settings: t.Any) -> t.List[RoleChange]:
    """A LeaseKeeper over a real Watcher's client context while ``during`` runs; the role changes."""
    config = validate_config(raw_config(url, tmp_path, **settings))
    watcher = Watcher(config, asyncio.Event(), on_change=lambda: None, on_outage=lambda: None)
    await watcher.open()
    changes: t.List[RoleChange] = []
    election = Election(config["registry"], config["lease_ttl"])
    keeper = LeaseKeeper(config, election, watcher.leadership, changes.append)
    done = asyncio.Event()
    task = asyncio.ensure_future(keeper.keep(done))
    try:
        await during(election)
    finally:
        done.set()
        await task
        await keeper.withdraw()
        await watcher.close()
    return changes


async def until(condition: t.Callable[[], bool], timeout: float = 3.0) -> None:
    for _step in range(int(timeout / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


def test_a_single_manager_leads_while_it_stands_and_withdraws_when_it_stops(tmp_path):
    async def scenario(registry: Registry, url: str) -> t.Tuple[t.List[RoleChange], t.Any]:
        async def during(election: Election) -> None:
            await until(election.active)
            await asyncio.sleep(0.6)  # past one TTL: the renewals keep it
            assert election.active() and election.fence() == (1, "m1")
            assert 0 < election.lease_remaining() <= 0.5

        changes = await keeping(url, tmp_path, during)
        return changes, registry

    changes, registry = with_registry(book(), scenario)
    assert [(change.previous, change.role, change.term) for change in changes] == [("passive", "active", 1)]
    assert changes[0].why == "leader at term 1, granted by no other member (majority 2 of 3 members)"
    assert registry.requests[0] == ("PUT", {"candidate": True, "ttl": 0.5})
    assert registry.requests[-1] == ("PUT", {"candidate": False, "ttl": 0.5})
    assert not registry.book.candidate()


def test_the_lease_ends_by_the_clock_when_the_registry_goes_silent(tmp_path, caplog):
    async def scenario(registry: Registry, url: str) -> t.List[RoleChange]:
        async def during(election: Election) -> None:
            await until(election.active)
            registry.mode = "silent"
            await until(lambda: not election.active(), timeout=1.0)
            await asyncio.sleep(0.3)

        return await keeping(url, tmp_path, during, lease_ttl=0.3)

    with caplog.at_level(logging.INFO, logger="nanoedge.reconcile"):
        changes = with_registry(book(), scenario)
    assert [(change.role, change.why.split(" (")[0]) for change in changes] == [
        ("active", "leader at term 1, granted by no other member"),
        ("passive", "the lease ran out without a renewal")]
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert warnings == [
        "leadership: no answer to /leadership within 0.3 s; the lease is not renewed until the registry answers"]


def test_garbage_and_refusals_never_make_a_leader_and_are_logged_once(tmp_path, caplog):
    async def scenario(registry: Registry, url: str) -> t.List[RoleChange]:
        async def during(election: Election) -> None:
            await asyncio.sleep(0.5)
            registry.mode = "refuse"
            await asyncio.sleep(0.3)
            assert not election.active()

        registry.mode = "garbage"
        return await keeping(url, tmp_path, during)

    with caplog.at_level(logging.WARNING, logger="nanoedge.reconcile"):
        assert with_registry(book(), scenario) == []
    assert [record.getMessage() for record in caplog.records] == [
        "leadership: malformed status (the status lacks manager); the lease is not renewed until the registry answers"]


def test_a_backup_reads_the_status_until_its_settle_time_is_over(tmp_path):
    async def scenario(registry: Registry, url: str) -> t.List[t.Tuple[str, t.Any]]:
        async def during(election: Election) -> None:
            await asyncio.sleep(0.3)
            assert not election.active() and election.status.manager == "m1" and not election.status.candidate
            await until(election.active)

        await keeping(url, tmp_path, during, managers=["coap://127.0.0.2:5683", url], settle=0.6)
        return registry.requests

    requests = with_registry(book(), scenario)
    methods = [method for method, _body in requests]
    first_put = methods.index("PUT")
    assert first_put >= 2 and set(methods[:first_put]) == {"GET"}


def test_once_stands_for_the_lease_and_runs_with_its_term(tmp_path):
    argv_file = tmp_path / "argv.json"
    script = "import json, sys; open(sys.argv[1], 'w').write(json.dumps(sys.argv[2:]))"

    async def scenario(registry: Registry, url: str) -> int:
        config = validate_config(raw_config(url, tmp_path, command=[sys.executable, "-c", script, str(argv_file)],
                                            settle=30))
        reconciler = Reconciler(config)
        reconciler.prepare_dirs()
        return await reconciler.once(False)

    assert with_registry(book(), scenario) == EXIT_OK
    assert json.loads(argv_file.read_text()) == ["-e", '{"nanoedge_fence_manager": "m1", "nanoedge_fence_term": 1}']
    state = json.loads((tmp_path / "state" / "state.json").read_text())
    # the one look is over: this process acts no more, and its state file says so
    assert (state["role"], state["term"], state["last_run"]["rc"]) == ("passive", 1, 0)
    decisions = [json.loads(line) for line in (tmp_path / "state" / "decisions.jsonl").read_text().splitlines()]
    assert [(d["event"], d.get("previous"), d["role"], d.get("why")) for d in decisions if d["event"] == "role"] == [
        ("role", "passive", "active", "leader at term 1, granted by no other member (majority 2 of 3 members)"),
        ("role", "active", "passive", "one look done (--once)")]


def test_once_without_the_lease_does_not_run(tmp_path):
    async def scenario(registry: Registry, url: str) -> int:
        registry.mode = "refuse"
        config = validate_config(raw_config(url, tmp_path, command=["false"]))
        reconciler = Reconciler(config)
        reconciler.prepare_dirs()
        return await reconciler.once(True)

    assert with_registry(book(), scenario) == EXIT_OK
    state = json.loads((tmp_path / "state" / "state.json").read_text())
    assert (state["role"], state["last_run"], state["lease_error"]) == (
        "passive", None, "/leadership answered 4.01 Unauthorized: ")


def test_the_daemon_leads_runs_with_its_term_and_steps_down_when_it_stops(tmp_path):
    argv_file = tmp_path / "argv.json"
    script = "import json, sys; open(sys.argv[1], 'w').write(json.dumps(sys.argv[2:]))"

    async def scenario(registry: Registry, url: str) -> GrantBook:
        config = validate_config(raw_config(url, tmp_path, command=[sys.executable, "-c", script, str(argv_file)]))
        reconciler = Reconciler(config)
        reconciler.prepare_dirs()
        serving = asyncio.ensure_future(reconciler.serve())
        await until(lambda: reconciler.runner.last_run is not None, timeout=5.0)
        reconciler.stopping.set()
        await serving
        return registry.book

    grant_book = with_registry(book(), scenario)
    assert not grant_book.candidate()
    assert json.loads(argv_file.read_text()) == ["-e", '{"nanoedge_fence_manager": "m1", "nanoedge_fence_term": 1}']
    records = [json.loads(line) for line in (tmp_path / "state" / "decisions.jsonl").read_text().splitlines()]
    assert [(record["event"], record["role"]) for record in records] == [
        ("start", "passive"), ("role", "active"), ("run", "active"), ("role", "passive"), ("stop", "passive")]
    assert records[2]["term"] == 1 and records[2]["rc"] == 0
    assert records[3]["why"] == "stopped: the candidacy withdrawn"
    state = json.loads((tmp_path / "state" / "state.json").read_text())
    assert (state["role"], state["leader"], state["term"]) == ("passive", False, 1)
