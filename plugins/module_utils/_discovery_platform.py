# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Resource discovery: the profile's ``arch``, ``machine`` and ``model``, and where the device tree is.

``arch`` is the OCI platform images must be built for (``arm/v6``, ``arm/v7``,
``arm64``, ``amd64``): the userland's, read from an ELF header, because a
64-bit kernel often runs a 32-bit userland (Raspberry Pi OS 32-bit on a Pi 4
or 5), and Docker there pulls and runs 32-bit images. ``machine`` is the
kernel's, as ``uname -m`` prints it.

Standard library only, Python >= 3.9: this runs on managed nodes.
"""

from __future__ import annotations

import os
import re
import struct
import sys
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._discovery_cpu import cpuinfo_value
from ansible_collections.nanoedge.core.plugins.module_utils._discovery_reader import Reader
from ansible_collections.nanoedge.core.plugins.module_utils._profile import platform_of

_ARM_ARCH_RE = re.compile(r"\((v\d+l)\)")
_LEADING_DIGITS_RE = re.compile(r"^(\d+)")

# Enough of an ELF header for e_flags (at 36 in a 32-bit header, 48 in a 64-bit one).
ELF_HEADER_SIZE = 52
_ELF_MAGIC = b"\x7fELF"
_EM_ARM = 40
_EF_ARM_ABI_FLOAT_SOFT = 0x200
_EF_ARM_ABI_FLOAT_HARD = 0x400
# (e_machine, EI_CLASS, EI_DATA) -> platform; 32-bit ARM is decided apart (float ABI, CPU)
_ELF_PLATFORMS = {
    (3, 1, 1): "386", (62, 2, 1): "amd64", (183, 2, 1): "arm64", (243, 2, 1): "riscv64",
    (21, 2, 1): "ppc64le", (22, 2, 2): "s390x", (8, 2, 1): "mips64le",
}


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
    # older ARM kernels print the CPU as "Processor" (once, before the processors), later ones as "model name"
    found = cpuinfo_value(blocks, "Model", "model name", "Processor")
    if found:
        return found
    reader.warn("model: no device-tree model and no Model, model name or Processor line in /proc/cpuinfo")
    return "unknown"


def machine(reader: Reader, blocks: t.Sequence[t.Dict[str, str]]) -> str:
    """The kernel's machine, as ``uname -m`` prints it."""
    text = reader.text("/proc/sys/kernel/arch", required=False)
    if text:
        return text
    if reader.root == "/":
        return os.uname().machine
    # another root (a recorded tree) on a kernel without kernel.arch: derive
    # what uname would say from the CPU description
    found = _ARM_ARCH_RE.search(cpuinfo_value(blocks, "model name", "Processor") or "")
    if found:
        return "arm" + found.group(1)
    if cpuinfo_value(blocks, "CPU architecture") in ("8", "AArch64"):
        return "aarch64"
    flags = (cpuinfo_value(blocks, "flags") or "").split()
    if flags:
        return "x86_64" if "lm" in flags else "i686"
    reader.warn("machine: /proc/sys/kernel/arch is missing and /proc/cpuinfo does not tell")
    return "unknown"


def arch(reader: Reader, blocks: t.Sequence[t.Dict[str, str]], kernel_machine: str) -> str:
    """The OCI platform of the userland: from the ELF header of the running interpreter (on the
    real root) or of ``/bin/sh``, else assumed from the kernel's machine (with a warning)."""
    unknown_machine = None
    for where, header in _elf_headers(reader):
        elf = parse_elf_header(header)
        if elf is None:
            continue
        platform = elf_platform(elf, blocks, kernel_machine)
        if platform is not None:
            return platform
        unknown_machine = (where, elf[2])
    if unknown_machine is not None:
        reader.warn("arch: %s is an ELF file for machine %d, which has no OCI platform here; "
                    "assumed from the kernel's machine" % unknown_machine)
    else:
        reader.warn("arch: /bin/sh is missing or has no ELF header; assumed from the kernel's machine")
    return platform_of(kernel_machine)


def _elf_headers(reader: Reader) -> t.Iterator[t.Tuple[str, bytes]]:
    """(where, first bytes) of the executables that show the userland, in the order they are trusted."""
    if reader.root == "/" and sys.executable:
        try:
            with open(sys.executable, "rb") as handle:
                yield sys.executable, handle.read(ELF_HEADER_SIZE)
        except OSError:
            pass
    header = reader.head("/bin/sh", ELF_HEADER_SIZE)
    if header is not None:
        yield "/bin/sh", header


def parse_elf_header(header: bytes) -> t.Optional[t.Tuple[int, int, int, t.Optional[int]]]:
    """(EI_CLASS, EI_DATA, e_machine, e_flags or None when the header is cut short), or None for no ELF header."""
    if len(header) < 20 or not header.startswith(_ELF_MAGIC) or header[4] not in (1, 2) or header[5] not in (1, 2):
        return None
    order = "<" if header[5] == 1 else ">"
    e_machine = struct.unpack_from(order + "H", header, 18)[0]
    flags_at = 36 if header[4] == 1 else 48
    e_flags = struct.unpack_from(order + "I", header, flags_at)[0] if len(header) >= flags_at + 4 else None
    return header[4], header[5], e_machine, e_flags


def elf_platform(elf: t.Tuple[int, int, int, t.Optional[int]], blocks: t.Sequence[t.Dict[str, str]],
                 kernel_machine: str) -> t.Optional[str]:
    ei_class, ei_data, e_machine, e_flags = elf
    if (e_machine, ei_class, ei_data) == (_EM_ARM, 1, 1):
        if e_flags is not None and e_flags & _EF_ARM_ABI_FLOAT_SOFT and not e_flags & _EF_ARM_ABI_FLOAT_HARD:
            return "arm/v5"  # soft float: Debian's armel, the userland of arm32v5 images
        return "arm/" + arm_variant(blocks, kernel_machine)
    return _ELF_PLATFORMS.get((e_machine, ei_class, ei_data))


def arm_variant(blocks: t.Sequence[t.Dict[str, str]], kernel_machine: str) -> str:
    """The 32-bit ARM variant the CPU runs, as Docker picks it: v6 or v7 (v8 CPUs run 32-bit code as v7)."""
    name = cpuinfo_value(blocks, "model name", "Processor") or ""
    # ARM1176 cores (Pi 1, Zero) print "CPU architecture: 7": their name says v6
    if "ARMv6" in name or "(v6l)" in name or kernel_machine == "armv6l":
        return "v6"
    found = _LEADING_DIGITS_RE.search(cpuinfo_value(blocks, "CPU architecture") or "")
    if found and int(found.group(1)) <= 6:
        return "v%d" % max(5, int(found.group(1)))
    return "v7"
