# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading a DS18B20 (1-Wire family 28) through the Linux w1_therm driver.

``/sys/bus/w1/devices/28-*/w1_slave`` holds two lines: the 9 scratchpad
bytes with the driver's CRC verdict, then the same bytes with ``t=`` the
temperature in thousandths of a degree Celsius::

    52 02 4b 46 7f ff 0c 10 1c : crc=1c YES
    52 02 4b 46 7f ff 0c 10 1c t=37125

The CRC is checked again here (Dallas/Maxim CRC-8, polynomial x^8+x^5+x^4+1)
because a reading is worth nothing when the bus garbled it.
"""

from __future__ import annotations

import glob
import os
import typing as t

POWER_ON_RESET_MILLIDEGREES = 85000  # what a DS18B20 reports before its first conversion


class W1Error(ValueError):
    """The w1_slave text is not a good reading; the message says why."""


def crc8(data: t.Iterable[int]) -> int:
    crc = 0
    for byte in data:
        for _bit in range(8):
            mix = (crc ^ byte) & 0x01
            crc >>= 1
            if mix:
                crc ^= 0x8C
            byte >>= 1
    return crc


def parse_w1_slave(text: str) -> float:
    """Degrees Celsius from a w1_slave file's text."""
    lines = [line.strip() for line in text.strip().splitlines()]
    if len(lines) != 2:
        raise W1Error("w1_slave: expected 2 lines, got %d" % len(lines))
    first, second = lines
    if not first.endswith("YES"):
        raise W1Error("w1_slave: the driver reports a CRC error: %r" % first)
    try:
        scratchpad = bytes(int(part, 16) for part in first.split(":")[0].split())
    except ValueError as exc:
        raise W1Error("w1_slave: unreadable scratchpad %r" % first) from exc
    if len(scratchpad) != 9:
        raise W1Error("w1_slave: scratchpad has %d bytes, expected 9" % len(scratchpad))
    if crc8(scratchpad[:8]) != scratchpad[8]:
        raise W1Error("w1_slave: CRC mismatch (computed %02x, device sent %02x)"
                      % (crc8(scratchpad[:8]), scratchpad[8]))
    marker = second.rfind("t=")
    if marker < 0:
        raise W1Error("w1_slave: no t= value in %r" % second)
    try:
        millidegrees = int(second[marker + 2:])
    except ValueError as exc:
        raise W1Error("w1_slave: bad temperature %r" % second[marker:]) from exc
    if millidegrees == POWER_ON_RESET_MILLIDEGREES:
        raise W1Error("w1_slave: 85.000 C is the power-on value, no conversion happened")
    return millidegrees / 1000.0


def find_sensors(devices_dir: str = "/sys/bus/w1/devices", family: str = "28") -> t.List[str]:
    """The w1_slave files of the sensors of one family, sorted by id."""
    return sorted(glob.glob(os.path.join(devices_dir, "%s-*" % family, "w1_slave")))
