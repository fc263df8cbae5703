# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one canonical JSON encoding: exact bytes and refusals."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.nanoedge.core.plugins.module_utils._canonical_json import canonical_json


@pytest.mark.parametrize("value, expected", [
    ({"b": 1, "a": [1, 2]}, b'{"a":[1,2],"b":1}'),
    ({"z": {"y": None, "x": True}}, b'{"z":{"x":true,"y":null}}'),
    ({"room": "Zimmer f\u00fcr \u00c4rzte"}, '{"room":"Zimmer f\u00fcr \u00c4rzte"}'.encode("utf-8")),
    ({"n": 89.6, "m": -0.0, "big": 2 ** 53 - 1}, b'{"big":9007199254740991,"m":-0.0,"n":89.6}'),
    ("\u2603", '"\u2603"'.encode("utf-8")),
    ([], b"[]"),
])
def test_exact_bytes(value, expected):
    assert canonical_json(value) == expected


@pytest.mark.parametrize("value, error, message", [
    (math.nan, ValueError, "Out of range float values are not JSON compliant"),
    ({"load1": math.inf}, ValueError, "Out of range float values are not JSON compliant"),
    ({"id": b"\x00"}, TypeError, "Object of type bytes is not JSON serializable"),
])
def test_refusals(value, error, message):
    with pytest.raises(error, match="^%s" % message):
        canonical_json(value)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 53, 2 ** 53) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(JSON_VALUES)
def test_round_trip_and_key_order_does_not_matter(value):
    encoded = canonical_json(value)
    assert json.loads(encoded.decode("utf-8")) == value
    if isinstance(value, dict):
        assert canonical_json(dict(reversed(list(value.items())))) == encoded
