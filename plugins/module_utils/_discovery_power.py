# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Resource discovery: the profile's ``power`` (source and battery) from /sys/class/power_supply.

Standard library only, Python >= 3.9: this runs on managed nodes.
"""

from __future__ import annotations

import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._discovery_reader import Reader

# older kernels (and some charger drivers still) name the USB charger kind in
# the type itself: USB_DCP, USB_CDP, USB_ACA, USB_C, USB_PD, USB_PD_DRP
EXTERNAL_SUPPLY_TYPES = ("Mains", "USB", "UPS", "Wireless", "BrickID")
CHARGING_STATUS = {"Charging": True, "Discharging": False, "Not charging": False, "Full": False}


def power(reader: Reader) -> t.Dict[str, t.Any]:
    """Power source and battery state from /sys/class/power_supply.

    ``source``: without a battery, ``ac``. With an AC/USB/mains supply exposed
    that reports ``online``, that decides: ``ac`` when one is online, else
    ``dc``. With only a battery exposed (most UPS HATs and fuel gauges),
    ``dc`` exactly while it is ``Discharging``: in the kernel's power-supply
    semantics ``Charging``, ``Not charging`` and ``Full`` all mean external
    power is there. A battery whose status is ``Unknown`` (or missing or
    malformed) gives ``ac``, with a warning.
    ``charging`` is true for status Charging, false for Discharging,
    Not charging and Full, null when unknown or without a battery.
    ``battery_percent`` is the battery's ``capacity``, a reading over 100 (a
    full fuel gauge's overshoot) counting as 100.
    """
    base = "/sys/class/power_supply"
    battery: t.Optional[str] = None
    external_online: t.Optional[bool] = None  # None: no external supply tells
    for name in reader.listdir(base):
        folder = "%s/%s" % (base, name)
        kind = reader.text(folder + "/type")
        if kind is None:
            continue
        if kind == "Battery":
            if battery is not None:
                continue
            # a wireless mouse's battery has scope Device; it does not power the node
            if reader.text(folder + "/scope", required=False) == "Device":
                continue
            if reader.integer(folder + "/present", required=False) == 0:
                continue
            battery = folder
        elif kind in EXTERNAL_SUPPLY_TYPES or kind.startswith("USB_"):
            online = reader.integer(folder + "/online", required=False)
            if online is not None:
                external_online = bool(external_online) or online == 1
    if battery is None:
        return {"source": "ac", "battery_percent": None, "battery_health": None, "charging": None}
    status = reader.text(battery + "/status", required=False)
    if status is not None and status not in CHARGING_STATUS and status != "Unknown":
        reader.warn("%s/status: malformed (unknown status %r)" % (battery, status[:40]))
        status = None
    charging = CHARGING_STATUS.get(status or "")
    if external_online is not None:
        source = "ac" if external_online else "dc"
    elif status in CHARGING_STATUS:
        source = "dc" if status == "Discharging" else "ac"
    else:
        reader.warn("%s/status: %s, and no external supply is exposed: power.source assumed ac"
                    % (battery, "Unknown" if status == "Unknown" else "not known"))
        source = "ac"
    return {"source": source, "battery_percent": _battery_percent(reader, battery),
            "battery_health": _battery_health(reader, battery), "charging": charging}


def _battery_percent(reader: Reader, folder: str) -> t.Optional[int]:
    capacity = reader.integer(folder + "/capacity", required=False)
    if capacity is not None:
        if capacity >= 0:
            # fuel gauges read over 100 when full (the max17040 driver passes its
            # state-of-charge register through: 101 on a UPS HAT), as laptop packs do
            return min(capacity, 100)
        reader.warn("%s/capacity: malformed (%d is not a percentage)" % (folder, capacity))
    percent = _battery_ratio(reader, folder, "now", "full", 100)
    return None if percent is None else min(100, round(percent))


def _battery_health(reader: Reader, folder: str) -> t.Optional[float]:
    health = _battery_ratio(reader, folder, "full", "full_design", 1)
    return None if health is None else round(health, 2)


def _battery_ratio(reader: Reader, folder: str, numerator: str, denominator: str, scale: int) -> t.Optional[float]:
    """``scale * <prefix>_<numerator> / <prefix>_<denominator>`` for the first prefix whose two files
    the driver has (``energy_*``, or ``charge_*`` from drivers that count charge); None when no pair is usable."""
    for prefix in ("energy", "charge"):
        top = reader.integer("%s/%s_%s" % (folder, prefix, numerator), required=False)
        bottom = reader.integer("%s/%s_%s" % (folder, prefix, denominator), required=False)
        if top is not None and bottom:
            if top < 0 or bottom < 0:
                reader.warn("%s/%s_%s: malformed (negative)" % (folder, prefix, numerator))
                return None
            try:
                # scale first, as the integers are exact: a quotient scaled afterwards could round differently
                return scale * top / bottom
            except OverflowError:
                reader.warn("%s/%s_%s: malformed (too large)" % (folder, prefix, numerator))
                return None
    return None
