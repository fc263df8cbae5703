# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What runs on a node. The Docker engine's API is served by a small HTTP
server on a Unix socket that answers like the engine (the real engine is
asked in tests/integration/test_running_facts.py)."""

from __future__ import annotations

import http.server
import json
import socketserver
import threading
import typing as t
import urllib.parse

import pytest

from ansible_collections.nanoedge.core.plugins.module_utils import _running


class _Engine(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, status: int, body: bytes) -> None:
        self.status, self.body, self.paths = status, body, []
        super().__init__(path, _Handler)


class _Handler(http.server.BaseHTTPRequestHandler):
    def address_string(self) -> str:
        return "engine"

    def log_message(self, *args: t.Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.paths.append(self.path)
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.server.body)))
        self.end_headers()
        self.wfile.write(self.server.body)


@pytest.fixture
def engine(tmp_path):
    started = []

    def start(answer: t.Any, status: int = 200) -> t.Tuple[str, _Engine]:
        path = str(tmp_path / "docker.sock")
        body = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
        server = _Engine(path, status, body)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
        return path, server

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


def container(name: str, service: t.Optional[str], state: str = "running", **labels: str) -> t.Dict[str, t.Any]:
    all_labels = dict(labels)
    if service is not None:
        all_labels["io.nanoedge.service"] = service
    return {"Id": "0" * 64, "Names": ["/" + name], "State": state, "Labels": all_labels}


def test_containers_units_and_swarm_tasks(engine, tmp_path):
    socket_path, server = engine([
        container("nanoedge-svc-spo2", "spo2", **{"io.nanoedge.digest": "sha256:" + "1" * 64}),
        container("nanoedge-svc-hrv", "hrv", state="exited"),
        container("someone-elses", "spo2"),
        container("nanoedge-svc-alert.1.x1", "alert", **{"com.docker.swarm.task.id": "x1"}),
        container("nanoedge-svc-blank", ""),
    ])
    units = tmp_path / "units"
    units.mkdir()
    (units / "nanoedge-svc-hr.service").write_text("[Service]\n")
    (units / "nanoedge-svc-hr.service.d").mkdir()
    (units / "other.service").write_text("[Service]\n")
    result = _running.running(socket_path=socket_path, unit_dir=str(units))
    assert result["engine"] is True
    assert result["containers"] == {"spo2": "nanoedge-svc-spo2", "hrv": "nanoedge-svc-hrv"}
    assert result["container_states"] == {"spo2": "running", "hrv": "exited"}
    assert result["container_digests"] == {"spo2": "sha256:" + "1" * 64, "hrv": ""}
    assert result["units"] == {"hr": "nanoedge-svc-hr.service"}
    assert result["swarm_tasks"] == {"alert": ["nanoedge-svc-alert.1.x1"]}
    assert result["services"] == ["hr", "hrv", "spo2"]
    path, query = server.paths[0].split("?", 1)
    assert path == "/containers/json"
    params = urllib.parse.parse_qs(query)
    assert params["all"] == ["1"]
    assert json.loads(params["filters"][0]) == {"label": ["io.nanoedge.service"]}


def test_no_engine_no_units(tmp_path):
    result = _running.running(socket_path=str(tmp_path / "absent.sock"), unit_dir=str(tmp_path / "none"))
    assert result["engine"] is False
    assert result["containers"] == {} and result["units"] == {} and result["services"] == []


def test_prefix_is_taken_literally(engine, tmp_path):
    socket_path, _server = engine([container("ward[3]-spo2", "spo2"), container("ward3-spo2", "hrv")])
    (tmp_path / "ward[3]-hr.service").write_text("")
    (tmp_path / "ward3-bot.service").write_text("")
    result = _running.running(socket_path=socket_path, unit_dir=str(tmp_path), name_prefix="ward[3]-")
    assert result["containers"] == {"spo2": "ward[3]-spo2"}
    assert result["units"] == {"hr": "ward[3]-hr.service"}


@pytest.mark.parametrize("answer, status, message", [
    ({"message": "permission denied"}, 403, "answered 403 to GET /containers/json: {\"message\": \"permission denied\"}"),
    (b"<html>", 200, "sent something that is not JSON for GET /containers/json"),
    ({"containers": []}, 200, "listed containers as dict, not a list"),
])
def test_engine_errors_name_the_socket(engine, answer, status, message):
    socket_path, _server = engine(answer, status)
    with pytest.raises(_running.RunningError) as error:
        _running.running(socket_path=socket_path)
    assert str(error.value) == "the Docker engine at %s %s" % (socket_path, message)


def test_socket_that_nobody_listens_on(tmp_path):
    path = tmp_path / "docker.sock"
    path.write_text("")
    with pytest.raises(_running.RunningError) as error:
        _running.running(socket_path=str(path))
    assert str(error.value).startswith("the Docker engine at %s does not answer: " % path)
