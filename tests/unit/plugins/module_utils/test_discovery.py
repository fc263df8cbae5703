# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import collections
import json
import os
import re
import shutil
import typing as t
from pathlib import Path

import pytest

from ansible_collections.nanoedge.core.plugins.module_utils import (
    _discovery,
    _discovery_network,
    _discovery_platform,
    _discovery_power,
)
from ansible_collections.nanoedge.core.plugins.module_utils._device_catalog import (
    BUILTIN_CATALOG,
    CatalogError,
    build_catalog,
)
from ansible_collections.nanoedge.core.plugins.module_utils._discovery import DiscoveryError, discover
from ansible_collections.nanoedge.core.plugins.module_utils._discovery_cpu import parse_cpu_list, parse_cpuinfo
from ansible_collections.nanoedge.core.plugins.module_utils._discovery_reader import Reader
from ansible_collections.nanoedge.core.plugins.module_utils._profile import validate_profile

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "hw"
NOW = "2026-11-26T02:30:00Z"
StatVfs = collections.namedtuple("StatVfs", "f_blocks f_frsize f_bavail")
# a 29.8 GiB SD card with 21033 MiB free: 7634944 blocks of 4 KiB
SD_CARD = StatVfs(7634944, 4096, 5384448)
MAX17040 = {"capability": "ups", "kind": "sensor", "name": "Maxim MAX17040 battery fuel gauge", "bus": "i2c",
            "id": "max17040", "path": "1-0036"}
BERRYMED = {"capability": "pom", "kind": "sensor", "name": "BerryMed BM1000B", "usb": "0403:6001"}
AC = {"source": "ac", "battery_percent": None, "battery_health": None, "charging": None}
SENSE_HAT = [
    {"capability": "env", "kind": "sensor", "name": "Raspberry Pi Sense HAT environment sensors", "bus": "hat",
     "id": "Sense HAT", "serial": "8f4ad0b5-0ac1-4a6a-9b1b-0d3f7b6e5c21"},
    {"capability": "imu", "kind": "sensor", "name": "Raspberry Pi Sense HAT inertial sensors", "bus": "hat",
     "id": "Sense HAT", "serial": "8f4ad0b5-0ac1-4a6a-9b1b-0d3f7b6e5c21"},
]


class FakeStatvfs:
    """os.statvfs stand-in that records the path it was asked about."""

    def __init__(self, result: t.Any = SD_CARD) -> None:
        self.result = result
        self.paths: t.List[str] = []

    def __call__(self, path: str) -> t.Any:
        self.paths.append(path)
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


def run(root: t.Union[str, Path], **kwargs: t.Any) -> t.Tuple[t.Dict[str, t.Any], t.List[str]]:
    kwargs.setdefault("catalog", build_catalog())
    kwargs.setdefault("statvfs", FakeStatvfs())
    kwargs.setdefault("clock", lambda: NOW)
    profile, warnings = discover(root=str(root), **kwargs)
    validate_profile(profile)
    return profile, warnings


def profile(node: str, arch: str, machine: str, model: str, cpu: t.Dict[str, t.Any], memory: t.Dict[str, int],
            **rest: t.Any) -> t.Dict[str, t.Any]:
    result = {
        "schema": 1, "node": node, "collected_at": NOW, "arch": arch, "machine": machine, "model": model, "cpu": cpu,
        "memory_mb": memory, "storage_mb": {"total": 29824, "free": 21033}, "power": AC,
        "network": ["bluetooth", "ethernet", "wifi"], "capabilities": [], "devices": [], "labels": {},
    }
    result.update(rest)
    return result


