# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Structure-aware fuzzing of what the registry decodes: Hypothesis builds
JSON and CBOR documents (valid profiles mutated, random nested structures
with tags, indefinite lengths, huge lengths, truncations, trailing bytes)
and option sets. Whatever arrives, the decoder answers within a bound with a
value or a 4.xx, never anything else. The examples are spread so that
`make test` runs more than 10,000 cases (CASES), most of them where
generating a case is cheap."""

from __future__ import annotations

import json
import struct
import time
import typing as t

import cbor2
from aiocoap.numbers.codes import Code
from aiocoap.numbers.optionnumbers import OptionNumber
from aiocoap.options import Options
from aiocoap.optiontypes import OpaqueOption
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.nanoedge.core.plugins.module_utils._canonical_json import canonical_json
from ansible_collections.nanoedge.core.plugins.module_utils._coap import CF_CBOR, CF_JSON
from ansible_collections.nanoedge.core.plugins.module_utils._profile import ProfileError, validate_profile
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.codec import (
    UNDERSTOOD_CRITICAL, BadInput, decode_body, refuse_unknown_critical_options,
)
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.wellformed import MAX_DEPTH, MAX_VALUES

EXAMPLES = {"cbor": 1600, "json": 1600, "bytes": 4000, "formats": 800, "options": 2400}
CASES = sum(EXAMPLES.values())


def fuzz(kind: str) -> t.Callable[[t.Any], t.Any]:
    return settings(max_examples=EXAMPLES[kind], deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# Far above what any of these inputs costs (a few ms); a hang or a walk of
# shared paths would blow it by orders of magnitude.
TIME_BOUND = 2.0
REFUSAL_CODES = {Code.BAD_REQUEST, Code.UNSUPPORTED_CONTENT_FORMAT, Code.REQUEST_ENTITY_TOO_LARGE}

PROFILE: t.Dict[str, t.Any] = {
    "schema": 1, "node": "w4", "collected_at": "2026-11-26T02:30:00Z", "arch": "arm/v7",
    "model": "Raspberry Pi 3 Model B Plus Rev 1.3", "cpu": {"cores": 4, "bogomips": 89.6, "load1": 0.31},
    "memory_mb": {"total": 926, "available": 640}, "storage_mb": {"total": 29820, "free": 21033},
    "power": {"source": "ac", "battery_percent": None, "battery_health": None, "charging": None},
    "network": ["ethernet", "wifi"], "capabilities": ["pom"],
    "devices": [{"capability": "pom", "kind": "sensor", "name": "BM1000B", "bus": "usb", "id": "0403:6001"}],
    "labels": {"room": "a1"},
}

# -- strategies ----------------------------------------------------------------------

scalars = st.one_of(
    st.none(), st.booleans(), st.text(max_size=12),
    st.integers(min_value=-2 ** 70, max_value=2 ** 70),
    st.floats(allow_nan=True, allow_infinity=True),
)
json_like = st.recursive(
    scalars, lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=6), inner, max_size=5)),
    max_leaves=12)
# Tags a hostile peer may try: shared values and references, dates, sets, and any number.
tags = st.one_of(st.sampled_from([0, 1, 2, 3, 4, 5, 25, 28, 29, 256, 258, 55799]), st.integers(0, 2 ** 32))
cbor_like = st.recursive(
    scalars | st.binary(max_size=8),
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(st.text(max_size=6), inner, max_size=5),
        st.builds(cbor2.CBORTag, tags, inner),
    ),
    max_leaves=12)


def head(major: int, argument: int) -> bytes:
    """A CBOR item head with the shortest argument encoding."""
    for info, size, fmt in ((24, 1, "!B"), (25, 2, "!H"), (26, 4, "!I"), (27, 8, "!Q")):
        if argument < 24:
            return bytes([major << 5 | argument])
        if argument < 1 << (8 * size):
            return bytes([major << 5 | info]) + struct.pack(fmt, argument)
    raise ValueError(argument)


def indefinite(value: t.Any, draw_flag: t.Callable[[], bool]) -> bytes:
    """``value`` encoded with indefinite lengths where ``draw_flag`` says so."""
    if isinstance(value, list):
        items = b"".join(indefinite(item, draw_flag) for item in value)
        return (b"\x9f" + items + b"\xff") if draw_flag() else head(4, len(value)) + items
    if isinstance(value, dict):
        items = b"".join(indefinite(k, draw_flag) + indefinite(v, draw_flag) for k, v in value.items())
        return (b"\xbf" + items + b"\xff") if draw_flag() else head(5, len(value)) + items
    if isinstance(value, str) and value and draw_flag():
        raw = value.encode("utf-8")
        return b"\x7f" + head(3, len(raw)) + raw + b"\xff"
    return cbor2.dumps(value)


@st.composite
def mutated_profiles(draw: st.DrawFn, values: st.SearchStrategy[t.Any] = cbor_like) -> t.Any:
    """A valid profile with a few values replaced by anything."""
    body = json.loads(json.dumps(PROFILE))
    for _step in range(draw(st.integers(0, 3))):
        target = body
        path = draw(st.lists(st.sampled_from(["cpu", "memory_mb", "power", "labels", "devices", "node", "x"]),
                             min_size=1, max_size=2))
        for key in path[:-1]:
            target = target.setdefault(key, {}) if isinstance(target, dict) else target
        if isinstance(target, dict):
            target[path[-1]] = draw(values)
    return body


@st.composite
def damaged(draw: st.DrawFn, encoded: st.SearchStrategy[bytes]) -> bytes:
    """An encoding truncated, flipped, spliced with a huge length, or with bytes after it."""
    data = draw(encoded)
    how = draw(st.sampled_from(["as-is", "truncate", "flip", "huge-length", "trailing", "insert"]))
    if how == "truncate" and data:
        return data[:draw(st.integers(0, len(data) - 1))]
    if how == "flip" and data:
        index = draw(st.integers(0, len(data) - 1))
        return data[:index] + bytes([data[index] ^ draw(st.integers(1, 255))]) + data[index + 1:]
    if how == "huge-length":
        index = draw(st.integers(0, len(data)))
        major = draw(st.sampled_from([2, 3, 4, 5]))
        return data[:index] + bytes([major << 5 | 27]) + struct.pack("!Q", draw(st.integers(2 ** 31, 2 ** 64 - 1)))
    if how == "trailing":
        return data + draw(st.binary(min_size=1, max_size=8))
    if how == "insert":
        index = draw(st.integers(0, len(data)))
        return data[:index] + draw(st.binary(min_size=1, max_size=4)) + data[index:]
    return data


@st.composite
def cbor_documents(draw: st.DrawFn) -> bytes:
    value = draw(st.one_of(cbor_like, mutated_profiles()))
    try:
        plain = cbor2.dumps(value)
    except (ValueError, TypeError, OverflowError):
        plain = b"\xa0"
    if draw(st.booleans()):
        try:
            plain = indefinite(value, lambda: draw(st.booleans()))
        except (ValueError, TypeError, OverflowError):
            pass
    return draw(damaged(st.just(plain)))


@st.composite
def json_documents(draw: st.DrawFn) -> bytes:
    value = draw(st.one_of(json_like, mutated_profiles(json_like)))
    text = json.dumps(value, default=repr)  # NaN/Infinity come out as such
    data = text.encode("utf-8")
    return draw(damaged(st.just(data)))


# -- the properties ----------------------------------------------------------------


def within_bounds(value: t.Any) -> bool:
    """A tree (no shared nodes) of at most MAX_VALUES values and MAX_DEPTH levels."""
    seen: t.Set[int] = set()
    pending = [(value, 0)]
    count = 0
    while pending:
        item, depth = pending.pop()
        count += 1
        if count > MAX_VALUES or depth > MAX_DEPTH:
            return False
        if isinstance(item, (list, dict)):
            if id(item) in seen:
                return False
            seen.add(id(item))
            pending.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return True


def put_pipeline(payload: bytes, content_format: int) -> t.Optional[bytes]:
    """What a PUT does with a body up to storing it: the canonical body, or
    None when refused. Only the refusals the registry answers with 4.xx may
    occur."""
    started = time.perf_counter()
    try:
        value = decode_body(payload, content_format)
    except BadInput as exc:
        assert exc.code in REFUSAL_CODES, (exc.code, str(exc))
        assert str(exc).startswith(("malformed JSON: ", "malformed CBOR: ", "invalid profile: ")), str(exc)
        return None
    finally:
        assert time.perf_counter() - started < TIME_BOUND
    assert within_bounds(value)
    try:
        validate_profile(value)
    except ProfileError:
        return None
    return canonical_json(value)


@fuzz("cbor")
@given(cbor_documents())
def test_any_cbor_document_is_decoded_or_refused_in_bounded_time(payload):
    put_pipeline(payload, CF_CBOR)


@fuzz("json")
@given(json_documents())
def test_any_json_document_is_decoded_or_refused_in_bounded_time(payload):
    put_pipeline(payload, CF_JSON)


@fuzz("bytes")
@given(st.binary(max_size=300), st.sampled_from([CF_JSON, CF_CBOR]))
def test_random_bytes_are_decoded_or_refused_in_bounded_time(payload, content_format):
    put_pipeline(payload, content_format)


@fuzz("formats")
@given(mutated_profiles(scalars | st.lists(scalars, max_size=3)), st.booleans())
def test_what_is_accepted_reads_the_same_in_both_formats(value, indefinite_lengths):
    try:
        as_json, as_cbor = json.dumps(value, allow_nan=False).encode(), cbor2.dumps(value)
    except (ValueError, TypeError, OverflowError):
        return
    if indefinite_lengths:
        as_cbor = indefinite(value, lambda: True)
    assert put_pipeline(as_json, CF_JSON) == put_pipeline(as_cbor, CF_CBOR)


@fuzz("options")
@given(st.lists(st.integers(0, 65535), max_size=8))
def test_option_sets_pass_only_with_understood_critical_options(numbers):
    options = Options()
    for number in numbers:
        options.add_option(OpaqueOption(OptionNumber(number), b""))
    unknown = sorted(n for n in set(numbers) if n & 1 and n not in UNDERSTOOD_CRITICAL)
    try:
        refuse_unknown_critical_options(options)
    except BadInput as exc:
        assert exc.code == Code.BAD_OPTION
        assert str(exc).startswith("critical option %d" % unknown[0])
    else:
        assert unknown == []


def test_more_than_10000_cases():
    assert CASES >= 10000
