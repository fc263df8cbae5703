# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small client for the OCI Distribution API v2 (controller side).

It reads what service discovery needs and nothing more: the catalog, tag
lists, manifests (Docker schema 2, Docker manifest list, OCI manifest, OCI
index) and config blobs. Standard library only, so the lookup works on any
controller. Keep-alive connections are kept per thread, requests for many
images run concurrently, and what was read is cached by manifest digest,
which is content-addressed: an unchanged image costs one HEAD request.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import re
import socket
import ssl
import tempfile
import threading
import time
import typing as t
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

MEDIA_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MEDIA_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
INDEX_MEDIA_TYPES = (MEDIA_DOCKER_LIST, MEDIA_OCI_INDEX)
IMAGE_MEDIA_TYPES = (MEDIA_DOCKER_MANIFEST, MEDIA_OCI_MANIFEST)
# Registries pick the representation from Accept: with only the Docker type an
# OCI manifest answers 404, with no Accept distribution converts to schema 1.
MANIFEST_ACCEPT = ", ".join(IMAGE_MEDIA_TYPES + INDEX_MEDIA_TYPES)

MAX_DOCUMENT_BYTES = 8 * 1024 * 1024
MAX_REDIRECTS = 5
CACHE_FORMAT = 1
USER_AGENT = "nanoedge.core-service_profiles"

_CHALLENGE_PARAM_RE = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')
_LINK_NEXT_RE = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
_DIGEST_RE = re.compile(r"^(sha256|sha384|sha512):([a-f0-9]{64,128})$")
_REPOSITORY_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_SEMVER_RE = re.compile(
    r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)


class OciError(Exception):
    """Something went wrong talking to a registry; the message names registry and repository."""

    def __init__(self, registry: str, repository: t.Optional[str], reason: str,
                 subject: t.Optional[str] = None) -> None:
        self.registry = registry
        self.repository = repository
        self.reason = reason
        if subject is None:
            subject = "registry %s" % registry
            if repository:
                subject += ", repository %s" % repository
        super().__init__("%s: %s" % (subject, reason))


class RegistryError(OciError):
    """Transport, TLS, auth or server failure: the registry, not one image, is at fault."""


class ImageError(OciError):
    """One image cannot be read (missing tag or manifest, unusable content)."""

    def __init__(self, image: str, registry: str, repository: str, reason: str) -> None:
        self.image = image
        super().__init__(registry, repository, reason, subject="image %s" % image)


@dataclass
class Response:
    status: int
    headers: t.Dict[str, str]
    body: bytes
    url: str

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


@dataclass(frozen=True)
class PlatformImage:
    """One platform of an image: its manifest and the config that manifest names."""

    platform: str
    manifest_digest: str
    labels: t.Dict[str, str]
    annotations: t.Dict[str, str]

    def to_json(self) -> t.Dict[str, t.Any]:
        return {"platform": self.platform, "manifest_digest": self.manifest_digest,
                "labels": self.labels, "annotations": self.annotations}

    @classmethod
    def from_json(cls, data: t.Mapping[str, t.Any]) -> "PlatformImage":
        return cls(platform=str(data["platform"]), manifest_digest=str(data["manifest_digest"]),
                   labels=_str_dict(data.get("labels")), annotations=_str_dict(data.get("annotations")))


@dataclass(frozen=True)
class ImageContent:
    """Everything read for one manifest digest; valid for as long as the digest is."""

    media_type: str
    annotations: t.Dict[str, str]
    platforms: t.Tuple[PlatformImage, ...]

    def to_json(self) -> t.Dict[str, t.Any]:
        return {"media_type": self.media_type, "annotations": self.annotations,
                "platforms": [p.to_json() for p in self.platforms]}

    @classmethod
    def from_json(cls, data: t.Mapping[str, t.Any]) -> "ImageContent":
        return cls(media_type=str(data["media_type"]), annotations=_str_dict(data.get("annotations")),
                   platforms=tuple(PlatformImage.from_json(p) for p in data["platforms"]))


@dataclass(frozen=True)
class ImageMetadata:
    registry: str
    repository: str
    tag: str
    digest: str
    content: ImageContent

    @property
    def reference(self) -> str:
        return "%s/%s:%s" % (self.registry, self.repository, self.tag)

    @property
    def platform_names(self) -> t.List[str]:
        return sorted({p.platform for p in self.content.platforms})