BOARDS = {
    "pi-zero-w": profile(
        "w1", "arm/v6", "armv6l", "Raspberry Pi Zero W Rev 1.1",
        {"cores": 1, "bogomips": 997.08, "load1": 0.08}, {"total": 429, "available": 338},
        network=["bluetooth", "wifi"], capabilities=["bot"],
        devices=[{"capability": "bot", "kind": "sensor", "name": "Maxim DS18B20 temperature probe", "bus": "w1",
                  "id": "28-0316a2795cff", "serial": "0316a2795cff"}],
    ),
    "pi-3b": profile(
        "w3", "arm/v7", "armv7l", "Raspberry Pi 3 Model B Rev 1.2",
        {"cores": 4, "bogomips": 38.4, "load1": 0.52}, {"total": 926, "available": 695},
        capabilities=["env", "imu"], devices=SENSE_HAT,
    ),
    "pi-3b-plus": profile(
        "w4", "arm/v7", "armv7l", "Raspberry Pi 3 Model B Plus Rev 1.3",
        {"cores": 4, "bogomips": 89.6, "load1": 0.31}, {"total": 926, "available": 640},
        capabilities=["hr", "pom"],
        devices=[
            {"capability": "hr", "kind": "sensor", "name": "Maxim MAX30102 heart-rate sensor", "bus": "i2c",
             "id": "max30102", "path": "1-0057"},
            {"capability": "pom", "kind": "sensor", "name": "Maxim MAX30102 pulse oximeter", "bus": "i2c",
             "id": "max30102", "path": "1-0057"},
        ],
    ),
    "pi-4b": profile(
        "w5", "arm64", "aarch64", "Raspberry Pi 4 Model B Rev 1.1",
        {"cores": 4, "bogomips": 108.0, "load1": 1.07}, {"total": 3791, "available": 3343},
        power={"source": "dc", "battery_percent": 41, "battery_health": 0.93, "charging": False},
        capabilities=["dd", "ups"],
        devices=[
            {"capability": "dd", "kind": "actuator", "name": "Raspberry Pi 7\" Touch Display", "bus": "i2c",
             "id": "7inch-touchscreen-panel-regulator", "path": "10-0045"},
            {"capability": "ups", "kind": "sensor", "name": "CellWise CW2015 battery fuel gauge", "bus": "i2c",
             "id": "cw2015", "path": "1-0062"},
        ],
    ),
    # docker run --cpus 1.5 --memory 512m on a 2-core x86 host, with a Pi's
    # device tree and Sense HAT mounted on /sys/firmware; its eth0 is the container's end of a veth pair
    "container-cgroup-v1": profile(
        "5f2c7d1e9a0b", "amd64", "x86_64", "Raspberry Pi 3 Model B Plus Rev 1.3",
        {"cores": 1, "bogomips": 5200.0, "load1": 0.77}, {"total": 512, "available": 432},
        network=[], capabilities=["env", "imu"], devices=SENSE_HAT,
    ),
    # a systemd service with CPUQuota=250% and MemoryMax=256M on a Pi 4B
    "service-cgroup-v2": profile(
        "w2", "arm64", "aarch64", "Raspberry Pi 4 Model B Rev 1.4",
        {"cores": 2, "bogomips": 108.0, "load1": 0.12}, {"total": 256, "available": 206},
    ),
    # Trees recorded from public sources (each folder's NOTES.md says from where, and what was filled in).
    # Wi-Fi only: the Docker bridge, veths, a systemd-nspawn veth, WireGuard, tun, tap and dummy give no "ethernet"
    "pi-zero-2-w": profile(
        "raspberrypi", "arm64", "aarch64", "Raspberry Pi Zero 2 W Rev 1.0",
        {"cores": 4, "bogomips": 38.4, "load1": 0.14}, {"total": 416, "available": 228}, network=["bluetooth", "wifi"],
    ),
    "pi-2": profile(
        "volumio", "arm/v7", "armv7l", "Raspberry Pi 2 Model B Rev 1.1",
        {"cores": 4, "bogomips": 38.4, "load1": 0.42}, {"total": 925, "available": 751}, network=["ethernet"],
    ),
    # a UPS HAT whose fuel gauge cannot tell the source: status Unknown, capacity 101 (a full gauge's overshoot)
    "cm4": profile(
        "raspberry", "arm64", "aarch64", "Raspberry Pi Compute Module 4 Rev 1.1",
        {"cores": 4, "bogomips": 108.0, "load1": 0.31}, {"total": 7811, "available": 7340},
        power={"source": "ac", "battery_percent": 100, "battery_health": None, "charging": None},
        capabilities=["ups"], devices=[MAX17040],
    ),
    # a 64-bit kernel under a 32-bit userland: images must be arm/v7; a UPS HAT on battery (its charger offline)
    "pi-5-32bit-userland": profile(
        "pi5", "arm/v7", "aarch64", "Raspberry Pi 5 Model B Rev 1.0",
        {"cores": 4, "bogomips": 108.0, "load1": 0.08}, {"total": 8052, "available": 7522},
        power={"source": "dc", "battery_percent": 63, "battery_health": None, "charging": None},
        capabilities=["ups"], devices=[MAX17040],
    ),
    # Processor line, no processor lines, no device tree, no MemAvailable
    "pi-1-old-kernel": profile(
        "raspberrypi", "arm/v6", "armv6l", "ARMv6-compatible processor rev 7 (v6l)",
        {"cores": 1, "bogomips": 697.95, "load1": 0.0}, {"total": 186, "available": 171}, network=["ethernet"],
    ),
}
# what discovery must say of a board, where it says anything
BOARD_WARNINGS = {
    "cm4": ["/sys/class/power_supply/battery/status: Unknown, and no external supply is exposed: power.source assumed ac"],
}


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_board_profile(board):
    assert run(FIXTURES / board) == (BOARDS[board], BOARD_WARNINGS.get(board, []))


def test_hat_plus_found_through_user_catalog():
    """A HAT+ EEPROM shows in the device tree as a HAT's does; the site's catalog names the product."""
    accelerator = {"capability": "npu", "kind": "actuator", "name": "Raspberry Pi AI Kit", "hat": "M.2 HAT+ M Key"}
    assert run(FIXTURES / "pi-5-hat-plus", catalog=build_catalog([accelerator])) == (profile(
        "hatplus", "arm64", "aarch64", "Raspberry Pi 5 Model B Rev 1.0",
        {"cores": 4, "bogomips": 108.0, "load1": 0.27}, {"total": 8052, "available": 7630}, capabilities=["npu"],
        devices=[{"capability": "npu", "kind": "actuator", "name": "Raspberry Pi AI Kit", "bus": "hat",
                  "id": "M.2 HAT+ M Key", "serial": "833ad001-a8e0-4779-8e6f-3c4ee6676e9c"}],
    ), [])


def test_a_kernel_that_prints_no_bogomips(tmp_path):
    """Some ARM kernels print no BogoMIPS line: null, and not a malformed file."""
    tree = copy_board(tmp_path, "pi-2")
    cpuinfo = tree / "proc/cpuinfo"
    cpuinfo.write_text("".join(line + "\n" for line in cpuinfo.read_text().splitlines() if "BogoMIPS" not in line))
    expected = dict(BOARDS["pi-2"], cpu={"cores": 4, "bogomips": None, "load1": 0.42})
    assert run(tree) == (expected, [])


@pytest.mark.parametrize("remove, cores, warnings", [
    # the kernel's list of present CPUs when online is not there
    (["online"], 1, ["/sys/devices/system/cpu/online: missing"]),
    # an old uniprocessor kernel prints no processor line: nothing to count
    (["online", "present"], 1, ["/sys/devices/system/cpu/online: missing",
                                "cpu.cores: no source gave a CPU count, assuming 1"]),
])
def test_cores_of_an_old_kernel(tmp_path, remove, cores, warnings):
    tree = copy_board(tmp_path, "pi-1-old-kernel")
    for name in remove:
        os.remove(tree / "sys/devices/system/cpu" / name)
    got, found = run(tree)
    assert (got["cpu"]["cores"], found) == (cores, warnings)


