# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Docker Engine API client against a fake engine on a Unix socket: requests, answers, errors, bounds."""

from __future__ import annotations

import http.server
import json
import socketserver
import threading
import typing as t

import pytest

from ansible_collections.nanoedge.core.plugins.module_utils import _docker_engine
from ansible_collections.nanoedge.core.plugins.module_utils._docker_engine import (
    DockerEngine,
    EngineError,
    split_reference,
)

Route = t.Tuple[int, bytes]


class _Engine(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, routes: t.Dict[t.Tuple[str, str], Route]) -> None:
        self.routes, self.requests = routes, []  # type: t.Dict[t.Tuple[str, str], Route], t.List[t.Any]
        super().__init__(path, _Handler)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def address_string(self) -> str:
        return "engine"

    def log_message(self, *args: t.Any) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.server.requests.append((self.command, self.path, body))
        status, data = self.server.routes.get((self.command, self.path.split("?")[0]), (404, b'{"message":"no"}'))
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = _answer


@pytest.fixture
def engine(tmp_path):
    started = []

    def start(routes: t.Dict[t.Tuple[str, str], Route]) -> t.Tuple[DockerEngine, _Engine]:
        path = str(tmp_path / "docker.sock")
        server = _Engine(path, routes)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
        return DockerEngine(path, timeout=5), server

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


def stream(*events: t.Dict[str, t.Any]) -> bytes:
    return b"".join(json.dumps(event).encode() + b"\r\n" for event in events)


def test_inspect_and_a_missing_one(engine) -> None:
    client, server = engine({("GET", "/containers/nanoedge-svc-spo2/json"): (200, b'{"Id": "c1"}'),
                             ("GET", "/images/10.0.0.1:5000/nanoedge/spo2@sha256:ab/json"): (200, b'{"Id": "i1"}')})
    assert client.inspect_container("nanoedge-svc-spo2") == {"Id": "c1"}
    assert client.inspect_container("nanoedge-svc-hr") is None
    assert client.inspect_image("10.0.0.1:5000/nanoedge/spo2@sha256:ab") == {"Id": "i1"}
    assert client.inspect_image("nanoedge/hr:1") is None
    assert [r[1] for r in server.requests] == [
        "/containers/nanoedge-svc-spo2/json", "/containers/nanoedge-svc-hr/json",
        "/images/10.0.0.1:5000/nanoedge/spo2@sha256:ab/json", "/images/nanoedge/hr:1/json"]


def test_create_start_remove(engine) -> None:
    client, server = engine({("POST", "/containers/create"): (201, b'{"Id": "c2", "Warnings": []}'),
                             ("POST", "/containers/c2/start"): (204, b""),
                             ("POST", "/containers/c1/stop"): (304, b""),
                             ("DELETE", "/containers/c1"): (204, b""),
                             ("POST", "/containers/gone/stop"): (404, b'{"message": "No such container: gone"}'),
                             ("DELETE", "/containers/gone"): (404, b'{"message": "No such container: gone"}')})
    assert client.create_container("nanoedge-svc-spo2", {"Image": "x"}, "linux/arm/v7") == "c2"
    client.start_container("c2")
    client.remove_container("c1")
    client.remove_container("gone")
    assert server.requests == [
        ("POST", "/containers/create?name=nanoedge-svc-spo2&platform=linux%2Farm%2Fv7", {"Image": "x"}),
        ("POST", "/containers/c2/start", None),
        ("POST", "/containers/c1/stop?t=10", None),
        ("DELETE", "/containers/c1?force=1", None),
        ("POST", "/containers/gone/stop?t=10", None),
        ("DELETE", "/containers/gone?force=1", None)]


def test_errors_name_the_socket_the_method_the_path_and_the_engine_s_message(engine) -> None:
    client, _server = engine({("POST", "/containers/create"): (409, b'{"message": "Conflict. The name is in use"}'),
                              ("POST", "/containers/c1/start"): (500, b"plain text"),
                              ("GET", "/containers/odd/json"): (200, b"<html>")})
    where = "the Docker engine at %s" % client.socket_path
    with pytest.raises(EngineError) as error:
        client.create_container("nanoedge-svc-spo2", {})
    assert str(error.value) == where + ", POST /containers/create: 409 Conflict. The name is in use"
    assert error.value.status == 409
    with pytest.raises(EngineError) as error:
        client.start_container("c1")
    assert str(error.value) == where + ", POST /containers/c1/start: 500 plain text"
    with pytest.raises(EngineError) as error:
        client.inspect_container("odd")
    assert str(error.value) == where + ", GET /containers/odd/json: the answer is not JSON"