def _str_dict(value: t.Any) -> t.Dict[str, str]:
    """Labels and annotations are string maps; anything else in untrusted JSON is dropped."""
    if not isinstance(value, dict):
        return {}
    return {str(k): v for k, v in value.items() if isinstance(v, str)}


# --------------------------------------------------------------------------- cache


class DigestCache:
    """Image content by manifest digest, for a run and optionally on disk.

    A digest names immutable content, so an entry never goes stale; the file
    only grows by what was read and is rewritten atomically.
    """

    def __init__(self, path: t.Optional[str] = None) -> None:
        self.path = path
        self._entries: t.Dict[str, ImageContent] = {}
        self._lock = threading.Lock()
        self._dirty = False
        if path:
            self._load(path)

    def _load(self, path: str) -> None:
        try:
            with open(path, "rb") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            return
        except (OSError, ValueError):
            return  # an unreadable cache costs one cold run, never a failure
        if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT:
            return
        for digest, entry in (data.get("entries") or {}).items():
            try:
                self._entries[digest] = ImageContent.from_json(entry)
            except (KeyError, TypeError, ValueError):
                continue

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, digest: str) -> t.Optional[ImageContent]:
        return self._entries.get(digest)

    def put(self, digest: str, content: ImageContent) -> None:
        with self._lock:
            if digest not in self._entries:
                self._entries[digest] = content
                self._dirty = True

    def save(self) -> None:
        if not self.path or not self._dirty:
            return
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        with self._lock:
            payload = {"format": CACHE_FORMAT,
                       "entries": {d: c.to_json() for d, c in sorted(self._entries.items())}}
            fd, tmp = tempfile.mkstemp(prefix=".service_profiles-", dir=directory)
            try:
                with os.fdopen(fd, "w") as handle:
                    json.dump(payload, handle, separators=(",", ":"))
                os.replace(tmp, self.path)
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise
            self._dirty = False


# --------------------------------------------------------------------------- HTTP


def make_ssl_context(validate_certs: bool = True, ca_path: t.Optional[str] = None) -> ssl.SSLContext:
    if not validate_certs:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if ca_path and os.path.isdir(ca_path):
        return ssl.create_default_context(capath=ca_path)
    return ssl.create_default_context(cafile=ca_path or None)