def test_cores_come_from_the_kernels_list_whatever_cpuinfo_prints(tmp_path):
    tree = copy_board(tmp_path, "pi-2")
    os.remove(tree / "sys/devices/system/cpu/online")
    (tree / "sys/devices/system/cpu/present").write_text("0-1\n")
    assert run(tree)[0]["cpu"]["cores"] == 2


@pytest.mark.parametrize("status, source, charging", [
    # with only a battery exposed, its status says whether external power is there
    ("Not charging", "ac", False),
    ("Full", "ac", False),
    ("Charging", "ac", True),
    ("Discharging", "dc", False),
])
def test_a_ups_battery_alone_tells_the_source_by_its_status(tmp_path, status, source, charging):
    tree = copy_board(tmp_path, "cm4")
    (tree / "sys/class/power_supply/battery/status").write_text(status + "\n")
    expected = dict(BOARDS["cm4"], power={"source": source, "battery_percent": 100, "battery_health": None,
                                          "charging": charging})
    assert run(tree) == (expected, [])


@pytest.mark.parametrize("capacity, percent, warnings", [
    ("101", 100, []),  # the max17040 driver on a full UPS HAT
    ("255", 100, []),
    ("100", 100, []),
    ("0", 0, []),
    ("-1", None, ["/sys/class/power_supply/battery/capacity: malformed (-1 is not a percentage)"]),
])
def test_a_fuel_gauge_reading_over_full_is_100(tmp_path, capacity, percent, warnings):
    battery = tmp_path / "sys/class/power_supply/battery"
    battery.mkdir(parents=True)
    for file, text in (("type", "Battery"), ("status", "Discharging"), ("capacity", capacity)):
        (battery / file).write_text(text + "\n")
    reader = Reader(str(tmp_path))
    assert _discovery_power.power(reader)["battery_percent"] == percent
    assert reader.warnings == warnings


def test_usb_pulse_oximeter_found_through_user_catalog():
    """The BerryMed BM1000B's cable is a generic FTDI bridge: only a site's own
    catalog entry turns it into a pom sensor; the CP2102 next to it stays unknown."""
    expected = dict(BOARDS["pi-3b-plus"])
    expected["devices"] = BOARDS["pi-3b-plus"]["devices"] + [
        {"capability": "pom", "kind": "sensor", "name": "BerryMed BM1000B", "bus": "usb", "id": "0403:6001",
         "serial": "A50285BI", "path": "1-1.3"},
    ]
    assert run(FIXTURES / "pi-3b-plus", catalog=build_catalog([BERRYMED])) == (expected, [])


def test_declared_capabilities_and_labels():
    got, warnings = run(FIXTURES / "pi-zero-w", node="ward3-bed2", capabilities=["oc", "bot", "oc"],
                        labels={"site": "ward-3", "floor": 2, "icu": False})
    assert warnings == []
    assert got["node"] == "ward3-bed2"
    assert got["capabilities"] == ["bot", "oc"]
    assert got["labels"] == {"site": "ward-3", "floor": "2", "icu": "false"}


def test_malformed_sources_are_skipped_and_named():
    got, warnings = run(FIXTURES / "malformed")
    assert got == profile(
        "broken", "arm/v7", "armv7l", "unknown", {"cores": 2, "bogomips": None, "load1": None},
        {"total": 0, "available": 0},
        power={"source": "ac", "battery_percent": None, "battery_health": None, "charging": None}, network=[],
    )
    assert warnings == [
        "/sys/devices/system/cpu/online: malformed ('zero' is not a cpu list)",
        "/sys/fs/cgroup/cpu.max: malformed ('half 100000')",
        "/proc/device-tree/hat/product: malformed (empty)",
        "/sys/bus/usb/devices/1-1: malformed (USB id 'zz12:0001')",
        "/sys/bus/i2c/devices/1-0057/name: malformed (not UTF-8 text)",
        "arch: /bin/sh is missing or has no ELF header; assumed from the kernel's machine",
        "/proc/device-tree/model: malformed (not UTF-8 text)",
        "model: no device-tree model and no Model, model name or Processor line in /proc/cpuinfo",
        "/proc/cpuinfo: malformed (BogoMIPS 'fast' is not a finite number >= 0)",
        "/proc/loadavg: malformed ('')",
        "/proc/meminfo: malformed (no MemTotal line)",
        "/sys/fs/cgroup/memory.max: malformed ('256M')",
        "/sys/class/power_supply/BAT0/status: malformed (unknown status 'Exploding')",
        "/sys/class/power_supply/BAT0/status: not known, and no external supply is exposed: power.source assumed ac",
        "/sys/class/power_supply/BAT0/capacity: malformed (-3 is not a percentage)",
        "/sys/class/net/eth0/type: malformed (expected an integer, got 'ether')",
    ]


def test_missing_sources_are_skipped_and_named():
    got, warnings = run(FIXTURES / "missing", node="empty")
    assert got == profile(
        "empty", "unknown", "unknown", "unknown", {"cores": 1, "bogomips": None, "load1": None},
        {"total": 0, "available": 0},
        network=[],
    )
    assert warnings == [
        "/proc/cpuinfo: missing",
        "/sys/devices/system/cpu/online: missing",
        "cpu.cores: no source gave a CPU count, assuming 1",
        "machine: /proc/sys/kernel/arch is missing and /proc/cpuinfo does not tell",
        "arch: /bin/sh is missing or has no ELF header; assumed from the kernel's machine",
        "model: no device-tree model and no Model, model name or Processor line in /proc/cpuinfo",
        "/proc/loadavg: missing",
        "/proc/meminfo: missing",
    ]


