# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Resource discovery: the profile's ``devices``, the sensors and actuators the catalog knows.

Read from a HAT's EEPROM in the device tree, the USB, I2C and 1-Wire buses.

Standard library only, Python >= 3.9: this runs on managed nodes.
"""

from __future__ import annotations

import re
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._device_catalog import Catalog
from ansible_collections.nanoedge.core.plugins.module_utils._discovery_reader import Reader

_I2C_CLIENT_RE = re.compile(r"^\d+-[0-9a-fA-F]{4}$")
_W1_SLAVE_RE = re.compile(r"^([0-9a-fA-F]{2})-([0-9a-fA-F]{12})$")


def _device(entry: t.Dict[str, str], bus: str, device_id: str, **extra: t.Optional[str]) -> t.Dict[str, str]:
    device = {"capability": entry["capability"], "kind": entry["kind"], "name": entry["name"],
              "bus": bus, "id": device_id}
    device.update((k, v) for k, v in extra.items() if v)
    return device


def hat_devices(reader: Reader, catalog: Catalog, dt_base: t.Optional[str]) -> t.List[t.Dict[str, str]]:
    if dt_base is None or not reader.isdir(dt_base + "/hat"):
        return []
    folder = dt_base + "/hat"
    product = reader.text(folder + "/product")
    if not product:
        if product == "":
            reader.warn("%s/product: malformed (empty)" % folder)
        return []
    uuid = reader.text(folder + "/uuid", required=False)
    return [_device(entry, "hat", product, serial=uuid) for entry in catalog.lookup("hat", product)]


def usb_devices(reader: Reader, catalog: Catalog) -> t.List[t.Dict[str, str]]:
    devices: t.List[t.Dict[str, str]] = []
    base = "/sys/bus/usb/devices"
    for name in reader.listdir(base):
        if ":" in name:
            continue  # an interface of a device, not a device
        folder = "%s/%s" % (base, name)
        vendor = reader.text(folder + "/idVendor", required=False)
        product = reader.text(folder + "/idProduct", required=False)
        if vendor is None and product is None:
            continue
        usb_id = "%s:%s" % ((vendor or "").lower(), (product or "").lower())
        if not re.fullmatch(r"^[0-9a-f]{4}:[0-9a-f]{4}$", usb_id):
            reader.warn("%s: malformed (USB id %r)" % (folder, usb_id[:20]))
            continue
        entries = catalog.lookup("usb", usb_id)
        if entries:
            serial = reader.text(folder + "/serial", required=False)
            devices.extend(_device(entry, "usb", usb_id, serial=serial, path=name) for entry in entries)
    return devices


def i2c_devices(reader: Reader, catalog: Catalog) -> t.List[t.Dict[str, str]]:
    devices: t.List[t.Dict[str, str]] = []
    base = "/sys/bus/i2c/devices"
    for name in reader.listdir(base):
        if not _I2C_CLIENT_RE.fullmatch(name):
            continue  # i2c-N adapters
        device_name = reader.text("%s/%s/name" % (base, name))
        if not device_name:
            continue
        devices.extend(_device(entry, "i2c", device_name, path=name) for entry in catalog.lookup("i2c", device_name))
    return devices


def w1_devices(reader: Reader, catalog: Catalog) -> t.List[t.Dict[str, str]]:
    devices: t.List[t.Dict[str, str]] = []
    for name in reader.listdir("/sys/bus/w1/devices"):
        found = _W1_SLAVE_RE.fullmatch(name)
        if not found:
            continue  # bus masters and devices the kernel could not read (00-...)
        family, serial = found.group(1).lower(), found.group(2).lower()
        devices.extend(_device(entry, "w1", name.lower(), serial=serial) for entry in catalog.lookup("w1", family))
    return devices


def devices(reader: Reader, catalog: Catalog, dt_base: t.Optional[str]) -> t.List[t.Dict[str, str]]:
    found = (hat_devices(reader, catalog, dt_base) + usb_devices(reader, catalog)
             + i2c_devices(reader, catalog) + w1_devices(reader, catalog))
    return sorted(found, key=lambda d: (d["capability"], d["bus"], d["id"], d.get("path", ""), d.get("serial", "")))