class HttpTransport:
    """HTTP/1.1 with one keep-alive connection per thread and origin; follows redirects.

    urllib opens a new connection for every request; a discovery makes
    hundreds of small ones to the same registry, so the handshakes would
    cost more than the answers.
    """

    def __init__(self, timeout: float = 10.0,
                 ssl_context: t.Union[ssl.SSLContext, t.Callable[[], ssl.SSLContext], None] = None,
                 user_agent: str = USER_AGENT) -> None:
        self.timeout = timeout
        # loading the system CA store costs ~20 ms: only when HTTPS is actually spoken
        self._ssl_context = ssl_context if ssl_context is not None else ssl.create_default_context
        self.user_agent = user_agent
        self._local = threading.local()
        self._all: t.List[http.client.HTTPConnection] = []
        self._all_lock = threading.Lock()

    def ssl_context(self) -> ssl.SSLContext:
        with self._all_lock:
            if not isinstance(self._ssl_context, ssl.SSLContext):
                self._ssl_context = self._ssl_context()
            return self._ssl_context

    def _connection(self, scheme: str, netloc: str, fresh: bool) -> t.Tuple[http.client.HTTPConnection, bool]:
        pool = getattr(self._local, "pool", None)
        if pool is None:
            pool = self._local.pool = {}
        key = (scheme, netloc)
        conn = pool.get(key)
        if conn is not None and not fresh:
            return conn, True
        if conn is not None:
            conn.close()
        if scheme == "https":
            conn = http.client.HTTPSConnection(netloc, timeout=self.timeout, context=self.ssl_context())
        else:
            conn = http.client.HTTPConnection(netloc, timeout=self.timeout)
        pool[key] = conn
        with self._all_lock:
            self._all.append(conn)
        return conn, False

    def _once(self, method: str, url: str, headers: t.Mapping[str, str], body: t.Optional[bytes],
              max_bytes: int) -> Response:
        parts = urllib.parse.urlsplit(url)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        all_headers = {"User-Agent": self.user_agent, "Connection": "keep-alive"}
        all_headers.update(headers)
        for attempt in (0, 1):
            conn, reused = self._connection(parts.scheme, parts.netloc, fresh=attempt > 0)
            try:
                conn.request(method, target, body=body, headers=all_headers)
                raw = conn.getresponse()
                data = raw.read(max_bytes + 1)
                if len(data) > max_bytes:
                    conn.close()
                    raise ValueError("response larger than %d bytes" % max_bytes)
                if raw.will_close:
                    conn.close()
                return Response(status=raw.status, headers={k.lower(): v for k, v in raw.getheaders()},
                                body=data, url=url)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                    http.client.BadStatusLine) as exc:
                conn.close()
                # a kept-alive connection the server has closed meanwhile: retry once on a new one
                if not reused or attempt:
                    raise exc
            except BaseException:
                conn.close()
                raise
        raise AssertionError("unreachable")

    def request(self, method: str, url: str, headers: t.Optional[t.Mapping[str, str]] = None,
                body: t.Optional[bytes] = None, max_bytes: int = MAX_DOCUMENT_BYTES) -> Response:
        headers = dict(headers or {})
        origin = urllib.parse.urlsplit(url)[:2]
        for _hop in range(MAX_REDIRECTS + 1):
            response = self._once(method, url, headers, body, max_bytes)
            if response.status not in (301, 302, 303, 307, 308) or method not in ("GET", "HEAD"):
                return response
            location = response.header("location")
            if not location:
                return response
            url = urllib.parse.urljoin(url, location)
            if urllib.parse.urlsplit(url)[:2] != origin:
                # blob storage (S3, CDN) gets a pre-signed URL; our credentials stay with the registry
                headers.pop("Authorization", None)
        raise ValueError("more than %d redirects" % MAX_REDIRECTS)

    def close(self) -> None:
        with self._all_lock:
            for conn in self._all:
                conn.close()
            self._all.clear()


def send(transport: HttpTransport, method: str, url: str, headers: t.Mapping[str, str], host: str,
         repository: t.Optional[str], what: str) -> Response:
    """One request; failures become RegistryError naming the registry and repository."""
    try:
        return transport.request(method, url, headers)
    except (socket.timeout, TimeoutError):
        raise RegistryError(host, repository, "%s timed out after %gs" % (what, transport.timeout)) from None
    except ssl.SSLError as exc:
        raise RegistryError(host, repository, "%s: TLS error: %s" % (what, exc)) from exc
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise RegistryError(host, repository, "%s failed: %s" % (what, exc or type(exc).__name__)) from exc


