# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The folders discovery reads, watched without netlink: inotify (through ctypes) and a stat signature.

The folders are those of ``_discovery*.py`` whose content changes while a
node runs (``FOLDERS``, under the configured root); a power supply's own
folder is looked into too, since its capacity and status change there.
inotify tells at once where the kernel or a program writes these files (a
container's fake hardware, which the demo cluster plugs and unplugs as plain
files); the kernel's own sysfs raises no inotify events for devices, which is
what the uevents are for. The stat signature (names, inodes, sizes and
modification times) is taken every ``poll_interval`` seconds in any case: it
catches what a lost or absent watch misses, such as a folder that appears
after the start.

Standard library only, Python >= 3.9: this runs on the workers.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import struct
import typing as t

FOLDERS = (
    "sys/bus/usb/devices",
    "sys/bus/i2c/devices",
    "sys/bus/w1/devices",
    "sys/class/power_supply",
    "sys/class/net",
    "sys/class/bluetooth",
)
# Folders whose entries are looked into as well (each entry is one supply with its own files).
DEEP = frozenset(("sys/class/power_supply",))

IN_MODIFY = 0x002
IN_ATTRIB = 0x004
IN_CLOSE_WRITE = 0x008
IN_MOVED_FROM = 0x040
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ONLYDIR = 0x01000000
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000
WATCH_MASK = (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
              | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)
_EVENT = struct.Struct("iIII")


def watched_folders(root: str) -> t.List[str]:
    """The folders to watch under ``root`` that exist now: FOLDERS, and the entries of the DEEP ones."""
    found = []
    for folder in FOLDERS:
        path = os.path.join(root, folder)
        if not os.path.isdir(path):
            continue
        found.append(path)
        if folder in DEEP:
            found.extend(os.path.join(path, name) for name in _entries(path) if os.path.isdir(os.path.join(path, name)))
    return found


def _entries(path: str) -> t.List[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def signature(root: str) -> t.Tuple[t.Any, ...]:
    """What the watched folders hold, cheaply: each entry's name, inode, size and modification time."""
    parts: t.List[t.Any] = []
    for folder in FOLDERS:
        parts.append(_folder_signature(os.path.join(root, folder), deep=folder in DEEP))
    return tuple(parts)


def _folder_signature(path: str, deep: bool) -> t.Any:
    if not os.path.isdir(path):
        return None
    entries = []
    for name in _entries(path):
        full = os.path.join(path, name)
        try:
            stat = os.lstat(full)
        except OSError:
            continue  # gone between the listing and the look
        entry: t.Tuple[t.Any, ...] = (name, stat.st_ino, stat.st_size, stat.st_mtime_ns)
        if deep and os.path.isdir(full):
            entry += (_folder_signature(full, deep=False),)
        entries.append(entry)
    return tuple(entries)


class InotifyError(OSError):
    """inotify cannot be used here (no libc, no inotify, too many watches)."""


class Inotify:
    """A non-blocking inotify descriptor over the watched folders (the loop reads it with add_reader)."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("c")
        try:
            self._libc = ctypes.CDLL(name, use_errno=True)
            init1 = self._libc.inotify_init1
        except (OSError, AttributeError) as exc:
            raise InotifyError(errno.ENOSYS, "inotify: %s" % exc) from None
        self.fd = init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd < 0:
            code = ctypes.get_errno()
            raise InotifyError(code, "inotify: %s" % os.strerror(code))
        self.watches: t.Dict[int, str] = {}

    def watch(self, paths: t.Iterable[str]) -> None:
        """Add a watch on each folder not watched yet (a folder made again gets a new one)."""
        current = set(self.watches.values())
        for path in paths:
            if path in current:
                continue
            wd = self._libc.inotify_add_watch(self.fd, os.fsencode(path), WATCH_MASK)
            if wd < 0:
                code = ctypes.get_errno()
                if code in (errno.ENOENT, errno.ENOTDIR):
                    continue  # gone meanwhile: the next look finds it again or not
                raise InotifyError(code, "inotify watch %s: %s" % (path, os.strerror(code)))
            self.watches[wd] = path

    def read(self) -> t.List[str]:
        """The folders where something happened since the last read (``*`` when the kernel's queue overflowed)."""
        changed: t.List[str] = []
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return changed
            offset = 0
            while offset + _EVENT.size <= len(data):
                wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
                offset += _EVENT.size + length
                if mask & IN_Q_OVERFLOW:
                    changed.append("*")
                    continue
                path = self.watches.get(wd)
                if mask & IN_IGNORED:
                    self.watches.pop(wd, None)  # the folder went away; watch() adds it again when it is back
                if path is not None and path not in changed:
                    changed.append(path)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
