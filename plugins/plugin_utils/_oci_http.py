# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""HTTP for the OCI registry client (controller side): keep-alive transport and the errors.

Standard library only. One keep-alive connection per thread and origin,
redirects followed (credentials stay with the registry's origin), answers
bounded in size. Every failure becomes an OciError that names the registry
and the repository, or the image.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import ssl
import threading
import typing as t
import urllib.parse
from dataclasses import dataclass

MAX_DOCUMENT_BYTES = 8 * 1024 * 1024
MAX_REDIRECTS = 5
STREAM_CHUNK = 256 * 1024
USER_AGENT = "nanoedge.core-service_profiles"

_CHALLENGE_PARAM_RE = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')
_LINK_NEXT_RE = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


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
              max_bytes: int, sink: t.Optional[t.BinaryIO]) -> Response:
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
                if sink is not None and raw.status == 200:
                    data = b""
                    _stream(raw, sink, max_bytes, conn)
                else:
                    # an error or a redirect is a small document, whatever size the streamed body may have
                    limit = max_bytes if sink is None else MAX_DOCUMENT_BYTES
                    data = raw.read(limit + 1)
                    if len(data) > limit:
                        conn.close()
                        raise ValueError("response larger than %d bytes" % limit)
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
                body: t.Optional[bytes] = None, max_bytes: int = MAX_DOCUMENT_BYTES,
                sink: t.Optional[t.BinaryIO] = None) -> Response:
        """One request, following redirects. With ``sink``, a 200 answer's body goes there (at most
        ``max_bytes``), not into memory."""
        headers = dict(headers or {})
        origin = urllib.parse.urlsplit(url)[:2]
        for _hop in range(MAX_REDIRECTS + 1):
            response = self._once(method, url, headers, body, max_bytes, sink)
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


def _stream(raw: http.client.HTTPResponse, sink: t.BinaryIO, max_bytes: int,
            conn: http.client.HTTPConnection) -> None:
    """Copy a body into ``sink`` in chunks; a retry on a fresh connection starts the file over."""
    sink.seek(0)
    sink.truncate()
    written = 0
    while True:
        chunk = raw.read(STREAM_CHUNK)
        if not chunk:
            return
        written += len(chunk)
        if written > max_bytes:
            conn.close()
            raise ValueError("response larger than %d bytes" % max_bytes)
        sink.write(chunk)


def send(transport: HttpTransport, method: str, url: str, headers: t.Mapping[str, str], host: str,
         repository: t.Optional[str], what: str, sink: t.Optional[t.BinaryIO] = None,
         max_bytes: int = MAX_DOCUMENT_BYTES) -> Response:
    """One request; failures become RegistryError naming the registry and repository."""
    try:
        return transport.request(method, url, headers, max_bytes=max_bytes, sink=sink)
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


def describe_http_error(response: Response) -> str:
    reason = "HTTP %d %s" % (response.status, http.client.responses.get(response.status, ""))
    try:
        errors = json.loads(response.body.decode("utf-8")).get("errors") or []
        codes = ["%s: %s" % (e.get("code"), e.get("message")) for e in errors if isinstance(e, dict)]
    except (ValueError, AttributeError, UnicodeDecodeError):
        codes = []
    return ", ".join([reason.strip()] + codes)