def test_root_that_does_not_exist_still_gives_a_valid_profile(tmp_path):
    got, warnings = run(tmp_path / "nowhere", node="ghost", statvfs=FakeStatvfs(FileNotFoundError(2, "No such file or directory")))
    assert got["storage_mb"] == {"total": 0, "free": 0}
    assert "/: cannot measure storage (No such file or directory)" in warnings


def test_unreadable_file_is_named(tmp_path):
    tree = copy_board(tmp_path, "pi-3b")
    os.remove(tree / "proc/loadavg")
    os.mkdir(tree / "proc/loadavg")
    got, warnings = run(tree)
    assert got["cpu"]["load1"] is None
    assert warnings == ["/proc/loadavg: unreadable (Is a directory)"]


# --- storage -------------------------------------------------------------------

def test_storage_path_is_read_under_root():
    statvfs = FakeStatvfs(StatVfs(f_blocks=1000, f_frsize=1048576, f_bavail=250))
    got = run(FIXTURES / "pi-3b", storage_path="/var/lib/docker", statvfs=statvfs)[0]
    assert statvfs.paths == [str(FIXTURES / "pi-3b" / "var/lib/docker")]
    assert got["storage_mb"] == {"total": 1000, "free": 250}


def test_storage_rounds_down_to_whole_mib():
    got = run(FIXTURES / "pi-3b", statvfs=FakeStatvfs(StatVfs(f_blocks=2047, f_frsize=1024, f_bavail=1025)))[0]
    assert got["storage_mb"] == {"total": 1, "free": 1}


# --- power ---------------------------------------------------------------------

@pytest.mark.parametrize("case, expected, warnings", [
    # a UPS HAT exposes only its battery: charging proves external power
    ("ups-charging", {"source": "ac", "battery_percent": 76, "battery_health": 0.93, "charging": True}, []),
    ("ups-discharging", {"source": "dc", "battery_percent": 41, "battery_health": 0.93, "charging": False}, []),
    # full and idle: in the kernel's power-supply semantics, on external power
    ("ups-full", {"source": "ac", "battery_percent": 100, "battery_health": 0.93, "charging": False}, []),
    ("laptop-ac", {"source": "ac", "battery_percent": 80, "battery_health": 0.9, "charging": False}, []),
    ("laptop-unplugged", {"source": "dc", "battery_percent": 50, "battery_health": 0.9, "charging": None}, []),
    ("mains-only", AC, []),
    ("mouse-battery", AC, []),
    ("battery-removed", AC, []),
    ("malformed", {"source": "ac", "battery_percent": None, "battery_health": None, "charging": None}, [
        "/sys/class/power_supply/ucsi-source-psy-0/type: missing",
        "/sys/class/power_supply/BAT0/status: malformed (unknown status 'Exploding')",
        "/sys/class/power_supply/BAT0/status: not known, and no external supply is exposed: power.source assumed ac",
        "/sys/class/power_supply/BAT0/capacity: malformed (-3 is not a percentage)",
        "/sys/class/power_supply/BAT0/energy_full: malformed (expected an integer, got 'lots')",
    ]),
])
def test_power(case, expected, warnings):
    reader = Reader(str(FIXTURES / "power" / case))
    assert _discovery_power.power(reader) == expected
    assert reader.warnings == warnings


def test_no_power_supply_folder_means_ac():
    reader = Reader(str(FIXTURES / "missing"))
    assert _discovery_power.power(reader) == AC
    assert reader.warnings == []


# --- CPU -----------------------------------------------------------------------

@pytest.mark.parametrize("text, count", [("0", 1), ("0-3", 4), ("0,2-3", 3), ("0-1,4-7\n", 6), ("5", 1)])
def test_parse_cpu_list(text, count):
    assert parse_cpu_list(text) == count


@pytest.mark.parametrize("text", ["", "zero", "3-1", "0-", ","])
def test_parse_cpu_list_rejects(text):
    with pytest.raises(ValueError):
        parse_cpu_list(text)


def test_parse_cpuinfo_keeps_board_block():
    blocks = parse_cpuinfo((FIXTURES / "pi-3b" / "proc" / "cpuinfo").read_text())
    assert [b.get("processor") for b in blocks] == ["0", "1", "2", "3", None]
    assert blocks[0]["BogoMIPS"] == "38.40"
    assert blocks[-1] == {"Hardware": "BCM2835", "Revision": "a02082", "Serial": "00000000b1a2c3d4",
                          "Model": "Raspberry Pi 3 Model B Rev 1.2"}


def test_bogomips_is_the_mean_when_cores_differ(tmp_path):
    tree = copy_board(tmp_path, "pi-3b")
    text = (tree / "proc/cpuinfo").read_text().replace("BogoMIPS\t: 38.40", "BogoMIPS\t: 40.00", 1)
    (tree / "proc/cpuinfo").write_text(text)
    assert run(tree)[0]["cpu"]["bogomips"] == 38.8


def test_cores_fall_back_to_cpuinfo_processors(tmp_path):
    tree = copy_board(tmp_path, "pi-3b")
    os.remove(tree / "sys/devices/system/cpu/online")
    got, warnings = run(tree)
    assert got["cpu"]["cores"] == 4
    assert warnings == ["/sys/devices/system/cpu/online: missing"]


def test_offline_cpus_are_not_counted(tmp_path):
    tree = copy_board(tmp_path, "pi-4b")
    (tree / "sys/devices/system/cpu/online").write_text("0,2\n")
    assert run(tree)[0]["cpu"]["cores"] == 2


