# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Input decoding of the profile registry: JSON and CBOR bodies, the number
checks, the canonical form and its ETag, and BadInput (a refused request)."""

from __future__ import annotations

import hashlib
import json
import math
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._coap import CF_JSON
from ansible_collections.nanoedge.core.plugins.module_utils._profile import NODE_NAME_RE
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server import LOG
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.aiocoap_dep import Code, cbor2
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.wellformed import (
    MAX_DEPTH, MAX_VALUES, check_cbor, check_json_depth,
)


def etag_of(canonical: bytes) -> bytes:
    return hashlib.sha256(canonical).digest()[:8]


class BadInput(Exception):
    """A request the registry refuses; carries the CoAP code and a diagnostic."""

    def __init__(self, code: Code, message: str, **options: t.Any) -> None:
        super().__init__(message)
        self.code = code
        self.options = options


def guarded(render: t.Callable[[t.Any], t.Any], request: t.Any, diagnostic: t.Callable[..., t.Any],
            resource: str) -> t.Any:
    """``render(request)``, a BadInput answered with its diagnostic and any
    other error with 5.00 (logged with the path below ``resource``, e.g.
    "/beat"): the registry keeps serving whatever arrives."""
    try:
        return render(request)
    except BadInput as exc:
        return diagnostic(exc.code, str(exc), **exc.options)
    except Exception:
        LOG.exception("unexpected error while handling %s %s%s", request.code, resource,
                      "".join("/" + part for part in request.opt.uri_path))
        return diagnostic(Code.INTERNAL_SERVER_ERROR, "internal error (see the registry log)")


def node_in_path(path: t.Sequence[str], missing: str) -> str:
    """The node a request's path below its resource names (``/beat/{node}``, ``/instances/{node}``):
    4.04 with ``missing`` (what belongs there, after the path) for none or more, 4.00 for an invalid name."""
    if len(path) != 1 or not path[0]:
        raise BadInput(Code.NOT_FOUND, missing % "".join("/" + part for part in path))
    if not NODE_NAME_RE.fullmatch(path[0]):
        raise BadInput(Code.BAD_REQUEST, "invalid node name %r in the path: must match %s"
                       % (path[0], NODE_NAME_RE.pattern))
    return path[0]


# The critical options (odd numbers, RFC 7252, 5.4.6) the registry acts on:
# Uri-Host, Uri-Port, Uri-Path, Uri-Path-Abbrev, Uri-Query, Accept, Block2,
# Block1. OSCORE (9) is unwrapped before a request reaches the resources, so
# where it arrives here OSCORE is off and it is not understood either.
UNDERSTOOD_CRITICAL = frozenset((3, 7, 11, 13, 15, 17, 23, 27))


def refuse_unknown_critical_options(options: t.Any) -> None:
    """RFC 7252, 5.4.1: a critical option the server does not understand
    makes it answer 4.02 rather than act as if the option were absent (an
    If-Match ignored would turn a conditional PUT into an unconditional one)."""
    for option in options.option_list():
        number = int(option.number)
        if number & 1 and number not in UNDERSTOOD_CRITICAL:
            name = getattr(option.number, "name", None)
            raise BadInput(Code.BAD_OPTION, "critical option %d%s is not supported (RFC 7252, 5.4.1)"
                           % (number, " (%s)" % name.replace("_", "-").title() if name else ""))


def _reject_constant(name: str) -> t.NoReturn:
    raise ValueError("%s is not allowed in a profile" % name)


# RFC 7493 (I-JSON): integers beyond 2^53 do not survive most JSON readers,
# and no resource count comes anywhere near it.
INT_LIMIT = 2 ** 53 - 1


def _child_path(where: str, key: t.Any) -> str:
    if isinstance(key, int):
        return "%s[%d]" % (where, key)
    return "%s.%s" % (where, key) if where not in ("profile", "beat") else str(key)


def _check_numbers(value: t.Any, max_values: int = MAX_VALUES, what: str = "profile") -> None:
    """Refuse what JSON cannot carry faithfully: NaN/Infinity (1e400 parses to
    inf) and integers outside the I-JSON range; also bound the nesting and the
    values visited. Iterative and depth-first, so the first fault in document
    order is the one named."""
    pending: t.List[t.Tuple[t.Any, str, int]] = [(value, what, 0)]
    visited = 0
    while pending:
        item, where, depth = pending.pop()
        visited += 1
        if visited > max_values:
            raise ValueError("more than %d values" % max_values)
        if depth > MAX_DEPTH:
            raise ValueError("%s: nested too deeply" % where)
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError("%s: must be a finite number, got %r" % (where, item))
        if isinstance(item, int) and not isinstance(item, bool) and not -INT_LIMIT <= item <= INT_LIMIT:
            raise ValueError("%s: integer out of range (more than 2^53)" % where)
        if isinstance(item, dict):
            children = [(child, _child_path(where, key), depth + 1) for key, child in item.items()]
        elif isinstance(item, list):
            children = [(child, _child_path(where, index), depth + 1) for index, child in enumerate(item)]
        else:
            continue
        pending.extend(reversed(children))


def _decode_json(payload: bytes, check_depth: bool = True) -> t.Any:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(Code.BAD_REQUEST, "malformed JSON: not UTF-8 (%s)" % exc) from None
    try:
        if check_depth:
            check_json_depth(text)
        # parse_constant refuses NaN, Infinity and -Infinity.
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise BadInput(Code.BAD_REQUEST, "malformed JSON: nested too deeply") from None
    except ValueError as exc:
        raise BadInput(Code.BAD_REQUEST, "malformed JSON: %s" % exc) from None


def _decode_cbor(payload: bytes) -> t.Any:
    if cbor2 is None:
        raise BadInput(Code.UNSUPPORTED_CONTENT_FORMAT, "CBOR (60) needs cbor2 on the registry; send JSON (50)")
    try:
        # Before cbor2 builds anything: refuses shared references and other
        # tags, trailing bytes, lengths beyond the datagram, and bounds the
        # values and the nesting, in one pass over the bytes.
        check_cbor(payload)
        return cbor2.loads(payload)
    except RecursionError:
        raise BadInput(Code.BAD_REQUEST, "malformed CBOR: nested too deeply") from None
    except Exception as exc:  # cbor2 raises a family of decode errors, ValueError, OverflowError...
        raise BadInput(Code.BAD_REQUEST, "malformed CBOR: %s" % exc) from None


def decode_body(payload: bytes, content_format: int, what: str = "profile") -> t.Any:
    """The decoded body of a request; ``what`` ("profile", "beat") names it in a diagnostic."""
    value = _decode_json(payload) if content_format == CF_JSON else _decode_cbor(payload)
    try:
        _check_numbers(value, what=what)
    except ValueError as exc:
        raise BadInput(Code.BAD_REQUEST, "invalid %s: %s" % (what, exc)) from None
    return value


def decode_small_body(payload: bytes, content_format: int) -> t.Any:
    """A body of at most a few hundred bytes (a beat, a candidacy), decoded
    without the depth and number walks: its size bounds the nesting (the JSON
    decoder's recursion limit is far beyond it), and the message's own parser
    checks every number it takes. CBOR still passes the well-formedness check
    (no tags but bignums, nothing after the item)."""
    return _decode_json(payload, check_depth=False) if content_format == CF_JSON else _decode_cbor(payload)
