# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Service requirements P_k (docs/contracts.md, "Requirements"): the one schema.

The service_profiles lookup validates image labels with it and the allocate
filter validates its input with it. Standard library only, no Ansible imports.
"""

from __future__ import annotations

import math
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._profile import CAPABILITY_RE, NETWORK_TYPES, POWER_SOURCES

# key -> the value that means "no requirement" after normalisation
REQUIREMENT_DEFAULTS: t.Dict[str, t.Any] = {
    "capabilities": [],
    "cpu": 0,
    "memory_mb": 0,
    "storage_mb": 0,
    "power": "",
    "network": "",
    "min_battery_percent": 0,
}
REQUIREMENT_KEYS = tuple(REQUIREMENT_DEFAULTS)
_NUMERIC_KEYS = ("cpu", "memory_mb", "storage_mb", "min_battery_percent")


class RequirementError(ValueError):
    """A requirement document breaks the schema; the message names the key."""


def _is_number(value: t.Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _absent(value: t.Any) -> bool:
    """A missing key, 0, null or "" all mean "no requirement"."""
    return value is None or value == "" or (_is_number(value) and value == 0)


def _normalize_number(key: str, value: t.Any) -> t.Union[int, float]:
    if not _is_number(value) or (isinstance(value, float) and not math.isfinite(value)):
        raise RequirementError("%s must be a number, got %r" % (key, value))
    if value < 0:
        raise RequirementError("%s=%r: must be >= 0" % (key, value))
    if key == "min_battery_percent" and value > 100:
        raise RequirementError("min_battery_percent=%r: must be <= 100" % (value,))
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _normalize_capabilities(value: t.Any) -> t.List[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise RequirementError("capabilities must be a list of strings, got %r" % (value,))
    result = []
    for item in value:
        if not isinstance(item, str) or not CAPABILITY_RE.fullmatch(item):
            raise RequirementError("capabilities: %r is not a valid capability name" % (item,))
        if item not in result:
            result.append(item)
    return sorted(result)


def _normalize_choice(key: str, value: t.Any, choices: t.Sequence[str]) -> str:
    if not isinstance(value, str):
        raise RequirementError("%s must be a string, got %r" % (key, value))
    lowered = value.strip().lower()
    if lowered not in choices:
        raise RequirementError("%s=%r: must be one of %s" % (key, value, ", ".join(choices)))
    return lowered


def normalize_requirements(raw: t.Any) -> t.Dict[str, t.Any]:
    """Return the full requirement dict (every key present) or raise RequirementError.

    The message names the key at fault but not the service or image: callers
    prefix it with what they are reading (image name, service name).
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise RequirementError("requirements must be a JSON object, got %s" % type(raw).__name__)
    unknown = sorted(str(key) for key in raw if key not in REQUIREMENT_DEFAULTS)
    if unknown:
        raise RequirementError("unknown requirement key(s) %s (known: %s)"
                               % (", ".join(repr(k) for k in unknown), ", ".join(REQUIREMENT_KEYS)))
    result = {key: (list(default) if isinstance(default, list) else default)
              for key, default in REQUIREMENT_DEFAULTS.items()}
    for key, value in raw.items():
        if key == "capabilities":
            result[key] = [] if value in (None, "", 0) else _normalize_capabilities(value)
        elif _absent(value):
            continue
        elif key in _NUMERIC_KEYS:
            result[key] = _normalize_number(key, value)
        elif key == "power":
            result[key] = _normalize_choice(key, value, POWER_SOURCES)
        elif key == "network":
            result[key] = _normalize_choice(key, value, NETWORK_TYPES)
    return result