# --- cgroups -------------------------------------------------------------------

@pytest.mark.parametrize("quota, period, cores", [
    ("150000", "100000", 1),   # --cpus 1.5
    ("50000", "100000", 1),    # --cpus 0.5: at least 1
    ("200000", "100000", 2),
    ("800000", "100000", 2),   # never more than the online CPUs
    ("-1", "100000", 2),       # no quota
])
def test_cgroup_v1_cpu_quota(tmp_path, quota, period, cores):
    tree = copy_board(tmp_path, "container-cgroup-v1")
    (tree / "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us").write_text(quota + "\n")
    (tree / "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us").write_text(period + "\n")
    assert run(tree)[0]["cpu"]["cores"] == cores


def test_cgroup_v1_empty_joint_folder_beside_the_real_cpu_mount(tmp_path):
    """systemd in a container can leave an empty cpu,cpuacct folder while the controller is mounted at cpu."""
    tree = copy_board(tmp_path, "container-cgroup-v1")
    cgroup = tree / "sys/fs/cgroup"
    os.rename(cgroup / "cpu,cpuacct", cgroup / "cpu")
    (cgroup / "cpu,cpuacct").mkdir()
    assert run(tree)[0]["cpu"]["cores"] == 1


def test_cgroup_v1_without_memory_limit(tmp_path):
    tree = copy_board(tmp_path, "container-cgroup-v1")
    (tree / "sys/fs/cgroup/memory/memory.limit_in_bytes").write_text("9223372036854771712\n")
    assert run(tree)[0]["memory_mb"] == {"total": 24104, "available": 23437}


def test_cgroup_v1_limit_on_an_ancestor(tmp_path):
    """On a host the process's own cgroup folder exists; a parent slice's limit still applies."""
    tree = copy_board(tmp_path, "container-cgroup-v1")
    (tree / "proc/self/cgroup").write_text("4:memory:/system.slice/agent.service\n2:cpu,cpuacct:/system.slice/agent.service\n")
    for controller in ("memory", "cpu,cpuacct"):
        (tree / "sys/fs/cgroup" / controller / "system.slice/agent.service").mkdir(parents=True)
    (tree / "sys/fs/cgroup/cpu,cpuacct/system.slice/agent.service/cpu.cfs_quota_us").write_text("-1\n")
    (tree / "sys/fs/cgroup/cpu,cpuacct/system.slice/agent.service/cpu.cfs_period_us").write_text("100000\n")
    (tree / "sys/fs/cgroup/memory/system.slice/agent.service/memory.limit_in_bytes").write_text("1073741824\n")
    (tree / "sys/fs/cgroup/memory/system.slice/agent.service/memory.usage_in_bytes").write_text("10485760\n")
    got = run(tree)[0]
    assert got["cpu"]["cores"] == 1
    assert got["memory_mb"] == {"total": 512, "available": 432}


def test_cgroup_v2_limit_is_taken_from_the_tightest_level(tmp_path):
    tree = copy_board(tmp_path, "service-cgroup-v2")
    (tree / "sys/fs/cgroup/system.slice/memory.max").write_text("134217728\n")
    (tree / "sys/fs/cgroup/system.slice/cpu.max").write_text("100000 100000\n")
    got = run(tree)[0]
    # the slice as a whole already uses more than its limit: nothing is left
    assert got["memory_mb"] == {"total": 128, "available": 0}
    assert got["cpu"]["cores"] == 1


def test_cgroup_v2_parent_with_less_headroom_than_the_child(tmp_path):
    tree = copy_board(tmp_path, "service-cgroup-v2")
    # 1 GiB for the slice, which already uses 900 MiB: 124 MiB left, less than the service's own 206
    (tree / "sys/fs/cgroup/system.slice/memory.max").write_text("1073741824\n")
    (tree / "sys/fs/cgroup/system.slice/memory.current").write_text("943718400\n")
    assert run(tree)[0]["memory_mb"] == {"total": 256, "available": 124}


def test_cgroup_v2_unlimited(tmp_path):
    tree = copy_board(tmp_path, "service-cgroup-v2")
    (tree / "sys/fs/cgroup/system.slice/nanoedge-agent.service/memory.max").write_text("max\n")
    (tree / "sys/fs/cgroup/system.slice/nanoedge-agent.service/cpu.max").write_text("max 100000\n")
    got = run(tree)[0]
    assert got["memory_mb"] == {"total": 3791, "available": 3343}
    assert got["cpu"]["cores"] == 4


def test_memory_limit_without_usage_caps_available_at_total(tmp_path):
    tree = copy_board(tmp_path, "container-cgroup-v1")
    os.remove(tree / "sys/fs/cgroup/memory/memory.usage_in_bytes")
    assert run(tree)[0]["memory_mb"] == {"total": 512, "available": 512}


def test_meminfo_without_memavailable(tmp_path):
    tree = copy_board(tmp_path, "pi-zero-w")
    meminfo = tree / "proc/meminfo"
    meminfo.write_text("".join(line + "\n" for line in meminfo.read_text().splitlines() if "MemAvailable" not in line))
    # MemFree + Buffers + Cached = 301220 + 18432 + 62560 kB
    assert run(tree)[0]["memory_mb"] == {"total": 429, "available": 373}


# --- platform, network, devices ---------------------------------------------------

def test_model_falls_back_to_cpuinfo(tmp_path):
    tree = copy_board(tmp_path, "pi-3b-plus")
    shutil.rmtree(tree / "proc/device-tree")
    got, warnings = run(tree)
    assert got["model"] == "Raspberry Pi 3 Model B Plus Rev 1.3"
    assert warnings == []


