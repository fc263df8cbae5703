# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Resource discovery (paper step 1): build a node's profile P_i from /proc and /sys.

Everything is read directly from files (no subprocess, no lshw), under a
configurable root so tests run on recorded fixture trees. A source that is
missing, unreadable or malformed is skipped and named in the warnings; the
profile is still complete and valid (docs/contracts.md, "The profile"). Hardware that is
simply absent (no battery, no HAT, no 1-Wire bus) is not a warning.

Standard library only, Python >= 3.9: this runs on managed nodes.
"""

from __future__ import annotations

import datetime
import math
import os
import re
import socket
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._device_catalog import Catalog
from ansible_collections.nanoedge.core.plugins.module_utils._profile import (
    CAPABILITY_RE,
    NODE_NAME_RE,
    SCHEMA_VERSION,
)

MIB = 1024 * 1024

# a v1 memory limit this large means "no limit" (the kernel reports
# PAGE_COUNTER_MAX pages in bytes, about 2**63)
_V1_UNLIMITED = 1 << 62

_ARPHRD_ETHER = 1
_I2C_CLIENT_RE = re.compile(r"^\d+-[0-9a-fA-F]{4}$")
_W1_SLAVE_RE = re.compile(r"^([0-9a-fA-F]{2})-([0-9a-fA-F]{12})$")
_HCI_RE = re.compile(r"^hci\d+$")
_ARM_ARCH_RE = re.compile(r"\((v\d+l)\)")

# older kernels (and some charger drivers still) name the USB charger kind in
# the type itself: USB_DCP, USB_CDP, USB_ACA, USB_C, USB_PD, USB_PD_DRP
EXTERNAL_SUPPLY_TYPES = ("Mains", "USB", "UPS", "Wireless", "BrickID")
CHARGING_STATUS = {"Charging": True, "Discharging": False, "Not charging": False, "Full": False}


class DiscoveryError(ValueError):
    """Input the caller controls (node name, labels, capabilities) is invalid."""


class Reader:
    """Reads files under ``root`` and collects warnings for sources it must skip.

    Paths in warnings are the paths on the target (``/proc/meminfo``), not the
    root-prefixed ones, so warnings read the same on a real node and on a
    fixture tree.
    """

    def __init__(self, root: str = "/") -> None:
        self.root = root or "/"
        self.warnings: t.List[str] = []

    def path(self, path: str) -> str:
        return os.path.join(self.root, path.lstrip("/"))

    def warn(self, message: str) -> None:
        # several values can come from one file; name its problem once
        if message not in self.warnings:
            self.warnings.append(message)

    def exists(self, path: str) -> bool:
        return os.path.exists(self.path(path))

    def isdir(self, path: str) -> bool:
        return os.path.isdir(self.path(path))

    def listdir(self, path: str) -> t.List[str]:
        """Sorted entries of a folder; [] when the folder does not exist."""
        try:
            return sorted(os.listdir(self.path(path)))
        except FileNotFoundError:
            return []
        except OSError as exc:
            self.warn("%s: unreadable (%s)" % (path, exc.strerror or exc))
            return []

    def text(self, path: str, *, required: bool = True) -> t.Optional[str]:
        """File content without trailing NULs and whitespace (device-tree strings end in NUL).

        A missing file is a warning only when ``required``; an unreadable or
        undecodable one always is.
        """
        try:
            with open(self.path(path), "rb") as handle:
                raw = handle.read()
        except FileNotFoundError:
            if required:
                self.warn("%s: missing" % path)
            return None
        except OSError as exc:
            self.warn("%s: unreadable (%s)" % (path, exc.strerror or exc))
            return None
        try:
            return raw.decode("utf-8").rstrip("\0\n\r\t ")
        except UnicodeDecodeError:
            self.warn("%s: malformed (not UTF-8 text)" % path)
            return None

    def integer(self, path: str, *, required: bool = True) -> t.Optional[int]:
        value = self.text(path, required=required)
        if value is None:
            return None
        try:
            return int(value)
        except ValueError:
            self.warn("%s: malformed (expected an integer, got %r)" % (path, value[:40]))
            return None


def measure(raw: str) -> float:
    """A figure the kernel prints that can only be finite and >= 0 (BogoMIPS, load);
    raises ValueError otherwise, so NaN, inf and negatives never reach the profile."""
    value = float(raw)
    if not math.isfinite(value) or value < 0:
        raise ValueError("%r is not a finite number >= 0" % raw)
    return value


# --- CPU ---------------------------------------------------------------------

def parse_cpuinfo(text: str) -> t.List[t.Dict[str, str]]:
    """Split /proc/cpuinfo into blocks of ``key: value`` (one per processor, plus
    the trailing board block ARM kernels print)."""
    blocks: t.List[t.Dict[str, str]] = []
    current: t.Dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
                current = {}
            continue
        key, sep, value = line.partition(":")
        if sep:
            current.setdefault(key.strip(), value.strip())
    if current:
        blocks.append(current)
    return blocks


def parse_cpu_list(text: str) -> int:
    """Count the CPUs in a kernel cpu list such as ``0-3`` or ``0,2-3``."""
    count = 0
    for part in text.strip().split(","):
        low, sep, high = part.partition("-")
        start = int(low)
        end = int(high) if sep else start
        if end < start:
            raise ValueError("range %s is reversed" % part)
        count += end - start + 1
    if count < 1:
        raise ValueError("no CPUs listed")
    return count


def _cpuinfo_value(blocks: t.Sequence[t.Dict[str, str]], *keys: str) -> t.Optional[str]:
    for key in keys:
        for block in blocks:
            if block.get(key):
                return block[key]
    return None


def bogomips(reader: Reader, blocks: t.Sequence[t.Dict[str, str]]) -> t.Optional[float]:
    """The per-core BogoMIPS (x86 prints ``bogomips``, ARM ``BogoMIPS``); the mean when cores differ."""
    values: t.List[float] = []
    for block in blocks:
        raw = block.get("BogoMIPS", block.get("bogomips"))
        if raw is None:
            continue
        try:
            values.append(measure(raw))
        except ValueError:
            reader.warn("/proc/cpuinfo: malformed (BogoMIPS %r is not a finite number >= 0)" % raw[:40])
            return None
    if not values:
        if blocks:
            reader.warn("/proc/cpuinfo: malformed (no BogoMIPS line)")
        return None
    return round(sum(values) / len(values), 2)


def online_cpus(reader: Reader, blocks: t.Sequence[t.Dict[str, str]]) -> int:
    text = reader.text("/sys/devices/system/cpu/online")
    if text is not None:
        try:
            return parse_cpu_list(text)
        except ValueError:
            reader.warn("/sys/devices/system/cpu/online: malformed (%r is not a cpu list)" % text[:40])
    processors = sum(1 for block in blocks if "processor" in block)
    if processors:
        return processors
    reader.warn("cpu.cores: no source gave a CPU count, assuming 1")
    return 1


# --- cgroups -----------------------------------------------------------------

class Cgroups:
    """The cgroup folders that apply to this process, v2 (unified) or v1.

    Every ancestor of the process's cgroup can carry a limit, so each lookup
    walks from the process's own cgroup up to the mount root. Inside a
    container the process's path (from the host's view) often does not exist
    under the container's cgroup mount, whose root is then the container's
    own cgroup.
    """

    MOUNT = "/sys/fs/cgroup"

    def __init__(self, reader: Reader) -> None:
        self.reader = reader
        self.unified = reader.exists(self.MOUNT + "/cgroup.controllers")
        self.paths: t.Dict[str, str] = {}
        text = reader.text("/proc/self/cgroup", required=False)
        for line in (text or "").splitlines():
            parts = line.split(":", 2)
            if len(parts) != 3:
                continue
            controllers, path = parts[1], parts[2]
            for controller in controllers.split(",") if controllers else [""]:
                self.paths[controller] = path

    def _folders(self, base: str, path: str) -> t.List[str]:
        folders: t.List[str] = []
        # "/.." shows up for processes outside the reader's cgroup namespace
        parts = [p for p in path.split("/") if p and p not in (".", "..")]
        while parts:
            candidate = "/".join([base] + parts)
            if self.reader.isdir(candidate):
                folders.append(candidate)
            parts.pop()
        folders.append(base)
        return folders

    def v2_folders(self) -> t.List[str]:
        return self._folders(self.MOUNT, self.paths.get("", "/"))

    # a file every mount of the v1 controller has at its top
    _V1_MARKERS = {"cpu": "cpu.cfs_period_us", "memory": "memory.limit_in_bytes"}

    def v1_folders(self, controller: str) -> t.List[str]:
        for mount_name in ("cpu,cpuacct", "cpuacct,cpu", controller) if controller == "cpu" else (controller,):
            base = "%s/%s" % (self.MOUNT, mount_name)
            # systemd leaves an empty cpu,cpuacct folder beside the real mount in
            # some containers: only a folder with the controller's files counts
            if self.reader.exists("%s/%s" % (base, self._V1_MARKERS[controller])):
                return self._folders(base, self.paths.get(controller, "/"))
        return []

    def cpu_limit(self) -> t.Optional[int]:
        """floor(quota / period), at least 1; None without a quota."""
        limits: t.List[int] = []
        if self.unified:
            for folder in self.v2_folders():
                text = self.reader.text(folder + "/cpu.max", required=False)
                if text is None:
                    continue
                fields = text.split()
                if fields and fields[0] == "max":
                    continue
                try:
                    quota, period = int(fields[0]), int(fields[1])
                    if quota <= 0 or period <= 0:
                        raise ValueError
                except (ValueError, IndexError):
                    self.reader.warn("%s/cpu.max: malformed (%r)" % (folder, text[:40]))
                    continue
                limits.append(max(1, quota // period))
        else:
            for folder in self.v1_folders("cpu"):
                quota = self.reader.integer(folder + "/cpu.cfs_quota_us", required=False)
                if quota is None or quota < 0:
                    continue
                period = self.reader.integer(folder + "/cpu.cfs_period_us")
                if not period or period <= 0:
                    continue
                limits.append(max(1, quota // period))
        return min(limits) if limits else None

    def memory_limit(self) -> t.Tuple[t.Optional[int], t.Optional[int]]:
        """(limit, headroom) in bytes: the tightest limit of any level and the
        least headroom of any level; (None, None) without a limit.

        Headroom is a level's limit minus what it uses, not counting inactive
        page cache (the kernel reclaims it before the limit bites), which is
        also how ``docker stats`` reports usage. A parent slice can have less
        headroom than its child even with a higher limit, as its siblings use
        memory too.
        """
        limits: t.List[int] = []
        headrooms: t.List[int] = []
        if self.unified:
            levels = [(f, "memory.max", "memory.current", "inactive_file") for f in self.v2_folders()]
        else:
            levels = [(f, "memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")
                      for f in self.v1_folders("memory")]
        for folder, limit_file, usage_file, inactive_key in levels:
            text = self.reader.text("%s/%s" % (folder, limit_file), required=False)
            if text is None or text == "max":
                continue
            try:
                limit = int(text)
            except ValueError:
                self.reader.warn("%s/%s: malformed (%r)" % (folder, limit_file, text[:40]))
                continue
            if limit < 0:
                self.reader.warn("%s/%s: malformed (negative limit %d)" % (folder, limit_file, limit))
                continue
            if limit >= _V1_UNLIMITED:
                continue
            limits.append(limit)
            usage = self.reader.integer("%s/%s" % (folder, usage_file), required=False)
            if usage is not None:
                headrooms.append(max(0, limit - max(0, usage - self._stat(folder, inactive_key))))
        if not limits:
            return None, None
        return min(limits), (min(headrooms) if headrooms else None)

    def _stat(self, folder: str, key: str) -> int:
        text = self.reader.text(folder + "/memory.stat", required=False) or ""
        for line in text.splitlines():
            name, sep, value = line.partition(" ")
            if sep and name == key:
                try:
                    return int(value)
                except ValueError:
                    break
        return 0


# --- memory, storage, load ---------------------------------------------------

def meminfo(reader: Reader) -> t.Tuple[t.Optional[int], t.Optional[int]]:
    """(MemTotal, MemAvailable) in bytes from /proc/meminfo."""
    text = reader.text("/proc/meminfo")
    if text is None:
        return None, None
    fields: t.Dict[str, int] = {}
    for line in text.splitlines():
        key, sep, rest = line.partition(":")
        parts = rest.split() if sep else []
        if parts:
            try:
                value = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
            except ValueError:
                continue
            if value < 0:
                reader.warn("/proc/meminfo: malformed (%s is negative)" % key.strip()[:40])
                continue
            fields[key.strip()] = value
    total = fields.get("MemTotal")
    if total is None:
        reader.warn("/proc/meminfo: malformed (no MemTotal line)")
        return None, None
    available = fields.get("MemAvailable")
    if available is None:
        # kernels before 3.14 have no MemAvailable; this is their usual estimate
        available = fields.get("MemFree", 0) + fields.get("Buffers", 0) + fields.get("Cached", 0)
    return total, min(available, total)


def memory_mb(reader: Reader, cgroups: Cgroups) -> t.Dict[str, int]:
    total, available = meminfo(reader)
    limit, headroom = cgroups.memory_limit()
    if limit is not None:
        total = limit if total is None else min(total, limit)
        if headroom is not None:
            available = headroom if available is None else min(available, headroom)
    total_mb = (total or 0) // MIB
    available_mb = min((available or 0) // MIB, total_mb)
    return {"total": total_mb, "available": available_mb}


def storage_mb(reader: Reader, storage_path: str,
               statvfs: t.Callable[[str], t.Any] = os.statvfs) -> t.Dict[str, int]:
    try:
        st = statvfs(reader.path(storage_path))
    except OSError as exc:
        reader.warn("%s: cannot measure storage (%s)" % (storage_path, exc.strerror or exc))
        return {"total": 0, "free": 0}
    # f_bavail, not f_bfree: blocks reserved for root are not free for services
    total = st.f_blocks * st.f_frsize // MIB
    free = min(st.f_bavail * st.f_frsize // MIB, total)
    return {"total": total, "free": free}


def load1(reader: Reader) -> t.Optional[float]:
    text = reader.text("/proc/loadavg")
    if text is None:
        return None
    try:
        return round(measure(text.split()[0]), 2)
    except (ValueError, IndexError):
        reader.warn("/proc/loadavg: malformed (%r)" % text[:40])
        return None


# --- platform ----------------------------------------------------------------

def device_tree_base(reader: Reader) -> t.Optional[str]:
    """/proc/device-tree, or /sys/firmware/devicetree/base where /proc/device-tree
    is absent (containers; on a Pi the former links to the latter)."""
    for base in ("/proc/device-tree", "/sys/firmware/devicetree/base"):
        if reader.isdir(base):
            return base
    return None


def model(reader: Reader, dt_base: t.Optional[str], blocks: t.Sequence[t.Dict[str, str]]) -> str:
    if dt_base is not None:
        text = reader.text(dt_base + "/model", required=False)
        if text:
            return text
    found = _cpuinfo_value(blocks, "Model", "model name")
    if found:
        return found
    reader.warn("model: no device-tree model and no Model or model name line in /proc/cpuinfo")
    return "unknown"


def arch(reader: Reader, blocks: t.Sequence[t.Dict[str, str]]) -> str:
    text = reader.text("/proc/sys/kernel/arch", required=False)
    if text:
        return text
    if reader.root == "/":
        return os.uname().machine
    # another root (a recorded tree) on a kernel without kernel.arch: derive
    # what uname would say from the CPU description
    model_name = _cpuinfo_value(blocks, "model name") or ""
    found = _ARM_ARCH_RE.search(model_name)
    if found:
        return "arm" + found.group(1)
    architecture = _cpuinfo_value(blocks, "CPU architecture")
    if architecture == "8":
        return "aarch64"
    flags = (_cpuinfo_value(blocks, "flags") or "").split()
    if flags:
        return "x86_64" if "lm" in flags else "i686"
    reader.warn("arch: /proc/sys/kernel/arch is missing and /proc/cpuinfo does not tell")
    return "unknown"


# --- power -------------------------------------------------------------------

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


# --- network -----------------------------------------------------------------

def network(reader: Reader) -> t.List[str]:
    found: t.Set[str] = set()
    base = "/sys/class/net"
    for name in reader.listdir(base):
        folder = "%s/%s" % (base, name)
        if reader.isdir(folder + "/bridge"):
            continue  # a software bridge adds no link of its own
        if reader.isdir(folder + "/brport") and not os.path.lexists(reader.path(folder + "/device")):
            # nor do the virtual ports plugged into it: the host ends of container veth pairs and VM taps
            # (type 1 like Ethernet) would otherwise give a Wi-Fi-only Pi running containers "ethernet"
            continue
        uevent = reader.text(folder + "/uevent", required=False) or ""
        devtype = ""
        for line in uevent.splitlines():
            if line.startswith("DEVTYPE="):
                devtype = line[len("DEVTYPE="):]
        if reader.isdir(folder + "/wireless") or reader.exists(folder + "/phy80211") or devtype == "wlan":
            found.add("wifi")
        elif devtype == "wwan":
            found.add("cellular")
        elif devtype == "bluetooth":
            found.add("bluetooth")
        elif reader.integer(folder + "/type", required=False) == _ARPHRD_ETHER:
            found.add("ethernet")
    if any(_HCI_RE.match(name) for name in reader.listdir("/sys/class/bluetooth")):
        found.add("bluetooth")
    return sorted(found)


# --- sensors and actuators ---------------------------------------------------

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
        if not re.match(r"^[0-9a-f]{4}:[0-9a-f]{4}$", usb_id):
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
        if not _I2C_CLIENT_RE.match(name):
            continue  # i2c-N adapters
        device_name = reader.text("%s/%s/name" % (base, name))
        if not device_name:
            continue
        devices.extend(_device(entry, "i2c", device_name, path=name) for entry in catalog.lookup("i2c", device_name))
    return devices


def w1_devices(reader: Reader, catalog: Catalog) -> t.List[t.Dict[str, str]]:
    devices: t.List[t.Dict[str, str]] = []
    for name in reader.listdir("/sys/bus/w1/devices"):
        found = _W1_SLAVE_RE.match(name)
        if not found:
            continue  # bus masters and devices the kernel could not read (00-...)
        family, serial = found.group(1).lower(), found.group(2).lower()
        devices.extend(_device(entry, "w1", name.lower(), serial=serial) for entry in catalog.lookup("w1", family))
    return devices


def devices(reader: Reader, catalog: Catalog, dt_base: t.Optional[str]) -> t.List[t.Dict[str, str]]:
    found = (hat_devices(reader, catalog, dt_base) + usb_devices(reader, catalog)
             + i2c_devices(reader, catalog) + w1_devices(reader, catalog))
    return sorted(found, key=lambda d: (d["capability"], d["bus"], d["id"], d.get("path", ""), d.get("serial", "")))


# --- the profile -------------------------------------------------------------

def default_node(reader: Reader) -> str:
    """The host name: the kernel's (under root) first, then the resolver's."""
    name = reader.text("/proc/sys/kernel/hostname", required=False) or socket.gethostname()
    return name.strip().lower()


def check_inputs(node: str, capabilities: t.Iterable[t.Any], labels: t.Any) -> t.Tuple[t.List[str], t.Dict[str, str]]:
    """Validate what the caller passes; return (capabilities, labels) normalized."""
    if not NODE_NAME_RE.match(node):
        raise DiscoveryError("node %r must match %s (set option node, e.g. to the inventory hostname)"
                             % (node, NODE_NAME_RE.pattern))
    declared: t.List[str] = []
    for index, cap in enumerate(capabilities):
        if not isinstance(cap, str) or not CAPABILITY_RE.match(cap):
            raise DiscoveryError("capabilities[%d] %r must match %s" % (index, cap, CAPABILITY_RE.pattern))
        declared.append(cap)
    if not isinstance(labels, dict):
        raise DiscoveryError("labels must be a dict of strings, got %s" % type(labels).__name__)
    clean: t.Dict[str, str] = {}
    for key, value in labels.items():
        if not isinstance(key, str) or not key:
            raise DiscoveryError("labels: key %r must be a non-empty string" % (key,))
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, (int, float)):
            value = str(value)
        if not isinstance(value, str):
            raise DiscoveryError("labels.%s: value %r must be a string" % (key, value))
        clean[key] = value
    return declared, clean


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def discover(*, catalog: Catalog, root: str = "/", storage_path: str = "/", node: t.Optional[str] = None,
             capabilities: t.Iterable[t.Any] = (), labels: t.Optional[t.Dict[str, t.Any]] = None,
             statvfs: t.Optional[t.Callable[[str], t.Any]] = None,
             clock: t.Optional[t.Callable[[], str]] = None) -> t.Tuple[t.Dict[str, t.Any], t.List[str]]:
    """Build the profile P_i; return (profile, warnings).

    Raises DiscoveryError only for bad caller input (node, capabilities,
    labels); problems with the host's files become warnings.
    """
    reader = Reader(root)
    node_name = node if node else default_node(reader)
    declared, clean_labels = check_inputs(node_name, capabilities, labels or {})

    cpuinfo_text = reader.text("/proc/cpuinfo")
    blocks = parse_cpuinfo(cpuinfo_text) if cpuinfo_text is not None else []
    cgroups = Cgroups(reader)
    cores = online_cpus(reader, blocks)
    cpu_limit = cgroups.cpu_limit()
    if cpu_limit is not None:
        cores = max(1, min(cores, cpu_limit))
    dt_base = device_tree_base(reader)
    found_devices = devices(reader, catalog, dt_base)

    profile = {
        "schema": SCHEMA_VERSION,
        "node": node_name,
        "collected_at": (clock or utc_now)(),
        "arch": arch(reader, blocks),
        "model": model(reader, dt_base, blocks),
        "cpu": {"cores": cores, "bogomips": bogomips(reader, blocks), "load1": load1(reader)},
        "memory_mb": memory_mb(reader, cgroups),
        "storage_mb": storage_mb(reader, storage_path, statvfs or os.statvfs),
        "power": power(reader),
        "network": network(reader),
        "capabilities": sorted({d["capability"] for d in found_devices} | set(declared)),
        "devices": found_devices,
        "labels": clean_labels,
    }
    return profile, reader.warnings
