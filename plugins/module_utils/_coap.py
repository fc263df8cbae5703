# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The CoAP client side of resource reporting (docs/contracts.md, "The CoAP API").

Shared by the ``coap_report`` module, the ``registry`` inventory plugin and
the reporting agent that the ``agent`` role installs on workers. Standard
library plus aiocoap (imported under a guard so callers can say what is
missing), Python >= 3.9 with aiocoap 0.4.7 or newer, no Ansible imports: the
agent imports it, outside Ansible, from a copy of this module_utils folder.

What "changed" means: a registry's stored profile differed from the one being
sent, after leaving out the measurements that move on every run
(``DEFAULT_IGNORE``). A registry only keeps a profile for its lease, and the
only way the CoAP API offers to renew a lease is another PUT, so an unchanged
profile is still sent again by default (``renew=True``) to refresh the lease
and the registry's copy of those measurements; that renewal is reported as
unchanged.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import random
import typing as t
import urllib.parse

try:
    import aiocoap
    import aiocoap.error
    HAS_AIOCOAP = True
    AIOCOAP_IMPORT_ERROR = None  # type: t.Optional[str]
except ImportError as exc:  # pragma: no cover - depends on the node
    aiocoap = None  # type: ignore[assignment]
    HAS_AIOCOAP = False
    AIOCOAP_IMPORT_ERROR = "%s: %s" % (type(exc).__name__, exc)

from ansible_collections.nanoedge.core.plugins.module_utils._canonical_json import canonical_json
from ansible_collections.nanoedge.core.plugins.module_utils._cbor import encode_cbor
from ansible_collections.nanoedge.core.plugins.module_utils._oscore import Credentials, OscoreError, client_context
from ansible_collections.nanoedge.core.plugins.module_utils._profile import ProfileError, validate_profile

DEFAULT_PORT = 5683
# Content-Formats (RFC 7252 section 12.3): text/plain;charset=utf-8 carries
# the registry's diagnostics, JSON and CBOR the profiles.
CF_TEXT = 0
CF_JSON = 50
CF_CBOR = 60
FORMATS = {"json": CF_JSON, "cbor": CF_CBOR}
# Block1/Block2 size: SZX 6 = 1024 bytes, the largest regular block and
# aiocoap's own default for UDP; bodies above it go block-wise.
BLOCK_SIZE_EXP = 6
BLOCK_SIZE = 2 ** (BLOCK_SIZE_EXP + 4)
# Measurements that move on every discovery run; a difference only here is
# not a change of the node (the renewing PUT still refreshes them).
DEFAULT_IGNORE = ("collected_at", "cpu.load1", "memory_mb.available", "storage_mb.free")
LIFETIME_MAX = 2 ** 32 - 1

# 4.08 (Block1 interrupted) and 4.29 (throttled) are worth another attempt;
# every other 4.xx means the request itself is wrong and would fail again.
_RETRYABLE_CLIENT_ERRORS = ("4.08", "4.29")


class CoapError(Exception):
    """A CoAP exchange failed; the message names the registry and the cause."""


class PermanentError(CoapError):
    """The registry refused the request; retrying the same request is pointless."""


def require_aiocoap() -> None:
    if not HAS_AIOCOAP:
        raise CoapError("the Python library aiocoap is required to speak CoAP (%s)" % AIOCOAP_IMPORT_ERROR)


class Registry(t.NamedTuple):
    url: str
    host: str
    port: int

    @property
    def authority(self) -> str:
        host = "[%s]" % self.host if ":" in self.host else self.host
        return "%s:%d" % (host, self.port)

    def uri(self, *path: str, query: t.Optional[str] = None) -> str:
        quoted = "/".join(urllib.parse.quote(p, safe="") for p in path)
        return "coap://%s/%s%s" % (self.authority, quoted, "?" + query if query else "")


def parse_registry(url: t.Any) -> Registry:
    """Parse ``coap://host[:port]``; the registry's paths are fixed by the CoAP API."""
    if not isinstance(url, str):
        raise ValueError("registry %r: must be a string coap://host[:port]" % (url,))
    if any(c.isspace() or not c.isprintable() for c in url):  # urlsplit drops tabs and newlines silently
        raise ValueError("registry %r: must not contain spaces or control characters" % (url,))
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError("registry %r: %s" % (url, exc)) from None
    if parts.scheme != "coap":
        raise ValueError("registry %r: scheme must be coap://, got %r" % (url, parts.scheme + "://"))
    if not parts.hostname:
        raise ValueError("registry %r: no host" % (url,))
    if parts.username is not None or parts.password is not None:
        raise ValueError("registry %r: user information is not allowed" % (url,))
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("registry %r: give only coap://host[:port]; the paths are fixed (/profiles/{node})" % (url,))
    if port == 0:
        raise ValueError("registry %r: port must be from 1 to 65535" % (url,))
    return Registry(url=url, host=parts.hostname, port=DEFAULT_PORT if port is None else port)


