# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The CoAP resources of the service directory (docs/contracts.md, "The CoAP API"):
``PUT``/``DELETE /instances/{node}`` (as the node itself under OSCORE, like a
profile) and ``GET /services``, ``GET /services/{name}`` (observable, with
ETags; under OSCORE any authenticated peer may read: every node's agent
resolves its services' producers)."""

from __future__ import annotations

import functools
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._coap import CF_CBOR, CF_JSON
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server import LOG
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.access import (
    authenticated_identity, check_node_identity,
)
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.aiocoap_dep import (
    Code, ObservableResource, PathCapable, Resource, aiocoap, cbor2,
)
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.codec import (
    BadInput, decode_body, node_in_path,
)
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.directory import (
    MAX_BODY, SERVICE_NAME_RE, Directory, DirectoryError, DirectoryFull, parse_instances,
)
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.limits import (
    ObserverCount, RefusalLog, peer_of,
)
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.resources import ProfilesResource

Diagnostic = t.Callable[..., t.Any]  # resources.diagnostic


def _serve_without_observing(serverobservation: t.Any) -> None:
    # RFC 7641, 4.1: answered without the Observe option; aiocoap needs it accepted to deregister it
    serverobservation.accept(lambda: None)
    serverobservation.deregister()


class InstancesResource(PathCapable, Resource):
    """``/instances/{node}``: PUT (``?lt=SECONDS``) and DELETE. ``profiles`` is the
    ProfilesResource: its lifetime rule and its Block1 reassembly are the profiles'."""

    def __init__(self, directory: Directory, profiles: ProfilesResource, diagnostic: Diagnostic) -> None:
        super().__init__()
        self.directory = directory
        self.profiles = profiles
        self.diagnostic = diagnostic

    async def needs_blockwise_assembly(self, request: aiocoap.Message) -> bool:
        return False  # reassembled by the profiles' spool, within MAX_BODY

    async def render(self, request: aiocoap.Message) -> aiocoap.Message:
        try:
            return await self._render(request)
        except BadInput as exc:
            return self.diagnostic(exc.code, str(exc), **exc.options)
        except Exception:  # the registry must keep serving whatever arrives
            LOG.exception("unexpected error while handling %s /instances", request.code)
            return self.diagnostic(Code.INTERNAL_SERVER_ERROR, "internal error (see the registry log)")
        finally:
            if request.code == Code.PUT:
                request.payload = b""

    async def _render(self, request: aiocoap.Message) -> aiocoap.Message:
        node = node_in_path(request.opt.uri_path, "no resource /instances%s: a node's list is /instances/{node}")
        if request.code not in (Code.PUT, Code.DELETE):
            raise BadInput(Code.METHOD_NOT_ALLOWED, "%s is not allowed on /instances/%s (PUT, DELETE)"
                           % (request.code, node))
        check_node_identity(self.profiles.settings.security, request, node, "writing /instances/%s" % node,
                            "write /instances/%s" % node)
        if request.code == Code.DELETE:
            if request.payload or request.opt.uri_query:
                raise BadInput(Code.BAD_REQUEST, "DELETE takes no payload and no query parameters")
            self.directory.delete(node)
            return aiocoap.Message(code=Code.DELETED)
        return self._put(request, node)

    def _too_large(self, size: int) -> BadInput:
        return BadInput(Code.REQUEST_ENTITY_TOO_LARGE, "instance list of %d bytes exceeds the limit of %d bytes"
                        % (size, MAX_BODY), size1=MAX_BODY)

    def _put(self, request: aiocoap.Message, node: str) -> aiocoap.Message:
        lifetime = self.profiles._lifetime(request)
        block1 = request.opt.block1
        if request.opt.size1 is not None and request.opt.size1 > MAX_BODY:
            raise self._too_large(request.opt.size1)
        arrived = (block1.start if block1 is not None else 0) + len(request.payload)
        if arrived > MAX_BODY:
            if block1 is not None:
                self.profiles.uploads.drop((request.remote.blockwise_key, "/instances/" + node,
                                            tuple(request.opt.uri_query)))
            raise self._too_large(arrived)
        assembled = self.profiles._assemble(request, "/instances/" + node)
        if assembled is None:
            return aiocoap.Message(code=Code.CONTINUE, block1=block1)
        body, content_format = assembled
        self.profiles._check_content_format(content_format)
        try:
            instances = parse_instances(node, decode_body(body, content_format, what="instance list"))
            created = self.directory.put(node, instances, lifetime)
        except DirectoryError as exc:
            raise BadInput(Code.BAD_REQUEST, "invalid instance list: %s" % exc) from None
        except DirectoryFull as exc:
            raise BadInput(Code.SERVICE_UNAVAILABLE, str(exc), max_age=60) from None
        response = aiocoap.Message(code=Code.CREATED if created else Code.CHANGED)
        if block1 is not None:
            response.opt.block1 = block1
        if created:
            response.opt.location_path = ("instances", node)
        return response


class ServicesResource(PathCapable, ObservableResource):
    """``/services`` and ``/services/{name}``: GET, observable. The observations count
    against the same caps as those of /profiles (``observer_count``)."""

    def __init__(self, directory: Directory, security: bool, observer_count: ObserverCount,
                 diagnostic: Diagnostic) -> None:
        super().__init__()
        self.directory = directory
        self.security = security
        self.observer_count = observer_count
        self.diagnostic = diagnostic
        self.refusals = RefusalLog(LOG)
        self._observers: t.Dict[t.Optional[str], t.Set[t.Any]] = {}
        directory.listeners.append(self._notify)

    async def needs_blockwise_assembly(self, request: aiocoap.Message) -> bool:
        return False

    def _name(self, request: aiocoap.Message) -> t.Optional[str]:
        path = [part for part in request.opt.uri_path if part]
        if len(path) > 1:
            raise BadInput(Code.NOT_FOUND, "no resource /services/%s" % "/".join(path))
        if path and not SERVICE_NAME_RE.fullmatch(path[0]):
            raise BadInput(Code.BAD_REQUEST, "invalid service name %r in the path: must match %s"
                           % (path[0], SERVICE_NAME_RE.pattern))
        return path[0] if path else None

    async def add_observation(self, request: aiocoap.Message, serverobservation: t.Any) -> None:
        try:
            name = self._name(request)
        except BadInput:
            _serve_without_observing(serverobservation)
            return
        peer = peer_of(request.remote)
        end = functools.partial(serverobservation.trigger, is_last=True, response=self.diagnostic(
            Code.SERVICE_UNAVAILABLE, self.observer_count.pushed_out()))
        refused = self.observer_count.admit(peer, serverobservation, end) if request.code == Code.GET \
            else "not a GET"
        if refused is not None:
            self.refusals.note("observation of /services%s served as a plain GET: %s"
                               % ("/" + name if name else "", refused))
            _serve_without_observing(serverobservation)
            return
        observers = self._observers.setdefault(name, set())
        observers.add(serverobservation)

        def _cancel(obs: t.Any = serverobservation) -> None:
            observers.discard(obs)
            self.observer_count.release(peer, obs)
            if not observers and self._observers.get(name) is observers:
                del self._observers[name]

        serverobservation.accept(_cancel)

    def _notify(self, names: t.Set[str]) -> None:
        for key in list(names) + [None]:
            for observation in list(self._observers.get(key, ())):
                observation.trigger()

    async def render(self, request: aiocoap.Message) -> aiocoap.Message:
        try:
            return self._get(request)
        except BadInput as exc:
            return self.diagnostic(exc.code, str(exc), **exc.options)

    def _get(self, request: aiocoap.Message) -> aiocoap.Message:
        name = self._name(request)
        if request.code != Code.GET:
            raise BadInput(Code.METHOD_NOT_ALLOWED, "%s is not allowed on /services (GET only)" % request.code)
        if request.payload:
            raise BadInput(Code.BAD_REQUEST, "GET takes no payload")
        if self.security and authenticated_identity(request) is None:
            raise BadInput(Code.UNAUTHORIZED, "reading /services needs OSCORE (as a node or a manager)")
        accept = CF_JSON if request.opt.accept is None else request.opt.accept
        if accept not in (CF_JSON, CF_CBOR) or (accept == CF_CBOR and cbor2 is None):
            raise BadInput(Code.NOT_ACCEPTABLE, "Accept %d: services are served as JSON (50) or CBOR (60)"
                           % int(accept))
        body, etag = self.directory.answer(name)
        if request.opt.etags and etag in request.opt.etags:
            return aiocoap.Message(code=Code.VALID, etag=etag)
        payload = body if accept == CF_JSON else cbor2.dumps(self.directory.value(name), canonical=True)
        response = aiocoap.Message(code=Code.CONTENT, payload=payload, content_format=accept, etag=etag)
        return ProfilesResource._cut_block2(request, response)
