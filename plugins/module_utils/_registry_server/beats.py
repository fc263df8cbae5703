# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Beats and liveness (docs/contracts.md, "The CoAP API"): ``POST /beat/{node}``
feeds the failure detector (``liveness``) and the leadership grant book and
says whether the stored profile is the node's own; ``GET /liveness`` (observable)
is the detector's view. A beat never writes the store.

A node the detector confirms lost is hidden from ``/profiles`` (its profile is
kept) and every observer of ``/profiles`` hears of it at once, and again when
the node beats again."""

from __future__ import annotations

import functools
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._canonical_json import canonical_json
from ansible_collections.nanoedge.core.plugins.module_utils._coap import CF_JSON
from ansible_collections.nanoedge.core.plugins.module_utils._leadership import (
    PROFILE_STATES, Ask, Beat, LeadershipError, answer_payload, parse_beat,
)
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server import LOG
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.access import (
    check_manager, check_node_identity,
)
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.aiocoap_dep import (
    Code, ObservableResource, PathCapable, Resource, aiocoap,
)
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.codec import (
    BadInput, decode_small_body, guarded, node_in_path,
)
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.leadership import (
    Leadership, check_small_body, json_answer,
)
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.limits import ObserverCount, RefusalLog, peer_of
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.liveness import ALIVE, LOST, Liveness, Transition
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.model import Registry

Diagnostic = t.Callable[..., t.Any]  # resources.diagnostic
# The answers without an ask, encoded once: most beats get one of these.
PLAIN_ANSWERS = {state: canonical_json(answer_payload(state, None)) for state in PROFILE_STATES}
# Beats decoded and checked, by their bytes: a node's beats repeat while its
# profile's ETag and the term do not change (only a grant's ask number moves).
# Cleared when full: the bytes of 4096 beats of at most 512 bytes.
MAX_PARSED_BEATS = 4096
# A placeholder for the ask number, far beyond any ask (they count from 1).
_ASK_NUMBER_PROBE = 987654321987654321


def profile_state(registry: Registry, node: str, etag: str) -> str:
    """"current", "stale" or "missing": the stored profile against the ETag the node reported last."""
    entry = registry.get(node)
    if entry is None:
        return "missing"
    return "current" if entry.etag.hex() == etag else "stale"


def answer_template(state: str, ask: Ask) -> t.Optional[t.Tuple[bytes, bytes]]:
    """The canonical JSON of an answer with ``ask``, split where its ask number goes
    (None if that place cannot be told): an ask differs from the last one only in it."""
    marker = b'"n":%d' % _ASK_NUMBER_PROBE
    encoded = canonical_json(answer_payload(state, ask._replace(n=_ASK_NUMBER_PROBE)))
    if encoded.count(marker) != 1:
        return None
    before, after = encoded.split(marker)
    return before + b'"n":', after


class BeatResource(PathCapable, Resource):
    """``/beat/{node}``: POST only."""

    def __init__(self, registry: Registry, liveness: Liveness, security: bool,
                 leadership: t.Optional[Leadership], diagnostic: Diagnostic) -> None:
        super().__init__()
        self.registry = registry
        self.liveness = liveness
        self.security = security
        self.leadership = leadership
        self.diagnostic = diagnostic
        self._parsed: t.Dict[t.Tuple[bytes, int], Beat] = {}
        self._templates: t.Dict[t.Tuple[t.Any, ...], t.Optional[t.Tuple[bytes, bytes]]] = {}

    async def needs_blockwise_assembly(self, request: aiocoap.Message) -> bool:
        return False  # a beat fits one datagram; Block1 is refused (4.13)

    async def render_to_pipe(self, pipe: t.Any) -> None:
        # The answer at once: aiocoap's Resource would first await
        # needs_blockwise_assembly, then render, for the same answer.
        pipe.add_response(self.answer(pipe.request), is_last=True)

    async def render(self, request: aiocoap.Message) -> aiocoap.Message:
        return self.answer(request)

    def answer(self, request: aiocoap.Message) -> aiocoap.Message:
        try:
            return guarded(self._render, request, self.diagnostic, "/beat")
        finally:
            # aiocoap keeps answered requests for EXCHANGE_LIFETIME; the body is decoded by now
            request.payload = b""

    def _beat(self, request: aiocoap.Message) -> Beat:
        """The request's beat, checked; decoded once for the same bytes."""
        content_format = check_small_body(request, "beat")
        key = (bytes(request.payload), content_format)
        beat = self._parsed.get(key)
        if beat is None:
            try:
                beat = parse_beat(decode_small_body(key[0], content_format))
            except LeadershipError as exc:
                raise BadInput(Code.BAD_REQUEST, "invalid beat: %s" % exc) from None
            if len(self._parsed) >= MAX_PARSED_BEATS:
                self._parsed.clear()
            self._parsed[key] = beat
        return beat

    def _answer_payload(self, state: str, ask: t.Optional[Ask]) -> bytes:
        if ask is None:
            return PLAIN_ANSWERS[state]
        key = (state, ask.manager, ask.term, ask.lease, ask.priority)
        if key not in self._templates:
            if len(self._templates) >= len(PROFILE_STATES) * 4:  # a term or two, each state
                self._templates.clear()
            self._templates[key] = answer_template(state, ask)
        template = self._templates[key]
        if template is None:
            return canonical_json(answer_payload(state, ask))
        return template[0] + b"%d" % ask.n + template[1]

    def _render(self, request: aiocoap.Message) -> aiocoap.Message:
        node = node_in_path(request.opt.uri_path, "no resource /beat%s: beats go to POST /beat/{node}")
        if request.code != Code.POST:
            raise BadInput(Code.METHOD_NOT_ALLOWED, "%s is not allowed on /beat/%s (POST only)" % (request.code, node))
        check_node_identity(self.security, request, node, "POST /beat/%s" % node, "POST /beat/%s" % node)
        beat = self._beat(request)
        self.liveness.beat(node)
        state = profile_state(self.registry, node, beat.etag)
        ask = None
        leadership = self.leadership
        if leadership is not None and node in leadership.book.members:
            leadership.on_beat(node, beat)
            ask = leadership.ask()
        return aiocoap.Message(code=Code.CHANGED, payload=self._answer_payload(state, ask), content_format=CF_JSON)


