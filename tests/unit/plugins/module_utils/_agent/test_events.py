# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The event sources without netlink (inotify, the stat signature) on a sysfs tree in tmp_path, changed the
way the demo cluster plugs and unplugs devices; and the debounce."""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import typing as t
from pathlib import Path

import pytest

from ansible_collections.nanoedge.core.plugins.module_utils._agent import events, sysfs

LOG = logging.getLogger("test")


def make_tree(root: Path) -> None:
    """A worker's hardware folder: a USB hub, a 1-Wire master, a battery and a network link."""
    usb = root / "sys/bus/usb/devices/usb1"
    usb.mkdir(parents=True)
    (usb / "idVendor").write_text("1d6b\n")
    (root / "sys/bus/w1/devices/w1_bus_master1").mkdir(parents=True)
    battery = root / "sys/class/power_supply/BAT0"
    battery.mkdir(parents=True)
    (battery / "type").write_text("Battery\n")
    (battery / "capacity").write_text("80\n")
    (root / "sys/class/net/eth0").mkdir(parents=True)


def plug_oximeter(root: Path) -> None:
    device = root / "sys/bus/usb/devices/1-1.3"
    device.mkdir()
    (device / "idVendor").write_text("0403\n")
    (device / "idProduct").write_text("6001\n")


def unplug_oximeter(root: Path) -> None:
    shutil.rmtree(root / "sys/bus/usb/devices/1-1.3")


def plug_probe(root: Path) -> None:
    (root / "sys/bus/w1/devices/28-0316a2798aff").mkdir()


def battery_low(root: Path) -> None:
    (root / "sys/class/power_supply/BAT0/capacity").write_text("12\n")


def new_bus(root: Path) -> None:
    (root / "sys/bus/i2c/devices/1-0048").mkdir(parents=True)


def nothing(root: Path) -> None:
    (root / "sys/bus/usb/devices/usb1/idVendor").read_text()


CHANGES = [
    # (change, folders the signature sees moved)
    (plug_oximeter, ["sys/bus/usb/devices"]),
    (plug_probe, ["sys/bus/w1/devices"]),
    (battery_low, ["sys/class/power_supply"]),
    (new_bus, ["sys/bus/i2c/devices"]),
]


def test_watched_folders(tmp_path):
    make_tree(tmp_path)
    assert [str(Path(p).relative_to(tmp_path)) for p in sysfs.watched_folders(str(tmp_path))] == [
        "sys/bus/usb/devices", "sys/bus/w1/devices", "sys/class/power_supply", "sys/class/power_supply/BAT0",
        "sys/class/net"]


@pytest.mark.parametrize("change, moved", CHANGES, ids=[change.__name__ for change, _moved in CHANGES])
def test_signature_moves_with_each_change(tmp_path, change, moved):
    make_tree(tmp_path)
    before = sysfs.signature(str(tmp_path))
    assert sysfs.signature(str(tmp_path)) == before
    change(tmp_path)
    after = sysfs.signature(str(tmp_path))
    assert [f for f, old, new in zip(sysfs.FOLDERS, before, after) if old != new] == moved


def test_unplug_moves_the_signature_back(tmp_path):
    make_tree(tmp_path)
    before = sysfs.signature(str(tmp_path))
    plug_oximeter(tmp_path)
    assert sysfs.signature(str(tmp_path)) != before
    unplug_oximeter(tmp_path)
    assert sysfs.signature(str(tmp_path)) == before


def test_reading_a_file_moves_nothing(tmp_path):
    make_tree(tmp_path)
    before = sysfs.signature(str(tmp_path))
    nothing(tmp_path)
    assert sysfs.signature(str(tmp_path)) == before


def inotify_or_skip() -> sysfs.Inotify:
    try:
        return sysfs.Inotify()
    except sysfs.InotifyError as exc:
        pytest.skip("no inotify here: %s" % exc)


@pytest.mark.parametrize("change, folder", [
    (plug_oximeter, "sys/bus/usb/devices"),
    (unplug_oximeter, "sys/bus/usb/devices"),
    (plug_probe, "sys/bus/w1/devices"),
    (battery_low, "sys/class/power_supply/BAT0"),
], ids=["plug", "unplug", "w1", "battery"])
def test_inotify_tells_the_folder(tmp_path, change, folder):
    make_tree(tmp_path)
    if change is unplug_oximeter:
        plug_oximeter(tmp_path)
    watcher = inotify_or_skip()
    try:
        watcher.watch(sysfs.watched_folders(str(tmp_path)))
        assert watcher.read() == []
        change(tmp_path)
        assert watcher.read() == [str(tmp_path / folder)]
        assert watcher.read() == []
    finally:
        watcher.close()


def test_inotify_watches_a_folder_made_again(tmp_path):
    """The testbed's plug replaces a whole bus folder: the old watch goes, watch() adds the new folder."""
    make_tree(tmp_path)
    watcher = inotify_or_skip()
    try:
        watcher.watch(sysfs.watched_folders(str(tmp_path)))
        shutil.rmtree(tmp_path / "sys/bus/w1")
        assert watcher.read() == [str(tmp_path / "sys/bus/w1/devices")]
        assert str(tmp_path / "sys/bus/w1/devices") not in watcher.watches.values()
        (tmp_path / "sys/bus/w1/devices").mkdir(parents=True)
        watcher.watch(sysfs.watched_folders(str(tmp_path)))
        plug_probe(tmp_path)
        assert watcher.read() == [str(tmp_path / "sys/bus/w1/devices")]
    finally:
        watcher.close()


