# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bounded checks of a body before it is decoded: one linear, iterative pass
over the bytes that refuses what a profile never needs and bounds the work
that decoding and the number check can cost.

A decoder that honours CBOR shared references (tags 28/29) turns 257 bytes
into a DAG with 2^40 paths, and every later walk follows each path. So the
limits are enforced here, on the encoded form, where the cost of checking is
the size of the datagram."""

from __future__ import annotations

import re
import typing as t

# A profile is a JSON document: maps, arrays, text, numbers, true/false/null.
# CBOR bignums (tags 2 and 3) stay readable so that an out-of-range integer
# gets the same diagnostic in both formats; every other tag is refused.
ALLOWED_TAGS = frozenset((2, 3))
TAG_NAMES = {
    0: "date/time string", 1: "epoch date/time", 4: "decimal fraction", 5: "bigfloat",
    25: "string reference", 26: "serialised Perl object", 27: "serialised language object",
    28: "shared value", 29: "shared reference", 55799: "self-described CBOR",
    256: "string reference namespace", 258: "set",
}
# Nesting a profile can need (the number check allows the same).
MAX_DEPTH = 64
# Values one body may hold: a 256 KiB profile of short labels has fewer.
MAX_VALUES = 100000

_BREAK = 0xFF
_SIMPLE_NAMES = {20: "false", 21: "true", 22: "null", 23: "undefined"}


class Malformed(ValueError):
    """The body is refused; the message names what is wrong."""


class _Container:
    __slots__ = ("remaining", "is_map", "seen")

    def __init__(self, remaining: t.Optional[int], is_map: bool) -> None:
        self.remaining = remaining  # None: indefinite length, ends at a break
        self.is_map = is_map
        self.seen = 0


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, size: int, what: str) -> bytes:
        end = self.pos + size
        if size < 0 or end > len(self.data):
            raise Malformed("%s of %d bytes at offset %d runs past the end (%d bytes)"
                            % (what, size, self.pos, len(self.data)))
        chunk = self.data[self.pos:end]
        self.pos = end
        return chunk

    def head(self) -> t.Tuple[int, int, t.Optional[int]]:
        """(major type, additional information, argument or None if indefinite)."""
        if self.pos >= len(self.data):
            raise Malformed("premature end: an item is missing at offset %d" % self.pos)
        initial = self.data[self.pos]
        self.pos += 1
        major, info = initial >> 5, initial & 0x1F
        if info < 24:
            return major, info, info
        if info <= 27:
            return major, info, int.from_bytes(self.take(1 << (info - 24), "an item head"), "big")
        if info == 31:
            return major, info, None
        raise Malformed("reserved additional information %d at offset %d" % (info, self.pos - 1))

    def remaining(self) -> int:
        return len(self.data) - self.pos


def _skip_indefinite_string(reader: _Reader, major: int) -> None:
    """An indefinite-length string is definite chunks of its own type up to a break."""
    while True:
        if reader.pos < len(reader.data) and reader.data[reader.pos] == _BREAK:
            reader.pos += 1
            return
        chunk_major, _info, length = reader.head()
        if chunk_major != major or length is None:
            raise Malformed("an indefinite-length string holds a chunk of another kind at offset %d"
                            % (reader.pos - 1))
        reader.take(length, "a string chunk")


def _check_tag(reader: _Reader, tag: int) -> None:
    if tag not in ALLOWED_TAGS:
        name = TAG_NAMES.get(tag)
        raise Malformed("tag %d%s is not accepted (a profile uses no CBOR tags but bignums 2 and 3)"
                        % (tag, " (%s)" % name if name else ""))
    if reader.pos >= len(reader.data) or reader.data[reader.pos] >> 5 != 2:
        raise Malformed("tag %d at offset %d must hold a byte string" % (tag, reader.pos - 1))


def _check_simple(reader: _Reader, info: int, value: t.Optional[int]) -> None:
    if info in (25, 26, 27) or info in _SIMPLE_NAMES:
        return  # a float, or false/true/null/undefined
    if value is None:
        raise Malformed("unexpected break at offset %d" % (reader.pos - 1))
    raise Malformed("simple value %d is not accepted" % value)


def _open(reader: _Reader, major: int, count: t.Optional[int]) -> t.Optional[_Container]:
    """The container an array or map head opens, or None for an empty one."""
    is_map = major == 5
    if count is None:
        return _Container(None, is_map)
    items = count * 2 if is_map else count
    if items > reader.remaining():
        raise Malformed("%s of %d %s at offset %d runs past the end (%d bytes)"
                        % ("map" if is_map else "array", count, "pairs" if is_map else "items",
                           reader.pos, len(reader.data)))
    return _Container(items, is_map) if items else None


def check_cbor(data: bytes, max_values: int = MAX_VALUES, max_depth: int = MAX_DEPTH) -> None:
    """Raise Malformed unless ``data`` is exactly one well-formed CBOR item
    within the limits, built only of what a profile can hold."""
    reader = _Reader(data)
    stack: t.List[_Container] = []
    values = 0
    while True:
        if reader.pos < len(data) and data[reader.pos] == _BREAK and stack and stack[-1].remaining is None:
            reader.pos += 1
            closed = stack.pop()
            if closed.is_map and closed.seen % 2:
                raise Malformed("map at offset %d ends after a key without its value" % (reader.pos - 1))
        else:
            if len(stack) > max_depth:
                raise Malformed("nested too deeply")
            values += 1
            if values > max_values:
                raise Malformed("more than %d values" % max_values)
            if stack and stack[-1].is_map and stack[-1].seen % 2 == 0 and reader.pos < len(data) \
                    and data[reader.pos] >> 5 != 3:
                raise Malformed("map key at offset %d is not a text string" % reader.pos)
            major, info, value = reader.head()
            if major in (0, 1):
                if value is None:
                    raise Malformed("indefinite-length integer at offset %d" % (reader.pos - 1))
            elif major in (2, 3):
                if value is None:
                    _skip_indefinite_string(reader, major)
                else:
                    reader.take(value, "a string")
            elif major in (4, 5):
                container = _open(reader, major, value)
                if container is not None:
                    stack.append(container)
                    continue
            elif major == 6:
                if value is None:
                    raise Malformed("indefinite-length tag at offset %d" % (reader.pos - 1))
                _check_tag(reader, value)
                continue  # the tagged item follows
            else:
                _check_simple(reader, info, value)
        # an item is complete: count it in the containers it closes
        while stack:
            top = stack[-1]
            top.seen += 1
            if top.remaining is not None:
                top.remaining -= 1
                if top.remaining == 0:
                    stack.pop()
                    continue
            break
        if not stack:
            break
    if reader.pos != len(data):
        raise Malformed("%d byte(s) after the end of the item" % (len(data) - reader.pos))


# The characters that matter for nesting; the rest is skipped at C speed.
_JSON_TOKEN = re.compile(r'[\[\]{}"\\]')


def check_json_depth(text: str, max_depth: int = MAX_DEPTH) -> None:
    """Refuse JSON nested deeper than ``max_depth`` before the (recursive)
    parser sees it: one linear pass that skips brackets inside strings.
    Unbalanced brackets are left to the parser's diagnostic."""
    depth = 0
    in_string = False
    escaped_until = -1
    for match in _JSON_TOKEN.finditer(text):
        position = match.start()
        if position < escaped_until:
            continue
        char = match.group()
        if char == "\\":
            escaped_until = position + 2
        elif char == '"':
            in_string = not in_string
        elif in_string:
            continue
        elif char in "[{":
            depth += 1
            if depth > max_depth + 1:
                raise Malformed("nested too deeply")
        else:
            depth -= 1
