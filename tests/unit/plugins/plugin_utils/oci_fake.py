# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""An in-process OCI Distribution API v2 registry (and Docker Hub repository API)
for fast unit tests of the service_profiles lookup. The integration tests use
the real registry; this one exists to make each failure mode cheap and exact.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import secrets
import ssl
import tarfile
import threading
import time
import typing as t
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"

# One entry of a layer: (name, kind, content) with kind file (content: bytes), dir, symlink or
# hardlink (content: the link's target), or fifo; ("name", "file", b"...", 0o755) sets a mode.
Entry = t.Tuple[t.Any, ...]


def make_layer(entries: t.Sequence[Entry], compress: bool = True) -> bytes:
    """A layer blob: a tar (gzip-compressed unless told otherwise) of ``entries``, in order."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            name, kind, content = entry[:3]
            info = tarfile.TarInfo(name)
            info.mode = entry[3] if len(entry) > 3 else (0o755 if kind == "dir" else 0o644)
            info.mtime = 0
            data = None
            if kind == "file":
                info.size = len(content)
                data = io.BytesIO(content)
            else:
                info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
                             "fifo": tarfile.FIFOTYPE}[kind]
                info.linkname = content or ""
            tar.addfile(info, data)
    raw = buffer.getvalue()
    return gzip.compress(raw, mtime=0) if compress else raw


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical(document: t.Any) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


class FakeRegistry:
    """Holds repositories, manifests and blobs; serves them on 127.0.0.1:<free port>."""

    def __init__(self, auth: t.Optional[str] = None, users: t.Optional[t.Dict[str, str]] = None,
                 tls: t.Optional[t.Tuple[str, str]] = None) -> None:
        self.auth = auth  # None | "basic" | "bearer"
        self.users = users or {}
        self.manifests: t.Dict[t.Tuple[str, str], t.Tuple[str, bytes]] = {}
        self.blobs: t.Dict[str, bytes] = {}
        self.hub_repos: t.Dict[str, t.Dict[str, t.Any]] = {}
        self.hub_tags: t.Dict[t.Tuple[str, str], t.Dict[str, t.Any]] = {}
        self.requests: t.List[t.Tuple[str, str]] = []
        self.tokens: t.Dict[str, str] = {}  # token -> granted scope
        self.token_requests: t.List[t.Dict[str, t.List[str]]] = []
        self.delay = 0.0
        self.catalog_enabled = True
        self.send_digest_header = True
        self.redirect_blobs = False
        self.tamper: t.Set[str] = set()  # digests served with wrong content
        self.padded: t.Set[str] = set()  # blob digests served with bytes beyond their size
        self._lock = threading.Lock()
        registry = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body go out as two writes: without this, Nagle and delayed ACKs add 40 ms each
            disable_nagle_algorithm = True

            def log_message(self, *args: t.Any) -> None:
                pass

            def do_GET(self) -> None:
                registry._handle(self, "GET")

            def do_HEAD(self) -> None:
                registry._handle(self, "HEAD")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.scheme = "http"
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def host(self) -> str:
        return "127.0.0.1:%d" % self.server.server_address[1]

    @property
    def url(self) -> str:
        return "%s://%s" % (self.scheme, self.host)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ---- content

    def add_blob(self, data: bytes) -> str:
        digest = digest_of(data)
        self.blobs[digest] = data
        return digest

    def _config(self, labels: t.Optional[t.Dict[str, str]], platform: t.Tuple[str, str, t.Optional[str]],
                exposed: t.Sequence[str] = ()) -> bytes:
        os_name, arch, variant = platform
        inner: t.Dict[str, t.Any] = {"Labels": labels}
        if exposed:
            inner["ExposedPorts"] = {port: {} for port in exposed}
        config: t.Dict[str, t.Any] = {"architecture": arch, "os": os_name, "config": inner,
                                      "rootfs": {"type": "layers", "diff_ids": []}}
        if variant:
            config["variant"] = variant
        return canonical(config)

    def image_manifest(self, repo: str, labels: t.Optional[t.Dict[str, str]],
                       platform: t.Tuple[str, str, t.Optional[str]] = ("linux", "amd64", None), oci: bool = False,
                       annotations: t.Optional[t.Dict[str, str]] = None,
                       raw_config: t.Optional[bytes] = None, exposed: t.Sequence[str] = (),
                       layers: t.Sequence[t.Union[bytes, t.Dict[str, t.Any]]] = ()) -> t.Tuple[str, str, bytes]:
        """A manifest; ``layers`` are blobs (gzip-compressed tar) or ready descriptors."""
        config = raw_config if raw_config is not None else self._config(labels, platform, exposed)
        config_digest = self.add_blob(config)
        media_type = OCI_MANIFEST if oci else DOCKER_MANIFEST
        manifest: t.Dict[str, t.Any] = {
            "schemaVersion": 2, "mediaType": media_type,
            "config": {"mediaType": OCI_CONFIG if oci else DOCKER_CONFIG, "size": len(config),
                       "digest": config_digest},
            "layers": [layer if isinstance(layer, dict) else
                       {"mediaType": DOCKER_LAYER, "size": len(layer), "digest": self.add_blob(layer)}
                       for layer in layers],
        }
        if annotations:
            manifest["annotations"] = annotations
        body = canonical(manifest)
        digest = digest_of(body)
        self.manifests[(repo, digest)] = (media_type, body)
        return digest, media_type, body

    def add_image(self, repo: str, tag: str, labels: t.Optional[t.Dict[str, str]], **kwargs: t.Any) -> str:
        digest, media_type, body = self.image_manifest(repo, labels, **kwargs)
        self.manifests[(repo, tag)] = (media_type, body)
        return digest

    def add_index(self, repo: str, tag: str,
                  platforms: t.Sequence[t.Tuple[t.Tuple[str, str, t.Optional[str]], t.Optional[t.Dict[str, str]]]],
                  oci: bool = True, annotations: t.Optional[t.Dict[str, str]] = None,
                  attestation: bool = False, layers: t.Optional[t.Sequence[t.Sequence[bytes]]] = None) -> str:
        """An index of one image per platform; ``layers`` gives each platform image its layers, in order."""
        entries = []
        for number, (platform, labels) in enumerate(platforms):
            digest, media_type, body = self.image_manifest(repo, labels, platform=platform, oci=oci,
                                                           layers=layers[number] if layers else ())
            entry: t.Dict[str, t.Any] = {"mediaType": media_type, "digest": digest, "size": len(body),
                                         "platform": {"os": platform[0], "architecture": platform[1]}}
            if platform[2]:
                entry["platform"]["variant"] = platform[2]
            entries.append(entry)
        if attestation:
            digest, media_type, body = self.image_manifest(repo, {}, platform=("unknown", "unknown", None), oci=True)
            entries.append({"mediaType": media_type, "digest": digest, "size": len(body),
                            "platform": {"os": "unknown", "architecture": "unknown"},
                            "annotations": {"vnd.docker.reference.type": "attestation-manifest"}})
        media_type = OCI_INDEX if oci else DOCKER_LIST
        index: t.Dict[str, t.Any] = {"schemaVersion": 2, "mediaType": media_type, "manifests": entries}
        if annotations:
            index["annotations"] = annotations
        body = canonical(index)
        digest = digest_of(body)
        self.manifests[(repo, digest)] = (media_type, body)
        self.manifests[(repo, tag)] = (media_type, body)
        return digest

    def add_hub_repo(self, namespace: str, name: str, description: str = "", full_description: str = "",
                     tags: t.Optional[t.Dict[str, t.List[t.Tuple[str, str, t.Optional[str]]]]] = None) -> None:
        self.hub_repos["%s/%s" % (namespace, name)] = {
            "namespace": namespace, "name": name, "description": description, "full_description": full_description,
        }
        for tag, platforms in (tags or {"latest": [("linux", "amd64", None)]}).items():
            self.hub_tags[("%s/%s" % (namespace, name), tag)] = {
                "name": tag, "digest": digest_of(("%s/%s:%s" % (namespace, name, tag)).encode()),
                "images": [dict({"os": o, "architecture": a}, **({"variant": v} if v else {}))
                           for o, a, v in platforms],
            }

    def repositories(self) -> t.List[str]:
        return sorted({repo for repo, _ref in self.manifests})

    # ---- HTTP

    def _handle(self, req: BaseHTTPRequestHandler, method: str) -> None:
        parts = urllib.parse.urlsplit(req.path)
        query = urllib.parse.parse_qs(parts.query)
        path = parts.path
        with self._lock:
            self.requests.append((method, path))
        if self.delay:
            time.sleep(self.delay)
        if path == "/token":
            return self._token(req, query)
        if path.startswith("/hub/"):
            return self._hub(req, path[len("/hub"):], query)
        if path.startswith("/storage/"):
            return self._send(req, method, 200, self.blobs.get(path[len("/storage/"):], b""), "application/octet-stream")
        if not path.startswith("/v2/"):
            return self._send(req, method, 404, b"{}")
        scope = self._scope_for(path)
        if not self._authorized(req, scope):
            return self._challenge(req, method, scope)
        if path == "/v2/":
            return self._send(req, method, 200, b"{}")
        if path == "/v2/_catalog":
            return self._catalog(req, method, query)
        rest = path[len("/v2/"):]
        for marker in ("/manifests/", "/blobs/", "/tags/list"):
            if marker in rest:
                repo, _sep, ref = rest.partition(marker)
                break
        else:
            return self._send(req, method, 404, b"{}")
        if marker == "/tags/list":
            tags = sorted(r for (rp, r) in self.manifests if rp == repo and not r.startswith("sha256:"))
            if not tags and repo not in self.repositories():
                return self._error(req, method, 404, "NAME_UNKNOWN", "repository name not known to registry")
            return self._send(req, method, 200, canonical({"name": repo, "tags": tags}))
        if marker == "/blobs/":
            if ref not in self.blobs:
                return self._error(req, method, 404, "BLOB_UNKNOWN", "blob unknown to registry")
            if self.redirect_blobs:
                return self._send(req, method, 307, b"", headers={"Location": "/storage/" + ref})
            body = b'{"tampered": true}' if ref in self.tamper else self.blobs[ref]
            if ref in self.padded:
                body += b"\0" * 1024
            return self._send(req, method, 200, body, "application/octet-stream")
        entry = self.manifests.get((repo, ref))
        accept = req.headers.get("Accept", "")
        if entry is None or entry[0] not in accept:
            return self._error(req, method, 404, "MANIFEST_UNKNOWN", "manifest unknown")
        media_type, body = entry
        headers = {"Docker-Content-Digest": digest_of(body)} if self.send_digest_header else {}
        if digest_of(body) in self.tamper:
            body = body.replace(b'"layers":[]', b'"layers":[ ]')
        return self._send(req, method, 200, body, media_type, headers)

    def _scope_for(self, path: str) -> str:
        if path == "/v2/":
            return ""
        if path == "/v2/_catalog":
            return "registry:catalog:*"
        rest = path[len("/v2/"):]
        for marker in ("/manifests/", "/blobs/", "/tags/list"):
            if marker in rest:
                return "repository:%s:pull" % rest.partition(marker)[0]
        return ""

    def _basic_user(self, req: BaseHTTPRequestHandler) -> t.Optional[str]:
        header = req.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None
        user, _sep, password = base64.b64decode(header[6:]).decode().partition(":")
        return user if self.users.get(user) == password else None

    def _authorized(self, req: BaseHTTPRequestHandler, scope: str) -> bool:
        if self.auth is None:
            return True
        if self.auth == "basic":
            return self._basic_user(req) is not None
        header = req.headers.get("Authorization", "")
        granted = self.tokens.get(header[7:]) if header.startswith("Bearer ") else None
        return granted is not None and (scope == "" or scope in granted.split(" "))

    def _challenge(self, req: BaseHTTPRequestHandler, method: str, scope: str) -> None:
        if self.auth == "basic":
            challenge = 'Basic realm="fake"'
        else:
            challenge = 'Bearer realm="%s/token",service="fake-registry"' % self.url
            if scope:
                challenge += ',scope="%s"' % scope
        self._error(req, method, 401, "UNAUTHORIZED", "authentication required",
                    headers={"WWW-Authenticate": challenge})

    def _token(self, req: BaseHTTPRequestHandler, query: t.Dict[str, t.List[str]]) -> None:
        with self._lock:
            self.token_requests.append(query)
        if self.users and self._basic_user(req) is None:
            return self._send(req, "GET", 401, b'{"details": "bad credentials"}')
        token = secrets.token_hex(8)
        self.tokens[token] = " ".join(query.get("scope", []))
        self._send(req, "GET", 200, canonical({"token": token, "expires_in": 300}), "application/json")

    def _catalog(self, req: BaseHTTPRequestHandler, method: str, query: t.Dict[str, t.List[str]]) -> None:
        if not self.catalog_enabled:
            return self._error(req, method, 404, "UNSUPPORTED", "catalog disabled")
        n = int(query.get("n", ["100"])[0])
        last = query.get("last", [""])[0]
        names = [r for r in self.repositories() if r > last]
        page = names[:n]
        headers = {}
        if len(names) > n:
            headers["Link"] = '</v2/_catalog?last=%s&n=%d>; rel="next"' % (urllib.parse.quote(page[-1]), n)
        self._send(req, method, 200, canonical({"repositories": page}), "application/json", headers)

    def _hub(self, req: BaseHTTPRequestHandler, path: str, query: t.Dict[str, t.List[str]]) -> None:
        parts = [p for p in path.split("/") if p]
        if parts[:2] != ["v2", "repositories"]:
            return self._send(req, "GET", 404, b"{}")
        parts = parts[2:]
        if len(parts) == 1:
            ns = parts[0]
            results = [r for key, r in sorted(self.hub_repos.items()) if r["namespace"] == ns]
            size = int(query.get("page_size", ["100"])[0])
            page = int(query.get("page", ["1"])[0])
            chunk = results[(page - 1) * size:page * size]
            nxt = ("%s/hub/v2/repositories/%s/?page=%d&page_size=%d" % (self.url, ns, page + 1, size)
                   if page * size < len(results) else None)
            return self._send(req, "GET", 200, canonical({"count": len(results), "next": nxt, "results": chunk}))
        repo = "/".join(parts[:2])
        if repo not in self.hub_repos:
            return self._send(req, "GET", 404, b'{"message": "object not found"}')
        if len(parts) == 2:
            return self._send(req, "GET", 200, canonical(self.hub_repos[repo]))
        if len(parts) == 3 and parts[2] == "tags":
            results = [v for (r, _tag), v in sorted(self.hub_tags.items()) if r == repo]
            return self._send(req, "GET", 200, canonical({"count": len(results), "next": None, "results": results}))
        if len(parts) == 4 and parts[2] == "tags":
            tag = self.hub_tags.get((repo, parts[3]))
            if tag is None:
                return self._send(req, "GET", 404, b'{"message": "object not found"}')
            return self._send(req, "GET", 200, canonical(tag))
        return self._send(req, "GET", 404, b"{}")

    def _error(self, req: BaseHTTPRequestHandler, method: str, status: int, code: str, message: str,
               headers: t.Optional[t.Dict[str, str]] = None) -> None:
        body = canonical({"errors": [{"code": code, "message": message}]})
        self._send(req, method, status, body, "application/json", headers)

    def _send(self, req: BaseHTTPRequestHandler, method: str, status: int, body: bytes,
              content_type: str = "application/json", headers: t.Optional[t.Dict[str, str]] = None) -> None:
        req.send_response(status)
        req.send_header("Content-Type", content_type)
        req.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            req.send_header(key, value)
        req.end_headers()
        if method != "HEAD":
            req.wfile.write(body)
