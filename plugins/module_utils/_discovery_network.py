# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Resource discovery: the profile's ``network`` (kinds of link) from /sys/class/net and /sys/class/bluetooth.

Standard library only, Python >= 3.9: this runs on managed nodes.
"""

from __future__ import annotations

import re
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._discovery_reader import Reader

_ARPHRD_ETHER = 1
_HCI_RE = re.compile(r"^hci\d+$")


def network(reader: Reader) -> t.List[str]:
    """The kinds of link of the interfaces backed by hardware: those with a ``device`` (the hardware they
    sit on, a link in sysfs).

    Software interfaces have none: bridges, the host ends of veth pairs
    (Docker, systemd-nspawn), tun/tap, WireGuard, dummy, VLANs. Most are
    type 1 like Ethernet and would give a Wi-Fi-only Pi "ethernet". Wireless
    interfaces (and Bluetooth) sit on their radio, so they have a device too.
    """
    found: t.Set[str] = set()
    base = "/sys/class/net"
    for name in reader.listdir(base):
        folder = "%s/%s" % (base, name)
        if not reader.lexists(folder + "/device"):
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
    if any(_HCI_RE.fullmatch(name) for name in reader.listdir("/sys/class/bluetooth")):
        found.add("bluetooth")
    return sorted(found)
