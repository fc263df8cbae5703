# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""OSCORE (RFC 8613) on the client side of the CoAP API (docs/contracts.md,
"The CoAP API", security).

Every client of the registry -- ``coap_report``, the agent, the
``registry_profiles`` lookup, the ``registry`` inventory plugin and the
reconcile daemon -- protects its requests with aiocoap's file-based security
contexts, one per registry. They are named by a credentials file in aiocoap's
own format::

    {"coap://172.30.0.11:5683/*": {"oscore": {"basedir": "/var/lib/nanoedge-agent/oscore/m1/"}}}

(a relative ``basedir`` is taken from the file's folder). A client given
credentials never sends an unprotected request: a registry the file does not
name, or a missing OSCORE library, is an error, never a fall-back to plain
CoAP.

Standard library plus aiocoap, Python >= 3.9; no Ansible imports (the agent
and the reconcile daemon import this module outside Ansible).
"""

from __future__ import annotations

import json
import os
import sys
import typing as t

# The client transports when OSCORE is in use: aiocoap leaves "oscore" out of
# its defaults when a library is missing and would then send plain requests.
OSCORE_TRANSPORTS = ["oscore", "udp6"]


class OscoreError(Exception):
    """OSCORE cannot be used as configured; the message says what is missing or wrong."""


def oscore_missing() -> t.List[str]:
    """What aiocoap lacks here for OSCORE (module names), empty when nothing."""
    try:
        from aiocoap import defaults
    except ImportError:
        return ["aiocoap"]
    return list(defaults.oscore_missing_modules() or ())


def require_oscore() -> None:
    missing = oscore_missing()
    if missing:
        raise OscoreError("OSCORE is configured but %s cannot be imported by %s: install aiocoap's oscore extra "
                          "(pip install 'aiocoap[oscore]'); requests are never sent unprotected instead"
                          % (", ".join(missing), sys.executable))


def load_oscore_context(path: str) -> t.Any:
    """aiocoap's file-based OSCORE security context (a folder with settings.json).

    Loaded once and shared by every client context of a run: aiocoap locks
    the folder while a context object holds it, and the sequence numbers it
    hands out (kept in sequence.json beside the settings) must never repeat."""
    require_oscore()
    from aiocoap import oscore
    try:
        return oscore.FilesystemSecurityContext(path.rstrip("/") + "/")
    except Exception as exc:  # aiocoap raises LoadError, filelock's Timeout, OSError...
        raise OscoreError("OSCORE context %s: %s" % (path, str(exc) or type(exc).__name__)) from None


def release_oscore_context(secctx: t.Any) -> None:
    """Give up a context load_oscore_context made: aiocoap unlocks its folder for the next program."""
    release = getattr(secctx, "_destroy", None)
    if release is not None:
        release()


def _authority_of(pattern: t.Any, path: str) -> str:
    """``host:port`` of a ``coap://host[:port]/*`` key, the port filled in, IPv6 in brackets."""
    # _coap imports this module; importing it back here, at call time, is no cycle
    from ansible_collections.nanoedge.core.plugins.module_utils._coap import parse_registry

    if not isinstance(pattern, str) or not pattern.endswith("/*"):
        raise OscoreError("credentials %s: key %r must be coap://host[:port]/*" % (path, pattern))
    try:
        return parse_registry(pattern[:-2]).authority
    except ValueError as exc:
        raise OscoreError("credentials %s: %s" % (path, exc)) from None


def read_credentials(path: str) -> t.Dict[str, str]:
    """authority (``host:port``) -> context folder, from a credentials file."""
    try:
        with open(path, encoding="utf-8") as handle:
            raw = json.load(handle)
    except (OSError, ValueError) as exc:
        raise OscoreError("credentials %s: %s" % (path, exc)) from None
    if not isinstance(raw, dict):
        raise OscoreError("credentials %s: must be a JSON object" % path)
    folders = {}
    for pattern, entry in raw.items():
        basedir = entry.get("oscore", {}).get("basedir") if isinstance(entry, dict) else None
        if not isinstance(basedir, str) or not basedir or set(entry) != {"oscore"}:
            raise OscoreError("credentials %s: %r must be {\"oscore\": {\"basedir\": FOLDER}}" % (path, pattern))
        folders[_authority_of(pattern, path)] = os.path.join(os.path.dirname(os.path.abspath(path)), basedir)
    return folders


class Credentials:
    """The security contexts of one client, loaded once per run, one per registry authority."""

    def __init__(self, contexts: t.Mapping[str, t.Any], source: str) -> None:
        self.contexts = dict(contexts)
        self.source = source

    @classmethod
    def load(cls, credentials: t.Optional[str] = None, context: t.Optional[str] = None,
             authorities: t.Iterable[str] = ()) -> t.Optional["Credentials"]:
        """From a credentials file, or one context folder for every registry in ``authorities``; None for neither."""
        if credentials and context:
            raise OscoreError("give either OSCORE credentials (%s) or one context (%s), not both" % (credentials, context))
        if context:
            secctx = load_oscore_context(context)
            return cls({authority: secctx for authority in authorities}, context)
        if not credentials:
            return None
        require_oscore()
        loaded = {}  # type: t.Dict[str, t.Any]
        try:
            for authority, folder in read_credentials(credentials).items():
                loaded[authority] = load_oscore_context(folder)
        except OscoreError:
            for secctx in loaded.values():
                release_oscore_context(secctx)
            raise
        return cls(loaded, credentials)

    def context_for(self, authority: str) -> t.Any:
        try:
            return self.contexts[authority]
        except KeyError:
            raise OscoreError("OSCORE credentials %s name no security context for coap://%s"
                              % (self.source, authority)) from None

    def release(self) -> None:
        for secctx in {id(c): c for c in self.contexts.values()}.values():
            release_oscore_context(secctx)

    def apply(self, context: t.Any) -> None:
        """Protect every request ``context`` sends to a registry these credentials name."""
        for authority, secctx in self.contexts.items():
            context.client_credentials["coap://%s/*" % authority] = secctx


async def client_context(aiocoap: t.Any, credentials: t.Optional[Credentials], authority: t.Optional[str] = None) -> t.Any:
    """An aiocoap client context; with ``credentials``, every request to a registry they name is
    protected, and ``authority`` (the registry this context is for) must be one of them."""
    if credentials is None:
        return await aiocoap.Context.create_client_context()
    if authority is not None:
        credentials.context_for(authority)
    context = await aiocoap.Context.create_client_context(transports=OSCORE_TRANSPORTS)
    credentials.apply(context)
    return context
