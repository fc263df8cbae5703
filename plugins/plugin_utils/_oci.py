# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small client for the OCI Distribution API v2 (controller side).

It reads what service discovery needs and nothing more: the catalog, tag
lists, manifests (Docker schema 2, Docker manifest list, OCI manifest, OCI
index) and config blobs. Standard library only, so the lookup works on any
controller. Keep-alive connections are kept per thread (``_oci_http.py``),
requests for many images run concurrently (``_oci_select.py``), and what was
read is cached by manifest digest, which is content-addressed: an unchanged
image costs one HEAD request.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
import typing as t
import urllib.parse

from ansible_collections.nanoedge.core.plugins.plugin_utils._oci_cache import (
    DigestCache,
    ImageContent,
    ImageMetadata,
    PlatformImage,
    str_dict,
)
from ansible_collections.nanoedge.core.plugins.plugin_utils._oci_http import (
    MAX_DOCUMENT_BYTES,
    STREAM_CHUNK,
    HttpTransport,
    ImageError,
    RegistryError,
    Response,
    describe_http_error,
    make_ssl_context,
    next_link,
    parse_challenge,
    send,
)

MEDIA_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MEDIA_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
INDEX_MEDIA_TYPES = (MEDIA_DOCKER_LIST, MEDIA_OCI_INDEX)
IMAGE_MEDIA_TYPES = (MEDIA_DOCKER_MANIFEST, MEDIA_OCI_MANIFEST)
# Registries pick the representation from Accept: with only the Docker type an
# OCI manifest answers 404, with no Accept distribution converts to schema 1.
MANIFEST_ACCEPT = ", ".join(IMAGE_MEDIA_TYPES + INDEX_MEDIA_TYPES)

