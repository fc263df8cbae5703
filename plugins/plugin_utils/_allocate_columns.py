# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The services of an allocation read a column at a time.

The usual input (plain dicts, names and values of the expected types) is
checked and normalised with passes over all services at once that run at C
speed (``map``, ``set``, ``zip``), each distinct value of each requirement
normalised once by ``normalize_requirements``. At the first thing out of the
ordinary (another type, a missing key, a duplicate name, a value the schema
refuses) the services are read one by one instead, by
``_allocate_model.parse_services``, which raises the error the input has
first, in the services' order: the result and the errors are the same either
way, only the time differs.
"""

from __future__ import annotations

import typing as t
from itertools import chain, repeat
from operator import itemgetter

from ansible_collections.nanoedge.core.plugins.module_utils._requirements import (
    REQUIREMENT_DEFAULTS,
    REQUIREMENT_KEYS,
    RequirementError,
    normalize_requirements,
)
from ansible_collections.nanoedge.core.plugins.plugin_utils import _allocate_model
from ansible_collections.nanoedge.core.plugins.plugin_utils._allocate_model import (
    Need,
    Service,
    compared,
    is_number,
    need_of,
)

_NONE = type(None)
# what each requirement's column may hold to be read at once (anything else is read one by one)
_NUMBERS = frozenset((int, float, _NONE))
_TYPES = {"capabilities": frozenset((list, str, _NONE)), "power": frozenset((str, _NONE)),
          "network": frozenset((str, _NONE))}
_KNOWN = frozenset(REQUIREMENT_KEYS)
_NAME, _REQUIRES = itemgetter("name"), itemgetter("requires")


class _Unusual(Exception):
    """Input the columns do not take: read it one by one."""


def parse_services(services: t.Any) -> t.List[Service]:
    """``_allocate_model.parse_services``, at once when it can be."""
    if isinstance(services, (list, tuple)) and services:
        try:
            return _at_once(services)
        except (_Unusual, KeyError, OverflowError):
            pass
    return _allocate_model.parse_services(services)


def _only(values: t.Iterable[t.Any], types: t.AbstractSet[type]) -> None:
    if not types.issuperset(map(type, values)):
        raise _Unusual()


def _at_once(services: t.Sequence[t.Any]) -> t.List[Service]:
    _only(services, {dict})
    names = list(map(_NAME, services))
    _only(names, {str})
    distinct = set(names)
    if len(distinct) != len(names) or "" in distinct:
        raise _Unusual()
    raws = list(map(_REQUIRES, services))
    _only(raws, {dict, _NONE})
    if None in raws:
        raws = [{} if raw is None else raw for raw in raws]
    if not _KNOWN.issuperset(set().union(*raws)):
        raise _Unusual()
    needs = _needs(raws)
    priorities = list(map(dict.get, services, repeat("priority")))
    _only(priorities, _NUMBERS)
    if not all(map(is_number, set(priorities) - {None})):
        raise _Unusual()
    replicas = list(map(dict.get, services, repeat("replicas")))
    _only(replicas, {int, _NONE})
    if None in replicas:
        replicas = [1 if count is None else count for count in replicas]
    if None in priorities:
        priorities = [0 if priority is None else priority for priority in priorities]
    if min(replicas) < 1:
        raise _Unusual()
    return list(map(Service, names, range(len(names)), needs, priorities, replicas))


def _needs(raws: t.List[t.Dict[str, t.Any]]) -> t.List[Need]:
    """Each service's need: the columns of its requirements, each distinct value normalised once."""
    columns = [_column(raws, key) for key in REQUIREMENT_KEYS]
    vectors = list(zip(*columns))
    table: t.Dict[t.Tuple[t.Any, ...], t.Any] = dict.fromkeys(vectors)
    for vector in table:
        table[vector] = need_of(*vector)
    return list(map(table.__getitem__, vectors))


def _column(raws: t.List[t.Dict[str, t.Any]], key: str) -> t.List[t.Any]:
    """One requirement of every service, in the units allocation compares."""
    values = list(map(dict.get, raws, repeat(key)))
    _only(values, _TYPES.get(key, _NUMBERS))
    if key == "capabilities":
        lists = [value for value in values if type(value) is list]  # pylint: disable=unidiomatic-typecheck
        _only(chain.from_iterable(lists), {str})
        if lists:
            values = [tuple(value) if type(value) is list else value  # pylint: disable=unidiomatic-typecheck
                      for value in values]
    # equal ints and floats (1, 1.0) normalise alike: one entry serves both
    table = {}
    for value in set(values):
        if value is None:
            table[value] = compared(key, REQUIREMENT_DEFAULTS[key])
            continue
        try:
            normalized = normalize_requirements({key: list(value) if isinstance(value, tuple) else value})
        except RequirementError as exc:
            raise _Unusual() from exc
        table[value] = compared(key, normalized[key])
    return list(map(table.__getitem__, values))
