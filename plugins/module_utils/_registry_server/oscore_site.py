# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The registry's side of OSCORE (docs/contracts.md, "The CoAP API",
security): the security contexts it serves with, found by their kid, and the
site wrapper that unprotects each request and protects its answers.

Both do what aiocoap's CredentialsMap and OscoreSiteWrapper do, with the
work a request repeated taken off it:

- a context is found by its (kid, kid context) in a dict, not by asking
  every context in turn;
- the first message a context receives no longer waits for a file write:
  aiocoap marks a context's replay window "unknown" on disk (fsync'd) before
  it accepts that message, so that a registry that crashes later recovers it
  with an Echo exchange (RFC 8613, appendix B.1.2) instead of trusting a
  stale window. The same mark is written for every context at start, before
  the registry serves, several files at a time; replay protection is the
  same, only the write comes earlier;
- an answer is protected and handed on as the site adds it, in the task that
  unprotected the request, where aiocoap starts a second task, a queue and
  two pipes for every request;
- the external AAD of an answer, the same bytes as its request's, is
  encoded once.
"""

from __future__ import annotations

import concurrent.futures
import typing as t
from pathlib import Path

from ansible_collections.nanoedge.core.plugins.module_utils._registry_server import LOG, PROG
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.aiocoap_dep import aiocoap

# Context files written at once at start (fsync waits on the disk, not the CPU).
MARK_WORKERS = 8


def load_credentials(directory: str) -> t.Tuple[t.Any, t.List[str]]:
    """One OSCORE security context per peer: DIR/<name>/settings.json (+ secret.json)."""
    from aiocoap.credentials import CredentialsMap

    base = Path(directory)
    if not base.is_dir():
        raise SystemExit("%s: --oscore-contexts %s is not a directory" % (PROG, directory))
    entries = {}
    names = []
    for child in sorted(base.iterdir()):
        if child.is_dir() and ((child / "settings.json").is_file() or (child / "secret.json").is_file()):
            entries[":" + child.name] = {"oscore": {"basedir": str(child) + "/"}}
            names.append(child.name)
    if not names:
        raise SystemExit("%s: no OSCORE security context (NAME/settings.json) under %s" % (PROG, directory))
    credentials = _indexed(CredentialsMap)()
    try:
        credentials.load_from_dict(entries)
    except Exception as exc:
        raise SystemExit("%s: cannot load OSCORE contexts from %s: %s" % (PROG, directory, exc)) from None
    credentials.reindex()
    mark_replay_windows(credentials.values())
    return credentials, names


def _indexed(base: t.Any) -> t.Any:
    """aiocoap's CredentialsMap finds the context of a request by asking every
    context in turn (a beat from each of 500 workers each second is 125,000
    questions); this one looks the (kid, kid context) up in a dict first."""
    from aiocoap.oscore import COSE_KID, COSE_KID_CONTEXT

    class IndexedCredentials(base):  # type: ignore[misc,valid-type]
        def reindex(self) -> None:
            self.by_kid = {(getattr(item, "recipient_id", None), getattr(item, "id_context", None)): item
                           for item in self.values() if hasattr(item, "get_oscore_context_for")}

        def find_oscore(self, unprotected: t.Any) -> t.Any:
            item = getattr(self, "by_kid", {}).get((unprotected.get(COSE_KID), unprotected.get(COSE_KID_CONTEXT)))
            context = item.get_oscore_context_for(unprotected) if item is not None else None
            return context if context is not None else super().find_oscore(unprotected)

    return IndexedCredentials


def _mark_unknown(context: t.Any) -> bool:
    """Write ``context``'s replay window as "unknown" (aiocoap's own step before
    it accepts a first message); on failure, leave that step to the first message."""
    try:
        context._replay_window_changed()  # pylint: disable=protected-access
    except OSError as exc:
        context.replay_window_persisted = True  # aiocoap writes it again before the first message
        LOG.warning("OSCORE context %s: cannot write its replay window ahead (%s); the first request writes it",
                    getattr(context, "basedir", "?"), exc)
        return False
    return True


def mark_replay_windows(contexts: t.Iterable[t.Any], workers: int = MARK_WORKERS) -> int:
    """Before serving, mark the replay window of every context that still
    trusts the one on disk as "unknown", as aiocoap would at each context's
    first message; the number of contexts marked."""
    pending = [context for context in contexts
               if getattr(context, "replay_window_persisted", False) and hasattr(context, "_replay_window_changed")]
    if not pending:
        return 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(workers, len(pending)))) as pool:
        return sum(pool.map(_mark_unknown, pending))


def kept_external_aad() -> None:
    """The external AAD of an answer is its request's (RFC 8613, 5.4: the
    request's kid and partial IV, no Class I options), which aiocoap encodes
    again to protect the answer: each file-based context keeps the last one."""
    from aiocoap import oscore

    cls = oscore.FilesystemSecurityContext
    original = cls._extract_external_aad  # pylint: disable=protected-access
    if getattr(original, "kept", False):
        return

    def _extract_external_aad(self: t.Any, message: t.Any, request_id: t.Any, local_is_sender: bool) -> bytes:
        if isinstance(self, oscore.ContextWhereExternalAadIsGroup):  # a group's depends on more
            return original(self, message, request_id, local_is_sender)
        key = (self.alg_aead, request_id.kid, request_id.partial_iv, request_id.request_hash)
        last = self.__dict__.get("_kept_external_aad")
        if last is not None and last[0] == key:
            return t.cast(bytes, last[1])
        aad = original(self, message, request_id, local_is_sender)
        self._kept_external_aad = (key, aad)
        return t.cast(bytes, aad)

    _extract_external_aad.kept = True  # type: ignore[attr-defined]
    _extract_external_aad.__wrapped__ = original  # type: ignore[attr-defined]
    cls._extract_external_aad = _extract_external_aad  # pylint: disable=protected-access


class PeerGone(Exception):
    """The peer's interest in an observation ended while a notification was handed over."""


