# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Resource discovery: the profile's ``arch`` and ``model``, and where the device tree is.

Standard library only, Python >= 3.9: this runs on managed nodes.
"""

from __future__ import annotations

import os
import re
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._discovery_cpu import cpuinfo_value
from ansible_collections.nanoedge.core.plugins.module_utils._discovery_reader import Reader

_ARM_ARCH_RE = re.compile(r"\((v\d+l)\)")


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
    found = cpuinfo_value(blocks, "Model", "model name")
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
    model_name = cpuinfo_value(blocks, "model name") or ""
    found = _ARM_ARCH_RE.search(model_name)
    if found:
        return "arm" + found.group(1)
    architecture = cpuinfo_value(blocks, "CPU architecture")
    if architecture == "8":
        return "aarch64"
    flags = (cpuinfo_value(blocks, "flags") or "").split()
    if flags:
        return "x86_64" if "lm" in flags else "i686"
    reader.warn("arch: /proc/sys/kernel/arch is missing and /proc/cpuinfo does not tell")
    return "unknown"
