# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""OSCORE (RFC 8613) on the registry: one security context per worker, the
authenticated identity must be the node written, GETs only for managers and,
for its own profile, the node itself."""

from __future__ import annotations

import json
import os
import secrets
import typing as t
from pathlib import Path

import aiocoap
import pytest
from aiocoap.numbers.codes import Code
from aiocoap.oscore import NotAProtectedMessage

from _registry_server import Client, RegistryServer, canonical, etag, profile
from ansible_collections.nanoedge.core.plugins.module_utils import _coap

MANAGER_ID_CONTEXT = b"m1"


def write_context(directory: Path, sender_id: bytes, recipient_id: bytes, secret: bytes, salt: bytes) -> Path:
    directory.mkdir(parents=True)
    settings = {
        "sender-id_hex": sender_id.hex(),
        "recipient-id_hex": recipient_id.hex(),
        "secret_hex": secret.hex(),
        "salt_hex": salt.hex(),
        "id-context_hex": MANAGER_ID_CONTEXT.hex(),
    }
    (directory / "settings.json").write_text(json.dumps(settings))
    os.chmod(directory / "settings.json", 0o600)
    return directory


@pytest.fixture()
def contexts(tmp_path) -> t.Dict[str, t.Any]:
    """Server contexts (one per peer, generated here, never shared) and the
    matching client contexts for workers wa, wb, manager m1 and a stranger."""
    peers = {"wa": b"\x01", "wb": b"\x02", "m1": b"\x10"}
    server_dir = tmp_path / "server-contexts"
    clients: t.Dict[str, Path] = {}
    for name, peer_id in peers.items():
        secret, salt = secrets.token_bytes(16), secrets.token_bytes(8)
        write_context(server_dir / name, b"", peer_id, secret, salt)
        clients[name] = write_context(tmp_path / "client" / name, peer_id, b"", secret, salt)
    # a peer the registry has never heard of
    clients["stranger"] = write_context(tmp_path / "client" / "stranger", b"\x33", b"",
                                        secrets.token_bytes(16), b"")
    return {"server": server_dir, "clients": clients}


def run_as(identity: t.Optional[str], contexts: t.Dict[str, t.Any], url: str,
           scenario: t.Callable[[Client], t.Awaitable[t.Any]]) -> t.Any:
    """Run ``scenario`` with the OSCORE context of ``identity`` (None: unprotected)."""
    import asyncio

    async def main() -> t.Any:
        context = await aiocoap.Context.create_client_context(transports=["oscore", "udp6"])
        if identity is not None:
            context.client_credentials.load_from_dict(
                {url + "/*": {"oscore": {"basedir": str(contexts["clients"][identity]) + "/"}}})
        try:
            return await scenario(Client(context, url))
        finally:
            await context.shutdown()

    return asyncio.run(main())


@pytest.fixture()
def secure_server(tmp_path, contexts):
    with RegistryServer(tmp_path / "secure.sqlite", "--security", "on", "--oscore-contexts",
                        str(contexts["server"]), "--managers", "m1") as srv:
        yield srv
        assert srv.alive(), srv.log_text()


def stored_as_manager(contexts: t.Dict[str, t.Any], url: str) -> t.Dict[str, t.Any]:
    return run_as("m1", contexts, url, lambda c: c.stored())


def test_unprotected_put_is_unauthorized(secure_server, contexts):
    async def scenario(client: Client) -> None:
        response = await client.put("wa", profile("wa"))
        assert response.code == Code.UNAUTHORIZED
        assert b"writing /profiles/wa needs OSCORE as node 'wa'" in response.payload
        assert (await client.delete("wa")).code == Code.UNAUTHORIZED

    run_as(None, contexts, secure_server.url, scenario)
    assert stored_as_manager(contexts, secure_server.url) == {}


def test_worker_writes_only_its_own_profile(secure_server, contexts):
    url = secure_server.url

    async def as_wb(client: Client) -> None:
        assert (await client.put("wb", profile("wb"))).code == Code.CREATED

    run_as("wb", contexts, url, as_wb)

    async def as_wa(client: Client) -> None:
        foreign = await client.put("wb", profile("wb", labels={"owner": "wa"}))
        assert foreign.code == Code.UNAUTHORIZED
        assert b"OSCORE identity 'wa' may not write /profiles/wb" in foreign.payload
        assert (await client.delete("wb")).code == Code.UNAUTHORIZED
        own = await client.put("wa", profile("wa"))
        assert own.code == Code.CREATED, own.payload
        assert (await client.put("wa", profile("wa"), "?lt=60")).code == Code.CHANGED

    run_as("wa", contexts, url, as_wa)
    stored = stored_as_manager(contexts, url)
    assert stored == {"wa": profile("wa"), "wb": profile("wb")}
    assert "refused write to /profiles/wb by OSCORE identity 'wa'" in secure_server.log_text()


def test_unknown_security_context_is_unauthorized(secure_server, contexts):
    async def scenario(client: Client) -> None:
        # the registry cannot protect its answer for a context it lacks, so the
        # 4.01 comes back unprotected and aiocoap's client refuses to accept it
        with pytest.raises(NotAProtectedMessage) as refused:
            await client.put("wa", profile("wa"))
        answer = refused.value.plain_message
        assert answer.code == Code.UNAUTHORIZED
        assert answer.payload == b"Security context not found"

    run_as("stranger", contexts, secure_server.url, scenario)
    assert stored_as_manager(contexts, secure_server.url) == {}


def test_gets_are_restricted_to_managers(secure_server, contexts):
    url = secure_server.url

    async def denied(client: Client) -> None:
        response = await client.get("/profiles")
        assert response.code == Code.UNAUTHORIZED
        assert b"reading /profiles needs OSCORE as one of the managers" in response.payload
        response = await client.get("/profiles/wa")
        assert response.code == Code.UNAUTHORIZED
        assert b"reading /profiles/wa needs OSCORE as one of the managers or as node 'wa'" in response.payload
        # discovery lists the node names: managers only as well
        response = await client.get("/.well-known/core")
        assert response.code == Code.UNAUTHORIZED
        assert b"/.well-known/core: reading /profiles needs OSCORE as one of the managers" in response.payload

    async def worker(client: Client) -> None:
        assert (await client.put("wb", profile("wb"))).code == Code.CREATED
        response = await client.get("/profiles")
        assert response.code == Code.UNAUTHORIZED
        assert b"reading /profiles needs OSCORE as one of the managers" in response.payload

    run_as(None, contexts, url, denied)
    run_as("wb", contexts, url, worker)

    async def allowed(client: Client) -> None:
        response = await client.get("/profiles/wb")
        assert response.code == Code.CONTENT
        assert response.payload == canonical(profile("wb"))
        assert await client.stored() == {"wb": profile("wb")}
        response = await client.get("/.well-known/core")
        assert response.code == Code.CONTENT
        assert b"</profiles/wb>" in response.payload

    run_as("m1", contexts, url, allowed)


def test_worker_reads_only_its_own_profile(secure_server, contexts):
    url = secure_server.url
    own = profile("wa", labels={"rack": "3"})

    async def as_wa(client: Client) -> None:
        assert (await client.get("/profiles/wa")).code == Code.NOT_FOUND
        assert (await client.put("wa", own)).code == Code.CREATED
        response = await client.get("/profiles/wa")
        assert response.code == Code.CONTENT, response.payload
        assert response.payload == canonical(own)
        assert response.opt.etag == etag(own)

    async def as_wb(client: Client) -> None:
        assert (await client.put("wb", profile("wb"))).code == Code.CREATED
        for path in ("/profiles/wa", "/profiles/absent"):
            response = await client.get(path)
            # refused before the lookup: a 4.04 would tell which nodes exist
            assert response.code == Code.UNAUTHORIZED, path
            assert ("reading %s needs OSCORE as one of the managers or as node %r"
                    % (path, path.rsplit("/", 1)[1])).encode() in response.payload
        assert (await client.get("/profiles/wb")).code == Code.CONTENT

    run_as("wa", contexts, url, as_wa)
    run_as("wb", contexts, url, as_wb)
    assert "refused read of /profiles/wa by OSCORE identity 'wb'" in secure_server.log_text()


def test_reporter_compares_before_writing_under_restricted_reads(secure_server, contexts):
    """coap_report's code reads its node's stored profile back, so an unchanged
    profile is left alone instead of rewritten on every run."""
    settings = _coap.ReportSettings(renew=False, retries=0, oscore_context=str(contexts["clients"]["wa"]))
    (first,) = _coap.run_report(profile("wa"), [secure_server.url], settings)
    assert (first.stored, first.action, first.code) == (True, "created", "2.01 Created"), first
    (again,) = _coap.run_report(profile("wa"), [secure_server.url], settings)
    assert (again.stored, again.action, again.code, again.before) == (True, "unchanged", None, profile("wa")), again
    changed = profile("wa", capabilities=["bot", "pom"])
    (third,) = _coap.run_report(changed, [secure_server.url], settings)
    assert (third.stored, third.action, third.before) == (True, "updated", profile("wa")), third
    assert stored_as_manager(contexts, secure_server.url) == {"wa": changed}


def test_security_needs_contexts(tmp_path):
    server = RegistryServer(tmp_path / "x.sqlite", "--security", "on")
    with pytest.raises(AssertionError, match="--security on needs --oscore-contexts DIR"):
        server.start(timeout=10)


def test_a_context_in_use_cannot_be_loaded_twice(tmp_path, contexts, secure_server):
    # aiocoap locks each context folder: a copy in use elsewhere is refused
    second = RegistryServer(tmp_path / "second.sqlite", "--oscore-contexts", str(contexts["server"]))
    with pytest.raises(AssertionError, match="registry exited"):
        second.start(timeout=10)


def test_block_wise_put_under_oscore(secure_server, contexts):
    big = profile("wa", labels={"note%03d" % i: "x" * 100 for i in range(200)})
    assert len(canonical(big)) > 20_000

    async def as_wa(client: Client) -> None:
        response = await client.put("wa", big)
        assert response.code == Code.CREATED, response.payload

    run_as("wa", contexts, secure_server.url, as_wa)
    assert stored_as_manager(contexts, secure_server.url) == {"wa": big}
