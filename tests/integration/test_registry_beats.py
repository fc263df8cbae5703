# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Beats, liveness and leadership on the real registry, with libcoap's
command-line client (Debian libcoap3-bin) as the independent peer."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import typing as t
from pathlib import Path

import pytest

from _registry_server import COLLECTIONS_PATH, SERVER_MODULE, RegistryServer, canonical, etag, profile, server_environment

CLIENT = shutil.which("coap-client-notls") or shutil.which("coap-client-openssl") or shutil.which("coap-client")


def coap(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    assert CLIENT, "libcoap3-bin is not installed (coap-client-notls)"
    return subprocess.run([CLIENT, *args], capture_output=True, timeout=timeout, check=False)


def send(method: str, url: str, body: t.Any, folder: Path) -> t.Any:
    source = folder / "body.json"
    source.write_bytes(json.dumps(body).encode())
    done = coap("-m", method, "-t", "json", "-f", str(source), url)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def get(url: str) -> t.Any:
    done = coap("-m", "get", url)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture()
def server(tmp_path):
    options = ("--name", "m1", "--cluster-managers", "m1", "--members", "w1,w2", "--suspect-after", "1",
               "--confirm-after", "2")
    with RegistryServer(tmp_path / "beats.sqlite", *options) as srv:
        yield srv
        assert srv.alive(), srv.log_text()


def test_a_beat_from_libcoap_and_what_it_changes(server, tmp_path: Path):
    beat = {"etag": "0123456789abcdef", "term": 0}
    assert send("post", "%s/beat/w1" % server.url, beat, tmp_path) == {"profile": "missing"}

    mine = profile("w1")
    source = tmp_path / "w1.json"
    source.write_bytes(canonical(mine))
    put = coap("-m", "put", "-t", "json", "-f", str(source), "%s/profiles/w1?lt=600" % server.url)
    assert put.returncode == 0, put.stderr
    assert send("post", "%s/beat/w1" % server.url, dict(beat, etag=etag(mine).hex()), tmp_path) == {"profile": "current"}
    assert send("post", "%s/beat/w1" % server.url, beat, tmp_path) == {"profile": "stale"}

    status = send("put", "%s/leadership" % server.url, {"candidate": True, "ttl": 30}, tmp_path)
    assert (status["manager"], status["candidate"], status["term"], status["leader"]) == ("m1", True, 1, True)
    answer = send("post", "%s/beat/w1" % server.url, beat, tmp_path)
    assert answer["ask"] == {"manager": "m1", "term": 1, "n": 1, "lease": 4.0, "priority": 0}
    assert json.loads((tmp_path / "leadership.json").read_text())["highest_term"] == 1
    assert get("%s/liveness" % server.url)["w1"]["state"] == "alive"

    # no more beats: suspected, then lost and hidden from /profiles (the profile is kept)
    deadline = time.monotonic() + 10
    while get("%s/liveness" % server.url)["w1"]["state"] != "lost":
        assert time.monotonic() < deadline, server.log_text()
        time.sleep(0.2)
    assert get("%s/profiles" % server.url) == {}
    assert b"</profiles/w1>" not in coap("-m", "get", "%s/.well-known/core" % server.url).stdout
    assert b"4.04" in coap("-m", "get", "%s/profiles/w1" % server.url).stderr
    assert send("post", "%s/beat/w1" % server.url, dict(beat, etag=etag(mine).hex()), tmp_path)["profile"] == "current"
    assert get("%s/profiles" % server.url) == {"w1": mine}
    assert b"</profiles/w1>" in coap("-m", "get", "%s/.well-known/core" % server.url).stdout
    log = server.log_text()
    for line in ("liveness node=w1 suspected (alive -> suspected)", "liveness node=w1 lost (suspected -> lost)",
                 "liveness node=w1 back (lost -> alive)"):
        assert log.count(line) == 1, log


@pytest.mark.parametrize("body, expected", [
    (b"x" * 600, b"4.13"),
    (b'{"etag": "0123456789abcdef", "term": 0, "tmi": 1}', b"beat has unknown key(s) tmi"),
])
def test_libcoap_sees_a_refused_beat(server, tmp_path: Path, body: bytes, expected: bytes):
    source = tmp_path / "beat.json"
    source.write_bytes(body)
    done = coap("-m", "post", "-t", "json", "-f", str(source), "%s/beat/w1" % server.url)
    assert expected in done.stdout + done.stderr


def test_a_corrupt_term_file_stops_the_registry(tmp_path: Path):
    (tmp_path / "leadership.json").write_text("{\"highest_term\": ")
    done = subprocess.run([sys.executable, "-m", SERVER_MODULE, "--port", "0", "--db", str(tmp_path / "r.sqlite"),
                           "--name", "m1"], capture_output=True, text=True, timeout=60, env=server_environment(),
                          cwd=str(COLLECTIONS_PATH), check=False)
    assert done.returncode == 1
    assert ("the leadership term file %s is corrupt" % (tmp_path / "leadership.json")) in done.stderr
    assert not (tmp_path / "r.sqlite").exists()