def parse_challenge(header: str) -> t.Tuple[str, t.Dict[str, str]]:
    """Split ``Bearer realm="…",service="…",scope="…"`` into scheme and parameters."""
    header = header.strip()
    if not header:
        return "", {}
    scheme, _sep, rest = header.partition(" ")
    params = {}
    for match in _CHALLENGE_PARAM_RE.finditer(rest):
        value = match.group(2) if match.group(2) is not None else match.group(3)
        params[match.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
    return scheme.lower(), params


def next_link(response: Response) -> t.Optional[str]:
    match = _LINK_NEXT_RE.search(response.header("link"))
    if not match:
        return None
    return urllib.parse.urljoin(response.url, match.group(1))


def _describe_http_error(response: Response) -> str:
    reason = "HTTP %d %s" % (response.status, http.client.responses.get(response.status, ""))
    try:
        errors = json.loads(response.body.decode("utf-8")).get("errors") or []
        codes = ["%s: %s" % (e.get("code"), e.get("message")) for e in errors if isinstance(e, dict)]
    except (ValueError, AttributeError, UnicodeDecodeError):
        codes = []
    return ", ".join([reason.strip()] + codes)


def parse_registry_url(registry: str) -> t.Tuple[str, str]:
    """Return (base URL, host[:port] as written in image references).

    Without a scheme the registry speaks HTTPS, like Docker assumes.
    """
    text = registry.strip().rstrip("/")
    if not text:
        raise ValueError("the registry address is empty")
    if "://" not in text:
        text = "https://" + text
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        raise ValueError("%r is not a registry address (expected http(s)://host[:port])" % registry)
    return "%s://%s" % (parts.scheme, parts.netloc), parts.netloc


# --------------------------------------------------------------------------- registry client


class RegistryClient:
    """Reads one registry, anonymously, with Basic credentials or through a token service."""

    def __init__(self, registry: str, username: t.Optional[str] = None, password: t.Optional[str] = None,
                 timeout: float = 10.0, validate_certs: bool = True, ca_path: t.Optional[str] = None,
                 transport: t.Optional[HttpTransport] = None) -> None:
        self.base_url, self.host = parse_registry_url(registry)
        self.username = username or None
        self.password = password or ""
        self.timeout = timeout
        self.transport = transport or HttpTransport(
            timeout=timeout, ssl_context=lambda: make_ssl_context(validate_certs, ca_path))
        self._scheme: t.Optional[str] = None  # learned from the first 401 challenge
        self._tokens: t.Dict[str, t.Tuple[str, float]] = {}
        self._token_locks: t.Dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self.token_requests = 0  # token service round trips, for tests and diagnostics

    # ---- auth

    def _basic_header(self) -> str:
        raw = ("%s:%s" % (self.username, self.password)).encode("utf-8")
        return "Basic " + base64.b64encode(raw).decode("ascii")

    def _auth_header(self, scope: str) -> t.Optional[str]:
        if self._scheme == "basic" and self.username:
            return self._basic_header()
        if self._scheme == "bearer":
            cached = self._tokens.get(scope)
            if cached and cached[1] > time.monotonic():
                return "Bearer " + cached[0]
        return None

    def _fetch_token(self, params: t.Mapping[str, str], scope: str, repository: t.Optional[str]) -> None:
        realm = params.get("realm")
        if not realm:
            raise RegistryError(self.host, repository, "bearer challenge without a realm")
        with self._lock:
            lock = self._token_locks.setdefault(scope, threading.Lock())
        with lock:
            cached = self._tokens.get(scope)
            if cached and cached[1] > time.monotonic():
                return  # another thread fetched it while we waited
            query = [("service", params["service"])] if params.get("service") else []
            for item in (params.get("scope") or scope).split(" "):
                if item:
                    query.append(("scope", item))
            if self.username:
                query.append(("account", self.username))
            url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query)
            headers = {"Accept": "application/json"}
            if self.username:
                headers["Authorization"] = self._basic_header()
            response = self._send("GET", url, headers, repository, what="token request to %s" % realm)
            self.token_requests += 1
            if response.status in (401, 403):
                raise RegistryError(self.host, repository, "token service %s refused %s (HTTP %d)"
                                    % (realm, "the credentials of user %r" % self.username if self.username
                                       else "anonymous access", response.status))
            if response.status != 200:
                raise RegistryError(self.host, repository, "token service %s answered %s"
                                    % (realm, _describe_http_error(response)))
            try:
                document = json.loads(response.body.decode("utf-8"))
                token = document.get("token") or document.get("access_token")
                lifetime = float(document.get("expires_in") or 60)
            except (ValueError, AttributeError, TypeError, UnicodeDecodeError):
                token, lifetime = None, 0.0
            if not isinstance(token, str) or not token:
                raise RegistryError(self.host, repository, "token service %s returned no token" % realm)
            # renew a little early so a token cannot expire between check and use
            self._tokens[scope] = (token, time.monotonic() + max(lifetime - 10.0, lifetime / 2))

    def _send(self, method: str, url: str, headers: t.Mapping[str, str], repository: t.Optional[str],
              what: str) -> Response:
        return send(self.transport, method, url, headers, self.host, repository, what)

    def request(self, method: str, path_or_url: str, repository: t.Optional[str], scope: str, what: str,
                accept: t.Optional[str] = None) -> Response:
        """Send one request, answering a 401 challenge once (Basic or Bearer)."""
        url = path_or_url if "://" in path_or_url else self.base_url + path_or_url
        for attempt in (0, 1):
            headers = {"Accept": accept} if accept else {}
            auth = self._auth_header(scope)
            if auth:
                headers["Authorization"] = auth
            response = self._send(method, url, headers, repository, what)
            if response.status != 401:
                if response.status == 403:
                    raise RegistryError(self.host, repository, "%s: access denied (HTTP 403)%s"
                                        % (what, " for user %r" % self.username if self.username else ""))
                return response
            scheme, params = parse_challenge(response.header("www-authenticate"))
            if attempt or scheme not in ("basic", "bearer") or (scheme == "basic" and not self.username):
                raise RegistryError(self.host, repository, "%s: %s" % (what, self._unauthorized(scheme, auth, scope)))
            self._scheme = scheme
            if scheme == "bearer":
                self._fetch_token(params, scope, repository)
        raise AssertionError("unreachable")

    def _unauthorized(self, scheme: str, sent: t.Optional[str], scope: str) -> str:
        if sent and sent.startswith("Basic"):
            return "401 Unauthorized: the registry rejected the credentials of user %r" % self.username
        if sent:
            return "401 Unauthorized: the bearer token does not grant %s %s" % (
                scope or "access", "to user %r" % self.username if self.username
                else "anonymously (give username and password)")
        if scheme == "basic":
            return "401 Unauthorized: the registry asks for Basic credentials and none were given (username, password)"
        return "401 Unauthorized (challenge %r not understood)" % (scheme or "none")

    # ---- API

    def check(self) -> None:
        """Probe ``/v2/``: is this a registry and are we allowed in?"""
        response = self.request("GET", "/v2/", None, "", "GET /v2/")
        if response.status != 200:
            raise RegistryError(self.host, None, "GET /v2/: %s" % _describe_http_error(response))

    def catalog(self, page_size: int = 100) -> t.List[str]:
        """All repository names, following ``Link: <…>; rel="next"`` pages of ``n`` entries."""
        url: t.Optional[str] = "/v2/_catalog?" + urllib.parse.urlencode({"n": page_size})
        names: t.List[str] = []
        seen_urls: t.Set[str] = set()
        while url:
            if url in seen_urls:
                raise RegistryError(self.host, None, "catalog pagination loops at %s" % url)
            seen_urls.add(url)
            response = self.request("GET", url, None, "registry:catalog:*", "GET catalog")
            if response.status == 404:
                raise RegistryError(self.host, None, "the catalog API is not available (HTTP 404); "
                                    "name the repositories explicitly instead of with globs")
            if response.status != 200:
                raise RegistryError(self.host, None, "GET catalog: %s" % _describe_http_error(response))
            names.extend(self._string_list(response, "repositories", None, "catalog"))
            url = next_link(response)
        return names

    def tags(self, repository: str, image: str) -> t.List[str]:
        url: t.Optional[str] = "/v2/%s/tags/list" % repository
        tags: t.List[str] = []
        while url:
            response = self.request("GET", url, repository, _pull_scope(repository), "GET tags/list")
            if response.status == 404:
                raise ImageError(image, self.host, repository, "repository not found (%s)"
                                 % _describe_http_error(response))
            if response.status != 200:
                raise RegistryError(self.host, repository, "GET tags/list: %s" % _describe_http_error(response))
            tags.extend(self._string_list(response, "tags", repository, "tags/list"))
            url = next_link(response)
        return tags

    def _string_list(self, response: Response, key: str, repository: t.Optional[str], what: str) -> t.List[str]:
        try:
            value = json.loads(response.body.decode("utf-8")).get(key) or []
        except (ValueError, AttributeError, UnicodeDecodeError) as exc:
            raise RegistryError(self.host, repository, "%s is not valid JSON: %s" % (what, exc)) from exc
        if not isinstance(value, list):
            raise RegistryError(self.host, repository, "%s: %r is not a list" % (what, key))
        return [item for item in value if isinstance(item, str)]

    def manifest_digest(self, repository: str, reference: str, image: str) -> t.Optional[str]:
        """HEAD the manifest: its digest, or None when the registry does not say."""
        response = self.request("HEAD", "/v2/%s/manifests/%s" % (repository, reference), repository,
                                _pull_scope(repository), "HEAD manifest %r" % reference, accept=MANIFEST_ACCEPT)
        if response.status == 404:
            raise ImageError(image, self.host, repository, "manifest %r not found (HTTP 404)" % reference)
        if response.status != 200:
            raise RegistryError(self.host, repository, "HEAD manifest %r: %s"
                                % (reference, _describe_http_error(response)))
        digest = response.header("docker-content-digest")
        return digest if _DIGEST_RE.match(digest) else None

    def manifest(self, repository: str, reference: str, image: str) -> t.Tuple[str, str, t.Dict[str, t.Any]]:
        """GET a manifest: (digest, media type, document). A digest reference is verified."""
        response = self.request("GET", "/v2/%s/manifests/%s" % (repository, reference), repository,
                                _pull_scope(repository), "GET manifest %r" % reference, accept=MANIFEST_ACCEPT)
        if response.status == 404:
            raise ImageError(image, self.host, repository, "manifest %r not found (%s)"
                             % (reference, _describe_http_error(response)))
        if response.status != 200:
            raise RegistryError(self.host, repository, "GET manifest %r: %s"
                                % (reference, _describe_http_error(response)))
        expected = reference if _DIGEST_RE.match(reference) else response.header("docker-content-digest")
        digest = _verify_digest(response.body, expected or "sha256:",
                                lambda why: ImageError(image, self.host, repository, "manifest %r %s" % (reference, why)),
                                strict=bool(expected))
        document = _json_object(response.body, lambda why: ImageError(
            image, self.host, repository, "manifest %r is not usable: %s" % (reference, why)))
        media_type = document.get("mediaType") or response.header("content-type").split(";")[0].strip()
        if not isinstance(media_type, str):
            media_type = ""
        if media_type not in IMAGE_MEDIA_TYPES + INDEX_MEDIA_TYPES:
            # an OCI manifest may omit mediaType; its shape tells what it is
            media_type = MEDIA_OCI_INDEX if "manifests" in document else (
                MEDIA_OCI_MANIFEST if "config" in document and document.get("schemaVersion") == 2 else media_type)
        if media_type not in IMAGE_MEDIA_TYPES + INDEX_MEDIA_TYPES:
            raise ImageError(image, self.host, repository, "manifest %r has unsupported media type %r"
                             % (reference, media_type or "unknown"))
        return digest, media_type, document

    def blob_json(self, repository: str, digest: str, image: str) -> t.Dict[str, t.Any]:
        if not _DIGEST_RE.match(digest):
            raise ImageError(image, self.host, repository, "config digest %r is not valid" % digest)
        response = self.request("GET", "/v2/%s/blobs/%s" % (repository, digest), repository,
                                _pull_scope(repository), "GET blob %s" % digest)
        if response.status == 404:
            raise ImageError(image, self.host, repository, "config blob %s not found (HTTP 404)" % digest)
        if response.status != 200:
            raise RegistryError(self.host, repository, "GET blob %s: %s" % (digest, _describe_http_error(response)))
        _verify_digest(response.body, digest,
                       lambda why: ImageError(image, self.host, repository, "config blob %s %s" % (digest, why)))
        return _json_object(response.body, lambda why: ImageError(
            image, self.host, repository, "config blob %s is not usable: %s" % (digest, why)))

    # ---- images

    def inspect(self, repository: str, tag: str, cache: t.Optional[DigestCache] = None,
                head_first: t.Optional[bool] = None) -> ImageMetadata:
        """Labels and annotations of every platform of ``repository:tag``.

        With ``head_first`` (default: when the cache holds anything) only the
        manifest digest is asked for and a cache hit ends the work there. A
        caller reading many images decides once, before the first image fills
        the cache, so a cold run does not pay a HEAD per image.
        """
        image = "%s/%s:%s" % (self.host, repository, tag)
        if head_first is None:
            head_first = cache is not None and len(cache) > 0
        if cache is not None and head_first:
            digest = self.manifest_digest(repository, tag, image)
            hit = cache.get(digest) if digest else None
            if hit is not None:
                return ImageMetadata(self.host, repository, tag, digest or "", hit)
        digest, media_type, document = self.manifest(repository, tag, image)
        hit = cache.get(digest) if cache is not None else None
        if hit is None:
            hit = self._read_content(repository, image, media_type, document)
            if cache is not None:
                cache.put(digest, hit)
        return ImageMetadata(self.host, repository, tag, digest, hit)

    def _read_content(self, repository: str, image: str, media_type: str,
                      document: t.Mapping[str, t.Any]) -> ImageContent:
        annotations = _str_dict(document.get("annotations"))
        if media_type in IMAGE_MEDIA_TYPES:
            platform = self._platform_image(repository, image, "", document, None)
            return ImageContent(media_type, annotations, (platform,))
        entries = document.get("manifests")
        if not isinstance(entries, list):
            raise ImageError(image, self.host, repository, "index has no 'manifests' list")
        platforms = []
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            platform = _platform_name(entry.get("platform"))
            if platform is None:
                continue  # attestations and other non-runnable entries
            child_digest = entry.get("digest")
            if not isinstance(child_digest, str):
                raise ImageError(image, self.host, repository, "index entry for %s has no digest" % platform)
            child_digest_checked, child_type, child = self.manifest(repository, child_digest, image)
            if child_type not in IMAGE_MEDIA_TYPES:
                raise ImageError(image, self.host, repository, "index entry %s for %s is itself an index"
                                 % (child_digest, platform))
            platforms.append(self._platform_image(repository, image, child_digest_checked, child, platform))
        if not platforms:
            raise ImageError(image, self.host, repository, "index lists no platform images")
        return ImageContent(media_type, annotations, tuple(platforms))

    def _platform_image(self, repository: str, image: str, manifest_digest: str,
                        manifest: t.Mapping[str, t.Any], platform: t.Optional[str]) -> PlatformImage:
        config_ref = manifest.get("config")
        if not isinstance(config_ref, dict) or not isinstance(config_ref.get("digest"), str):
            raise ImageError(image, self.host, repository, "manifest %s has no config descriptor"
                             % (manifest_digest or "for the tag"))
        config = self.blob_json(repository, config_ref["digest"], image)
        inner = config.get("config") if isinstance(config.get("config"), dict) else {}
        if platform is None:
            platform = _platform_name(config) or "unknown"
        return PlatformImage(platform=platform, manifest_digest=manifest_digest,
                             labels=_str_dict(inner.get("Labels")),
                             annotations=_str_dict(manifest.get("annotations")))

    def close(self) -> None:
        self.transport.close()


