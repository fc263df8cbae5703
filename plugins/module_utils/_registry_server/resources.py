# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The CoAP resources of the profile registry: /profiles, /profiles/{node}
and /.well-known/core, with access control and block-wise transfers."""

from __future__ import annotations

import functools
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._canonical_json import canonical_json
from ansible_collections.nanoedge.core.plugins.module_utils._coap import CF_CBOR, CF_JSON, CF_TEXT
from ansible_collections.nanoedge.core.plugins.module_utils._profile import NODE_NAME_RE, ProfileError, validate_profile
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server import LOG, PROG
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.access import (
    authenticated_identity, check_node_identity,
)
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.aiocoap_dep import (
    BlockOption, Code, ObservableResource, PathCapable, Site, WKCResource, aiocoap, cbor2,
)
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.codec import (
    BadInput, decode_body, refuse_unknown_critical_options,
)
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.limits import (
    Limits, ObserverCount, RateLimiter, RefusalLog, max_age, peer_of,
)
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.model import Registry, RegistryFull
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.uploads import UploadSpool


class Settings(t.NamedTuple):
    default_lifetime: int
    max_lifetime: int
    max_body: int
    security: bool
    managers: t.FrozenSet[str]
    limits: Limits = Limits()


def diagnostic(code: Code, message: str, **options: t.Any) -> aiocoap.Message:
    response = aiocoap.Message(code=code, payload=("%s: %s" % (PROG, message)).encode("utf-8"),
                               content_format=CF_TEXT)
    for name, value in options.items():
        setattr(response.opt, name, value)
    return response


def _continues_block2(request: aiocoap.Message) -> bool:
    """A GET for a later block of a representation already served: a slice of
    a cached answer, which the rate limit does not count (refusing it would
    break a transfer in the middle)."""
    return request.code == Code.GET and request.opt.block2 is not None and request.opt.block2.block_number > 0


def _serve_without_observing(serverobservation: t.Any) -> None:
    """Answer an observation request as a plain GET, without the Observe
    option (RFC 7641, section 4.1). aiocoap needs the observation accepted
    before it can be deregistered early."""
    serverobservation.accept(lambda: None)
    serverobservation.deregister()


class ProfilesResource(ObservableResource, PathCapable):
    """``/profiles`` and ``/profiles/{node}``."""

    def __init__(self, registry: Registry, settings: Settings) -> None:
        super().__init__()
        self.registry = registry
        self.settings = settings
        limits = settings.limits
        self.uploads = UploadSpool(limits)
        self.rate = RateLimiter(limits.rate, limits.burst)
        self.observer_count = ObserverCount(limits.max_observers_per_peer, limits.max_observers)
        self.refusals = RefusalLog(LOG)
        self._observers: t.Dict[t.Optional[str], t.Set[t.Any]] = {}
        registry.listeners.append(self._notify)

    def sweep(self) -> None:
        """Periodic clean-up: unfinished uploads past their time, full token buckets."""
        self.uploads.expire()
        self.rate.prune()

    def admit(self, request: aiocoap.Message) -> t.Optional[aiocoap.Message]:
        """None when the sender is within its request rate, else the 4.29 answer (RFC 8516)."""
        if not self.rate.enabled or _continues_block2(request):
            return None
        peer = peer_of(request.remote)
        wait = self.rate.admit(peer)
        if not wait:
            return None
        seconds = max_age(wait)
        message = "too many requests from %s (at most %g per second, %d at once), retry in %d s" % (
            peer, self.rate.rate, self.rate.burst, seconds)
        self.refusals.note(message)
        return diagnostic(Code.TOO_MANY_REQUESTS, message, max_age=seconds)

    # -- link format ---------------------------------------------------

    def get_resources_as_linkheader(self) -> t.Any:
        from aiocoap.util.linkformat import Link, LinkFormat
        self.registry.expire_due()
        return LinkFormat([Link("/" + node, rt="nanoedge.profile", ct="50 60", obs=None)
                           for node in sorted(self.registry.entries) if node not in self.registry.hidden])

    # -- observation -------------------------------------------------------

    async def add_observation(self, request: aiocoap.Message, serverobservation: t.Any) -> None:
        path = request.opt.uri_path
        if request.code != Code.GET or len(path) > 1:
            _serve_without_observing(serverobservation)
            return
        peer = peer_of(request.remote)
        # pushed out by a newer observation of the same peer: the last notification says so
        end = functools.partial(serverobservation.trigger, is_last=True, response=diagnostic(
            Code.SERVICE_UNAVAILABLE, self.observer_count.pushed_out()))
        refused = self.observer_count.admit(peer, serverobservation, end)
        if refused is not None:
            self.refusals.note("observation of /profiles%s served as a plain GET: %s"
                               % ("/" + path[0] if path else "", refused))
            _serve_without_observing(serverobservation)
            return
        key = path[0] if path else None
        observers = self._observers.setdefault(key, set())
        observers.add(serverobservation)

        def _cancel(observers: t.Set[t.Any] = observers, obs: t.Any = serverobservation, key: t.Any = key) -> None:
            observers.discard(obs)
            self.observer_count.release(peer, obs)
            if not observers and self._observers.get(key) is observers:
                del self._observers[key]

        serverobservation.accept(_cancel)

    def _notify(self, node: str) -> None:
        for key in (node, None):
            for observation in list(self._observers.get(key, ())):
                observation.trigger()

    # -- dispatch ------------------------------------------------------------

    async def needs_blockwise_assembly(self, request: aiocoap.Message) -> bool:
        # Block1 is reassembled here, with the size limit applied while it
        # arrives; Block2 is cut from the cached representation.
        return False

    async def render(self, request: aiocoap.Message) -> aiocoap.Message:
        try:
            return await self._render(request)
        except BadInput as exc:
            return diagnostic(exc.code, str(exc), **exc.options)
        except Exception:  # the registry must keep serving whatever arrives
            LOG.exception("unexpected error while handling %s %s", request.code, request.opt.uri_path)
            return diagnostic(Code.INTERNAL_SERVER_ERROR, "internal error (see the registry log)")
        finally:
            # aiocoap keeps every answered request with its response for
            # EXCHANGE_LIFETIME (247 s) to answer duplicates; its body has been
            # copied or decoded by now, so it need not stay that long.
            if request.code == Code.PUT:
                request.payload = b""

    async def _render(self, request: aiocoap.Message) -> aiocoap.Message:
        path = request.opt.uri_path
        if len(path) > 1:
            raise BadInput(Code.NOT_FOUND, "no resource /profiles/%s" % "/".join(path))
        node = path[0] if path else None
        if node is not None and not NODE_NAME_RE.fullmatch(node):
            raise BadInput(Code.BAD_REQUEST, "invalid node name %r in the path: must match %s"
                           % (node, NODE_NAME_RE.pattern))
        if request.code == Code.GET:
            return self._get(request, node)
        if node is None:
            raise BadInput(Code.METHOD_NOT_ALLOWED, "%s is not allowed on /profiles (GET only)" % request.code)
        if request.code == Code.PUT:
            return await self._put(request, node)
        if request.code == Code.DELETE:
            return await self._delete(request, node)
        raise BadInput(Code.METHOD_NOT_ALLOWED, "%s is not allowed on /profiles/%s (GET, PUT, DELETE)"
                       % (request.code, node))

    # -- access control ---------------------------------------------------

    def _check_write(self, request: aiocoap.Message, node: str) -> None:
        check_node_identity(self.settings.security, request, node, "writing /profiles/%s" % node,
                            "write /profiles/%s" % node)

    def _check_read(self, request: aiocoap.Message, node: t.Optional[str]) -> None:
        if not self.settings.security or not self.settings.managers:
            return
        identity = authenticated_identity(request)
        if identity in self.settings.managers:
            return
        if node is None:
            raise BadInput(Code.UNAUTHORIZED, "reading /profiles needs OSCORE as one of the managers")
        # A worker may read back its own profile: the reporter compares it
        # before writing, so an unchanged profile costs no write (and no
        # notification to every observer). Other nodes' profiles stay hidden.
        if identity == node:
            return
        if identity is not None:
            LOG.warning("refused read of /profiles/%s by OSCORE identity %r", node, identity)
        raise BadInput(Code.UNAUTHORIZED, "reading /profiles/%s needs OSCORE as one of the managers or as node %r"
                       % (node, node))

    # -- GET ------------------------------------------------------------------

    def _get(self, request: aiocoap.Message, node: t.Optional[str]) -> aiocoap.Message:
        if request.payload:
            raise BadInput(Code.BAD_REQUEST, "GET takes no payload")
        self._check_read(request, node)
        accept = request.opt.accept
        if accept is None:
            accept = CF_JSON
        if accept not in (CF_JSON, CF_CBOR) or (accept == CF_CBOR and cbor2 is None):
            raise BadInput(Code.NOT_ACCEPTABLE, "Accept %d: profiles are served as JSON (50) or CBOR (60)"
                           % int(accept))
        if node is None:
            payload, etag = self.registry.collection(accept)
        else:
            entry = self.registry.get(node)
            if entry is None:
                raise BadInput(Code.NOT_FOUND, "no live profile for node %r" % node)
            etag = entry.etag
            payload = entry.body if accept == CF_JSON else entry.cbor
        if request.opt.etags and etag in request.opt.etags:
            return aiocoap.Message(code=Code.VALID, etag=etag)
        response = aiocoap.Message(code=Code.CONTENT, payload=payload, content_format=accept, etag=etag)
        return self._cut_block2(request, response)

    @staticmethod
    def _cut_block2(request: aiocoap.Message, response: aiocoap.Message) -> aiocoap.Message:
        block2 = request.opt.block2
        if block2 is None:
            if len(response.payload) <= request.remote.maximum_payload_size:
                return response
            block2 = BlockOption.BlockwiseTuple(0, False, request.remote.maximum_block_size_exp)
        elif block2.block_number == 0 and len(response.payload) <= block2.size:
            return response
        if block2.start >= len(response.payload) and block2.block_number != 0:
            raise BadInput(Code.BAD_REQUEST, "Block2 %d is beyond the end of the representation" % block2.block_number)
        return response._extract_block(block2.block_number, block2.size_exponent,
                                       request.remote.maximum_payload_size)

    # -- PUT ------------------------------------------------------------------

    def _lifetime(self, request: aiocoap.Message) -> int:
        lifetime = self.settings.default_lifetime
        seen = set()
        for item in request.opt.uri_query:
            name, sep, value = item.partition("=")
            if name in seen:
                raise BadInput(Code.BAD_REQUEST, "query parameter %r given twice" % name)
            seen.add(name)
            if name != "lt":
                raise BadInput(Code.BAD_REQUEST, "unknown query parameter %r (only lt=SECONDS)" % name)
            if not sep or not value.isascii() or not value.isdigit() or len(value) > 10:
                raise BadInput(Code.BAD_REQUEST, "lt must be a whole number of seconds, got %r" % value)
            lifetime = int(value)
            if not 1 <= lifetime <= self.settings.max_lifetime:
                raise BadInput(Code.BAD_REQUEST, "lt must be from 1 to %d seconds, got %d"
                               % (self.settings.max_lifetime, lifetime))
        return lifetime

    def _check_content_format(self, content_format: t.Optional[int]) -> None:
        if content_format not in (CF_JSON, CF_CBOR):
            raise BadInput(Code.UNSUPPORTED_CONTENT_FORMAT,
                           "Content-Format %s is not accepted: send JSON (50) or CBOR (60)"
                           % ("none" if content_format is None else int(content_format)))

    def _too_large(self, size: int) -> BadInput:
        return BadInput(Code.REQUEST_ENTITY_TOO_LARGE, "profile of %d bytes exceeds the limit of %d bytes"
                        % (size, self.settings.max_body), size1=self.settings.max_body)

    def _assemble(self, request: aiocoap.Message, node: str) -> t.Optional[t.Tuple[bytes, t.Optional[int]]]:
        """The complete body, or None when more blocks are expected (2.31 sent)."""
        if request.opt.size1 is not None and request.opt.size1 > self.settings.max_body:
            raise self._too_large(request.opt.size1)
        block1 = request.opt.block1
        if block1 is None:
            if len(request.payload) > self.settings.max_body:
                raise self._too_large(len(request.payload))
            return request.payload, request.opt.content_format
        key = (request.remote.blockwise_key, node, tuple(request.opt.uri_query))
        uploads = self.uploads
        uploads.expire()
        if block1.more and len(request.payload) != block1.size:
            uploads.drop(key)
            raise BadInput(Code.BAD_REQUEST, "Block1 payload of %d bytes does not match the block size %d"
                           % (len(request.payload), block1.size))
        if block1.block_number == 0:
            uploads.drop(key)
            self._check_content_format(request.opt.content_format)
            if len(request.payload) > self.settings.max_body:
                raise self._too_large(len(request.payload))
            if not block1.more:
                return request.payload, request.opt.content_format
            uploads.start(key, request.opt.content_format, peer_of(request.remote), request.payload)
            return None
        upload = uploads.get(key)
        if upload is None or block1.start != len(upload.payload):
            if upload is not None and block1.start + len(request.payload) == len(upload.payload) \
                    and upload.payload.endswith(request.payload) and block1.more:
                # a repeated block (its acknowledgement was lost): acknowledge again
                return None
            uploads.drop(key)
            raise BadInput(Code.REQUEST_ENTITY_INCOMPLETE, "Block1 %d does not continue an upload in progress"
                           % block1.block_number)
        total = len(upload.payload) + len(request.payload)
        if total > self.settings.max_body:
            uploads.drop(key)
            raise self._too_large(total)
        if block1.more:
            uploads.extend(key, request.payload)
            return None
        upload = uploads.finish(key)
        return bytes(upload.payload) + request.payload, upload.content_format

    async def _put(self, request: aiocoap.Message, node: str) -> aiocoap.Message:
        self._check_write(request, node)
        lifetime = self._lifetime(request)
        block1 = request.opt.block1
        assembled = self._assemble(request, node)
        if assembled is None:
            return aiocoap.Message(code=Code.CONTINUE, block1=block1)
        body, content_format = assembled
        self._check_content_format(content_format)
        value = decode_body(body, content_format)
        try:
            validate_profile(value)
        except ProfileError as exc:
            raise BadInput(Code.BAD_REQUEST, "invalid profile: %s" % exc) from None
        if value["node"] != node:
            raise BadInput(Code.BAD_REQUEST, "profile node %r does not match the path /profiles/%s"
                           % (value["node"], node))
        try:
            canonical = canonical_json(value)
        except (ValueError, TypeError) as exc:  # e.g. a CBOR bignum beyond int-to-text limits
            raise BadInput(Code.BAD_REQUEST, "invalid profile: %s" % exc) from None
        try:
            created, entry = await self.registry.put(node, value, canonical, lifetime)
        except RegistryFull as exc:
            # 5.03, not 4.13 (that is about the size of this request): room
            # comes back when a lease ends, which Max-Age tells the client.
            wait = max_age(exc.retry_after)
            raise BadInput(Code.SERVICE_UNAVAILABLE, "%s, retry in %d s" % (exc, wait), max_age=wait) from None
        except Exception as exc:
            raise BadInput(Code.INTERNAL_SERVER_ERROR, "profile not stored: %s" % exc) from None
        response = aiocoap.Message(code=Code.CREATED if created else Code.CHANGED, etag=entry.etag)
        if block1 is not None:
            response.opt.block1 = block1
        if created:
            response.opt.location_path = ("profiles", node)
        return response

    # -- DELETE -------------------------------------------------------------------

    async def _delete(self, request: aiocoap.Message, node: str) -> aiocoap.Message:
        self._check_write(request, node)
        if request.payload:
            raise BadInput(Code.BAD_REQUEST, "DELETE takes no payload")
        if request.opt.uri_query:
            raise BadInput(Code.BAD_REQUEST, "DELETE takes no query parameters")
        try:
            await self.registry.delete(node)
        except Exception as exc:
            raise BadInput(Code.INTERNAL_SERVER_ERROR, "profile not deleted: %s" % exc) from None
        return aiocoap.Message(code=Code.DELETED)


class CollectionResource(ObservableResource):
    """``/profiles`` itself: a Site hands a path-capable child only the paths
    below it, so the collection is this thin front for the same resource."""

    rt = "nanoedge.profiles"
    ct = "50 60"

    def __init__(self, profiles: ProfilesResource) -> None:
        super().__init__()
        self.profiles = profiles

    async def needs_blockwise_assembly(self, request: aiocoap.Message) -> bool:
        return False

    async def add_observation(self, request: aiocoap.Message, serverobservation: t.Any) -> None:
        await self.profiles.add_observation(request, serverobservation)

    async def render(self, request: aiocoap.Message) -> aiocoap.Message:
        return await self.profiles.render(request)


class WellKnownCore(WKCResource):
    """RFC 6690 link format, with an ETag like every other representation."""

    # With security on, the node names it lists are for the managers' eyes only.
    guard = None  # type: t.Optional[t.Callable[[aiocoap.Message, t.Optional[str]], None]]

    async def render_get(self, request: aiocoap.Message) -> aiocoap.Message:
        try:
            if self.guard is not None:
                self.guard(request, None)
        except BadInput as exc:
            return diagnostic(exc.code, "/.well-known/core: %s" % exc, **exc.options)
        response = await super().render_get(request)
        aiocoap.resource.hashing_etag(request, response)
        return response


# --------------------------------------------------------------------------
# Server setup.

class RegistrySite(Site):
    """The root. Requests below /profiles and /beat are the hot path: they
    reach their resource with the path stripped in place, where Site would
    deep-copy all options of every request first."""

    def __init__(self, profiles: ProfilesResource, beats: t.Any = None,
                 others: t.Sequence[t.Tuple[str, t.Any]] = (), subtrees: t.Sequence[t.Tuple[str, t.Any]] = ()) -> None:
        super().__init__()
        self.profiles = profiles
        self.collection = CollectionResource(profiles)
        wkc = WellKnownCore(self.get_resources_as_linkheader, impl_info=None)
        wkc.guard = profiles._check_read
        self.add_resource([".well-known", "core"], wkc)
        self.add_resource(["profiles"], self.collection)
        self.add_resource(["profiles"], profiles)
        # first path segment -> (the resource for it alone, the one for what is below it)
        self.fast: t.Dict[str, t.Tuple[t.Any, t.Any]] = {"profiles": (self.collection, profiles)}
        if beats is not None:
            self.add_resource(["beat"], beats)
            self.fast["beat"] = (beats, beats)
        for name, resource in others:
            self.add_resource([name], resource)
        for name, resource in subtrees:  # one resource for /name and all below it (the directory's)
            self.add_resource([name], resource)
            self.fast[name] = (resource, resource)

    async def render_to_pipe(self, pipe: t.Any) -> None:
        # Every request passes here once (notifications do not), under OSCORE
        # too: the one place to count requests against the sender's rate.
        refusal = self.profiles.admit(pipe.request)
        if refusal is not None:
            pipe.add_response(refusal, is_last=True)
            return None
        request = pipe.request
        try:
            refuse_unknown_critical_options(request.opt)
        except BadInput as exc:
            pipe.add_response(diagnostic(exc.code, str(exc)), is_last=True)
            return None
        path = request.opt.uri_path
        fast = self.fast.get(path[0]) if path and request.opt.uri_path_abbrev is None else None
        if fast is not None:
            rest = path[1:]
            if rest == ("",):
                rest = ()
            request.opt.uri_path = rest
            target = fast[1] if rest else fast[0]
            return await target.render_to_pipe(pipe)
        return await super().render_to_pipe(pipe)


def build_site(resource: ProfilesResource, beats: t.Any = None, others: t.Sequence[t.Tuple[str, t.Any]] = (),
               subtrees: t.Sequence[t.Tuple[str, t.Any]] = ()) -> aiocoap.resource.Site:
    """The root: /profiles, and with ``beats`` /beat; ``others`` are further resources by name (/liveness...),
    ``subtrees`` resources that also answer every path below their name (/services, /instances)."""
    return RegistrySite(resource, beats, others, subtrees)
