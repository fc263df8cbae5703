# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Resource discovery: the profile's ``memory_mb`` and ``storage_mb``, in MiB.

Standard library only, Python >= 3.9: this runs on managed nodes.
"""

from __future__ import annotations

import os
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._discovery_cgroups import Cgroups
from ansible_collections.nanoedge.core.plugins.module_utils._discovery_reader import Reader

MIB = 1024 * 1024


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