def _pull_scope(repository: str) -> str:
    return "repository:%s:pull" % repository


def _platform_name(platform: t.Any) -> t.Optional[str]:
    if not isinstance(platform, dict):
        return None
    os_name, arch = platform.get("os"), platform.get("architecture")
    if not isinstance(os_name, str) or not isinstance(arch, str) or not os_name or not arch:
        return None
    if os_name == "unknown" or arch == "unknown":
        return None
    variant = platform.get("variant")
    return "/".join([os_name, arch] + ([variant] if isinstance(variant, str) and variant else []))


def _verify_digest(body: bytes, expected: str, error: t.Callable[[str], Exception], strict: bool = True) -> str:
    match = _DIGEST_RE.match(expected)
    algorithm = match.group(1) if match else "sha256"
    actual = "%s:%s" % (algorithm, hashlib.new(algorithm, body).hexdigest())
    if strict and actual != expected:
        raise error("does not match its digest (expected %s, got %s)" % (expected, actual))
    return actual


def _json_object(body: bytes, error: t.Callable[[str], Exception]) -> t.Dict[str, t.Any]:
    try:
        document = json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise error("not JSON (%s)" % exc) from None
    if not isinstance(document, dict):
        raise error("not a JSON object")
    return document


# --------------------------------------------------------------------------- selection