def test_a_socket_nobody_listens_on(tmp_path) -> None:
    path = tmp_path / "docker.sock"
    with pytest.raises(EngineError) as error:
        DockerEngine(str(path)).inspect_container("x")
    assert str(error.value).startswith("the Docker engine at %s, GET /containers/x/json: no answer: " % path)


def test_answers_over_the_bound_are_refused(engine, monkeypatch) -> None:
    monkeypatch.setattr(_docker_engine, "MAX_ANSWER", 10)
    client, _server = engine({("GET", "/containers/big/json"): (200, b'{"Id": "0123456789"}')})
    with pytest.raises(EngineError) as error:
        client.inspect_container("big")
    assert str(error.value).endswith("GET /containers/big/json: an answer of more than 10 bytes is refused")


def test_pull_reads_the_whole_stream(engine) -> None:
    client, server = engine({("POST", "/images/create"): (200, stream(
        {"status": "Pulling from nanoedge/spo2"}, {"status": "Downloading", "progress": "[=>  ]"},
        {"status": "Digest: sha256:ab"}))})
    client.pull("10.0.0.1:5000/nanoedge/spo2@sha256:ab", "linux/arm64")
    assert server.requests == [("POST", "/images/create?fromImage=10.0.0.1%3A5000%2Fnanoedge%2Fspo2&tag=sha256%3Aab"
                                        "&platform=linux%2Farm64", None)]


@pytest.mark.parametrize("status, body, message", [
    (200, stream({"status": "Pulling"}, {"errorDetail": {"message": "manifest unknown"}, "error": "manifest unknown"},
                 {"status": "after"}), "manifest unknown"),
    (404, b'{"message": "pull access denied for x"}', "404 pull access denied for x"),
])
def test_a_failed_pull_says_why(engine, status: int, body: bytes, message: str) -> None:
    client, _server = engine({("POST", "/images/create"): (status, body)})
    with pytest.raises(EngineError) as error:
        client.pull("nanoedge/spo2:1.0")
    assert str(error.value) == "the Docker engine at %s, POST /images/create (nanoedge/spo2:1.0): %s" % (
        client.socket_path, message)


def test_a_progress_line_over_the_bound_is_refused(engine, monkeypatch) -> None:
    monkeypatch.setattr(_docker_engine, "MAX_PROGRESS_LINE", 20)
    client, _server = engine({("POST", "/images/create"): (200, stream({"status": "x" * 40}))})
    with pytest.raises(EngineError) as error:
        client.pull("nanoedge/spo2:1.0")
    assert str(error.value).endswith("a progress message of more than 20 bytes is refused")


def test_list_containers_by_label(engine) -> None:
    client, server = engine({("GET", "/containers/json"): (200, b'[{"Id": "c1"}, "odd"]')})
    assert client.list_containers("io.nanoedge.service") == [{"Id": "c1"}]
    assert server.requests[0][1] == "/containers/json?all=1&filters=%7B%22label%22%3A%5B%22io.nanoedge.service%22%5D%7D"


@pytest.mark.parametrize("image, expected", [
    ("10.0.0.1:5000/nanoedge/spo2@sha256:ab", ("10.0.0.1:5000/nanoedge/spo2", "sha256:ab")),
    ("10.0.0.1:5000/nanoedge/spo2:1.0", ("10.0.0.1:5000/nanoedge/spo2", "1.0")),
    ("10.0.0.1:5000/nanoedge/spo2", ("10.0.0.1:5000/nanoedge/spo2", "latest")),
    ("nanoedge/base:bookworm", ("nanoedge/base", "bookworm")),
    ("busybox", ("busybox", "latest")),
])
def test_split_reference(image: str, expected: t.Tuple[str, str]) -> None:
    assert split_reference(image) == expected
