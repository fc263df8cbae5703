# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Decoding what workers PUT: JSON and CBOR bodies, the refusals with their
CoAP codes and exact diagnostics, and the ETag."""

from __future__ import annotations

import hashlib
import json

import cbor2
import pytest
from aiocoap.numbers.codes import Code

from ansible_collections.nanoedge.core.plugins.module_utils._coap import CF_CBOR, CF_JSON
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server import codec
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.codec import BadInput, decode_body, etag_of


def nested(depth: int) -> dict:
    value: dict = {}
    for _level in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize("body, content_format, expected", [
    (b'{"node":"w4","cpu":{"cores":4,"load1":0.31}}', CF_JSON, {"node": "w4", "cpu": {"cores": 4, "load1": 0.31}}),
    ('{"room":"f\u00fcr"}'.encode("utf-8"), CF_JSON, {"room": "f\u00fcr"}),
    (b'{"a":-9007199254740991,"b":9007199254740991}', CF_JSON, {"a": -2 ** 53 + 1, "b": 2 ** 53 - 1}),
    (b"[[[0]]]", CF_JSON, [[[0]]]),
    (cbor2.dumps({"node": "w4", "labels": {"seq": "1"}}), CF_CBOR, {"node": "w4", "labels": {"seq": "1"}}),
    (cbor2.dumps({"n": 2 ** 53 - 1, "x": 1.5}), CF_CBOR, {"n": 2 ** 53 - 1, "x": 1.5}),
    (json.dumps(nested(64)).encode(), CF_JSON, nested(64)),
])
def test_accepted(body, content_format, expected):
    assert decode_body(body, content_format) == expected


@pytest.mark.parametrize("body, content_format, message", [
    (b"\xff", CF_JSON,
     "malformed JSON: not UTF-8 ('utf-8' codec can't decode byte 0xff in position 0: invalid start byte)"),
    (b'{"a":', CF_JSON, "malformed JSON: Expecting value: line 1 column 6 (char 5)"),
    (b'{"a":NaN}', CF_JSON, "malformed JSON: NaN is not allowed in a profile"),
    (b'{"a":-Infinity}', CF_JSON, "malformed JSON: -Infinity is not allowed in a profile"),
    (b"[" * 100000, CF_JSON, "malformed JSON: nested too deeply"),
    (b'{"a":1e400}', CF_JSON, "invalid profile: a: must be a finite number, got inf"),
    (b'{"a":{"b":[1,1e999]}}', CF_JSON, "invalid profile: a.b[1]: must be a finite number, got inf"),
    (b'{"a":9007199254740992}', CF_JSON, "invalid profile: a: integer out of range (more than 2^53)"),
    (b"[9007199254740992]", CF_JSON, "invalid profile: profile[0]: integer out of range (more than 2^53)"),
    (json.dumps(nested(66)).encode(), CF_JSON, "invalid profile: %s: nested too deeply" % ".".join(["a"] * 65)),
    (b"", CF_CBOR, "malformed CBOR: premature end of stream (expected to read 1 bytes, got 0 instead)"),
    (b"\xa1\x61a\x1f", CF_CBOR, "malformed CBOR: unknown unsigned integer subtype 0x1f"),
    (b"\x9f" * 100000, CF_CBOR, "malformed CBOR: nested too deeply"),
    (cbor2.dumps({"a": float("nan")}), CF_CBOR, "invalid profile: a: must be a finite number, got nan"),
    (cbor2.dumps({"a": 2 ** 64}), CF_CBOR, "invalid profile: a: integer out of range (more than 2^53)"),
    (cbor2.dumps({"a": -2 ** 53}), CF_CBOR, "invalid profile: a: integer out of range (more than 2^53)"),
])
def test_refused_with_4_00(body, content_format, message):
    with pytest.raises(BadInput) as info:
        decode_body(body, content_format)
    assert (info.value.code, str(info.value), info.value.options) == (Code.BAD_REQUEST, message, {})


def test_cbor_without_cbor2_is_an_unsupported_content_format(monkeypatch):
    monkeypatch.setattr(codec, "cbor2", None)
    with pytest.raises(BadInput) as info:
        decode_body(cbor2.dumps({"node": "w4"}), CF_CBOR)
    assert (info.value.code, str(info.value)) == (
        Code.UNSUPPORTED_CONTENT_FORMAT, "CBOR (60) needs cbor2 on the registry; send JSON (50)")
    assert decode_body(b'{"node":"w4"}', CF_JSON) == {"node": "w4"}


def test_bad_input_carries_response_options():
    error = BadInput(Code.REQUEST_ENTITY_TOO_LARGE, "too big", size1=4096)
    assert (error.code, str(error), error.options) == (Code.REQUEST_ENTITY_TOO_LARGE, "too big", {"size1": 4096})


@pytest.mark.parametrize("canonical, etag", [
    (b"{}", "44136fa355b3678a"),
    (b'{"node":"w4"}', hashlib.sha256(b'{"node":"w4"}').hexdigest()[:16]),
])
def test_etag_is_the_first_8_bytes_of_the_sha256(canonical, etag):
    assert etag_of(canonical).hex() == etag
