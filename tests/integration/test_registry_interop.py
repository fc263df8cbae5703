# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Interop with an independent CoAP implementation: libcoap's command-line
client (Debian libcoap3-bin) talks to the registry block-wise."""

from __future__ import annotations

import json
import shutil
import subprocess
import typing as t
from pathlib import Path

import cbor2
import pytest
from aiocoap.numbers.codes import Code

from _registry_server import Client, RegistryServer, canonical, etag, profile, run_client

CLIENT = shutil.which("coap-client-notls") or shutil.which("coap-client-openssl")


def large_profile() -> t.Dict[str, t.Any]:
    """A valid profile of about 160 kB, the size of the paper's (158 kB)."""
    count = 320
    return profile(
        "bigpi",
        capabilities=["cap%03d" % i for i in range(count)],
        devices=[{"capability": "cap%03d" % i, "kind": "sensor", "name": "Sensor %d" % i, "bus": "i2c",
                  "id": "0x%02x" % (i % 128)} for i in range(count)],
        labels={"note%04d" % i: "z" * 400 for i in range(count)},
    )


def coap_client(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    assert CLIENT, "libcoap3-bin is not installed (coap-client-notls)"
    return subprocess.run([CLIENT, *args], capture_output=True, timeout=timeout, check=False)


@pytest.fixture()
def server(tmp_path):
    with RegistryServer(tmp_path / "interop.sqlite") as srv:
        yield srv
        assert srv.alive(), srv.log_text()


def test_libcoap_put_and_get_160kb_block_wise(server, tmp_path: Path):
    big = large_profile()
    body = canonical(big)
    assert 155_000 < len(body) < 262_144
    source = tmp_path / "big.json"
    source.write_bytes(body)
    uri = "%s/profiles/bigpi" % server.url

    put = coap_client("-m", "put", "-b", "1024", "-t", "json", "-f", str(source), uri + "?lt=600")
    assert put.returncode == 0, put.stderr
    assert b"4." not in put.stdout + put.stderr

    fetched = tmp_path / "fetched.json"
    get = coap_client("-m", "get", "-b", "1024", "-o", str(fetched), uri)
    assert get.returncode == 0, get.stderr
    assert fetched.read_bytes() == body  # byte-identical

    as_cbor = tmp_path / "fetched.cbor"
    get_cbor = coap_client("-m", "get", "-b", "1024", "-A", "cbor", "-o", str(as_cbor), uri)
    assert get_cbor.returncode == 0, get_cbor.stderr
    assert cbor2.loads(as_cbor.read_bytes()) == big

    async def check(client: Client) -> None:
        response = await client.get("/profiles/bigpi")
        assert response.opt.etag == etag(big)
        assert response.payload == body

    run_client(server.url, check)
    assert "stored node=bigpi lt=600 size=%d" % len(body) in server.log_text()


def test_libcoap_put_cbor_and_list(server, tmp_path: Path):
    small = profile("cborpi")
    source = tmp_path / "small.cbor"
    source.write_bytes(cbor2.dumps(small))
    put = coap_client("-m", "put", "-t", "cbor", "-f", str(source), "%s/profiles/cborpi" % server.url)
    assert put.returncode == 0, put.stderr
    listing = coap_client("-m", "get", "%s/profiles" % server.url)
    assert json.loads(listing.stdout) == {"cborpi": small}
    links = coap_client("-m", "get", "%s/.well-known/core" % server.url)
    assert b"</profiles/cborpi>" in links.stdout


def test_libcoap_sees_diagnostics(server, tmp_path: Path):
    source = tmp_path / "bad.json"
    source.write_bytes(json.dumps(profile("other")).encode())
    mismatch = coap_client("-m", "put", "-t", "json", "-f", str(source), "%s/profiles/badpi" % server.url)
    assert b"4.00" in mismatch.stdout + mismatch.stderr
    assert b"profile node 'other' does not match the path /profiles/badpi" in mismatch.stdout + mismatch.stderr
    no_format = coap_client("-m", "put", "-f", str(source), "%s/profiles/other" % server.url)
    assert b"4.15" in no_format.stdout + no_format.stderr

    async def check(client: Client) -> None:
        assert (await client.get("/profiles")).payload == b"{}"
        assert (await client.get("/profiles/other")).code == Code.NOT_FOUND

    run_client(server.url, check)
