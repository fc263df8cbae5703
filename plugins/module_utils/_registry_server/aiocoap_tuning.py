# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Work aiocoap repeats for every message, done once in the registry's
process: each replacement gives the same results as what it replaces.

Sampled on beats under OSCORE (bench/bench_registry.py --liveness, 500
nodes): the address facts took about 5 % of the registry's CPU, the copy of
an answer's options (aiocoap copies every answer before protecting it)
about 7 %.
"""

from __future__ import annotations

import collections
import copy
import enum
import typing as t

# Peers whose address facts are kept (the oldest go first).
KEPT_ADDRESSES = 4096
_MISSING = object()
# Option values that need no copy of their own (BlockwiseTuple is a tuple of ints).
_ATOMS = (str, bytes, int, float, enum.Enum, type(None))


def _kept(original: t.Callable[[t.Any], t.Any]) -> t.Callable[[t.Any], t.Any]:
    """``original(address)`` kept per (socket address, packet info), which is all it depends on."""
    cache: "collections.OrderedDict[t.Any, t.Any]" = collections.OrderedDict()

    def kept(self: t.Any) -> t.Any:
        try:
            key = (self.sockaddr, self.pktinfo)
            value = cache.get(key, _MISSING)
        except TypeError:  # not hashable: not kept
            return original(self)
        if value is _MISSING:
            value = cache[key] = original(self)
            if len(cache) > KEPT_ADDRESSES:
                cache.popitem(last=False)
        return value

    kept.kept = True  # type: ignore[attr-defined]
    kept.__wrapped__ = original  # type: ignore[attr-defined]
    return kept


def cheaper_addresses() -> None:
    """aiocoap names a task after every request it renders ("Rendering for
    %r"), and asks of every answer's address whether it or the address the
    request came to is multicast: each parses the address again (the repr
    also looks up the interface). All three depend on the socket address
    and the packet info only, so they are kept for the peers seen last."""
    from aiocoap.transports import udp6

    cls = udp6.UDP6EndpointAddress
    if getattr(cls.__repr__, "kept", False):
        return
    cls.__repr__ = _kept(cls.__repr__)
    cls.is_multicast = property(_kept(cls.is_multicast.fget))
    cls.is_multicast_locally = property(_kept(cls.is_multicast_locally.fget))


def _immutable(value: t.Any) -> bool:
    return isinstance(value, _ATOMS) or (isinstance(value, tuple) and all(isinstance(item, _ATOMS) for item in value))


def _copy_option(option: t.Any, memo: t.Dict[int, t.Any]) -> t.Any:
    """A copy of an option object: its attributes shared where they are immutable (every option aiocoap makes)."""
    state = getattr(option, "__dict__", None)
    if state is None or not all(_immutable(value) for value in state.values()):
        return copy.deepcopy(option, memo)
    clone = object.__new__(type(option))
    clone.__dict__.update(state)
    return clone


def cheaper_option_copies() -> None:
    """aiocoap copies a message with copy.deepcopy of its options (under
    OSCORE, every answer before it is protected), which takes every option
    apart and builds it again; the same copy, one option object at a time."""
    from aiocoap.options import Options

    if "__deepcopy__" in vars(Options):
        return

    def __deepcopy__(self: t.Any, memo: t.Dict[int, t.Any]) -> t.Any:
        clone = type(self)()
        clone._options = {number: [_copy_option(option, memo) for option in options]  # pylint: disable=protected-access
                          for number, options in self._options.items()}  # pylint: disable=protected-access
        return clone

    Options.__deepcopy__ = __deepcopy__
