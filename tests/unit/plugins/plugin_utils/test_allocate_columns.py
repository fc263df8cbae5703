# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The services read a column at a time: the same services as read one by one, the same first error."""

from __future__ import annotations

import types
import typing as t

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.nanoedge.core.plugins.plugin_utils import _allocate_columns, _allocate_model
from ansible_collections.nanoedge.core.plugins.plugin_utils._allocate_model import AllocationError, Service

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KEYS = ("capabilities", "cpu", "memory_mb", "storage_mb", "power", "network", "min_battery_percent")
# values each requirement may get: valid ones of every type it takes, and ones the schema refuses
VALUES = (None, 0, 0.0, -0.0, 1, 1.0, 2.5, 0.0625, 100, 100.0, 101, -5, float("nan"), float("inf"), True, False, "",
          "2", "ac", "AC", " dc ", "solar", "wifi", "wban", "lan", [], ["pom"], ["pom", "bot"], ["bot", "pom"],
          ["pom", "pom"], ["POM"], "pom", ("pom",), [3], {"x": 1}, 10 ** 30)


def _fields(service: Service) -> t.Tuple[t.Any, ...]:
    return tuple(getattr(service, slot) for slot in Service.__slots__)


def _outcome(parse: t.Callable[[t.Any], t.List[Service]], services: t.Any) -> t.Any:
    try:
        return [_fields(service) for service in parse(services)]
    except (AllocationError, OverflowError) as exc:
        return type(exc), str(exc)


USUAL = {"capabilities": ([], ["pom"], ["bot", "pom"], None), "power": ("", "ac", "dc", None),
         "network": ("", "wifi", "wban")}
NUMBERS = (0, 1, 0.25, 64, 20.5, None)


@st.composite
def service_lists(draw: t.Any) -> t.List[t.Any]:
    """Usual services, and in half the lists some out of the ordinary: an odd value (one of VALUES, the same
    in the whole list) in one of their fields, often beside a usual one it equals (True beside 1, 0.0 beside
    0), a name twice, or not a dict."""
    odd = [draw(st.sampled_from(VALUES))] if draw(st.booleans()) else []
    services: t.List[t.Any] = []
    for index in range(draw(st.integers(0, 12))):
        unusual = bool(odd) and draw(st.integers(0, 2)) == 0
        target = draw(st.sampled_from(KEYS + ("priority", "replicas", "name", "service"))) if unusual else ""
        keys = draw(st.lists(st.sampled_from(KEYS), unique=True))
        requires: t.Any = {key: odd[0] if key == target else draw(st.sampled_from(USUAL.get(key, NUMBERS)))
                           for key in keys + [target] * (target in KEYS)}
        service: t.Any = {"name": "s%d" % (draw(st.integers(0, index)) if target == "name" else index),
                          "requires": requires}
        if target == "priority" or draw(st.booleans()):
            service["priority"] = odd[0] if target == "priority" else draw(st.sampled_from(NUMBERS))
        if target == "replicas" or draw(st.booleans()):
            service["replicas"] = odd[0] if target == "replicas" else draw(st.sampled_from((1, 2, None)))
        if target == "service":
            service = draw(st.sampled_from((
                "s", None, {"requires": {}}, {"name": "", "requires": {}}, {"name": "x"},
                {"name": "y", "requires": ["pom"]}, {"name": "z", "requires": types.MappingProxyType(requires)},
                {"name": "u", "requires": dict(requires, gpu=1)}, types.MappingProxyType(service))))
        services.append(service)
    return services


@SETTINGS
@given(service_lists())
def test_property_columns_read_as_one_by_one(services: t.List[t.Any]) -> None:
    assert _outcome(_allocate_columns.parse_services, services) == _outcome(_allocate_model.parse_services, services)


@pytest.mark.parametrize("field", KEYS + ("priority", "replicas", "name"))
def test_each_odd_value_beside_usual_ones(field: str) -> None:
    for value in VALUES:
        usual = [{"name": "a", "requires": {"cpu": 1, "memory_mb": 0, "capabilities": ["pom"], "power": "ac"},
                  "priority": 1, "replicas": 1},
                 {"name": "b", "requires": {"cpu": 0.0, "storage_mb": 1.0, "network": "wifi"}, "priority": 0}]
        odd: t.Dict[str, t.Any] = {"name": "c", "requires": {"cpu": 0.25}}
        if field in KEYS:
            odd["requires"][field] = value
        else:
            odd[field] = value
        for services in (usual + [odd], [odd] + usual):
            assert _outcome(_allocate_columns.parse_services, services) == \
                _outcome(_allocate_model.parse_services, services), (field, value)


def test_the_usual_input_is_read_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    def one_by_one(services: t.Any) -> t.NoReturn:
        raise AssertionError("read one by one")

    monkeypatch.setattr(_allocate_model, "parse_services", one_by_one)
    services = [{"name": "a", "requires": {"capabilities": ["pom"], "cpu": 0.25, "memory_mb": 64}},
                {"name": "b", "requires": None, "priority": 2, "replicas": 3},
                {"name": "c", "requires": {"cpu": 1.0, "power": "AC", "capabilities": "pom"}, "priority": None}]
    assert [_fields(service) for service in _allocate_columns.parse_services(services)] == [
        ("a", 0, 0, 1, ("pom",), 250000, 64000000, 0, "", "", 0, (("pom",), "", "", 0), (250000, 64000000, 0),
         ((("pom",), "", "", 0), (250000, 64000000, 0))),
        ("b", 1, 2, 3, (), 0, 0, 0, "", "", 0, ((), "", "", 0), (0, 0, 0), (((), "", "", 0), (0, 0, 0))),
        ("c", 2, 0, 1, ("pom",), 1000000, 0, 0, "ac", "", 0, (("pom",), "ac", "", 0), (1000000, 0, 0),
         ((("pom",), "ac", "", 0), (1000000, 0, 0)))]


@pytest.mark.parametrize("services, message", [
    ([{"name": "a", "requires": {"cpu": True}}], "service 'a' requires cpu must be a number, got True"),
    ([{"name": "a", "requires": {"cpu": 1}}, {"name": "b", "requires": {"cpu": True}}],
     "service 'b' requires cpu must be a number, got True"),
    ([{"name": "a", "requires": {"memory_mb": -1, "cpu": "x"}}], "service 'a' requires memory_mb=-1: must be >= 0"),
    ([{"name": "a", "requires": {"cpu": "x"}}, {"name": "a", "requires": {}}],
     "service 'a' requires cpu must be a number, got 'x'"),
    ([{"name": "a", "requires": {}}, {"name": "a", "requires": {"cpu": "x"}}], "service 'a' is listed twice"),
    ([{"name": "a", "requires": {}, "replicas": True}], "service 'a': replicas must be an integer >= 1, got True"),
    ([{"name": "a", "requires": {"capabilities": ["pom", 3]}}],
     "service 'a' requires capabilities: 3 is not a valid capability name"),
])
def test_the_first_error_in_order(services: t.List[t.Any], message: str) -> None:
    with pytest.raises(AllocationError) as excinfo:
        _allocate_columns.parse_services(services)
    assert str(excinfo.value) == message