def test_hat_read_from_sys_firmware_when_proc_device_tree_is_absent():
    got = run(FIXTURES / "container-cgroup-v1")[0]
    assert not (FIXTURES / "container-cgroup-v1" / "proc" / "device-tree").exists()
    assert [d["bus"] for d in got["devices"]] == ["hat", "hat"]


def test_machine_on_the_real_root_comes_from_the_kernel():
    # kernel.arch and uname agree; which one is read depends on the kernel's age
    assert _discovery_platform.machine(Reader("/"), []) == os.uname().machine


def test_bridges_are_not_network_types(tmp_path):
    tree = copy_board(tmp_path, "pi-zero-w")
    (tree / "sys/class/net/docker0/bridge").mkdir(parents=True)
    (tree / "sys/class/net/docker0/type").write_text("1\n")
    assert run(tree)[0]["network"] == ["bluetooth", "wifi"]


@pytest.mark.parametrize("devtype, expected", [("wwan", ["cellular"]), ("bluetooth", ["bluetooth"]), ("wlan", ["wifi"])])
def test_network_devtype(tmp_path, devtype, expected):
    (tmp_path / "sys/class/net/x0").mkdir(parents=True)
    (tmp_path / "sys/class/net/x0/type").write_text("1\n")
    (tmp_path / "sys/class/net/x0/uevent").write_text("DEVTYPE=%s\nINTERFACE=x0\n" % devtype)
    (tmp_path / "sys/class/net/x0/device").mkdir()
    assert _discovery_network.network(Reader(str(tmp_path))) == expected


def test_a_wireless_interface_without_a_device_is_virtual(tmp_path):
    """Every interface counts only with a device under it, radios included."""
    (tmp_path / "sys/class/net/wlan9/wireless").mkdir(parents=True)
    (tmp_path / "sys/class/net/wlan9/uevent").write_text("DEVTYPE=wlan\nINTERFACE=wlan9\n")
    assert _discovery_network.network(Reader(str(tmp_path))) == []


def test_usb_interfaces_are_not_devices(tmp_path):
    """sysfs lists a device's interfaces (1-1.3:1.0) next to it; only the device counts.
    Created here, not shipped: a colon is not allowed in the collection's file names."""
    tree = copy_board(tmp_path, "pi-3b-plus")
    interface = tree / "sys/bus/usb/devices/1-1.3:1.0"
    interface.mkdir()
    (interface / "bInterfaceClass").write_text("ff\n")
    # interface folders have no ids; give this one some to prove it is skipped by its name
    (interface / "idVendor").write_text("0403\n")
    (interface / "idProduct").write_text("6001\n")
    got = run(tree, catalog=build_catalog([BERRYMED]))[0]
    assert [d["path"] for d in got["devices"] if d["bus"] == "usb"] == ["1-1.3"]


def test_devices_keep_identity_of_each_physical_sensor(tmp_path):
    tree = copy_board(tmp_path, "pi-zero-w")
    shutil.copytree(tree / "sys/bus/w1/devices/28-0316a2795cff", tree / "sys/bus/w1/devices/28-0000075e1b2a")
    got = run(tree)[0]
    assert [(d["id"], d["serial"]) for d in got["devices"]] == [
        ("28-0000075e1b2a", "0000075e1b2a"), ("28-0316a2795cff", "0316a2795cff")]
    assert got["capabilities"] == ["bot"]


def test_profiles_stay_small():
    for board in BOARDS:
        got = run(FIXTURES / board, catalog=build_catalog([BERRYMED]), labels={"site": "ward-3"})[0]
        assert len(json.dumps(got, separators=(",", ":"))) < 2048, board


def test_default_clock_is_utc_iso8601():
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", _discovery.utc_now())


def test_default_node_is_the_kernel_hostname():
    profile_ = run(FIXTURES / "pi-3b")[0]
    assert profile_["node"] == "w3"


# --- caller input ----------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    ({"node": "W4"}, "node 'W4' must match ^[a-z0-9][a-z0-9._-]{0,62}$ (set option node, e.g. to the inventory hostname)"),
    ({"node": "-w"}, "node '-w' must match ^[a-z0-9][a-z0-9._-]{0,62}$ (set option node, e.g. to the inventory hostname)"),
    ({"node": "w1\n"},
     "node 'w1\\n' must match ^[a-z0-9][a-z0-9._-]{0,62}$ (set option node, e.g. to the inventory hostname)"),
    ({"capabilities": ["pom\n"]}, "capabilities[0] 'pom\\n' must match ^[a-z0-9][a-z0-9_.-]{0,62}$"),
    ({"capabilities": ["pom", "Pulse Ox"]}, "capabilities[1] 'Pulse Ox' must match ^[a-z0-9][a-z0-9_.-]{0,62}$"),
    ({"capabilities": [5]}, "capabilities[0] 5 must match ^[a-z0-9][a-z0-9_.-]{0,62}$"),
    ({"labels": ["a"]}, "labels must be a dict of strings, got list"),
    ({"labels": {"room": {"n": 1}}}, "labels.room: value {'n': 1} must be a string"),
    ({"labels": {"": "x"}}, "labels: key '' must be a non-empty string"),
])
def test_bad_caller_input(kwargs, message):
    with pytest.raises(DiscoveryError) as exc:
        run(FIXTURES / "pi-3b", **kwargs)
    assert str(exc.value) == message


# --- catalog ---------------------------------------------------------------------

def test_builtin_catalog_is_valid_and_unambiguous():
    catalog = build_catalog()
    assert len(catalog) == len(BUILTIN_CATALOG)
    keys = [(next(k for k in ("usb", "hat", "i2c", "w1") if k in e), e["capability"]) for e in BUILTIN_CATALOG]
    matches = [(bus, BUILTIN_CATALOG[i][bus], cap) for i, (bus, cap) in enumerate(keys)]
    assert len(set(matches)) == len(matches)


