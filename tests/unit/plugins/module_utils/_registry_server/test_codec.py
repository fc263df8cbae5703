# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Decoding what workers PUT: JSON and CBOR bodies, the refusals with their
CoAP codes and exact diagnostics, and the ETag."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import cbor2
import pytest
from aiocoap.numbers.codes import Code
from aiocoap.numbers.optionnumbers import OptionNumber
from aiocoap.options import Options
from aiocoap.optiontypes import OpaqueOption

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
    (b"\xbf\x61a\x9f\x01\xf5\xf6\xff\x7f\x61b\x61c\xff\xf9\x3c\x00\xff", CF_CBOR,
     {"a": [1, True, None], "bc": 1.0}),
    (cbor2.dumps(nested(64)), CF_CBOR, nested(64)),
    (b'{"[[[[":"\\"[[[["}', CF_JSON, {"[[[[": '"[[[['}),
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
    (json.dumps(nested(65)).encode(), CF_JSON, "malformed JSON: nested too deeply"),
    (b"", CF_CBOR, "malformed CBOR: premature end: an item is missing at offset 0"),
    (b"\xa1\x61a\x1f", CF_CBOR, "malformed CBOR: indefinite-length integer at offset 3"),
    (b"\xa1\x61a\x1c", CF_CBOR, "malformed CBOR: reserved additional information 28 at offset 3"),
    (cbor2.dumps(nested(65)), CF_CBOR, "malformed CBOR: nested too deeply"),
    (cbor2.dumps({"a": 1}) + b"\x00", CF_CBOR, "malformed CBOR: 1 byte(s) after the end of the item"),
    (cbor2.dumps([0] * 100001), CF_CBOR, "malformed CBOR: more than 100000 values"),
    (b"\xd8\x1c\x82\x00\x00", CF_CBOR,
     "malformed CBOR: tag 28 (shared value) is not accepted (a profile uses no CBOR tags but bignums 2 and 3)"),
    (b"\x82\x00\xd8\x1d\x00", CF_CBOR,
     "malformed CBOR: tag 29 (shared reference) is not accepted (a profile uses no CBOR tags but bignums 2 and 3)"),
    (b"\xc1\x00", CF_CBOR,
     "malformed CBOR: tag 1 (epoch date/time) is not accepted (a profile uses no CBOR tags but bignums 2 and 3)"),
    (b"\xd9\x03\xe8\x00", CF_CBOR,
     "malformed CBOR: tag 1000 is not accepted (a profile uses no CBOR tags but bignums 2 and 3)"),
    (b"\xc2\x00", CF_CBOR, "malformed CBOR: tag 2 at offset 0 must hold a byte string"),
    (b"\x9b\xff\xff\xff\xff\xff\xff\xff\xff", CF_CBOR,
     "malformed CBOR: array of 18446744073709551615 items at offset 9 runs past the end (9 bytes)"),
    (b"\xbb\x00\x00\x00\x00\x00\x00\x00\x01", CF_CBOR,
     "malformed CBOR: map of 1 pairs at offset 9 runs past the end (9 bytes)"),
    (b"\x7a\x7f\xff\xff\xff", CF_CBOR,
     "malformed CBOR: a string of 2147483647 bytes at offset 5 runs past the end (5 bytes)"),
    (b"\x7f\x61a\x41b\xff", CF_CBOR,
     "malformed CBOR: an indefinite-length string holds a chunk of another kind at offset 3"),
    (b"\xa1\x01\x02", CF_CBOR, "malformed CBOR: map key at offset 1 is not a text string"),
    (b"\xbf\x61a\xff", CF_CBOR, "malformed CBOR: map at offset 3 ends after a key without its value"),
    (b"\x81\xff", CF_CBOR, "malformed CBOR: unexpected break at offset 1"),
    (b"\xf0", CF_CBOR, "malformed CBOR: simple value 16 is not accepted"),
    (b"\x9f\x01", CF_CBOR, "malformed CBOR: premature end: an item is missing at offset 2"),
    (b"\x9f" * 100000, CF_CBOR, "malformed CBOR: nested too deeply"),
    (cbor2.dumps({"a": float("nan")}), CF_CBOR, "invalid profile: a: must be a finite number, got nan"),
    (cbor2.dumps({"a": 2 ** 64}), CF_CBOR, "invalid profile: a: integer out of range (more than 2^53)"),
    (cbor2.dumps({"a": -2 ** 53}), CF_CBOR, "invalid profile: a: integer out of range (more than 2^53)"),
])
def test_refused_with_4_00(body, content_format, message):
    with pytest.raises(BadInput) as info:
        decode_body(body, content_format)
    assert (info.value.code, str(info.value), info.value.options) == (Code.BAD_REQUEST, message, {})


