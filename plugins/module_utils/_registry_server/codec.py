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
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.aiocoap_dep import Code, cbor2


def etag_of(canonical: bytes) -> bytes:
    return hashlib.sha256(canonical).digest()[:8]


class BadInput(Exception):
    """A request the registry refuses; carries the CoAP code and a diagnostic."""

    def __init__(self, code: Code, message: str, **options: t.Any) -> None:
        super().__init__(message)
        self.code = code
        self.options = options


def _reject_constant(name: str) -> t.NoReturn:
    raise ValueError("%s is not allowed in a profile" % name)


# RFC 7493 (I-JSON): integers beyond 2^53 do not survive most JSON readers,
# and no resource count comes anywhere near it.
INT_LIMIT = 2 ** 53 - 1


def _check_numbers(value: t.Any, where: str = "profile", depth: int = 0) -> None:
    """Refuse what JSON cannot carry faithfully: NaN/Infinity (1e400 parses to
    inf) and integers outside the I-JSON range; also bound the nesting."""
    if depth > 64:
        raise ValueError("%s: nested too deeply" % where)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("%s: must be a finite number, got %r" % (where, value))
    if isinstance(value, int) and not isinstance(value, bool) and not -INT_LIMIT <= value <= INT_LIMIT:
        raise ValueError("%s: integer out of range (more than 2^53)" % where)
    if isinstance(value, dict):
        for key, item in value.items():
            _check_numbers(item, "%s.%s" % (where, key) if where != "profile" else str(key), depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_numbers(item, "%s[%d]" % (where, index), depth + 1)


def decode_body(payload: bytes, content_format: int) -> t.Any:
    if content_format == CF_JSON:
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadInput(Code.BAD_REQUEST, "malformed JSON: not UTF-8 (%s)" % exc) from None
        try:
            value = json.loads(text, parse_constant=_reject_constant)
        except RecursionError:
            raise BadInput(Code.BAD_REQUEST, "malformed JSON: nested too deeply") from None
        except ValueError as exc:
            raise BadInput(Code.BAD_REQUEST, "malformed JSON: %s" % exc) from None
    else:
        if cbor2 is None:
            raise BadInput(Code.UNSUPPORTED_CONTENT_FORMAT, "CBOR (60) needs cbor2 on the registry; send JSON (50)")
        try:
            value = cbor2.loads(payload)
        except RecursionError:
            raise BadInput(Code.BAD_REQUEST, "malformed CBOR: nested too deeply") from None
        except Exception as exc:  # cbor2 raises a family of decode errors, ValueError, OverflowError...
            raise BadInput(Code.BAD_REQUEST, "malformed CBOR: %s" % exc) from None
    try:
        _check_numbers(value)
    except ValueError as exc:
        raise BadInput(Code.BAD_REQUEST, "invalid profile: %s" % exc) from None
    return value
