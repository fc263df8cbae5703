# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The device catalog: which attached hardware gives a node which capability.

An entry is ``{capability, kind: sensor|actuator, name, <one match>}`` where
the match is ``usb: "VVVV:PPPP"``, ``hat: "<HAT EEPROM product string>"``,
``i2c: "<kernel i2c device name>"`` or ``w1: "<family code>"`` (docs/contracts.md,
"The device catalog"). ``BUILTIN_CATALOG`` is shipped with the collection; users add
entries with the ``device_catalog`` option of ``nanoedge.core.resource_facts``.

Only identifiers that really identify a device are shipped. A generic
USB-serial bridge (FTDI ``0403:6001``, Silicon Labs CP210x ``10c4:ea60``,
WCH CH340 ``1a86:7523``) sits inside many unrelated cables, so mapping its id to
a capability would give every node with such a cable that capability. The
BerryMed BM1000B pulse oximeter of the paper talks through such a cable;
declare it per site, for example
``{capability: pom, kind: sensor, name: BerryMed BM1000B, usb: "0403:6001"}``
on the nodes where it is plugged in.

Standard library only, Python >= 3.9: this runs on managed nodes.
"""

from __future__ import annotations

import re
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._profile import CAPABILITY_RE, DEVICE_KINDS

MATCH_KEYS = ("usb", "hat", "i2c", "w1")
ENTRY_KEYS = ("capability", "kind", "name")

_USB_ID_RE = re.compile(r"^[0-9a-fA-F]{4}:[0-9a-fA-F]{4}$")
_W1_FAMILY_RE = re.compile(r"^[0-9a-fA-F]{2}$")

# (capability, kind, name, bus, match). Sources: USB ids as listed in the
# usb.ids database (linux-usb.org); I2C names are the names the kernel gives
# devices instantiated from the device tree or by the drivers' id tables
# (drivers/iio/health/max30102.c and max30100.c, iio/temperature/mlx90614.c,
# ssd1307fb / ssd130x, regulator/rpi-panel-attiny-regulator.c,
# power/supply/max17040_battery.c and cw2015_battery.c); 1-Wire family codes
# from the Maxim data sheets. HAT entries are compared exactly with the
# EEPROM's product string (/proc/device-tree/hat/product).
_BUILTIN_ROWS: t.Tuple[t.Tuple[str, str, str, str, str], ...] = (
    # pulse oximetry and heart rate (paper: pom, hr)
    ("pom", "sensor", "Maxim MAX30102 pulse oximeter", "i2c", "max30102"),
    ("hr", "sensor", "Maxim MAX30102 heart-rate sensor", "i2c", "max30102"),
    ("pom", "sensor", "Maxim MAX30101 pulse oximeter", "i2c", "max30101"),
    ("hr", "sensor", "Maxim MAX30101 heart-rate sensor", "i2c", "max30101"),
    ("pom", "sensor", "Maxim MAX30100 pulse oximeter", "i2c", "max30100"),
    ("hr", "sensor", "Maxim MAX30100 heart-rate sensor", "i2c", "max30100"),
    # body temperature (paper: bot)
    ("bot", "sensor", "Maxim DS18B20 temperature probe", "w1", "28"),
    ("bot", "sensor", "Maxim DS18S20 temperature probe", "w1", "10"),
    ("bot", "sensor", "Maxim DS1822 temperature probe", "w1", "22"),
    ("bot", "sensor", "Melexis MLX90614 infrared thermometer", "i2c", "mlx90614"),
    # data display (paper: dd)
    ("dd", "actuator", "Raspberry Pi 7\" Touch Display", "i2c", "7inch-touchscreen-panel-regulator"),
    ("dd", "actuator", "SSD1306 OLED display", "i2c", "ssd1306fb-i2c"),
    ("dd", "actuator", "SSD1306 OLED display", "i2c", "ssd1306"),
    # oxygen-valve controller (paper: oc): a relay board switching the valve
    ("oc", "actuator", "Pimoroni Automation HAT relays", "hat", "Automation HAT"),
    # environment and motion
    ("env", "sensor", "Raspberry Pi Sense HAT environment sensors", "hat", "Sense HAT"),
    ("imu", "sensor", "Raspberry Pi Sense HAT inertial sensors", "hat", "Sense HAT"),
    # UPS HATs report through a fuel-gauge chip (Geekworm X728: MAX17043, UPS-Lite: CW2015)
    ("ups", "sensor", "Maxim MAX17043 battery fuel gauge", "i2c", "max17043"),
    ("ups", "sensor", "Maxim MAX17040 battery fuel gauge", "i2c", "max17040"),
    ("ups", "sensor", "Maxim MAX17048 battery fuel gauge", "i2c", "max17048"),
    ("ups", "sensor", "CellWise CW2015 battery fuel gauge", "i2c", "cw2015"),
    # medical USB devices with their own vendor ids
    ("glu", "sensor", "Abbott FreeStyle Libre", "usb", "1a61:3650"),
    ("glu", "sensor", "Abbott FreeStyle Optium/Precision Neo", "usb", "1a61:3850"),
    ("glu", "sensor", "Abbott FreeStyle Libre 2", "usb", "1a61:3950"),
    ("glu", "sensor", "Roche Accu-Chek Mobile", "usb", "173a:2198"),
    ("glu", "sensor", "Roche Accu-Chek Mobile U1", "usb", "173a:21ca"),
    ("spiro", "sensor", "Geratherm Spirostik spirometer", "usb", "1c4b:026f"),
)

BUILTIN_CATALOG: t.Tuple[t.Dict[str, str], ...] = tuple(
    {"capability": cap, "kind": kind, "name": name, bus: match} for cap, kind, name, bus, match in _BUILTIN_ROWS
)


class CatalogError(ValueError):
    """A catalog entry is malformed; the message names the entry."""


class Catalog:
    """Lookup from (bus, match key) to the catalog entries that claim it."""

    def __init__(self, entries: t.Iterable[t.Dict[str, str]]) -> None:
        self._by_key: t.Dict[t.Tuple[str, str], t.List[t.Dict[str, str]]] = {}
        for entry in entries:
            bus = entry["bus"]
            key = (bus, entry["match"])
            claims = self._by_key.setdefault(key, [])
            # a later entry for the same device and capability replaces the
            # earlier one, so users can rename or re-kind a shipped entry
            claims[:] = [c for c in claims if c["capability"] != entry["capability"]]
            claims.append(entry)

    def lookup(self, bus: str, match: str) -> t.List[t.Dict[str, str]]:
        return list(self._by_key.get((bus, _normalize_match(bus, match)), ()))

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_key.values())


def _normalize_match(bus: str, value: str) -> str:
    if bus in ("usb", "w1"):
        return value.strip().lower()
    return value.strip()


def _describe(entry: t.Any) -> str:
    if isinstance(entry, dict):
        for key in ("name", "capability"):
            value = entry.get(key)
            if isinstance(value, str) and value.strip():
                return "%r" % value
    return "%r" % (entry,)


def normalize_entry(entry: t.Any, where: str) -> t.Dict[str, str]:
    """Check one catalog entry; return ``{capability, kind, name, bus, match}``.

    ``where`` names the entry in error messages, e.g. ``device_catalog[2]``.
    """
    label = "%s (%s)" % (where, _describe(entry))
    if not isinstance(entry, dict):
        raise CatalogError("%s: must be a dict with capability, kind, name and one of %s, got %s"
                           % (label, ", ".join(MATCH_KEYS), type(entry).__name__))
    unknown = sorted(str(k) for k in entry if k not in ENTRY_KEYS and k not in MATCH_KEYS)
    if unknown:
        raise CatalogError("%s: unknown key(s) %s" % (label, ", ".join(unknown)))
    missing = [k for k in ENTRY_KEYS if k not in entry]
    if missing:
        raise CatalogError("%s: missing key(s) %s" % (label, ", ".join(missing)))
    matches = [k for k in MATCH_KEYS if k in entry]
    if len(matches) != 1:
        raise CatalogError("%s: needs exactly one match key of %s, got %s"
                           % (label, ", ".join(MATCH_KEYS), ", ".join(matches) or "none"))
    capability, kind, name = entry["capability"], entry["kind"], entry["name"]
    if not isinstance(capability, str) or not CAPABILITY_RE.fullmatch(capability):
        raise CatalogError("%s: capability %r must match %s" % (label, capability, CAPABILITY_RE.pattern))
    if kind not in DEVICE_KINDS:
        raise CatalogError("%s: kind %r must be one of %s" % (label, kind, ", ".join(DEVICE_KINDS)))
    if not isinstance(name, str) or not name.strip():
        raise CatalogError("%s: name must be a non-empty string, got %r" % (label, name))
    bus = matches[0]
    value = entry[bus]
    if not isinstance(value, str) or not value.strip():
        raise CatalogError("%s: %s must be a non-empty string, got %r" % (label, bus, value))
    if bus == "usb" and not _USB_ID_RE.fullmatch(value.strip()):
        raise CatalogError("%s: usb %r must be VVVV:PPPP (4 hex digits each)" % (label, value))
    if bus == "w1" and not _W1_FAMILY_RE.fullmatch(value.strip()):
        raise CatalogError("%s: w1 %r must be a 2-digit hex family code such as '28'" % (label, value))
    return {"capability": capability, "kind": kind, "name": name.strip(), "bus": bus,
            "match": _normalize_match(bus, value)}


def build_catalog(extra: t.Optional[t.Sequence[t.Any]] = None, *, builtin: bool = True) -> Catalog:
    """The shipped catalog followed by ``extra`` (the ``device_catalog`` option)."""
    entries = []
    if builtin:
        entries.extend(normalize_entry(e, "built-in catalog entry %d" % i) for i, e in enumerate(BUILTIN_CATALOG))
    if extra is not None:
        if not isinstance(extra, (list, tuple)):
            raise CatalogError("device_catalog: must be a list of entries, got %s" % type(extra).__name__)
        entries.extend(normalize_entry(e, "device_catalog[%d]" % i) for i, e in enumerate(extra))
    return Catalog(entries)
