# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""CoAP plumbing shared by the nanoservices (aiocoap).

Every nanoservice answers ``GET /.well-known/core`` and serves its readings
as JSON (content format 50) on observable resources, so a consumer can poll
or observe (RFC 7641). aiocoap is imported when a server or client is made,
not when this module is imported.
"""

from __future__ import annotations

import asyncio
import json
import logging
import typing as t

JSON_FORMAT = 50
OCTET_STREAM = 42
DEFAULT_PORT = 5683

log = logging.getLogger("nanoedge_ns.coap")
# Called once a server serves (``serve``): a producer registers at the node's directory then, not before.
on_serving: t.List[t.Callable[[], None]] = []


def _aiocoap() -> t.Any:
    try:
        import aiocoap
        import aiocoap.error
        import aiocoap.resource
    except ImportError as exc:  # pragma: no cover - depends on the host
        raise SystemExit("this nanoservice speaks CoAP and needs aiocoap (pip install aiocoap): %s" % exc) from exc
    return aiocoap


def aiocoap_module() -> t.Any:
    """aiocoap, imported on first use (for code that speaks CoAP beyond ``Client``: observations)."""
    return _aiocoap()


def encode_json(document: t.Any) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def make_json_resource(getter: t.Callable[[], t.Any],
                       setter: t.Optional[t.Callable[[t.Any], t.Any]] = None) -> t.Any:
    """An observable resource whose GET answers ``getter()`` as JSON.

    With ``setter``, PUT takes a JSON body, passes it to ``setter`` (which
    raises ValueError with a message for bad input) and answers its result.
    Call ``resource.notify()`` after the value changed to update observers.
    """
    aiocoap = _aiocoap()

    class JsonResource(aiocoap.resource.ObservableResource):
        async def render_get(self, request: t.Any) -> t.Any:
            return aiocoap.Message(payload=encode_json(getter()), content_format=JSON_FORMAT)

        async def render_put(self, request: t.Any) -> t.Any:
            if setter is None:
                return aiocoap.Message(code=aiocoap.METHOD_NOT_ALLOWED)
            if request.opt.content_format not in (None, JSON_FORMAT):
                return aiocoap.Message(code=aiocoap.UNSUPPORTED_CONTENT_FORMAT,
                                       payload=b"send JSON (content format 50)")
            try:
                result = setter(json.loads(request.payload.decode("utf-8")))
            except (ValueError, UnicodeDecodeError) as exc:
                return aiocoap.Message(code=aiocoap.BAD_REQUEST, payload=str(exc).encode())
            self.updated_state()
            return aiocoap.Message(code=aiocoap.CHANGED, payload=encode_json(result), content_format=JSON_FORMAT)

        def notify(self) -> None:
            self.updated_state()

    return JsonResource()


def make_history_resource(answer: t.Callable[[t.Sequence[str]], t.Tuple[bytes, bool]]) -> t.Any:
    """``GET <resource>/history?since=N&limit=L[&enc=zlib]``: ``answer``
    (``Producer.answer``) gets the Uri-Query items and returns the page and
    whether it is zlib-compressed (sent as application/octet-stream, 42).
    aiocoap sends a long page block-wise (RFC 7959); a bad query is 4.00
    with the reason."""
    aiocoap = _aiocoap()

    class HistoryResource(aiocoap.resource.Resource):
        async def render_get(self, request: t.Any) -> t.Any:
            try:
                payload, compressed = answer(list(request.opt.uri_query))
            except ValueError as exc:
                return aiocoap.Message(code=aiocoap.BAD_REQUEST, payload=str(exc).encode())
            return aiocoap.Message(payload=payload, content_format=OCTET_STREAM if compressed else JSON_FORMAT)

    return HistoryResource()


async def serve(resources: t.Dict[str, t.Any], bind: str = "", port: int = DEFAULT_PORT) -> t.Any:
    """Start a CoAP server with ``resources`` (path -> resource) and /.well-known/core.

    ``bind`` empty means every address: IPv6 and IPv4 where the host has
    IPv6, IPv4 alone where it has none (containers often do not).
    """
    aiocoap = _aiocoap()
    site = aiocoap.resource.Site()
    site.add_resource([".well-known", "core"],
                      aiocoap.resource.WKCResource(site.get_resources_as_linkheader))
    for path, resource in resources.items():
        site.add_resource([part for part in path.split("/") if part], resource)
    address = bind or "::"
    try:
        context = await aiocoap.Context.create_server_context(site, bind=(address, port), transports=["udp6"])
    except (OSError, aiocoap.error.ResolutionError) as exc:
        if bind:
            raise
        log.debug("no IPv6 here (%s), serving on IPv4", exc)
        address = "0.0.0.0"
        context = await aiocoap.Context.create_server_context(site, bind=(address, port), transports=["udp6"])
    log.info("serving CoAP on [%s]:%d: %s", address, port, ", ".join("/" + p.strip("/") for p in resources))
    for callback in list(on_serving):
        callback()
    return context


class CoapError(ValueError):
    """A peer answered with an error code (``code``, e.g. "4.04")."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class Client:
    """A CoAP client context that fetches and sends JSON with a timeout."""

    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self._context: t.Any = None

    async def _ctx(self) -> t.Any:
        if self._context is None:
            self._context = await _aiocoap().Context.create_client_context(transports=["udp6"])
        return self._context

    async def context(self) -> t.Any:
        """The aiocoap client context (made on first use), for observations."""
        return await self._ctx()

    async def request(self, method: str, uri: str, document: t.Any = None) -> t.Any:
        payload = (await self.exchange(method, uri, document))[0]
        return json.loads(payload.decode("utf-8")) if payload else None

    async def exchange(self, method: str, uri: str, document: t.Any = None) -> t.Tuple[bytes, t.Optional[int]]:
        """The raw answer: payload (whole, block-wise transfers assembled) and content format."""
        aiocoap = _aiocoap()
        code = {"GET": aiocoap.GET, "PUT": aiocoap.PUT, "POST": aiocoap.POST, "DELETE": aiocoap.DELETE}[method]
        message = aiocoap.Message(code=code, uri=uri)
        if document is not None:
            message.payload = encode_json(document)
            message.opt.content_format = JSON_FORMAT
        try:
            response = await asyncio.wait_for((await self._ctx()).request(message).response, self.timeout)
        except aiocoap.error.Error as exc:
            # an unreachable or refusing peer (its node is down, it is not up yet) is a network error like
            # any other to the callers, which retry
            raise ConnectionError("%s %s: %s" % (method, uri, exc or type(exc).__name__)) from exc
        if not response.code.is_successful():
            raise CoapError("%s %s: %s %s" % (method, uri, response.code, response.payload.decode(errors="replace")),
                            response.code.dotted)
        return response.payload, response.opt.content_format

    async def get(self, uri: str) -> t.Any:
        return await self.request("GET", uri)

    async def put(self, uri: str, document: t.Any) -> t.Any:
        return await self.request("PUT", uri, document)

    async def close(self) -> None:
        if self._context is not None:
            await self._context.shutdown()
            self._context = None


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # aiocoap logs every retransmission at INFO; keep the service's own lines readable
    logging.getLogger("coap").setLevel(logging.WARNING)
    logging.getLogger("coap-server").setLevel(logging.WARNING)


async def run_forever() -> None:
    await asyncio.get_running_loop().create_future()
