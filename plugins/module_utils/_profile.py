# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node profile (docs/contracts.md, "The profile"): its one schema, validator and placement facets.

Used by the discovery module (which builds profiles), the CoAP registry
server (which validates what workers send), the registry inventory plugin and
lookup, the allocate filter, the Swarm backend and the reconcile daemon.
Standard library only, Python >= 3.9, no Ansible imports: it runs on the nodes
and managers too.
"""

from __future__ import annotations

import re
import typing as t

SCHEMA_VERSION = 1

NODE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
CAPABILITY_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")

POWER_SOURCES = ("ac", "dc")
NETWORK_TYPES = ("bluetooth", "cellular", "ethernet", "lora", "thread", "wban", "wifi", "zigbee")
DEVICE_KINDS = ("sensor", "actuator")
DEVICE_BUSES = ("hat", "usb", "i2c", "w1", "declared")

TOP_LEVEL_KEYS = (
    "schema", "node", "collected_at", "arch", "machine", "model", "cpu", "memory_mb",
    "storage_mb", "power", "network", "capabilities", "devices", "labels",
)
# Profiles made before the kernel's machine was reported have no "machine": registries still hold them.
OPTIONAL_TOP_LEVEL_KEYS = ("machine",)
CPU_KEYS = ("cores", "bogomips", "load1")
MEMORY_KEYS = ("total", "available")
STORAGE_KEYS = ("total", "free")
POWER_KEYS = ("source", "battery_percent", "battery_health", "charging")
DEVICE_REQUIRED_KEYS = ("capability", "kind", "name", "bus", "id")
DEVICE_OPTIONAL_KEYS = ("serial", "path")


# ``arch`` is the OCI platform images must be built for (``arm/v7``). Profiles of older versions, and nodes
# whose userland could not be read, name the kernel's machine (``uname -m``) instead: this is the platform a
# userland on such a kernel usually is. 32-bit ARM kernels name the CPU, not the userland (armv7l runs v6
# userlands too), and a 64-bit kernel may run a 32-bit userland: only the userland itself tells for sure.
MACHINE_PLATFORMS = {
    "aarch64": "arm64", "armv8l": "arm/v7", "armv7l": "arm/v7", "armv6l": "arm/v6", "armv5tel": "arm/v5",
    "armv5tejl": "arm/v5", "x86_64": "amd64", "i386": "386", "i486": "386", "i586": "386", "i686": "386",
}


def platform_of(arch: str) -> str:
    """The OCI platform an ``arch`` names: a platform (``arm/v7``, ``arm64``, ``amd64``) as it is, a kernel
    machine (``armv7l``, ``aarch64``, ``x86_64``) as its usual platform, anything else unchanged."""
    return MACHINE_PLATFORMS.get(arch, arch)


class ProfileError(ValueError):
    """A profile does not follow the schema; the message names the field."""


def _is_int(value: t.Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: t.Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _require(cond: bool, where: str, message: str, *args: t.Any) -> None:
    # The message is formatted only when it is raised: the registry and allocate check many profiles.
    if not cond:
        raise ProfileError("%s: %s" % (where, message % args if args else message))


def _check_keys(obj: t.Any, where: str, required: t.Sequence[str], optional: t.Sequence[str] = ()) -> None:
    _require(isinstance(obj, dict), where, "must be an object, got %s", type(obj).__name__)
    missing = [k for k in required if k not in obj]
    _require(not missing, where, "missing key(s) %s", ", ".join(missing))
    if any(k not in required and k not in optional for k in obj):
        unknown = sorted(str(k) for k in obj if k not in required and k not in optional)
        raise ProfileError("%s: unknown key(s) %s" % (where, ", ".join(unknown)))


def _check_count(value: t.Any, where: str, allow_null: bool = False) -> None:
    if allow_null and value is None:
        return
    _require(_is_int(value), where, "must be an integer, got %r", value)
    _require(value >= 0, where, "must be >= 0, got %r", value)


def _check_string_list(value: t.Any, where: str, pattern: t.Optional[t.Pattern[str]] = None) -> None:
    _require(isinstance(value, list), where, "must be a list, got %s", type(value).__name__)
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise ProfileError("%s[%d]: must be a string, got %r" % (where, index, item))
        if pattern is not None and not pattern.fullmatch(item):
            raise ProfileError("%s[%d]: %r is not a valid name" % (where, index, item))
    _require(len(set(value)) == len(value), where, "has duplicates")


def _check_power_source(source: t.Any) -> None:
    if source not in POWER_SOURCES:
        raise ProfileError("power.source: must be one of %s, got %r" % (", ".join(POWER_SOURCES), source))


def _check_network(network: t.Any) -> None:
    _check_string_list(network, "network")
    for index, kind in enumerate(network):
        if kind not in NETWORK_TYPES:
            raise ProfileError("network[%d]: must be one of %s, got %r" % (index, ", ".join(NETWORK_TYPES), kind))


def validate_profile(profile: t.Any, complete: bool = True) -> None:
    """Raise ProfileError naming the first field that breaks the profile schema.

    With ``complete=False`` any key may be left out, at any level, but every
    key that is there follows the same rules: the allocate filter takes
    hand-written nodes that give only what placement reads.
    """
    if complete:
        _check_keys(profile, "profile", [k for k in TOP_LEVEL_KEYS if k not in OPTIONAL_TOP_LEVEL_KEYS],
                    OPTIONAL_TOP_LEVEL_KEYS)
    else:
        _check_keys(profile, "profile", (), TOP_LEVEL_KEYS)
    for key in TOP_LEVEL_KEYS:
        if key in profile:
            _CHECKS[key](profile, complete)


def _check_section(obj: t.Any, where: str, keys: t.Sequence[str], complete: bool) -> None:
    if complete:
        _check_keys(obj, where, keys)
    else:
        _check_keys(obj, where, (), keys)


def _check_schema(profile: t.Mapping[str, t.Any], complete: bool) -> None:
    _require(profile["schema"] == SCHEMA_VERSION and _is_int(profile["schema"]), "schema",
             "must be %d, got %r", SCHEMA_VERSION, profile["schema"])


def _check_node(profile: t.Mapping[str, t.Any], complete: bool) -> None:
    node = profile["node"]
    _require(isinstance(node, str) and bool(NODE_NAME_RE.fullmatch(node)), "node",
             "must match %s, got %r", NODE_NAME_RE.pattern, node)


def _check_string(key: str) -> t.Callable[[t.Mapping[str, t.Any], bool], None]:
    def check(profile: t.Mapping[str, t.Any], complete: bool) -> None:
        _require(isinstance(profile[key], str), key, "must be a string, got %r", profile[key])
    return check


def _check_cpu(profile: t.Mapping[str, t.Any], complete: bool) -> None:
    cpu = profile["cpu"]
    _check_section(cpu, "cpu", CPU_KEYS, complete)
    if "cores" in cpu:
        _require(_is_int(cpu["cores"]) and cpu["cores"] >= 1, "cpu.cores",
                 "must be an integer >= 1, got %r", cpu["cores"])
    for key in ("bogomips", "load1"):
        value = cpu.get(key)
        _require(value is None or (_is_number(value) and value >= 0), "cpu.%s" % key,
                 "must be a number >= 0 or null, got %r", value)


def _check_space(key: str, keys: t.Tuple[str, str]) -> t.Callable[[t.Mapping[str, t.Any], bool], None]:
    """memory_mb or storage_mb: two counts, the second (what is left) not above the first (the total)."""
    total, part = keys

    def check(profile: t.Mapping[str, t.Any], complete: bool) -> None:
        space = profile[key]
        _check_section(space, key, keys, complete)
        for name in keys:
            if name in space:
                _check_count(space[name], "%s.%s" % (key, name))
        if total in space and part in space:
            _require(space[part] <= space[total], "%s.%s" % (key, part), "exceeds %s.%s", key, total)
    return check


def _check_power(profile: t.Mapping[str, t.Any], complete: bool) -> None:
    power = profile["power"]
    _check_section(power, "power", POWER_KEYS, complete)
    if "source" in power:
        _check_power_source(power["source"])
    percent = power.get("battery_percent")
    _require(percent is None or (_is_number(percent) and 0 <= percent <= 100), "power.battery_percent",
             "must be a number from 0 to 100 or null, got %r", percent)
    health = power.get("battery_health")
    _require(health is None or (_is_number(health) and health >= 0), "power.battery_health",
             "must be a number >= 0 or null, got %r", health)
    _require(power.get("charging") is None or isinstance(power["charging"], bool), "power.charging",
             "must be true, false or null, got %r", power.get("charging"))


def _check_network_key(profile: t.Mapping[str, t.Any], complete: bool) -> None:
    _check_network(profile["network"])


def _check_capabilities(profile: t.Mapping[str, t.Any], complete: bool) -> None:
    _check_string_list(profile["capabilities"], "capabilities", CAPABILITY_RE)


def _check_devices(profile: t.Mapping[str, t.Any], complete: bool) -> None:
    devices = profile["devices"]
    _require(isinstance(devices, list), "devices", "must be a list, got %s", type(devices).__name__)
    for index, device in enumerate(devices):
        where = "devices[%d]" % index
        _check_keys(device, where, DEVICE_REQUIRED_KEYS, DEVICE_OPTIONAL_KEYS)
        for key in DEVICE_REQUIRED_KEYS + DEVICE_OPTIONAL_KEYS:
            if key in device:
                _require(isinstance(device[key], str), "%s.%s" % (where, key), "must be a string, got %r", device[key])
        _require(bool(CAPABILITY_RE.fullmatch(device["capability"])), where + ".capability",
                 "%r is not a valid name", device["capability"])
        _require(device["kind"] in DEVICE_KINDS, where + ".kind",
                 "must be one of %s, got %r", ", ".join(DEVICE_KINDS), device["kind"])
        _require(device["bus"] in DEVICE_BUSES, where + ".bus",
                 "must be one of %s, got %r", ", ".join(DEVICE_BUSES), device["bus"])
        if "capabilities" in profile:
            _require(device["capability"] in profile["capabilities"], where + ".capability",
                     "%r is not listed in capabilities", device["capability"])


def _check_labels(profile: t.Mapping[str, t.Any], complete: bool) -> None:
    labels = profile["labels"]
    _require(isinstance(labels, dict), "labels", "must be an object, got %s", type(labels).__name__)
    for key, value in labels.items():
        _require(isinstance(key, str) and isinstance(value, str), "labels",
                 "keys and values must be strings, got %r: %r", key, value)


# One check per top-level key, run in the order of TOP_LEVEL_KEYS.
_CHECKS = {
    "schema": _check_schema,
    "node": _check_node,
    "collected_at": _check_string("collected_at"),
    "arch": _check_string("arch"),
    "machine": _check_string("machine"),
    "model": _check_string("model"),
    "cpu": _check_cpu,
    "memory_mb": _check_space("memory_mb", MEMORY_KEYS),
    "storage_mb": _check_space("storage_mb", STORAGE_KEYS),
    "power": _check_power,
    "network": _check_network_key,
    "capabilities": _check_capabilities,
    "devices": _check_devices,
    "labels": _check_labels,
}  # type: t.Dict[str, t.Callable[[t.Mapping[str, t.Any], bool], None]]


PLACEMENT_FACETS = ("capabilities", "power", "network", "arch", "battery")
# A battery-powered node's level counts in steps this wide: placement changes when the level crosses a
# service's min_battery_percent, and the reconcile service re-plans at every step, not at every percent.
BATTERY_STEP = 5


def placement_facets(profile: t.Any) -> t.Dict[str, t.Any]:
    """The part of a profile that placement depends on, in one canonical shape.

    ``{"capabilities": [...], "power": "ac" | "dc" | None, "network": [...],
    "arch": str | None, "battery": int | None}``, lists sorted, ``arch`` the OCI
    platform (``platform_of``: a profile of an older version that names the
    kernel's machine reads the same), ``battery`` the battery level of a node
    not on mains, rounded down to BATTERY_STEP (None on mains or unknown). Everything else in a profile (load, free memory, timestamps,
    labels) moves on every report and is left out, so
    two profiles with equal facets give the same inventory groups, the same
    Swarm node labels and the same reconcile fingerprint.

    Made for a profile that passed validate_profile; a partial profile is
    accepted too (a missing or null facet is empty), but a facet that is there
    must follow the schema: ProfileError names it otherwise.
    """
    _require(isinstance(profile, dict), "profile", "must be an object, got %s", type(profile).__name__)
    capabilities = _present(profile.get("capabilities"), [])
    _check_string_list(capabilities, "capabilities", CAPABILITY_RE)
    network = _present(profile.get("network"), [])
    _check_network(network)
    power = _present(profile.get("power"), {})
    _require(isinstance(power, dict), "power", "must be an object, got %s", type(power).__name__)
    source = power.get("source")
    if source is not None:
        _check_power_source(source)
    arch = profile.get("arch")
    _require(arch is None or isinstance(arch, str), "arch", "must be a string, got %r", arch)
    percent = power.get("battery_percent")
    _require(percent is None or (_is_number(percent) and 0 <= percent <= 100), "power.battery_percent",
             "must be a number from 0 to 100, got %r", percent)
    battery = None if source == "ac" or percent is None else int(percent // BATTERY_STEP * BATTERY_STEP)
    return {"capabilities": sorted(capabilities), "power": source, "network": sorted(network),
            "arch": None if arch is None else platform_of(arch), "battery": battery}


def _present(value: t.Any, empty: t.Any) -> t.Any:
    return empty if value is None else value