def test_watcher_look_notifies_once_per_change(tmp_path):
    make_tree(tmp_path)
    seen: t.List[str] = []

    async def scenario() -> None:
        watcher = events.Watcher(str(tmp_path), seen.append, poll_interval=3600, log=LOG)
        sources = watcher.start()
        try:
            assert sources[-1] == "a look every 3600s"
            assert "kernel uevents" not in sources  # a fixture root is not this machine
            watcher.look()
            plug_oximeter(tmp_path)
            battery_low(tmp_path)
            watcher.look()
            watcher.look()
        finally:
            watcher.close()

    asyncio.run(scenario())
    assert seen == ["changed sys/bus/usb/devices, sys/class/power_supply"]


def test_watcher_inotify_through_the_loop(tmp_path):
    make_tree(tmp_path)
    seen: t.List[str] = []

    async def scenario() -> None:
        watcher = events.Watcher(str(tmp_path), seen.append, poll_interval=3600, log=LOG)
        watcher.start()
        if watcher.inotify is None:
            watcher.close()
            pytest.skip("no inotify here")
        try:
            plug_probe(tmp_path)
            for _tick in range(100):
                await asyncio.sleep(0.01)
                if seen:
                    break
        finally:
            watcher.close()

    asyncio.run(scenario())
    assert seen == ["inotify sys/bus/w1/devices"]


class FakeSleep:
    """Sleeps that end when the test says so, to run a debounce without waiting."""

    def __init__(self) -> None:
        self.calls: t.List[float] = []
        self.release = asyncio.Event()

    async def __call__(self, delay: float) -> None:
        self.calls.append(delay)
        await self.release.wait()
        self.release.clear()


@pytest.mark.parametrize("bursts, expected", [
    ([["usb add"]], [["usb add"]]),
    ([["usb add", "usb interface", "tty add", "usb add"]], [["usb add", "usb interface", "tty add", "usb add"]]),
    ([["usb add", "usb interface"], ["battery change"]], [["usb add", "usb interface"], ["battery change"]]),
], ids=["one", "burst", "two-bursts"])
def test_debounce_makes_a_burst_one_action(bursts, expected):
    actions: t.List[t.List[str]] = []

    async def scenario() -> None:
        sleep = FakeSleep()

        async def action(reasons: t.List[str]) -> None:
            actions.append(reasons)

        debouncer = events.Debouncer(0.5, action, sleep=sleep)
        for burst in bursts:
            for reason in burst:
                debouncer.trigger(reason)
                await asyncio.sleep(0)
            sleep.release.set()
            for _tick in range(5):
                await asyncio.sleep(0)
        assert sleep.calls == [0.5] * len(bursts)
        assert debouncer.task.done()

    asyncio.run(scenario())
    assert actions == expected


def test_events_during_the_action_make_one_more_round():
    actions: t.List[t.List[str]] = []

    async def scenario() -> None:
        debouncer = None

        async def action(reasons: t.List[str]) -> None:
            actions.append(reasons)
            if len(actions) == 1:
                debouncer.trigger("late 1")
                debouncer.trigger("late 2")

        debouncer = events.Debouncer(0.01, action)
        debouncer.trigger("first")
        await asyncio.wait_for(debouncer.task, 5)

    asyncio.run(scenario())
    assert actions == [["first"], ["late 1", "late 2"]]


def test_without_netlink_the_others_still_watch(monkeypatch):
    monkeypatch.setattr(events.uevents, "open_netlink", lambda: (None, "netlink socket: Operation not permitted"))

    async def scenario() -> t.List[str]:
        watcher = events.Watcher("/", lambda reason: None, poll_interval=3600, log=LOG)
        try:
            return watcher.start()
        finally:
            watcher.close()

    sources = asyncio.run(scenario())
    assert sources[0] == "no kernel uevents (netlink socket: Operation not permitted)"
    assert sources[-1] == "a look every 3600s"


def test_netlink_datagrams_become_reasons(tmp_path, caplog):
    fixtures = Path(__file__).resolve().parents[1] / "fixtures" / "uevent"
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    right.setblocking(False)
    seen: t.List[str] = []
    watcher = events.Watcher(str(tmp_path), seen.append, poll_interval=3600, log=LOG)
    watcher.netlink = right
    with left, right:
        for name in ("usb_ftdi_add.bin", "tty_ttyusb0_add.bin", "malformed_no_at.bin", "power_supply_change.bin",
                     "malformed_no_at.bin"):
            left.send((fixtures / name).read_bytes())
        watcher._on_netlink()  # pylint: disable=protected-access
    assert seen == ["uevent add usb /devices/platform/soc/fe980000.usb/usb1/1-1/1-1.3",
                    "uevent change power_supply /devices/platform/soc/fe804000.i2c/i2c-1/1-0036/power_supply/max17040"]
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        "events: malformed uevent, no ACTION@DEVPATH: header 'add /devices/w1_bus_master1' "
        "(ignored; further ones of this kind are not logged)"]
