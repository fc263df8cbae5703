# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Resource discovery: the profile's ``cpu`` (cores, BogoMIPS, load) from /proc and /sys.

The cgroup CPU quota that can lower the core count is in ``_discovery_cgroups``.

Standard library only, Python >= 3.9: this runs on managed nodes.
"""

from __future__ import annotations

import math
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._discovery_reader import Reader


def measure(raw: str) -> float:
    """A figure the kernel prints that can only be finite and >= 0 (BogoMIPS, load);
    raises ValueError otherwise, so NaN, inf and negatives never reach the profile."""
    value = float(raw)
    if not math.isfinite(value) or value < 0:
        raise ValueError("%r is not a finite number >= 0" % raw)
    return value


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


def cpuinfo_value(blocks: t.Sequence[t.Dict[str, str]], *keys: str) -> t.Optional[str]:
    """The first non-empty value of ``keys``, tried in order, from any block (the board block included)."""
    for key in keys:
        for block in blocks:
            if block.get(key):
                return block[key]
    return None


def bogomips(reader: Reader, blocks: t.Sequence[t.Dict[str, str]]) -> t.Optional[float]:
    """The per-core BogoMIPS (x86 prints ``bogomips``, ARM ``BogoMIPS``); the mean when cores differ.

    None when the kernel prints none: some ARM kernels do not (it is not a malformed file)."""
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
        return None
    return round(sum(values) / len(values), 2)


def online_cpus(reader: Reader, blocks: t.Sequence[t.Dict[str, str]]) -> int:
    """The kernel's list of online CPUs, else of present ones; cpuinfo only when neither can be read,
    as what it prints differs between kernels (uniprocessor ARM kernels print no ``processor`` line)."""
    for path, required in (("/sys/devices/system/cpu/online", True), ("/sys/devices/system/cpu/present", False)):
        text = reader.text(path, required=required)
        if text is None:
            continue
        try:
            return parse_cpu_list(text)
        except ValueError:
            reader.warn("%s: malformed (%r is not a cpu list)" % (path, text[:40]))
    processors = sum(1 for block in blocks if "processor" in block)
    if processors:
        return processors
    reader.warn("cpu.cores: no source gave a CPU count, assuming 1")
    return 1


def load1(reader: Reader) -> t.Optional[float]:
    text = reader.text("/proc/loadavg")
    if text is None:
        return None
    try:
        return round(measure(text.split()[0]), 2)
    except (ValueError, IndexError):
        reader.warn("/proc/loadavg: malformed (%r)" % text[:40])
        return None