_DIGEST_RE = re.compile(r"^(sha256|sha384|sha512):([a-f0-9]{64,128})$")


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
                                    % (realm, describe_http_error(response)))
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
              what: str, sink: t.Optional[t.BinaryIO] = None, max_bytes: int = MAX_DOCUMENT_BYTES) -> Response:
        return send(self.transport, method, url, headers, self.host, repository, what, sink, max_bytes)

    def request(self, method: str, path_or_url: str, repository: t.Optional[str], scope: str, what: str,
                accept: t.Optional[str] = None, sink: t.Optional[t.BinaryIO] = None,
                max_bytes: int = MAX_DOCUMENT_BYTES) -> Response:
        """Send one request, answering a 401 challenge once (Basic or Bearer)."""
        url = path_or_url if "://" in path_or_url else self.base_url + path_or_url
        for attempt in (0, 1):
            headers = {"Accept": accept} if accept else {}
            auth = self._auth_header(scope)
            if auth:
                headers["Authorization"] = auth
            response = self._send(method, url, headers, repository, what, sink, max_bytes)
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
            raise RegistryError(self.host, None, "GET /v2/: %s" % describe_http_error(response))

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
                raise RegistryError(self.host, None, "GET catalog: %s" % describe_http_error(response))
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
                                 % describe_http_error(response))
            if response.status != 200:
                raise RegistryError(self.host, repository, "GET tags/list: %s" % describe_http_error(response))
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
                                % (reference, describe_http_error(response)))
        digest = response.header("docker-content-digest")
        return digest if _DIGEST_RE.fullmatch(digest) else None

    def manifest(self, repository: str, reference: str, image: str) -> t.Tuple[str, str, t.Dict[str, t.Any]]:
        """GET a manifest: (digest, media type, document). A digest reference is verified."""
        response = self.request("GET", "/v2/%s/manifests/%s" % (repository, reference), repository,
                                _pull_scope(repository), "GET manifest %r" % reference, accept=MANIFEST_ACCEPT)
        if response.status == 404:
            raise ImageError(image, self.host, repository, "manifest %r not found (%s)"
                             % (reference, describe_http_error(response)))
        if response.status != 200:
            raise RegistryError(self.host, repository, "GET manifest %r: %s"
                                % (reference, describe_http_error(response)))
        expected = reference if _DIGEST_RE.fullmatch(reference) else response.header("docker-content-digest")
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
        if not _DIGEST_RE.fullmatch(digest):
            raise ImageError(image, self.host, repository, "config digest %r is not valid" % digest)
        response = self.request("GET", "/v2/%s/blobs/%s" % (repository, digest), repository,
                                _pull_scope(repository), "GET blob %s" % digest)
        if response.status == 404:
            raise ImageError(image, self.host, repository, "config blob %s not found (HTTP 404)" % digest)
        if response.status != 200:
            raise RegistryError(self.host, repository, "GET blob %s: %s" % (digest, describe_http_error(response)))
        _verify_digest(response.body, digest,
                       lambda why: ImageError(image, self.host, repository, "config blob %s %s" % (digest, why)))
        return _json_object(response.body, lambda why: ImageError(
            image, self.host, repository, "config blob %s is not usable: %s" % (digest, why)))

    def platform_manifest(self, repository: str, reference: str, image: str,
                          platform: t.Optional[str] = None) -> t.Tuple[str, str, t.Dict[str, t.Any]]:
        """(platform, manifest digest, manifest) of one platform image of ``reference``.

        An index gives the entry for ``platform`` (``os/arch[/variant]``), or
        without one its first runnable entry."""
        digest, media_type, document = self.manifest(repository, reference, image)
        if media_type in IMAGE_MEDIA_TYPES:
            return platform or "", digest, document
        entries = [e for e in document.get("manifests") or [] if isinstance(e, dict)
                   and _platform_name(e.get("platform")) and isinstance(e.get("digest"), str)]
        chosen = [e for e in entries if platform in (None, "", _platform_name(e.get("platform")))]
        if not chosen:
            raise ImageError(image, self.host, repository, "index has no image for platform %s (it has: %s)"
                             % (platform, ", ".join(t.cast(str, _platform_name(e["platform"])) for e in entries)
                                or "none"))
        child_digest, child_type, child = self.manifest(repository, chosen[0]["digest"], image)
        if child_type not in IMAGE_MEDIA_TYPES:
            raise ImageError(image, self.host, repository, "index entry %s is itself an index" % child_digest)
        return t.cast(str, _platform_name(chosen[0]["platform"])), child_digest, child

    def blob_to_file(self, repository: str, descriptor: t.Mapping[str, t.Any], image: str, target: t.BinaryIO,
                     max_bytes: int) -> str:
        """Download the blob ``descriptor`` names into ``target``, checked against its size and digest."""
        digest, size = descriptor.get("digest"), descriptor.get("size")
        if not isinstance(digest, str) or not _DIGEST_RE.fullmatch(digest):
            raise ImageError(image, self.host, repository, "layer digest %r is not valid" % (digest,))
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ImageError(image, self.host, repository, "layer %s has no valid size (%r)" % (digest, size))
        if size > max_bytes:
            raise ImageError(image, self.host, repository, "layer %s is %d bytes, more than the limit of %d"
                             % (digest, size, max_bytes))
        # never read more than the manifest promised: a larger answer is cut off and refused
        response = self.request("GET", "/v2/%s/blobs/%s" % (repository, digest), repository,
                                _pull_scope(repository), "GET blob %s" % digest, sink=target, max_bytes=size)
        if response.status == 404:
            raise ImageError(image, self.host, repository, "blob %s not found (HTTP 404)" % digest)
        if response.status != 200:
            raise RegistryError(self.host, repository, "GET blob %s: %s" % (digest, describe_http_error(response)))
        target.flush()
        target.seek(0)
        hasher = hashlib.new(digest.split(":", 1)[0])
        received = 0
        for chunk in iter(lambda: target.read(STREAM_CHUNK), b""):
            hasher.update(chunk)
            received += len(chunk)
        target.seek(0)
        actual = "%s:%s" % (hasher.name, hasher.hexdigest())
        if received != size:
            raise ImageError(image, self.host, repository, "blob %s is %d bytes, the manifest says %d"
                             % (digest, received, size))
        if actual != digest:
            raise ImageError(image, self.host, repository, "blob %s does not match its digest (got %s)"
                             % (digest, actual))
        return digest

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
        annotations = str_dict(document.get("annotations"))
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
        exposed = inner.get("ExposedPorts")
        return PlatformImage(platform=platform, manifest_digest=manifest_digest,
                             labels=str_dict(inner.get("Labels")),
                             annotations=str_dict(manifest.get("annotations")),
                             exposed_ports=tuple(sorted(str(p) for p in exposed)) if isinstance(exposed, dict) else ())

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
    match = _DIGEST_RE.fullmatch(expected)
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