class _ProtectingPipe:
    """What the inner site fills for one unprotected request: each answer is
    protected and added to the outer pipe at once, as aiocoap's wrapper does
    after its queue. Any number of answers (an observation's notifications)
    until the last one; an exception becomes the answer aiocoap's
    error_to_message would make of it."""

    def __init__(self, request: aiocoap.Message, outer: t.Any, context: t.Any, seqno: t.Any, log: t.Any) -> None:
        self.request = request
        self.outer = outer
        self.context = context
        self.seqno = seqno
        self.log = log
        self.ended = False

    def on_interest_end(self, callback: t.Callable[[], t.Any]) -> None:
        self.outer.on_interest_end(callback)

    def add_response(self, message: aiocoap.Message, is_last: bool = False) -> None:
        if self.ended:
            return  # aiocoap's wrapper stops reading after the last answer
        if not is_last:
            message.opt.observe = 0
        protected = self.context.protect(message, self.seqno)[0]
        if message.opt.observe is not None:
            protected.opt.observe = self.context.sender_sequence_number & 0xFFFFFFFF
        self.log.debug("Response %r was encrypted into %r", message, protected)
        self.ended = is_last
        try:
            self.outer.add_response(protected, is_last=is_last)
        except TypeError:
            # aiocoap 0.4.17's pipe fails this way when the peer's interest ends while the answer is
            # handed over (a reset notification): the observation is over, and its render must end
            self.ended = True
            raise PeerGone() from None

    def add_exception(self, exception: BaseException) -> None:
        from aiocoap import error
        from aiocoap.numbers.codes import Code

        if isinstance(exception, error.RenderableError):
            self.log.info("Render request raised a renderable error (%s), responding accordingly.", repr(exception))
            try:
                message = exception.to_message()
                if message is None:
                    raise ValueError("Exception to_message failed to produce a message on %r" % exception)
            except Exception as failure:
                self.log.error("Rendering the renderable exception failed: %r", failure, exc_info=failure)
                message = aiocoap.Message(code=Code.INTERNAL_SERVER_ERROR)
        else:
            self.log.error("An exception occurred while rendering a resource: %r", exception, exc_info=exception)
            message = aiocoap.Message(code=Code.INTERNAL_SERVER_ERROR)
        self.add_response(message, is_last=True)


def oscore_site(inner: t.Any, credentials: t.Any) -> t.Any:
    """``inner`` behind OSCORE: aiocoap's OscoreSiteWrapper (aiocoap 0.4.17),
    its answers protected in the request's own task (see _ProtectingPipe)."""
    from aiocoap import error, oscore
    from aiocoap.numbers.codes import FETCH, POST
    from aiocoap.oscore_sitewrapper import OscoreSiteWrapper
    from aiocoap.transports.oscore import OSCOREAddress

    kept_external_aad()

    class RegistryOscoreSite(OscoreSiteWrapper):  # type: ignore[misc,valid-type]
        async def render_to_pipe(self, pipe: t.Any) -> None:
            request = pipe.request
            if request.opt.uri_path == (".well-known", "edhoc"):
                await super().render_to_pipe(pipe)
                return
            # From here to the end of the unprotection, as aiocoap's wrapper.
            try:
                unprotected = oscore.verify_start(request)
            except oscore.NotAProtectedMessage:
                await self._inner_site.render_to_pipe(pipe)
                return
            if request.code not in (FETCH, POST):
                raise error.MethodNotAllowed
            try:
                context = self.server_credentials.find_oscore(unprotected)
            except KeyError:
                if request.mtype == aiocoap.CON:
                    raise error.Unauthorized("Security context not found") from None
                return
            try:
                unprotected, seqno = context.unprotect(request)
            except error.RenderableError:
                raise
            except oscore.ReplayError:
                if request.mtype == aiocoap.CON:
                    pipe.add_response(aiocoap.Message(code=aiocoap.UNAUTHORIZED, max_age=0,
                                                      payload=b"Replay detected"), is_last=True)
                return
            except oscore.DecodeError:
                if request.mtype == aiocoap.CON:
                    raise error.BadOption("Failed to decode COSE") from None
                return
            except oscore.ProtectionInvalid:
                if request.mtype == aiocoap.CON:
                    raise error.BadRequest("Decryption failed") from None
                return
            unprotected.remote = OSCOREAddress(context, request.remote)
            self.log.debug("Request %r was unprotected into %r", request, unprotected)
            answers = _ProtectingPipe(unprotected, pipe, context.context_for_response(), seqno, self.log)
            try:
                await self._inner_site.render_to_pipe(answers)
            except PeerGone:
                self.log.debug("Observation %r ended: its peer is gone", unprotected)
            except Exception as exc:  # the answer aiocoap's error_to_message makes of it
                answers.add_exception(exc)

    return RegistryOscoreSite(inner, credentials)
