# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Service discovery (step 3): the images of a registry -> service profiles P_k.

Each profile holds the service's requirements (docs/contracts.md,
"Requirements") and its whole description (docs/contracts.md, "Service
description"). Requirements come from an image label (default), from JSON in
the OCI description annotation, or from a Docker Hub-style repository
description (the research prototype's way); ``_image_profile.py`` turns one
image's metadata into a profile.
"""

from __future__ import annotations

import json
import typing as t
import urllib.parse
from dataclasses import dataclass, field

from ansible_collections.nanoedge.core.plugins.module_utils._labels import (
    DESCRIPTION_LABEL,
    REQUIREMENTS_LABEL,
    SERVICE_LABEL,
)
from ansible_collections.nanoedge.core.plugins.module_utils._requirements import RequirementError
from ansible_collections.nanoedge.core.plugins.plugin_utils._image_profile import (
    OCI_DESCRIPTION_LABEL,
    PROFILE_ERRORS,
    profile_from_image,
    requirements_from_description,
)
from ansible_collections.nanoedge.core.plugins.plugin_utils._service_description import minimal_description
from ansible_collections.nanoedge.core.plugins.plugin_utils._oci import (
    RegistryClient,
    parse_registry_url,
)
from ansible_collections.nanoedge.core.plugins.plugin_utils._oci_cache import DigestCache
from ansible_collections.nanoedge.core.plugins.plugin_utils._oci_http import (
    HttpTransport,
    ImageError,
    OciError,
    RegistryError,
    make_ssl_context,
    send,
)
from ansible_collections.nanoedge.core.plugins.plugin_utils._oci_select import (
    Selection,
    glob_to_regex,
    highest_semver,
    is_glob,
    pick_tag,
    resolve_repositories,
    run_bounded,
    split_reference,
    validate_repository,
    validate_tag,
)

SOURCES = ("label", "annotation", "hub")
ON_ERROR = ("fail", "warn", "skip")
TAG_POLICIES = ("latest", "fixed", "semver")


class DiscoveryError(Exception):
    """The lookup as a whole fails; the message names the registry, repository or image."""


@dataclass
class DiscoveryOptions:
    registry: str
    repositories: t.List[str] = field(default_factory=list)
    source: str = "label"
    requirements_label: str = REQUIREMENTS_LABEL
    service_label: str = SERVICE_LABEL
    description_label: str = DESCRIPTION_LABEL
    annotation: str = OCI_DESCRIPTION_LABEL
    tag_policy: str = "latest"
    tag: str = "latest"
    include_prerelease: bool = False
    on_error: str = "fail"
    username: t.Optional[str] = None
    password: t.Optional[str] = None
    validate_certs: bool = True
    ca_path: t.Optional[str] = None
    timeout: float = 10.0
    concurrency: int = 8
    catalog_page_size: int = 100
    cache_path: t.Optional[str] = None
    hub_image_registry: str = "docker.io"

    def check(self) -> None:
        for name, value, choices in (("source", self.source, SOURCES), ("on_error", self.on_error, ON_ERROR),
                                     ("tag_policy", self.tag_policy, TAG_POLICIES)):
            if value not in choices:
                raise DiscoveryError("%s=%r: must be one of %s" % (name, value, ", ".join(choices)))
        if self.timeout <= 0:
            raise DiscoveryError("timeout=%r: must be > 0" % (self.timeout,))
        if self.concurrency < 1:
            raise DiscoveryError("concurrency=%r: must be >= 1" % (self.concurrency,))
        if self.catalog_page_size < 1:
            raise DiscoveryError("catalog_page_size=%r: must be >= 1" % (self.catalog_page_size,))
        if self.password and not self.username:
            raise DiscoveryError("password given without username")
        try:
            if self.source != "hub":
                parse_registry_url(self.registry)
            if self.tag_policy == "fixed":
                validate_tag(self.tag)
        except ValueError as exc:
            raise DiscoveryError(str(exc)) from None
        if not self.requirements_label:
            raise DiscoveryError("requirements_label must not be empty")

    def selection(self) -> Selection:
        return Selection(repositories=list(self.repositories), tag_policy=self.tag_policy, tag=self.tag,
                         include_prerelease=self.include_prerelease, catalog_page_size=self.catalog_page_size)


@dataclass
class Discovery:
    """The outcome: services sorted by name, and what went wrong per image."""

    services: t.List[t.Dict[str, t.Any]]
    problems: t.List[str]


# --------------------------------------------------------------------------- OCI registry source


Outcome = t.Union[t.Dict[str, t.Any], BaseException]


def _discover_registry(options: DiscoveryOptions, cache: DigestCache) -> t.List[Outcome]:
    client = RegistryClient(options.registry, username=options.username, password=options.password,
                            timeout=options.timeout, validate_certs=options.validate_certs, ca_path=options.ca_path)
    selection = options.selection()
    head_first = len(cache) > 0
    try:
        try:
            targets = resolve_repositories(client, selection)
        except OciError as exc:
            raise DiscoveryError(str(exc)) from exc
        except ValueError as exc:
            raise DiscoveryError(str(exc)) from None

        def one(target: t.Tuple[str, t.Optional[str]]) -> t.Dict[str, t.Any]:
            repository, pinned = target
            tag = pick_tag(client, repository, pinned, selection)
            meta = client.inspect(repository, tag, cache, head_first)
            try:
                return profile_from_image(meta, options)
            except PROFILE_ERRORS as exc:
                raise ImageError(meta.reference, client.host, repository, str(exc)) from None

        return run_bounded(one, targets, options.concurrency)
    finally:
        client.close()


# --------------------------------------------------------------------------- Docker Hub-style source


class HubClient:
    """The repository API of Docker Hub (``/v2/repositories/{namespace}/{name}/``), anonymous."""

    def __init__(self, url: str, timeout: float, validate_certs: bool, ca_path: t.Optional[str]) -> None:
        text = url.strip().rstrip("/")
        if "://" not in text:
            text = "https://" + text
        parts = urllib.parse.urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise DiscoveryError("%r is not an http(s) URL of a Docker Hub-style API" % url)
        self.base_url, self.host = text, parts.netloc
        self.timeout = timeout
        self.transport = HttpTransport(timeout=timeout, ssl_context=lambda: make_ssl_context(validate_certs, ca_path))

    def get(self, path_or_url: str, repository: t.Optional[str], what: str) -> t.Optional[t.Dict[str, t.Any]]:
        url = path_or_url if "://" in path_or_url else self.base_url + path_or_url
        response = send(self.transport, "GET", url, {"Accept": "application/json"}, self.host, repository, what)
        if response.status == 404:
            return None
        if response.status != 200:
            raise RegistryError(self.host, repository, "%s: HTTP %d" % (what, response.status))
        try:
            document = json.loads(response.body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise RegistryError(self.host, repository, "%s: answer is not JSON (%s)" % (what, exc)) from None
        if not isinstance(document, dict):
            raise RegistryError(self.host, repository, "%s: answer is not a JSON object" % what)
        return document

    def paged(self, path: str, repository: t.Optional[str], what: str) -> t.List[t.Dict[str, t.Any]]:
        items: t.List[t.Dict[str, t.Any]] = []
        url: t.Optional[str] = path
        seen: t.Set[str] = set()
        while url and url not in seen:
            seen.add(url)
            page = self.get(url, repository, what)
            if page is None:
                raise RegistryError(self.host, repository, "%s: not found (HTTP 404)" % what)
            items.extend(r for r in page.get("results") or [] if isinstance(r, dict))
            nxt = page.get("next")
            url = nxt if isinstance(nxt, str) and nxt else None
        return items

    def close(self) -> None:
        self.transport.close()


def _hub_repositories(hub: HubClient, patterns: t.Sequence[str]) -> t.List[t.Tuple[str, t.Optional[str]]]:
    chosen: t.Dict[str, t.Optional[str]] = {}
    listings: t.Dict[str, t.List[str]] = {}
    for entry in patterns:
        pattern, tag = split_reference(entry.strip())
        namespace, _sep, rest = pattern.partition("/")
        if not rest or is_glob(namespace):
            raise DiscoveryError("hub repositories are namespace/name (the namespace cannot be a glob), got %r"
                                 % entry)
        if tag is not None:
            validate_tag(tag)
        if not is_glob(rest):
            validate_repository(pattern)
            chosen[pattern] = tag
            continue
        if namespace not in listings:
            listings[namespace] = [
                "%s/%s" % (namespace, r["name"]) for r in hub.paged(
                    "/v2/repositories/%s/?page_size=100" % urllib.parse.quote(namespace), None,
                    "list repositories of namespace %s" % namespace)
                if isinstance(r.get("name"), str)]
        regex = glob_to_regex(pattern)
        for name in listings[namespace]:
            if regex.fullmatch(name):
                chosen[name] = tag if tag is not None else chosen.get(name)
    return sorted(chosen.items())


def _hub_profile(hub: HubClient, options: DiscoveryOptions, repository: str,
                 pinned: t.Optional[str]) -> t.Dict[str, t.Any]:
    image_base = "%s/%s" % (options.hub_image_registry, repository)
    if pinned:
        tag = pinned
    elif options.tag_policy == "semver":
        tags = [r["name"] for r in hub.paged("/v2/repositories/%s/tags/?page_size=100" % repository, repository,
                                             "list tags") if isinstance(r.get("name"), str)]
        best = highest_semver(tags, options.include_prerelease)
        if best is None:
            raise ImageError(image_base, hub.host, repository, "no semantic-version tag among %d tag(s)" % len(tags))
        tag = best
    else:
        tag = options.tag if options.tag_policy == "fixed" else "latest"
    image = "%s:%s" % (image_base, tag)
    repo_doc = hub.get("/v2/repositories/%s/" % repository, repository, "GET repository")
    if repo_doc is None:
        raise ImageError(image, hub.host, repository, "repository not found (HTTP 404)")
    tag_doc = hub.get("/v2/repositories/%s/tags/%s/" % (repository, tag), repository, "GET tag %r" % tag)
    if tag_doc is None:
        raise ImageError(image, hub.host, repository, "tag %r not found (HTTP 404)" % tag)
    text = None
    for key in ("full_description", "description"):
        value = repo_doc.get(key)
        if isinstance(value, str) and value.strip():
            text = value
            where = "repository %s" % key
            break
    try:
        if text is None:
            raise RequirementError("repository description (full_description, description) is empty")
        requires = requirements_from_description(text, where)
    except RequirementError as exc:
        raise ImageError(image, hub.host, repository, str(exc)) from None
    platforms = sorted({
        "/".join(x for x in (i.get("os"), i.get("architecture"), i.get("variant")) if isinstance(x, str) and x)
        for i in tag_doc.get("images") or [] if isinstance(i, dict) and i.get("os") and i.get("architecture")
        and i.get("os") != "unknown"})
    digest = tag_doc.get("digest")
    name = repository.rsplit("/", 1)[-1]
    # the Hub says nothing more of a service than its requirements; its images are not read here
    return {"name": name, "image": image, "digest": digest if isinstance(digest, str) else "", "requires": requires,
            "platforms": platforms, "registry": "", "description": minimal_description(name, requires)}


def _discover_hub(options: DiscoveryOptions) -> t.List[Outcome]:
    if not options.repositories:
        raise DiscoveryError("source=hub needs repositories (namespace/name or namespace/glob)")
    hub = HubClient(options.registry, options.timeout, options.validate_certs, options.ca_path)
    try:
        try:
            targets = _hub_repositories(hub, options.repositories)
        except OciError as exc:
            raise DiscoveryError(str(exc)) from exc
        except ValueError as exc:
            raise DiscoveryError(str(exc)) from None
        return run_bounded(lambda target: _hub_profile(hub, options, *target), targets, options.concurrency)
    finally:
        hub.close()


# --------------------------------------------------------------------------- entry point


def _save_cache(cache: DigestCache, options: DiscoveryOptions, warn: t.Optional[t.Callable[[str], None]]) -> None:
    """What was read stays cached even when some images fail the lookup."""
    try:
        cache.save()
    except OSError as exc:
        if warn is not None:
            warn("cannot write the cache %s: %s" % (cache.path or options.cache_path, exc))


def discover(options: DiscoveryOptions, warn: t.Optional[t.Callable[[str], None]] = None,
             cache: t.Optional[DigestCache] = None) -> Discovery:
    """Read every selected image; services sorted by name.

    Per-image problems follow ``on_error``; registry-wide failures (network,
    TLS, auth, server errors) always raise DiscoveryError.
    """
    options.check()
    if cache is None:
        cache = DigestCache(options.cache_path)
    if options.source == "hub":
        outcomes = _discover_hub(options)
    else:
        outcomes = _discover_registry(options, cache)

    services: t.List[t.Dict[str, t.Any]] = []
    problems: t.List[str] = []
    for result in outcomes:
        if isinstance(result, ImageError):
            problems.append(str(result))
        elif isinstance(result, OciError):
            raise DiscoveryError(str(result)) from result
        elif isinstance(result, ValueError):
            raise DiscoveryError(str(result)) from result
        elif isinstance(result, BaseException):
            raise result
        else:
            services.append(result)
    _save_cache(cache, options, warn)
    if problems and options.on_error == "fail":
        raise DiscoveryError("; ".join(problems))
    if problems and options.on_error == "warn" and warn is not None:
        for problem in problems:
            warn("%s (left out)" % problem)

    by_name: t.Dict[str, t.Dict[str, t.Any]] = {}
    for service in services:
        other = by_name.get(service["name"])
        if other is not None:
            hint = ("set label %s on one of them" % options.service_label if options.service_label
                    else "set service_label and name one of them with that label")
            raise DiscoveryError("service name %r is used by images %s and %s; %s"
                                 % (service["name"], other["image"], service["image"], hint))
        by_name[service["name"]] = service
    return Discovery(services=[by_name[name] for name in sorted(by_name)], problems=problems)