def registry_uri(host: t.Any, port: t.Any = DEFAULT_PORT) -> str:
    """``coap://host:port`` of the registry at ``host`` (a name or an IP address; an IPv6 address gets
    brackets), checked by parse_registry: the URIs made obey the rule for the URIs given."""
    if not isinstance(host, str) or not host or any(c.isspace() for c in host):
        raise ValueError("host %r: must be a host name or an IP address" % (host,))
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if ":" in bare:
        try:
            ipaddress.IPv6Address(bare)
        except ValueError:
            raise ValueError("host %r: has a ':' but is not an IPv6 address (give the port separately)" % (host,)) from None
    elif bare != host:
        raise ValueError("host %r: brackets are for IPv6 addresses only" % (host,))
    number = _port_number(port)
    uri = "coap://%s" % Registry(url="", host=bare, port=number).authority
    parse_registry(uri)
    return uri


def _port_number(port: t.Any) -> int:
    # an inventory or --extra-vars gives the port as text as often as a number
    text = port.strip() if isinstance(port, str) else ""
    number = int(text) if text.isascii() and text.isdigit() else port
    if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= 65535:
        raise ValueError("port %r: must be an integer from 1 to 65535" % (port,))
    return number


# --- encoding -----------------------------------------------------------------

def encode_profile(profile: t.Mapping[str, t.Any], fmt: str) -> t.Tuple[bytes, int]:
    if fmt not in FORMATS:
        raise ValueError("format must be one of %s, got %r" % (", ".join(FORMATS), fmt))
    body = encode_cbor(profile) if fmt == "cbor" else canonical_json(profile)
    return body, FORMATS[fmt]


# --- change detection -----------------------------------------------------------

