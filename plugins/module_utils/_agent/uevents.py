# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kernel uevents: the datagrams of a NETLINK_KOBJECT_UEVENT socket, parsed, and which of them matter.

A kernel uevent is ``ACTION@DEVPATH`` followed by NUL-separated ``KEY=VALUE``
fields (``ACTION``, ``DEVPATH``, ``SUBSYSTEM``, ``SEQNUM``, ...). udev's own
re-broadcasts on the same family start with ``libudev`` and a binary header:
they repeat what the kernel said and are ignored.

Only the subsystems discovery reads (``_discovery*.py``) start a new
discovery: ``usb`` (the USB tree, ``_discovery_devices``), ``i2c`` and ``w1``
(the I2C and 1-Wire buses), ``power_supply`` (``_discovery_power``), ``net``
and ``bluetooth`` (``_discovery_network``) and ``cpu`` (CPUs going online or
offline, ``_discovery_cpu``). ``tty`` is left out: discovery finds a USB
serial adapter in the USB tree, and its ``usb`` events come with the
``tty`` ones. A HAT is read from the device tree once, at boot: nothing to
watch.

Standard library only, Python >= 3.9: this runs on the workers.
"""

from __future__ import annotations

import errno
import logging
import socket
import typing as t

SUBSYSTEMS = frozenset(("usb", "i2c", "w1", "power_supply", "net", "bluetooth", "cpu"))
NETLINK_KOBJECT_UEVENT = 15
KERNEL_GROUP = 1
# The kernel's uevent buffer is 2048 bytes of fields plus the header; a datagram far beyond that is not one.
MAX_UEVENT_BYTES = 8192
LIBUDEV_PREFIX = b"libudev\0"


class UeventError(ValueError):
    """A datagram that is not a kernel uevent; ``kind`` names the fault (logged once per kind)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__("%s: %s" % (kind, detail))
        self.kind = kind


class Uevent(t.NamedTuple):
    action: str
    devpath: str
    subsystem: str
    fields: t.Dict[str, str]

    def describe(self) -> str:
        return "uevent %s %s %s" % (self.action, self.subsystem, self.devpath)


def parse_uevent(datagram: bytes) -> t.Optional[Uevent]:
    """The kernel uevent in ``datagram``; None for udev's own messages; UeventError when malformed."""
    if datagram.startswith(LIBUDEV_PREFIX):
        return None
    if len(datagram) > MAX_UEVENT_BYTES:
        raise UeventError("too large", "%d bytes (at most %d)" % (len(datagram), MAX_UEVENT_BYTES))
    if b"\0" not in datagram:
        raise UeventError("no NUL", "%d bytes without a field separator" % len(datagram))
    parts = datagram.rstrip(b"\0").split(b"\0")
    try:
        header, *fields = [part.decode("utf-8") for part in parts]
    except UnicodeDecodeError:
        raise UeventError("not UTF-8", "%r" % datagram[:40]) from None
    action, at, devpath = header.partition("@")
    if not at or not action or not devpath.startswith("/"):
        raise UeventError("no ACTION@DEVPATH", "header %r" % header[:60])
    values = {}
    for field in fields:
        key, equals, value = field.partition("=")
        if not equals or not key:
            raise UeventError("field without '='", "%r in %s" % (field[:40], header[:60]))
        values[key] = value
    if values.get("ACTION", action) != action or values.get("DEVPATH", devpath) != devpath:
        raise UeventError("header and fields disagree", "%r, ACTION=%r DEVPATH=%r" % (
            header[:60], values.get("ACTION"), values.get("DEVPATH")))
    subsystem = values.get("SUBSYSTEM")
    if not subsystem:
        raise UeventError("no SUBSYSTEM", "in %s" % header[:60])
    return Uevent(action, devpath, subsystem, values)


def matters(event: Uevent) -> bool:
    return event.subsystem in SUBSYSTEMS


class OnceLog:
    """Logs the first occurrence of each kind of fault, and nothing for the ones after it."""

    def __init__(self, log: logging.Logger, what: str) -> None:
        self.log = log
        self.what = what
        self.seen: t.Set[str] = set()

    def __call__(self, kind: str, message: str) -> None:
        if kind not in self.seen:
            self.seen.add(kind)
            self.log.warning("%s: %s (ignored; further ones of this kind are not logged)", self.what, message)


def open_netlink() -> t.Tuple[t.Optional[socket.socket], str]:
    """A non-blocking socket on the kernel's uevents, or (None, why not) where it is not permitted."""
    family = getattr(socket, "AF_NETLINK", None)
    if family is None:
        return None, "this system has no netlink"
    try:
        sock = socket.socket(family, socket.SOCK_DGRAM, NETLINK_KOBJECT_UEVENT)
    except OSError as exc:
        return None, "netlink socket: %s" % (exc.strerror or exc)
    try:
        sock.bind((0, KERNEL_GROUP))
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        return None, "netlink bind: %s" % (exc.strerror or exc)
    return sock, ""


def read_datagrams(sock: socket.socket) -> t.Tuple[t.List[bytes], bool]:
    """Every datagram waiting on ``sock``, and whether the kernel dropped some (ENOBUFS: the socket overflowed)."""
    datagrams: t.List[bytes] = []
    overflowed = False
    while True:
        try:
            # one more byte than a uevent may have, so a huge one shows as too large rather than truncated
            datagrams.append(sock.recv(MAX_UEVENT_BYTES + 1))
        except BlockingIOError:
            return datagrams, overflowed
        except OSError as exc:
            if exc.errno != errno.ENOBUFS:
                raise
            overflowed = True


def relevant(datagrams: t.Iterable[bytes], malformed: OnceLog) -> t.List[str]:
    """What each datagram that matters says (``uevent add usb /devices/...``); malformed ones are logged once."""
    found = []
    for datagram in datagrams:
        try:
            event = parse_uevent(datagram)
        except UeventError as exc:
            malformed(exc.kind, "malformed uevent, %s" % exc)
            continue
        if event is not None and matters(event):
            found.append(event.describe())
    return found
