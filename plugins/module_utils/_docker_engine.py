# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small Docker Engine API client over the engine's Unix socket, with the standard library only.

Nodes need no Docker SDK and no ``requests`` for it: ``running_facts`` asks what runs with it, and the
node-side apply (``_node_apply``) inspects, pulls, creates, starts and removes containers with it. Every
error names the socket, the method, the path and what the engine said. Answers are bounded: an engine
answers a node's questions in kilobytes, so anything over MAX_ANSWER is refused rather than held.
Standard library only, Python >= 3.9: this runs on the nodes.
"""

from __future__ import annotations

import http.client
import json
import socket
import typing as t
import urllib.parse

DEFAULT_SOCKET = "/var/run/docker.sock"
# One inspect or list answer is a few KiB; a node with hundreds of containers lists well under this.
MAX_ANSWER = 4 << 20
# One line of a pull's progress stream.
MAX_PROGRESS_LINE = 1 << 20


class EngineError(Exception):
    """The node's Docker engine could not be asked, or refused; the message says which socket and why."""

    def __init__(self, message: str, status: t.Optional[int] = None) -> None:
        super().__init__(message)
        self.status = status


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def engine_get(socket_path: str, path: str, timeout: float = 10.0) -> t.Any:
    """GET one Docker Engine API path over the Unix socket and decode its JSON answer."""
    conn = _UnixHTTPConnection(socket_path, timeout)
    try:
        conn.request("GET", path, headers={"Accept": "application/json"})
        response = conn.getresponse()
        body = response.read(MAX_ANSWER + 1)
    except (OSError, http.client.HTTPException) as exc:
        raise EngineError("the Docker engine at %s does not answer: %s" % (socket_path, exc)) from exc
    finally:
        conn.close()
    if response.status != 200:
        text = body.decode("utf-8", "replace").strip()
        raise EngineError("the Docker engine at %s answered %s to GET %s: %s"
                          % (socket_path, response.status, path.split("?")[0], text[:200]), response.status)
    if len(body) > MAX_ANSWER:
        raise EngineError("the Docker engine at %s answered GET %s with more than %d bytes"
                          % (socket_path, path.split("?")[0], MAX_ANSWER))
    try:
        return json.loads(body.decode("utf-8"))
    except ValueError as exc:
        raise EngineError("the Docker engine at %s sent something that is not JSON for GET %s"
                          % (socket_path, path.split("?")[0])) from exc


def list_containers(socket_path: str, label: str, timeout: float = 10.0) -> t.List[t.Dict[str, t.Any]]:
    """Every container (in any state) that carries ``label``, as the engine lists them."""
    filters = urllib.parse.quote(json.dumps({"label": [label]}, separators=(",", ":")))
    answer = engine_get(socket_path, "/containers/json?all=1&filters=" + filters, timeout)
    if not isinstance(answer, list):
        raise EngineError("the Docker engine at %s listed containers as %s, not a list"
                          % (socket_path, type(answer).__name__))
    return [item for item in answer if isinstance(item, dict)]


def split_reference(image: str) -> t.Tuple[str, str]:
    """(repository, tag or digest) of an image reference, as ``POST /images/create`` takes them."""
    if "@" in image:
        name, _at, digest = image.partition("@")
        return name, digest
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        return image[: len(image) - len(last) + last.index(":")], last.split(":", 1)[1]
    return image, "latest"


def _engine_message(body: bytes) -> str:
    """What the engine says in an error answer: its ``message``, else the text itself."""
    text = body.decode("utf-8", "replace").strip()
    try:
        decoded = json.loads(text)
    except ValueError:
        return text[:300]
    if isinstance(decoded, dict) and isinstance(decoded.get("message"), str):
        return decoded["message"][:300]
    return text[:300]


# seconds a container gets between SIGTERM and SIGKILL when it is removed (the engine's own default)
STOP_TIMEOUT = 10


