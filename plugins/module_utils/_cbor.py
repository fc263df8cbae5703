# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Deterministic CBOR encoding of JSON-shaped data (the profiles' CBOR form
in docs/contracts.md, "The CoAP API"), standard library only: the reporting
side must not need a CBOR library on a worker."""

from __future__ import annotations

import math
import struct
import typing as t


def _cbor_head(major: int, value: int) -> bytes:
    if value < 24:
        return bytes([(major << 5) | value])
    for info, fmt, limit in ((24, ">B", 0xFF), (25, ">H", 0xFFFF), (26, ">I", 0xFFFFFFFF), (27, ">Q", 0xFFFFFFFFFFFFFFFF)):
        if value <= limit:
            return bytes([(major << 5) | info]) + struct.pack(fmt, value)
    raise ValueError("integer %d does not fit in CBOR's 64-bit argument" % value)


def _cbor_float(value: float) -> bytes:
    if math.isnan(value) or math.isinf(value):
        raise ValueError("%r has no place in a profile" % value)
    # Shortest form that keeps the value exact (RFC 8949 preferred serialisation).
    for info, fmt in ((25, ">e"), (26, ">f")):
        try:
            packed = struct.pack(fmt, value)
        except OverflowError:
            continue
        if struct.unpack(fmt, packed)[0] == value:
            return bytes([0xE0 | info]) + packed
    return b"\xfb" + struct.pack(">d", value)


def encode_cbor(value: t.Any) -> bytes:
    """Deterministic CBOR (RFC 8949 section 4.2.1) of JSON-shaped data, standard library only."""
    if value is None:
        return b"\xf6"
    if value is True:
        return b"\xf5"
    if value is False:
        return b"\xf4"
    if isinstance(value, int):
        return _cbor_head(0, value) if value >= 0 else _cbor_head(1, -1 - value)
    if isinstance(value, float):
        return _cbor_float(value)
    if isinstance(value, str):
        raw = value.encode("utf-8")
        return _cbor_head(3, len(raw)) + raw
    if isinstance(value, (bytes, bytearray)):
        return _cbor_head(2, len(value)) + bytes(value)
    if isinstance(value, (list, tuple)):
        return _cbor_head(4, len(value)) + b"".join(encode_cbor(item) for item in value)
    if isinstance(value, dict):
        items = sorted((encode_cbor(k), encode_cbor(v)) for k, v in value.items())
        keys = [key for key, value in items]
        if len(set(keys)) != len(keys):
            raise ValueError("duplicate map key after encoding")
        return _cbor_head(5, len(items)) + b"".join(k + v for k, v in items)
    raise ValueError("cannot encode %s as CBOR" % type(value).__name__)