class LivenessResource(ObservableResource):
    """``/liveness``: GET (observable) for the managers; a notification on every change of state."""

    def __init__(self, liveness: Liveness, security: bool, managers: t.FrozenSet[str],
                 observer_count: ObserverCount, diagnostic: Diagnostic) -> None:
        super().__init__()
        self.liveness = liveness
        self.security = security
        self.managers = managers
        self.observer_count = observer_count
        self.diagnostic = diagnostic
        self.refusals = RefusalLog(LOG)

    async def needs_blockwise_assembly(self, request: aiocoap.Message) -> bool:
        return False

    async def add_observation(self, request: aiocoap.Message, serverobservation: t.Any) -> None:
        peer = peer_of(request.remote)
        end = functools.partial(serverobservation.trigger, is_last=True, response=self.diagnostic(
            Code.SERVICE_UNAVAILABLE, self.observer_count.pushed_out()))
        refused = self.observer_count.admit(peer, serverobservation, end) if request.code == Code.GET else "not a GET"
        if refused is not None:
            self.refusals.note("observation of /liveness served as a plain GET: %s" % refused)
            # RFC 7641, 4.1: answered without the Observe option
            serverobservation.accept(lambda: None)
            serverobservation.deregister()
            return
        self._observations.add(serverobservation)

        def _cancel(obs: t.Any = serverobservation) -> None:
            self._observations.discard(obs)
            self.observer_count.release(peer, obs)

        serverobservation.accept(_cancel)

    async def render(self, request: aiocoap.Message) -> aiocoap.Message:
        try:
            if request.code != Code.GET:
                raise BadInput(Code.METHOD_NOT_ALLOWED, "%s is not allowed on /liveness (GET only)" % request.code)
            if request.payload:
                raise BadInput(Code.BAD_REQUEST, "GET takes no payload")
            check_manager(self.security, self.managers, request, "reading /liveness")
            if request.opt.accept not in (None, CF_JSON):
                raise BadInput(Code.NOT_ACCEPTABLE, "Accept %d: /liveness is served as JSON (50)"
                               % int(request.opt.accept))
            return json_answer(Code.CONTENT, self.liveness.snapshot())
        except BadInput as exc:
            return self.diagnostic(exc.code, str(exc), **exc.options)

    def changed(self, _change: Transition) -> None:
        self.updated_state()


def wire(registry: Registry, liveness: Liveness, resource: t.Optional[LivenessResource]) -> None:
    """Connect the detector to the profiles: a lost node is hidden (observers of
    /profiles are notified), a node back is shown; a node whose profile is gone
    and that is no member is no longer tracked."""

    def on_transition(change: Transition) -> None:
        if change.new == LOST:
            registry.hide(change.node, True)
        elif change.new == ALIVE and change.old == LOST:
            registry.hide(change.node, False)
        if resource is not None:
            resource.changed(change)

    def on_profile(node: str) -> None:
        if node not in registry.entries and node not in liveness.always:
            liveness.forget(node)
            registry.hidden.discard(node)

    liveness.listeners.append(on_transition)
    registry.listeners.append(on_profile)
