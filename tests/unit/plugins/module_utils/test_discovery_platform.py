# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The platform images must be built for, from the userland's ELF header, and the kernel's machine."""

from __future__ import annotations

import os
import struct
import typing as t
from pathlib import Path

import pytest

from ansible_collections.nanoedge.core.plugins.module_utils._discovery_cpu import parse_cpuinfo
from ansible_collections.nanoedge.core.plugins.module_utils._discovery_platform import (
    arch,
    elf_platform,
    machine,
    parse_elf_header,
)
from ansible_collections.nanoedge.core.plugins.module_utils._discovery_reader import Reader
from ansible_collections.nanoedge.core.plugins.module_utils._profile import platform_of

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "hw"
ARMV6 = parse_cpuinfo("processor\t: 0\nmodel name\t: ARMv6-compatible processor rev 7 (v6l)\nCPU architecture: 7\n")
ARMV7 = parse_cpuinfo("processor\t: 0\nmodel name\t: ARMv7 Processor rev 4 (v7l)\nCPU architecture: 7\n")
ARMV8 = parse_cpuinfo("processor\t: 0\nBogoMIPS\t: 108.00\nCPU architecture: 8\n")
OLD_ARMV6 = parse_cpuinfo("Processor\t: ARMv6-compatible processor rev 7 (v6l)\nCPU architecture: 7\n")
ARMV5 = parse_cpuinfo("Processor\t: Feroceon 88FR131 rev 1 (v5l)\nCPU architecture: 5TE\n")


def elf32(machine_: int, flags: int = 0, data: int = 1) -> bytes:
    order = "<" if data == 1 else ">"
    return (b"\x7fELF\x01" + bytes([data, 1]) + b"\0" * 9
            + struct.pack(order + "HHIIIIIHHHHHH", 2, machine_, 1, 0, 52, 0, flags, 52, 32, 0, 40, 0, 0))


def elf64(machine_: int, data: int = 1) -> bytes:
    order = "<" if data == 1 else ">"
    return (b"\x7fELF\x02" + bytes([data, 1]) + b"\0" * 9
            + struct.pack(order + "HHIQQQIHHHHHH", 3, machine_, 1, 0, 64, 0, 0, 64, 56, 0, 64, 0, 0))


ARMHF = elf32(40, 0x05000400)
ARMEL = elf32(40, 0x05000200)


@pytest.mark.parametrize("header, blocks, kernel, platform", [
    # 32-bit ARM, hard float: the variant is the CPU's, at most v7
    (ARMHF, ARMV6, "armv6l", "arm/v6"),
    (ARMHF, ARMV7, "armv7l", "arm/v7"),
    (ARMHF, ARMV8, "aarch64", "arm/v7"),  # Raspberry Pi OS 32-bit on a Pi 4 or 5
    (ARMHF, OLD_ARMV6, "armv6l", "arm/v6"),
    (ARMHF, [], "armv6l", "arm/v6"),
    (ARMHF, [], "unknown", "arm/v7"),
    # the first 20 bytes only: no flags, taken as hard float
    (ARMHF[:20], ARMV7, "armv7l", "arm/v7"),
    # soft float: Debian's armel, whatever the CPU
    (ARMEL, ARMV7, "armv7l", "arm/v5"),
    (ARMHF, ARMV5, "armv5tel", "arm/v5"),
    (elf64(183), ARMV8, "aarch64", "arm64"),
    (elf64(62), [], "x86_64", "amd64"),
    (elf32(3), [], "x86_64", "386"),  # a 32-bit x86 userland on a 64-bit kernel
    (elf64(243), [], "riscv64", "riscv64"),
    (elf64(21), [], "ppc64le", "ppc64le"),
    (elf64(22, data=2), [], "s390x", "s390x"),
    # no OCI platform for these
    (elf64(2), [], "sparc64", None),
    (elf32(62), [], "x86_64", None),  # x32
])
def test_elf_platform(header: bytes, blocks: t.List[t.Dict[str, str]], kernel: str, platform: t.Optional[str]) -> None:
    elf = parse_elf_header(header)
    assert elf is not None
    assert elf_platform(elf, blocks, kernel) == platform


@pytest.mark.parametrize("header", [b"", b"\x7fELF", b"#!/bin/busybox sh\n", b"\x7fELF\x03\x01" + b"\0" * 30,
                                    b"\x7fELF\x01\x03" + b"\0" * 30, b"MZ" + b"\0" * 60])
def test_not_an_elf_header(header: bytes) -> None:
    assert parse_elf_header(header) is None


def test_a_header_cut_before_the_flags_has_none() -> None:
    assert parse_elf_header(ARMHF[:20]) == (1, 1, 40, None)
    assert parse_elf_header(ARMHF) == (1, 1, 40, 0x05000400)


def write_tree(tmp_path: Path, sh: t.Optional[bytes], cpuinfo: str = "", kernel_arch: str = "") -> Reader:
    if sh is not None:
        (tmp_path / "bin").mkdir()
        (tmp_path / "bin/sh").write_bytes(sh)
    if kernel_arch:
        (tmp_path / "proc/sys/kernel").mkdir(parents=True)
        (tmp_path / "proc/sys/kernel/arch").write_text(kernel_arch + "\n")
    return Reader(str(tmp_path))


@pytest.mark.parametrize("sh, kernel, platform, warnings", [
    (ARMHF, "aarch64", "arm/v7", []),
    (elf64(183), "aarch64", "arm64", []),
    # no userland to read: the kernel's machine, as its usual platform
    (None, "aarch64", "arm64", ["arch: /bin/sh is missing or has no ELF header; assumed from the kernel's machine"]),
    (b"#!/bin/busybox sh\n", "armv7l", "arm/v7",
     ["arch: /bin/sh is missing or has no ELF header; assumed from the kernel's machine"]),
    (elf64(2), "sparc64", "sparc64",
     ["arch: /bin/sh is an ELF file for machine 2, which has no OCI platform here; assumed from the kernel's machine"]),
])
def test_arch_under_a_root(tmp_path: Path, sh: t.Optional[bytes], kernel: str, platform: str,
                           warnings: t.List[str]) -> None:
    reader = write_tree(tmp_path, sh, kernel_arch=kernel)
    assert arch(reader, ARMV8, machine(reader, ARMV8)) == platform
    assert reader.warnings == warnings


def test_arch_on_the_real_root_is_the_running_interpreters() -> None:
    """This test runs on amd64 or arm64 machines, whose userland matches the kernel."""
    reader = Reader("/")
    assert arch(reader, [], machine(reader, [])) == platform_of(os.uname().machine)
    assert reader.warnings == []


@pytest.mark.parametrize("cpuinfo, expected", [
    ("processor\t: 0\nmodel name\t: ARMv7 Processor rev 4 (v7l)\n", "armv7l"),
    ("Processor\t: ARMv6-compatible processor rev 7 (v6l)\nBogoMIPS\t: 697.95\n", "armv6l"),
    ("processor\t: 0\nCPU architecture: 8\n", "aarch64"),
    ("Processor\t: AArch64 Processor rev 4 (aarch64)\nCPU architecture: AArch64\n", "aarch64"),
    ("processor\t: 0\nflags\t\t: fpu vme lm\n", "x86_64"),
    ("processor\t: 0\nflags\t\t: fpu vme\n", "i686"),
])
def test_machine_of_a_recorded_tree_from_cpuinfo(tmp_path: Path, cpuinfo: str, expected: str) -> None:
    reader = Reader(str(tmp_path))
    assert machine(reader, parse_cpuinfo(cpuinfo)) == expected
    assert reader.warnings == []