def test_catalog_covers_the_paper_devices():
    catalog = build_catalog()
    assert [e["capability"] for e in catalog.lookup("w1", "28")] == ["bot"]
    assert sorted(e["capability"] for e in catalog.lookup("i2c", "max30102")) == ["hr", "pom"]
    assert [e["capability"] for e in catalog.lookup("hat", "Automation HAT")] == ["oc"]
    assert [e["capability"] for e in catalog.lookup("i2c", "ssd1306fb-i2c")] == ["dd"]
    assert catalog.lookup("usb", "0403:6001") == []


def test_user_entry_replaces_builtin_with_same_match_and_capability():
    catalog = build_catalog([{"capability": "bot", "kind": "sensor", "name": "Ward probe", "w1": "28"}])
    assert catalog.lookup("w1", "28") == [{"capability": "bot", "kind": "sensor", "name": "Ward probe", "bus": "w1",
                                           "match": "28"}]


def test_user_usb_entry_matches_case_insensitively():
    catalog = build_catalog([{"capability": "pom", "kind": "sensor", "name": "X", "usb": "0403:6001"}])
    assert [e["name"] for e in catalog.lookup("usb", "0403:6001")] == ["X"]
    catalog = build_catalog([{"capability": "pom", "kind": "sensor", "name": "X", "usb": "10C4:EA60"}])
    assert [e["name"] for e in catalog.lookup("usb", "10c4:ea60")] == ["X"]


@pytest.mark.parametrize("entry, message", [
    ("pom", "device_catalog[0] ('pom'): must be a dict with capability, kind, name and one of usb, hat, i2c, w1, got str"),
    ({"capability": "pom", "kind": "sensor", "name": "Ox"},
     "device_catalog[0] ('Ox'): needs exactly one match key of usb, hat, i2c, w1, got none"),
    ({"capability": "pom", "kind": "sensor", "name": "Ox", "usb": "0403:6001", "i2c": "max30102"},
     "device_catalog[0] ('Ox'): needs exactly one match key of usb, hat, i2c, w1, got usb, i2c"),
    ({"capability": "pom", "kind": "sensor", "usb": "0403:6001"}, "device_catalog[0] ('pom'): missing key(s) name"),
    ({"capability": "pom", "kind": "sensor", "name": "Ox", "usb": "0403:6001", "vendor": "x"},
     "device_catalog[0] ('Ox'): unknown key(s) vendor"),
    ({"capability": "Pulse Ox", "kind": "sensor", "name": "Ox", "usb": "0403:6001"},
     "device_catalog[0] ('Ox'): capability 'Pulse Ox' must match ^[a-z0-9][a-z0-9_.-]{0,62}$"),
    ({"capability": "pom\n", "kind": "sensor", "name": "Ox", "usb": "0403:6001"},
     "device_catalog[0] ('Ox'): capability 'pom\\n' must match ^[a-z0-9][a-z0-9_.-]{0,62}$"),
    ({"capability": "pom", "kind": "probe", "name": "Ox", "usb": "0403:6001"},
     "device_catalog[0] ('Ox'): kind 'probe' must be one of sensor, actuator"),
    ({"capability": "pom", "kind": "sensor", "name": " ", "usb": "0403:6001"},
     "device_catalog[0] ('pom'): name must be a non-empty string, got ' '"),
    ({"capability": "pom", "kind": "sensor", "name": "Ox", "usb": "0403-6001"},
     "device_catalog[0] ('Ox'): usb '0403-6001' must be VVVV:PPPP (4 hex digits each)"),
    ({"capability": "bot", "kind": "sensor", "name": "Probe", "w1": "DS18B20"},
     "device_catalog[0] ('Probe'): w1 'DS18B20' must be a 2-digit hex family code such as '28'"),
    ({"capability": "oc", "kind": "actuator", "name": "Valve", "hat": ""},
     "device_catalog[0] ('Valve'): hat must be a non-empty string, got ''"),
    ({"capability": "oc", "kind": "actuator", "name": "Valve", "i2c": 57},
     "device_catalog[0] ('Valve'): i2c must be a non-empty string, got 57"),
])
def test_bad_catalog_entry_is_named(entry, message):
    with pytest.raises(CatalogError) as exc:
        build_catalog([entry])
    assert str(exc.value) == message


def test_bad_catalog_entry_position_is_named():
    good = {"capability": "pom", "kind": "sensor", "name": "Ox", "usb": "0403:6001"}
    with pytest.raises(CatalogError, match=r"^device_catalog\[2\] \('Bad'\): kind 'x' must be one of sensor, actuator$"):
        build_catalog([good, good, dict(good, name="Bad", kind="x")])


def test_catalog_must_be_a_list():
    with pytest.raises(CatalogError, match=r"^device_catalog: must be a list of entries, got dict$"):
        build_catalog({"capability": "pom"})


# --- helpers ---------------------------------------------------------------------

def copy_board(tmp_path: Path, board: str) -> Path:
    target = tmp_path / board
    shutil.copytree(FIXTURES / board, target)
    return target


# --- impossible figures from a bad source never reach the profile ---------------------

