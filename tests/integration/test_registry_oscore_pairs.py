# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""OSCORE end to end as the roles provision it: one pair per (manager, peer) from the controller's
material folder, two registries, and the collection's own clients with credentials files. Every
manager stores every worker's profile; reads, /.well-known/core included, need a reader's context."""

from __future__ import annotations

import json
import typing as t
from pathlib import Path

import pytest
from aiocoap.numbers.codes import Code

from _registry_server import RegistryServer, profile, run_client
from ansible_collections.nanoedge.core.plugins.module_utils import _coap
from ansible_collections.nanoedge.core.plugins.plugin_utils._oscore_material import pair_material

MANAGERS = ("m1", "m2")
PEERS = ("w1", "w2", "w1+controller", "controller", "m1", "m2")


def write_settings(folder: Path, settings: t.Dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "settings.json").write_text(json.dumps(settings))


@pytest.fixture()
def cluster(tmp_path) -> t.Iterator[t.Dict[str, t.Any]]:
    """Two registries with the server side of their pairs, as the registry role writes it."""
    material = str(tmp_path / "material")
    servers = {}
    for manager in MANAGERS:
        for peer in PEERS:
            write_settings(tmp_path / manager / "oscore" / peer, pair_material(material, manager, peer)["server"])
        servers[manager] = RegistryServer(tmp_path / manager / "registry.sqlite", "--security", "on",
                                          "--oscore-contexts", str(tmp_path / manager / "oscore"),
                                          "--managers", "controller,m1,m2").start()
    try:
        yield {"tmp": tmp_path, "material": material, "servers": servers}
    finally:
        for server in servers.values():
            server.stop()


def credentials(cluster: t.Dict[str, t.Any], identity: str, managers: t.Sequence[str] = MANAGERS) -> str:
    """The client side of ``identity``'s pairs and its credentials file, as the roles write them."""
    base = cluster["tmp"] / "clients"
    entries = {}
    for manager in managers:
        write_settings(base / identity / manager, pair_material(cluster["material"], manager, identity)["client"])
        entries[cluster["servers"][manager].url + "/*"] = {"oscore": {"basedir": "%s/%s/" % (identity, manager)}}
    path = base / ("%s.json" % identity)
    path.write_text(json.dumps(entries))
    return str(path)


def urls(cluster: t.Dict[str, t.Any]) -> t.List[str]:
    return [cluster["servers"][manager].url for manager in MANAGERS]


def test_every_manager_stores_every_workers_profile(cluster):
    for worker in ("w1", "w2"):
        settings = _coap.ReportSettings(retries=0, oscore_credentials=credentials(cluster, worker))
        outcomes = _coap.run_report(profile(worker), urls(cluster), settings)
        assert [(o.stored, o.action) for o in outcomes] == [(True, "created"), (True, "created")], outcomes
    reader = credentials(cluster, "controller")
    for url in urls(cluster):
        assert _coap.run_fetch_profiles(url, timeout=5, oscore_credentials=reader) == {
            "w1": profile("w1"), "w2": profile("w2")}


def test_the_controller_reports_for_a_worker_with_keys_of_its_own(cluster):
    settings = _coap.ReportSettings(retries=0, oscore_credentials=credentials(cluster, "w1+controller"))
    outcomes = _coap.run_report(profile("w1"), urls(cluster), settings)
    assert [o.action for o in outcomes] == ["created", "created"], outcomes
    # the worker's own agent, with its own sequence numbers, finds its profile unchanged
    agent = _coap.ReportSettings(retries=0, renew=False, oscore_credentials=credentials(cluster, "w1"))
    assert [o.action for o in _coap.run_report(profile("w1"), urls(cluster), agent)] == ["unchanged", "unchanged"]
    # but speaks only for w1
    foreign = _coap.run_report(profile("w2"), urls(cluster)[:1], settings)
    assert foreign[0].action == "failed"
    assert "OSCORE identity 'w1' may not write /profiles/w2" in foreign[0].error


def test_a_registry_without_a_context_is_never_written_in_plain_coap(cluster):
    only_m1 = credentials(cluster, "w1", managers=["m1"])
    settings = _coap.ReportSettings(retries=0, oscore_credentials=only_m1)
    first, second = _coap.run_report(profile("w1"), urls(cluster), settings)
    assert (first.stored, second.stored) == (True, False)
    assert second.error == "%s: OSCORE credentials %s name no security context for coap://%s" % (
        urls(cluster)[1], only_m1, urls(cluster)[1][len("coap://"):])
    reader = credentials(cluster, "m2")
    assert _coap.run_fetch_profiles(urls(cluster)[1], timeout=5, oscore_credentials=reader) == {}


@pytest.mark.parametrize("path", ["/profiles", "/.well-known/core"])
def test_reads_need_a_readers_context(cluster, path):
    url = urls(cluster)[0]
    _coap.run_report(profile("w1"), [url], _coap.ReportSettings(retries=0, oscore_credentials=credentials(cluster, "w1")))

    async def plain(client: t.Any) -> t.Any:
        return await client.get(path)

    answer = run_client(url, plain)
    assert answer.code == Code.UNAUTHORIZED
    assert b"needs OSCORE as one of the managers" in answer.payload
    assert b"w1" not in answer.payload
    reader = credentials(cluster, "m1")
    assert list(_coap.run_fetch_profiles(url, timeout=5, oscore_credentials=reader)) == ["w1"]
