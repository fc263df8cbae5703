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

    ``source`` is ``dc`` when a battery is present and discharging, or when a
    battery is present, no AC/USB/mains supply reports online and the battery
    is not charging (charging proves external power even where the board does
    not expose its supply, as on most UPS HATs); otherwise ``ac``.
    ``charging`` is true for status Charging, false for Discharging,
    Not charging and Full, null when unknown or without a battery.
    """
    base = "/sys/class/power_supply"
    battery: t.Optional[str] = None
    external_online = False
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
            if reader.integer(folder + "/online", required=False) == 1:
                external_online = True
    if battery is None:
        return {"source": "ac", "battery_percent": None, "battery_health": None, "charging": None}
    status = reader.text(battery + "/status", required=False)
    if status is not None and status not in CHARGING_STATUS and status != "Unknown":
        reader.warn("%s/status: malformed (unknown status %r)" % (battery, status[:40]))
        status = None
    charging = CHARGING_STATUS.get(status or "")
    if status == "Discharging" or (not external_online and status != "Charging"):
        source = "dc"
    else:
        source = "ac"
    return {"source": source, "battery_percent": _battery_percent(reader, battery),
            "battery_health": _battery_health(reader, battery), "charging": charging}


def _battery_percent(reader: Reader, folder: str) -> t.Optional[int]:
    capacity = reader.integer(folder + "/capacity", required=False)
    if capacity is not None:
        if 0 <= capacity <= 100:
            return capacity
        reader.warn("%s/capacity: malformed (%d is not a percentage)" % (folder, capacity))
    for prefix in ("energy", "charge"):
        now = reader.integer("%s/%s_now" % (folder, prefix), required=False)
        full = reader.integer("%s/%s_full" % (folder, prefix), required=False)
        if now is not None and full:
            if now < 0 or full < 0:
                reader.warn("%s/%s_now: malformed (negative)" % (folder, prefix))
                return None
            try:
                return min(100, round(100 * now / full))
            except OverflowError:
                reader.warn("%s/%s_now: malformed (too large)" % (folder, prefix))
                return None
    return None


def _battery_health(reader: Reader, folder: str) -> t.Optional[float]:
    for prefix in ("energy", "charge"):
        full = reader.integer("%s/%s_full" % (folder, prefix), required=False)
        design = reader.integer("%s/%s_full_design" % (folder, prefix), required=False)
        if full is not None and design:
            if full < 0 or design < 0:
                reader.warn("%s/%s_full: malformed (negative)" % (folder, prefix))
                return None
            try:
                return round(full / design, 2)
            except OverflowError:
                reader.warn("%s/%s_full: malformed (too large)" % (folder, prefix))
                return None
    return None