@pytest.mark.parametrize("board, path, content, field, value, warning", [
    ("pi-3b", "proc/loadavg", "nan 0.10 0.05 1/180 912\n", ("cpu", "load1"), None,
     "/proc/loadavg: malformed ('nan 0.10 0.05 1/180 912')"),
    ("pi-3b", "proc/loadavg", "-1.00 0.10 0.05 1/180 912\n", ("cpu", "load1"), None,
     "/proc/loadavg: malformed ('-1.00 0.10 0.05 1/180 912')"),
    ("pi-3b", "proc/loadavg", "1e400 0.10 0.05 1/180 912\n", ("cpu", "load1"), None,
     "/proc/loadavg: malformed ('1e400 0.10 0.05 1/180 912')"),
    ("pi-zero-w", "proc/cpuinfo", "processor\t: 0\nBogoMIPS\t: inf\n", ("cpu", "bogomips"), None,
     "/proc/cpuinfo: malformed (BogoMIPS 'inf' is not a finite number >= 0)"),
    ("pi-zero-w", "proc/cpuinfo", "processor\t: 0\nBogoMIPS\t: -697.95\n", ("cpu", "bogomips"), None,
     "/proc/cpuinfo: malformed (BogoMIPS '-697.95' is not a finite number >= 0)"),
    ("pi-zero-w", "proc/meminfo", "MemTotal:       -448776 kB\nMemAvailable:    346520 kB\n", ("memory_mb",),
     {"total": 0, "available": 0}, "/proc/meminfo: malformed (MemTotal is negative)"),
    ("service-cgroup-v2", "sys/fs/cgroup/system.slice/nanoedge-agent.service/memory.max", "-268435456\n",
     ("memory_mb",), {"total": 3791, "available": 3343},
     "/sys/fs/cgroup/system.slice/nanoedge-agent.service/memory.max: malformed (negative limit -268435456)"),
])
def test_impossible_figures_are_skipped_and_named(tmp_path, board, path, content, field, value, warning):
    tree = copy_board(tmp_path, board)
    (tree / path).write_text(content)
    got, warnings = run(tree)
    json.dumps(got, allow_nan=False)
    found: t.Any = got
    for key in field:
        found = found[key]
    assert found == value
    assert warning in warnings


@pytest.mark.parametrize("name, warning", [
    ("energy_full", "/sys/class/power_supply/BAT0/energy_full: malformed (too large)"),
    ("energy_now", "/sys/class/power_supply/BAT0/energy_now: malformed (too large)"),
])
def test_battery_figures_too_large_for_a_float_are_named_not_a_crash(tmp_path, name, warning):
    battery = tmp_path / "sys/class/power_supply/BAT0"
    battery.mkdir(parents=True)
    for file, text in (("type", "Battery"), ("status", "Discharging"), ("energy_now", "30000000"),
                       ("energy_full", "40000000"), ("energy_full_design", "44000000")):
        (battery / file).write_text(text + "\n")
    (battery / name).write_text("9" * 400 + "\n")
    reader = Reader(str(tmp_path))
    got = _discovery_power.power(reader)
    assert got["source"] == "dc"
    assert None in (got["battery_percent"], got["battery_health"])
    assert warning in reader.warnings


@pytest.mark.parametrize("kind", ["USB_PD", "USB_C", "USB_DCP", "BrickID"])
def test_older_kernels_usb_charger_types_are_external_power(tmp_path, kind):
    """Kernels before the usb_type attribute (and some charger drivers still) put the charger kind in type."""
    for folder, files in (("BAT0", {"type": "Battery", "status": "Full", "capacity": "100"}),
                          ("charger", {"type": kind, "online": "1"})):
        (tmp_path / "sys/class/power_supply" / folder).mkdir(parents=True)
        for file, text in files.items():
            (tmp_path / "sys/class/power_supply" / folder / file).write_text(text + "\n")
    assert _discovery_power.power(Reader(str(tmp_path))) == {
        "source": "ac", "battery_percent": 100, "battery_health": None, "charging": False}


def test_virtual_bridge_ports_are_not_ethernet(tmp_path):
    """A Wi-Fi-only Pi running containers has the host ends of their veth pairs in docker0, all of type 1."""
    tree = copy_board(tmp_path, "pi-zero-w")
    for name in ("docker0", "veth3f1c2a9"):
        (tree / "sys/class/net" / name).mkdir()
        (tree / "sys/class/net" / name / "type").write_text("1\n")
    (tree / "sys/class/net/docker0/bridge").mkdir()
    (tree / "sys/class/net/veth3f1c2a9/brport").mkdir()
    assert run(tree)[0]["network"] == ["bluetooth", "wifi"]


def test_physical_port_in_a_bridge_is_still_ethernet(tmp_path):
    tree = copy_board(tmp_path, "pi-3b")
    (tree / "sys/class/net/eth0/brport").mkdir()
    # on a Pi, device is a link into /sys/devices, which a recorded tree leaves out
    shutil.rmtree(tree / "sys/class/net/eth0/device")
    (tree / "sys/class/net/eth0/device").symlink_to("../../../devices/platform/soc/3f980000.usb/usb1/1-1/1-1.1")
    assert run(tree)[0]["network"] == ["bluetooth", "ethernet", "wifi"]


GARBAGE = (b"", b"\x00", b"\xff\xfe\x00\x80garbage", b"-5", b"-5 kB", b"nan", b"inf", b"1e400",
           b"9" * 400, b"max", b"0 0", b"a:b:c\n::\n", b"MemTotal: -5 kB\nBogoMIPS : nan\n")


@pytest.mark.parametrize("board", ["pi-4b", "container-cgroup-v1", "service-cgroup-v2"])
def test_no_bad_source_makes_an_invalid_profile(tmp_path, board):
    """Every file of a recorded tree replaced in turn by garbage: the profile stays valid JSON, never an error."""
    tree = copy_board(tmp_path, board)
    files = sorted(path for path in tree.rglob("*") if path.is_file())
    assert len(files) > 20
    for path in files:
        original = path.read_bytes()
        for garbage in GARBAGE:
            path.write_bytes(garbage)
            got, warnings = run(tree, node="n")
            json.dumps(got, allow_nan=False)
            assert all(isinstance(warning, str) for warning in warnings)
        path.write_bytes(original)
