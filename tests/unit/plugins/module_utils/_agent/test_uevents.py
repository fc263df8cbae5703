# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kernel uevents: recorded datagrams parsed, which ones start a discovery, malformed ones logged once."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest

from ansible_collections.nanoedge.core.plugins.module_utils._agent import uevents

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "uevent"
USB = "/devices/platform/soc/fe980000.usb/usb1/1-1/1-1.3"


def datagram(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.mark.parametrize("name, action, devpath, subsystem, field, matters", [
    ("usb_ftdi_add.bin", "add", USB, "usb", ("PRODUCT", "403/6001/600"), True),
    ("usb_ftdi_interface_add.bin", "add", USB + "/1-1.3:1.0", "usb", ("INTERFACE", "255/255/255"), True),
    ("tty_ttyusb0_add.bin", "add", USB + "/1-1.3:1.0/ttyUSB0/tty/ttyUSB0", "tty", ("DEVNAME", "ttyUSB0"), False),
    ("usb_ftdi_remove.bin", "remove", USB, "usb", ("DEVTYPE", "usb_device"), True),
    ("power_supply_change.bin", "change", "/devices/platform/soc/fe804000.i2c/i2c-1/1-0036/power_supply/max17040",
     "power_supply", ("POWER_SUPPLY_CAPACITY", "18"), True),
    ("w1_slave_add.bin", "add", "/devices/w1_bus_master1/28-0316a2798aff", "w1", ("W1_FID", "28"), True),
    ("block_add.bin", "add", "/devices/virtual/block/loop3", "block", ("DEVNAME", "loop3"), False),
])
def test_recorded_uevents(name, action, devpath, subsystem, field, matters):
    event = uevents.parse_uevent(datagram(name))
    assert (event.action, event.devpath, event.subsystem) == (action, devpath, subsystem)
    assert event.fields[field[0]] == field[1]
    assert event.fields["ACTION"] == action
    assert uevents.matters(event) is matters


def test_udev_rebroadcasts_are_ignored():
    assert uevents.parse_uevent(datagram("libudev_usb_add.bin")) is None


@pytest.mark.parametrize("data, kind, message", [
    (datagram("malformed_no_nul.bin"), "no NUL", "no NUL: 67 bytes without a field separator"),
    (datagram("malformed_no_at.bin"), "no ACTION@DEVPATH", "no ACTION@DEVPATH: header 'add /devices/w1_bus_master1'"),
    (datagram("malformed_no_subsystem.bin"), "no SUBSYSTEM", "no SUBSYSTEM: in add@/devices/w1_bus_master1"),
    (datagram("malformed_field.bin"), "field without '='",
     "field without '=': 'SUBSYSTEM' in add@/devices/w1_bus_master1"),
    (datagram("malformed_disagree.bin"), "header and fields disagree",
     "header and fields disagree: 'add@/devices/a', ACTION='remove' DEVPATH='/devices/a'"),
    (datagram("malformed_not_utf8.bin"), "not UTF-8", "not UTF-8: b'add@/devices/\\xff\\xfe\\x00ACTION=add\\x00SUBSYSTEM=usb'"),
    (b"add@/devices/x\0SUBSYSTEM=usb\0" + b"A=" + b"x" * 9000 + b"\0", "too large", "too large: 9032 bytes (at most 8192)"),
    (b"\0", "no ACTION@DEVPATH", "no ACTION@DEVPATH: header ''"),
    (b"add@devices/x\0SUBSYSTEM=usb\0", "no ACTION@DEVPATH", "no ACTION@DEVPATH: header 'add@devices/x'"),
], ids=["no-nul", "no-at", "no-subsystem", "field", "disagree", "not-utf8", "huge", "empty", "relative-devpath"])
def test_malformed(data, kind, message):
    with pytest.raises(uevents.UeventError) as info:
        uevents.parse_uevent(data)
    assert (info.value.kind, str(info.value)) == (kind, message)


def test_relevant_reasons_and_each_fault_logged_once(caplog):
    caplog.set_level(logging.WARNING)
    once = uevents.OnceLog(logging.getLogger("test"), "events")
    names = ["usb_ftdi_add.bin", "malformed_no_nul.bin", "usb_ftdi_interface_add.bin", "tty_ttyusb0_add.bin",
             "libudev_usb_add.bin", "malformed_no_nul.bin", "block_add.bin", "malformed_no_at.bin",
             "w1_slave_add.bin"]
    found = uevents.relevant([datagram(name) for name in names], once)
    assert found == ["uevent add usb %s" % USB, "uevent add usb %s/1-1.3:1.0" % USB,
                     "uevent add w1 /devices/w1_bus_master1/28-0316a2798aff"]
    assert [record.getMessage() for record in caplog.records] == [
        "events: malformed uevent, no NUL: 67 bytes without a field separator "
        "(ignored; further ones of this kind are not logged)",
        "events: malformed uevent, no ACTION@DEVPATH: header 'add /devices/w1_bus_master1' "
        "(ignored; further ones of this kind are not logged)",
    ]


def test_read_datagrams_until_empty():
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with left, right:
        right.setblocking(False)
        for name in ("usb_ftdi_add.bin", "w1_slave_add.bin"):
            left.send(datagram(name))
        assert uevents.read_datagrams(right) == ([datagram("usb_ftdi_add.bin"), datagram("w1_slave_add.bin")], False)
        assert uevents.read_datagrams(right) == ([], False)


def test_netlink_opens_or_says_why():
    sock, why = uevents.open_netlink()
    if sock is None:
        assert why.startswith(("netlink socket: ", "netlink bind: ", "this system has no netlink"))
    else:
        with sock:
            assert (sock.family, sock.proto, sock.getblocking(), why) == (socket.AF_NETLINK, 15, False, "")