def shared_reference_bomb(levels: int = 40) -> bytes:
    """257 bytes that a decoder honouring tags 28/29 turns into 2^40 paths:
    level i is shared as index i and holds level i+1 twice (once by reference)."""
    body = b"\xd8\x1c\x82\x00\x00"
    for index in range(levels - 1, 0, -1):
        reference = bytes([index]) if index < 24 else bytes([0x18, index])
        body = b"\xd8\x1c\x82" + body + b"\xd8\x1d" + reference
    return b"\x81\x81" + body


BOMB_CHILD = """
import sys, time
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.codec import BadInput, decode_body
started = time.perf_counter()
try:
    decode_body(bytes.fromhex(sys.argv[1]), 60)
except BadInput as exc:
    print("%s %s" % (exc.code.dotted, exc))
print(time.perf_counter() - started)
"""


def test_shared_reference_bomb_is_refused_at_once():
    bomb = shared_reference_bomb()
    assert len(bomb) == 257
    # In a child process: a regression hangs there, not in the test run.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.run([sys.executable, "-c", BOMB_CHILD, bomb.hex()], capture_output=True, text=True,
                          env=env, timeout=30, check=False)
    assert proc.stderr == ""
    diagnostic, elapsed = proc.stdout.splitlines()
    assert (proc.returncode, diagnostic) == (0, "4.00 malformed CBOR: tag 28 (shared value) is not accepted"
                                                " (a profile uses no CBOR tags but bignums 2 and 3)")
    assert float(elapsed) < 0.1


def test_the_number_check_visits_a_bounded_number_of_values():
    shared = [0, 0]
    for _level in range(40):
        shared = [shared, shared]  # 2^40 paths through 80 objects
    with pytest.raises(ValueError, match=r"^more than 100000 values$"):
        codec._check_numbers(shared)


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


def options_with(*numbers: int) -> Options:
    options = Options()
    for number in numbers:
        options.add_option(OpaqueOption(OptionNumber(number), b"x"))
    return options


@pytest.mark.parametrize("numbers, message", [
    ((3, 7, 11, 13, 15, 17, 23, 27, 4, 6, 12, 28, 60, 2048), None),
    ((11, 2049), "critical option 2049 is not supported (RFC 7252, 5.4.1)"),
    ((1,), "critical option 1 (If-Match) is not supported (RFC 7252, 5.4.1)"),
    ((5,), "critical option 5 (If-None-Match) is not supported (RFC 7252, 5.4.1)"),
    ((9,), "critical option 9 (Oscore) is not supported (RFC 7252, 5.4.1)"),
    ((65001,), "critical option 65001 is not supported (RFC 7252, 5.4.1)"),
])
def test_unknown_critical_options_are_bad_options(numbers, message):
    if message is None:
        codec.refuse_unknown_critical_options(options_with(*numbers))
        return
    with pytest.raises(BadInput) as info:
        codec.refuse_unknown_critical_options(options_with(*numbers))
    assert (info.value.code, str(info.value)) == (Code.BAD_OPTION, message)