def without_keys(profile: t.Any, ignore: t.Iterable[str]) -> t.Any:
    """A deep copy of ``profile`` without the dotted ``ignore`` paths."""
    stripped = json.loads(json.dumps(profile))
    for path in ignore:
        parts = path.split(".")
        node = stripped
        for part in parts[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(parts[-1], None)
    return stripped


def profile_differs(stored: t.Any, new: t.Mapping[str, t.Any], ignore: t.Iterable[str] = DEFAULT_IGNORE) -> bool:
    if stored is None:
        return True
    ignore = tuple(ignore)
    return without_keys(stored, ignore) != without_keys(new, ignore)


# --- retries --------------------------------------------------------------------

def backoff_delay(attempt: int, base: float, cap: float, rng: t.Optional[random.Random] = None) -> float:
    """Exponential backoff with equal jitter: half fixed, half random, so
    reporters that lost the same datagram burst do not retry in lockstep."""
    ceiling = min(cap, base * (2 ** attempt))
    return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


class Outcome(t.NamedTuple):
    """What happened at one registry."""

    registry: str
    stored: bool
    changed: bool
    action: str  # created, updated, renewed, unchanged, would_create, would_update, failed
    code: t.Optional[str]
    etag: t.Optional[str]
    attempts: int
    error: t.Optional[str]
    before: t.Any  # the registry's copy before this report (None: it had none)

    def as_result(self) -> t.Dict[str, t.Any]:
        return {
            "registry": self.registry, "stored": self.stored, "changed": self.changed, "action": self.action,
            "code": self.code, "etag": self.etag, "attempts": self.attempts, "error": self.error,
        }


class ReportSettings(t.NamedTuple):
    fmt: str = "json"
    lifetime: t.Optional[int] = None
    timeout: float = 5.0
    retries: int = 4
    backoff: float = 0.5
    backoff_max: float = 8.0
    renew: bool = True
    check_mode: bool = False
    ignore: t.Tuple[str, ...] = DEFAULT_IGNORE
    oscore_context: t.Optional[str] = None  # one context folder for every registry
    oscore_credentials: t.Optional[str] = None  # a credentials file: one context per registry


def _code_text(response: t.Any) -> str:
    return "%s %s" % (response.code.dotted, response.code.name_printable)


def _diagnostic(response: t.Any) -> str:
    text = bytes(response.payload[:300]).decode("utf-8", errors="replace").strip()
    return "%s%s" % (_code_text(response), ": " + text if text else "")


def _fail_for(response: t.Any, registry: Registry, what: str) -> CoapError:
    dotted = response.code.dotted
    message = "%s: %s answered %s" % (registry.url, what, _diagnostic(response))
    if response.code.is_successful():
        return PermanentError(message + " (unexpected success code)")
    if dotted.startswith("4.") and dotted not in _RETRYABLE_CLIENT_ERRORS:
        return PermanentError(message)
    return CoapError(message)


def _describe(exc: BaseException) -> str:
    cause = exc.__cause__
    if isinstance(cause, OSError) and cause.errno:
        # aiocoap versions word the same ICMP error differently; the errno does not vary.
        return os.strerror(cause.errno)
    if exc.args:
        return str(exc.args[0])
    return str(exc) or type(exc).__name__


class _Client:
    """One aiocoap client context per attempt and registry.

    aiocoap keeps at most one confirmable exchange outstanding per context
    and peer (NSTART = 1) and keeps retransmitting an abandoned one, so a
    retry in the same context would queue behind the lost exchange. A fresh
    context (a fresh socket) per attempt lets the retry go out at once.
    """

    def __init__(self, registry: Registry, credentials: t.Optional[Credentials] = None) -> None:
        self.registry = registry
        self.credentials = credentials
        self.context = None  # type: t.Any

    async def __aenter__(self) -> "_Client":
        try:
            self.context = await client_context(aiocoap, self.credentials, self.registry.authority)
        except OscoreError as exc:
            raise PermanentError("%s: %s" % (self.registry.url, exc)) from None
        return self

    async def __aexit__(self, *exc_info: t.Any) -> None:
        await self.context.shutdown()

    async def request(self, message: t.Any, timeout: float) -> t.Any:
        try:
            return await asyncio.wait_for(self.context.request(message).response, timeout)
        except asyncio.TimeoutError:
            raise CoapError("%s: no answer within %gs" % (self.registry.url, timeout)) from None
        except aiocoap.error.Error as exc:
            raise CoapError("%s: %s" % (self.registry.url, _describe(exc))) from None
        except OSError as exc:
            raise CoapError("%s: %s" % (self.registry.url, exc)) from None


UNREADABLE = object()  # the registry would not show its copy (reads restricted to managers)


async def _get_stored(client: _Client, node: str, timeout: float) -> t.Tuple[bool, t.Any]:
    """(found, profile) as the registry holds it now; profile is UNREADABLE when reads are refused."""
    registry = client.registry
    message = aiocoap.Message(code=aiocoap.GET, uri=registry.uri("profiles", node))
    message.opt.accept = CF_JSON
    response = await client.request(message, timeout)
    if response.code == aiocoap.NOT_FOUND:
        return False, None
    if response.code in (aiocoap.UNAUTHORIZED, aiocoap.FORBIDDEN):
        return True, UNREADABLE
    if response.code != aiocoap.CONTENT:
        raise _fail_for(response, registry, "GET /profiles/%s" % node)
    try:
        return True, json.loads(bytes(response.payload).decode("utf-8"))
    except ValueError:
        # Undecodable: treat as different so the good profile replaces it.
        return True, None


async def _put(client: _Client, node: str, body: bytes, content_format: int, settings: ReportSettings) -> t.Any:
    registry = client.registry
    query = "lt=%d" % settings.lifetime if settings.lifetime is not None else None
    message = aiocoap.Message(code=aiocoap.PUT, uri=registry.uri("profiles", node, query=query), payload=body)
    message.opt.content_format = content_format
    response = await client.request(message, settings.timeout)
    if response.code not in (aiocoap.CREATED, aiocoap.CHANGED):
        raise _fail_for(response, registry, "PUT /profiles/%s" % node)
    return response


Sleeper = t.Callable[[float], t.Awaitable[t.Any]]


async def report_one(registry: Registry, profile: t.Mapping[str, t.Any], body: bytes, content_format: int,
                     settings: ReportSettings, credentials: t.Optional[Credentials] = None, sleep: Sleeper = asyncio.sleep,
                     rng: t.Optional[random.Random] = None) -> Outcome:
    node = profile["node"]
    last_error = "not attempted"
    # The registry's copy as first seen. Kept across attempts: a retry after a
    # lost PUT answer must not call the by-then-stored profile "unchanged", and
    # on a lossy link every exchange saved is a chance less to lose one.
    first_look = None  # type: t.Optional[t.Tuple[bool, t.Any]]
    for attempt in range(settings.retries + 1):
        if attempt:
            await sleep(backoff_delay(attempt - 1, settings.backoff, settings.backoff_max, rng))
        try:
            async with _Client(registry, credentials) as client:
                if first_look is None:
                    first_look = await _get_stored(client, node, settings.timeout)
                found, before = first_look
                if before is UNREADABLE:
                    # Nothing to compare with: send, and let the answer say whether it was new.
                    found, before, differs = None, None, True
                else:
                    differs = not found or profile_differs(before, profile, settings.ignore)
                if settings.check_mode:
                    action = ("would_create" if found is False else "would_update") if differs else "unchanged"
                    return Outcome(registry.url, bool(found) and not differs, differs, action, None, None,
                                   attempt + 1, None, before)
                if not differs and not settings.renew:
                    return Outcome(registry.url, True, False, "unchanged", None, None, attempt + 1, None, before)
                response = await _put(client, node, body, content_format, settings)
                etag = response.opt.etag.hex() if response.opt.etag else None
                if found is None:
                    found = response.code != aiocoap.CREATED
                action = ("updated" if found else "created") if differs else "renewed"
                return Outcome(registry.url, True, differs, action, _code_text(response), etag,
                               attempt + 1, None, before)
        except PermanentError as exc:
            return Outcome(registry.url, False, False, "failed", None, None, attempt + 1, str(exc), None)
        except CoapError as exc:
            last_error = str(exc)
    return Outcome(registry.url, False, False, "failed", None, None, settings.retries + 1,
                   "%s (gave up after %d attempts)" % (last_error, settings.retries + 1), None)


async def report(profile: t.Mapping[str, t.Any], registries: t.Sequence[str], settings: ReportSettings,
                 sleep: Sleeper = asyncio.sleep, rng: t.Optional[random.Random] = None) -> t.List[Outcome]:
    """Report ``profile`` to every registry at once; one outcome per registry, in order."""
    require_aiocoap()
    validate_profile(profile)
    parsed = [parse_registry(url) for url in registries]
    if settings.lifetime is not None and not 1 <= settings.lifetime <= LIFETIME_MAX:
        raise ValueError("lifetime must be from 1 to %d seconds, got %r" % (LIFETIME_MAX, settings.lifetime))
    body, content_format = encode_profile(profile, settings.fmt)
    credentials = _load_credentials(settings.oscore_credentials, settings.oscore_context, parsed)
    try:
        return list(await asyncio.gather(*(
            report_one(registry, profile, body, content_format, settings, credentials, sleep, rng) for registry in parsed
        )))
    finally:
        if credentials is not None:
            credentials.release()


def _load_credentials(credentials: t.Optional[str], context: t.Optional[str],
                      registries: t.Sequence[Registry]) -> t.Optional[Credentials]:
    try:
        return Credentials.load(credentials, context, [registry.authority for registry in registries])
    except OscoreError as exc:
        raise CoapError(str(exc)) from None


def run_report(profile: t.Mapping[str, t.Any], registries: t.Sequence[str],
               settings: ReportSettings) -> t.List[Outcome]:
    return asyncio.run(report(profile, registries, settings))


# --- reading the registry (inventory) ---------------------------------------------

async def fetch_profiles(url: str, timeout: float = 10.0, retries: int = 2, backoff: float = 0.5,
                         sleep: Sleeper = asyncio.sleep, oscore_credentials: t.Optional[str] = None) -> t.Dict[str, t.Any]:
    """All live profiles (GET /profiles) as the registry's JSON object node -> profile;
    with ``oscore_credentials``, read under the registry's context from that file."""
    require_aiocoap()
    registry = parse_registry(url)
    credentials = _load_credentials(oscore_credentials, None, [registry])
    try:
        return await _fetch_profiles(registry, timeout, retries, backoff, sleep, credentials)
    finally:
        if credentials is not None:
            credentials.release()


async def _fetch_profiles(registry: Registry, timeout: float, retries: int, backoff: float, sleep: Sleeper,
                          credentials: t.Optional[Credentials]) -> t.Dict[str, t.Any]:
    last_error = "not attempted"
    for attempt in range(retries + 1):
        if attempt:
            await sleep(backoff_delay(attempt - 1, backoff, 8.0))
        try:
            async with _Client(registry, credentials) as client:
                message = aiocoap.Message(code=aiocoap.GET, uri=registry.uri("profiles"))
                message.opt.accept = CF_JSON
                response = await client.request(message, timeout)
        except PermanentError:
            raise
        except CoapError as exc:
            last_error = str(exc)
            continue
        if response.code != aiocoap.CONTENT:
            raise _fail_for(response, registry, "GET /profiles")
        try:
            data = json.loads(bytes(response.payload).decode("utf-8"))
        except ValueError as exc:
            raise PermanentError("%s: GET /profiles answered invalid JSON: %s" % (registry.url, exc)) from None
        if not isinstance(data, dict):
            raise PermanentError("%s: GET /profiles answered a JSON %s, not an object" % (registry.url, type(data).__name__))
        return data
    raise CoapError("%s (gave up after %d attempts)" % (last_error, retries + 1))


def run_fetch_profiles(url: str, timeout: float = 10.0, retries: int = 2,
                       oscore_credentials: t.Optional[str] = None) -> t.Dict[str, t.Any]:
    return asyncio.run(fetch_profiles(url, timeout, retries, oscore_credentials=oscore_credentials))


def check_profile(profile: t.Any) -> t.Optional[str]:
    """None when ``profile`` follows the profile schema, else why not."""
    try:
        validate_profile(profile)
    except ProfileError as exc:
        return str(exc)
    return None