def is_glob(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")


def glob_to_regex(pattern: str) -> t.Pattern[str]:
    """``*`` and ``?`` stay within one path component, ``**`` crosses ``/``."""
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = pattern.find("]", i + 2)
            if end < 0:
                out.append(re.escape(ch))
            else:
                body = pattern[i + 1:end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[%s]" % body.replace("\\", "\\\\"))
                i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("^%s$" % "".join(out))


def split_reference(entry: str) -> t.Tuple[str, t.Optional[str]]:
    """``nanoedge/spo2:1.0`` -> (``nanoedge/spo2``, ``1.0``); a tag after the last ``/`` only."""
    name, sep, tag = entry.rpartition(":")
    if sep and "/" not in tag and name:
        return name, tag
    return entry, None


def validate_repository(name: str) -> None:
    if not _REPOSITORY_RE.match(name) or len(name) > 255:
        raise ValueError("%r is not a valid repository name" % name)


def validate_tag(tag: str) -> None:
    if not _TAG_RE.match(tag):
        raise ValueError("%r is not a valid tag" % tag)


def semver_key(tag: str) -> t.Optional[t.Tuple[t.Any, ...]]:
    """Sort key for semantic versions (``1.2.3``, ``v1.2.3-rc.1``); None for other tags."""
    match = _SEMVER_RE.match(tag)
    if not match:
        return None
    core = (int(match.group(1)), int(match.group(2)), int(match.group(3)))
    pre = match.group(4)
    if pre is None:
        return core + (1, ())  # a release sorts after all its pre-releases
    idents = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
    return core + (0, idents)


def highest_semver(tags: t.Iterable[str], include_prerelease: bool = False) -> t.Optional[str]:
    best: t.Optional[t.Tuple[t.Tuple[t.Any, ...], str]] = None
    for tag in tags:
        key = semver_key(tag)
        if key is None or (key[3] == 0 and not include_prerelease):
            continue
        # "v1.2.3" and "1.2.3" are the same version: prefer the plain one, deterministically
        candidate = (key + (not tag.startswith("v"),), tag)
        if best is None or candidate[0] > best[0]:
            best = candidate
    return best[1] if best else None


T = t.TypeVar("T")
R = t.TypeVar("R")


def run_bounded(func: t.Callable[[T], R], items: t.Sequence[T], concurrency: int
                ) -> t.List[t.Union[R, BaseException]]:
    """``func`` over ``items`` with at most ``concurrency`` in flight; results (or exceptions) in order."""
    def guarded(item: T) -> t.Union[R, BaseException]:
        try:
            return func(item)
        except Exception as exc:  # collected and reported per item by the caller
            return exc

    if concurrency <= 1 or len(items) <= 1:
        return [guarded(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(concurrency, len(items)),
                            thread_name_prefix="nanoedge-oci") as pool:
        return list(pool.map(guarded, items))


@dataclass
class Selection:
    """What to read: repositories (names or globs, optionally ``:tag``) and the tag policy."""

    repositories: t.List[str] = field(default_factory=list)
    tag_policy: str = "latest"  # latest | fixed | semver
    tag: str = "latest"
    include_prerelease: bool = False
    catalog_page_size: int = 100


def resolve_repositories(client: RegistryClient, selection: Selection) -> t.List[t.Tuple[str, t.Optional[str]]]:
    """(repository, pinned tag or None), sorted; the catalog is read only when a glob asks for it."""
    entries = [split_reference(e.strip()) for e in selection.repositories if e.strip()]
    if not entries:
        entries = [("**", None)]
    catalog: t.Optional[t.List[str]] = None
    chosen: t.Dict[str, t.Optional[str]] = {}
    for pattern, tag in entries:
        if tag is not None:
            validate_tag(tag)
        if is_glob(pattern):
            if catalog is None:
                catalog = client.catalog(selection.catalog_page_size)
            regex = glob_to_regex(pattern)
            for name in catalog:
                if regex.match(name):
                    chosen[name] = tag if tag is not None else chosen.get(name)
        else:
            validate_repository(pattern)
            chosen[pattern] = tag
    return sorted(chosen.items())


def pick_tag(client: RegistryClient, repository: str, pinned: t.Optional[str], selection: Selection) -> str:
    if pinned:
        return pinned
    if selection.tag_policy == "fixed":
        return selection.tag
    if selection.tag_policy == "semver":
        image = "%s/%s" % (client.host, repository)
        tags = client.tags(repository, image)
        best = highest_semver(tags, selection.include_prerelease)
        if best is None:
            raise ImageError(image, client.host, repository, "no semantic-version tag among %d tag(s)%s"
                             % (len(tags), " (%s)" % ", ".join(sorted(tags)[:10]) if tags else ""))
        return best
    return "latest"