class DockerEngine:
    """The operations of the node-side apply, each one request to the engine at ``socket_path``."""

    def __init__(self, socket_path: str = DEFAULT_SOCKET, timeout: float = 60.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout

    def _where(self, method: str, path: str) -> str:
        return "the Docker engine at %s, %s %s" % (self.socket_path, method, path)

    def _open(self, method: str, path: str, query: t.Optional[t.Mapping[str, t.Any]],
              body: t.Any) -> t.Tuple[_UnixHTTPConnection, http.client.HTTPResponse]:
        url = path + ("?" + urllib.parse.urlencode(query) if query else "")
        payload = None if body is None else json.dumps(body).encode("utf-8")
        headers = {"Accept": "application/json"}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        conn = _UnixHTTPConnection(self.socket_path, self.timeout)
        try:
            conn.request(method, url, body=payload, headers=headers)
            return conn, conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise EngineError("%s: no answer: %s" % (self._where(method, path), exc)) from exc

    def call(self, method: str, path: str, query: t.Optional[t.Mapping[str, t.Any]] = None, body: t.Any = None,
             missing_ok: bool = False) -> t.Any:
        """The JSON answer of one request (None for an empty one, or for 404 when ``missing_ok``)."""
        conn, response = self._open(method, path, query, body)
        try:
            data = response.read(MAX_ANSWER + 1)
        except (OSError, http.client.HTTPException) as exc:
            raise EngineError("%s: the answer broke off: %s" % (self._where(method, path), exc)) from exc
        finally:
            conn.close()
        if response.status == 404 and missing_ok:
            return None
        if response.status >= 400:
            raise EngineError("%s: %s %s" % (self._where(method, path), response.status, _engine_message(data)),
                              response.status)
        if len(data) > MAX_ANSWER:
            raise EngineError("%s: an answer of more than %d bytes is refused"
                              % (self._where(method, path), MAX_ANSWER))
        if not data.strip():
            return None
        try:
            return json.loads(data.decode("utf-8"))
        except ValueError as exc:
            raise EngineError("%s: the answer is not JSON" % self._where(method, path)) from exc

    def inspect_container(self, name: str) -> t.Optional[t.Dict[str, t.Any]]:
        """The container as ``docker inspect`` shows it, None when there is none of that name."""
        return self.call("GET", "/containers/%s/json" % urllib.parse.quote(name, safe=""), missing_ok=True)

    def inspect_image(self, image: str) -> t.Optional[t.Dict[str, t.Any]]:
        """The image as ``docker image inspect`` shows it, None when the node does not have it."""
        return self.call("GET", "/images/%s/json" % urllib.parse.quote(image, safe="/:@"), missing_ok=True)

    def list_containers(self, label: str) -> t.List[t.Dict[str, t.Any]]:
        """Every container (in any state) that carries ``label``."""
        return list_containers(self.socket_path, label, self.timeout)

    def pull(self, image: str, platform: t.Optional[str] = None) -> None:
        """Pull ``image`` (by tag or digest); the progress stream is read to its end, and an ``error`` in it fails."""
        repository, tag = split_reference(image)
        query = {"fromImage": repository, "tag": tag}
        if platform:
            query["platform"] = platform
        conn, response = self._open("POST", "/images/create", query, None)
        where = self._where("POST", "/images/create") + " (%s)" % image
        try:
            if response.status >= 400:
                raise EngineError("%s: %s %s" % (where, response.status,
                                                 _engine_message(response.read(MAX_ANSWER))), response.status)
            error = self._read_progress(response, where)
        except (OSError, http.client.HTTPException) as exc:
            raise EngineError("%s: the progress stream broke off: %s" % (where, exc)) from exc
        finally:
            conn.close()
        if error:
            raise EngineError("%s: %s" % (where, error))

    @staticmethod
    def _read_progress(response: http.client.HTTPResponse, where: str) -> str:
        """The stream's first error message, after reading it whole (the pull goes on until it ends)."""
        error = ""
        while True:
            line = response.readline(MAX_PROGRESS_LINE + 1)
            if not line:
                return error
            if len(line) > MAX_PROGRESS_LINE:
                raise EngineError("%s: a progress message of more than %d bytes is refused"
                                  % (where, MAX_PROGRESS_LINE))
            try:
                event = json.loads(line.decode("utf-8", "replace"))
            except ValueError:
                continue
            if isinstance(event, dict) and event.get("error") and not error:
                error = str(event["error"])[:300]

    def create_container(self, name: str, body: t.Mapping[str, t.Any], platform: t.Optional[str] = None) -> str:
        """Create container ``name`` from ``body`` (the engine's ContainerCreate); its ID."""
        query = {"name": name}
        if platform:
            query["platform"] = platform
        answer = self.call("POST", "/containers/create", query, dict(body))
        if not isinstance(answer, dict) or not isinstance(answer.get("Id"), str):
            raise EngineError("%s: the answer names no container ID" % self._where("POST", "/containers/create"))
        return answer["Id"]

    def start_container(self, ident: str) -> None:
        self.call("POST", "/containers/%s/start" % urllib.parse.quote(ident, safe=""))

    def remove_container(self, ident: str, stop_timeout: int = STOP_TIMEOUT) -> None:
        """Stop the container (SIGTERM, then SIGKILL after ``stop_timeout`` s, as community.docker's
        docker_container does before it removes one: a service that keeps a history on disk ends its write),
        then remove it; one already stopped or gone is fine."""
        quoted = urllib.parse.quote(ident, safe="")
        # 304: already stopped
        self.call("POST", "/containers/%s/stop" % quoted, {"t": str(stop_timeout)}, missing_ok=True)
        self.call("DELETE", "/containers/%s" % quoted, {"force": "1"}, missing_ok=True)
