# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The demo cluster, for real: tools/testbed.py starts the five workers
(under their own names, network and subnet, so a running demo cluster is not
touched), each worker's own Docker engine pulls a nanoservice image from the
registry through the gateway, and each worker shows its fake hardware.
Everything is removed again, also when an assertion fails."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import sys
import time
import typing as t
from pathlib import Path

import pytest
import yaml

COLLECTION_ROOT = Path(__file__).resolve().parents[2]
TESTBED = [sys.executable, str(COLLECTION_ROOT / "tools" / "testbed.py")]
CLUSTER = yaml.safe_load((COLLECTION_ROOT / "testbed" / "cluster.yml").read_text())
WORKERS = [h for h, spec in CLUSTER["nodes"].items() if spec["role"] == "worker"]


def _free_subnet(docker) -> str:
    taken = []
    for network in docker.out("network", "ls", "-q").split():
        for config in json.loads(docker.out("network", "inspect", network))[0]["IPAM"]["Config"] or []:
            if config.get("Subnet"):
                taken.append(ipaddress.ip_network(config["Subnet"], strict=False))
    for third in range(100 + os.getpid() % 100, 256):
        candidate = ipaddress.ip_network("172.30.%d.0/24" % third)
        if not any(candidate.overlaps(other) for other in taken if other.version == 4):
            return str(candidate)
    raise AssertionError("no free 172.30.x.0/24 subnet")


class RunningBed:
    def __init__(self, docker, unique: str, subnet: str) -> None:
        self.docker = docker
        self.prefix = "nanoedge-it%s-" % unique[:6]
        self.network = "nanoedge-it-%s" % unique[:6]
        self.subnet = ipaddress.ip_network(subnet)
        self.gateway = str(self.subnet.network_address + 1)
        self.registry = "%s:%d" % (self.gateway, CLUSTER["registry"]["port"])
        self.args = ["--prefix", self.prefix, "--network", self.network, "--subnet", subnet,
                     "--only", ",".join(WORKERS)]

    def run(self, *command: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([*TESTBED, *self.args, *command], capture_output=True, timeout=timeout,
                              check=False, cwd=str(COLLECTION_ROOT))

    def sh(self, host: str, script: str, check: bool = True) -> str:
        return self.docker.out("exec", self.prefix + host, "sh", "-c", script, check=check)

    def address(self, host: str) -> str:
        return str(self.subnet.network_address + CLUSTER["nodes"][host]["address"])


@pytest.fixture(scope="module")
def images(docker, registry, base_image) -> t.Dict[str, str]:
    """Every example nanoservice built and pushed: name -> path in the registry."""
    proc = subprocess.run([sys.executable, str(COLLECTION_ROOT / "tools" / "nanoservices.py"), "--json"],
                          capture_output=True, timeout=600, check=False, cwd=str(COLLECTION_ROOT))
    assert proc.returncode == 0, proc.stderr.decode()
    results = json.loads(proc.stdout)
    assert all(r["digest"].startswith("sha256:") for r in results)
    return {r["name"]: r["image"].split("/", 1)[1] for r in results}  # nanoedge/spo2:1.0.0


@pytest.fixture(scope="module")
def spo2_image(images) -> str:
    return images["spo2"]


@pytest.fixture(scope="module")
def testbed(docker, registry, base_image, spo2_image) -> t.Iterator["RunningBed"]:
    bed = RunningBed(docker, os.urandom(4).hex(), _free_subnet(docker))
    try:
        started = time.monotonic()
        proc = bed.run("up", "--timeout", "120", "--pull", spo2_image)
        assert proc.returncode == 0, proc.stderr.decode()
        bed.up_seconds = time.monotonic() - started
        bed.up_log = proc.stderr.decode()
        yield bed
    finally:
        down = bed.run("down")
        left = docker.out("ps", "-aq", "--filter", "name=%s" % bed.prefix)
        if left:  # the tool failed to clean up: do it here, then fail
            docker("rm", "-f", "-v", *left.split(), check=False)
        docker("network", "rm", bed.network, check=False)
        assert down.returncode == 0, down.stderr.decode()
        assert not left


def test_every_worker_pulled_the_image_through_the_gateway(testbed, spo2_image):
    assert "pulled %s/%s on %s" % (testbed.registry, spo2_image, ", ".join(WORKERS)) in testbed.up_log
    for host in WORKERS:
        labels = json.loads(testbed.sh(host, "docker image inspect -f '{{json .Config.Labels}}' %s/%s"
                                       % (testbed.registry, spo2_image)))
        assert labels["io.nanoedge.service"] == "spo2"
        assert json.loads(labels["io.nanoedge.requirements"])["capabilities"] == ["pom"]
        # the node reaches the registry only through the gateway, as a Pi on the LAN would
        assert testbed.sh(host, "docker info -f '{{json .RegistryConfig.IndexConfigs}}'").count(testbed.registry)


@pytest.mark.parametrize("host", WORKERS)
def test_board_and_limits(testbed, host):
    spec = CLUSTER["nodes"][host]
    pi4 = "Pi 4" in spec["board"]
    model = "Raspberry Pi 4 Model B Rev 1.4" if pi4 else "Raspberry Pi 3 Model B Plus Rev 1.3"
    assert testbed.sh(host, "tr -d '\\0' < /sys/firmware/devicetree/base/model") == model
    assert "Model\t\t: %s" % model in testbed.sh(host, "cat /proc/cpuinfo")
    assert testbed.sh(host, "grep -c ^processor /proc/cpuinfo") == "4"
    quota, period = testbed.sh(host, "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us "
                                     "2>/dev/null || cat /sys/fs/cgroup/cpu.max").split()
    assert int(quota) // int(period) == spec["cpus"]
    limit = testbed.sh(host, "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null "
                             "|| cat /sys/fs/cgroup/memory.max")
    assert int(limit) == int(spec["memory"].rstrip("m")) * 1024 * 1024
    assert testbed.sh(host, "cat /proc/1/comm") == "systemd"
    assert testbed.sh(host, "systemctl is-active docker.service") == "active"
    assert testbed.sh(host, "hostname") == host


@pytest.mark.parametrize("host, battery", [
    ("w1", {"type": "Battery", "status": "Discharging", "capacity": "81"}),
    ("w2", None),
    ("w3", {"type": "Battery", "status": "Charging", "capacity": "95"}),
    ("w4", None),
    ("w5", {"type": "Battery", "status": "Discharging", "capacity": "64"}),
])
def test_power_supply(testbed, host, battery):
    listing = testbed.sh(host, "ls /sys/class/power_supply").split()
    if battery is None:
        assert listing == []
        return
    assert listing == ["ac", "battery"]
    for name, value in battery.items():
        assert testbed.sh(host, "cat /sys/class/power_supply/battery/%s" % name) == value
    mains = "1" if battery["status"] == "Charging" else "0"
    assert testbed.sh(host, "cat /sys/class/power_supply/ac/online") == mains


def test_sensors_and_actuators(testbed):
    # w1: the DS18B20 on 1-Wire
    assert testbed.sh("w1", "ls /sys/bus/w1/devices").split() == ["28-3c01d607d9a1", "w1_bus_master1"]
    assert testbed.sh("w1", "cat /sys/bus/w1/devices/28-*/w1_slave").endswith("t=37125")
    # w3: the Automation HAT's EEPROM, where a container sees the device tree
    assert testbed.sh("w3", "tr -d '\\0' < /sys/firmware/devicetree/base/hat/product") == "Automation HAT"
    assert testbed.sh("w3", "tr -d '\\0' < /sys/firmware/devicetree/base/hat/vendor") == "Pimoroni Ltd."
    # w4: the oximeter's FTDI cable on USB, and its byte stream
    assert testbed.sh("w4", "cat /sys/bus/usb/devices/1-1.3/idVendor /sys/bus/usb/devices/1-1.3/idProduct").split() \
        == ["0403", "6001"]
    assert int(testbed.sh("w4", "stat -c %s /dev/ttyUSB0")) == 180 * 100 * 5
    # w5: the display's regulator on I2C
    assert testbed.sh("w5", "cat /sys/bus/i2c/devices/10-0045/name") == "7inch-touchscreen-panel-regulator"
    # nobody else has them
    for host in ("w2", "w4", "w5"):
        assert testbed.sh(host, "ls /sys/bus/w1 2>/dev/null; ls /sys/firmware/devicetree/base/hat 2>/dev/null",
                          check=False) == ""
    for host in ("w1", "w2", "w3", "w5"):
        assert "0403" not in testbed.sh(host, "cat /sys/bus/usb/devices/*/idVendor")


def test_spo2_runs_on_w4_and_serves_readings(testbed, spo2_image):
    image = "%s/%s" % (testbed.registry, spo2_image)
    testbed.sh("w4", "docker run -d --name spo2 --label io.nanoedge.service=spo2 -p 5701:5701/udp "
                     "-v /dev/ttyUSB0:/dev/ttyUSB0:ro %s" % image)
    client = shutil.which("coap-client-notls") or shutil.which("coap-client-openssl")
    assert client, "libcoap3-bin is not installed"
    deadline = time.monotonic() + 30
    reading: t.Dict[str, t.Any] = {}
    while time.monotonic() < deadline:
        proc = subprocess.run([client, "-B", "3", "coap://%s:5701/spo2" % testbed.address("w4")],
                              capture_output=True, timeout=10, check=False)
        text = proc.stdout.decode().strip()
        if text.startswith("{"):
            reading = json.loads(text)
            if reading.get("spo2") is not None:
                break
        time.sleep(1)
    assert reading.get("status") == "ok", reading
    assert 94 <= reading["spo2"] <= 99 and 60 <= reading["pulse_rate"] <= 90
    assert testbed.sh("w4", "docker ps --filter label=io.nanoedge.service=spo2 --format '{{.Names}}'") == "spo2"


def test_up_again_changes_nothing(testbed):
    before = {h: testbed.docker.out("inspect", "-f", "{{.Id}}", testbed.prefix + h) for h in WORKERS}
    started = time.monotonic()
    proc = testbed.run("up")
    assert proc.returncode == 0, proc.stderr.decode()
    assert time.monotonic() - started < 30
    assert "started" not in proc.stderr.decode() and "re-created" not in proc.stderr.decode()
    assert before == {h: testbed.docker.out("inspect", "-f", "{{.Id}}", testbed.prefix + h) for h in WORKERS}
    status = testbed.run("status", "--json")
    assert status.returncode == 0, status.stdout.decode() + status.stderr.decode()
    document = json.loads(status.stdout)
    assert document["registry"] == "up"
    assert {n["host"]: n["engine"] for n in document["nodes"]} == dict.fromkeys(WORKERS, "ok")


_PROBE = ("import socket, sys\n"
          "try:\n"
          "    socket.create_connection((sys.argv[1], 9), timeout=1.5)\n"
          "except ConnectionRefusedError:\n"
          "    print('reached')\n"
          "except OSError as exc:\n"
          "    print(type(exc).__name__)\n")


def _reaches(testbed, host: str, peer: str) -> bool:
    """Whether ``host`` reaches ``peer`` (a closed port answers with a reset; a cut one with nothing)."""
    answer = testbed.docker.out("exec", testbed.prefix + host, "python3", "-c", _PROBE, testbed.address(peer))
    return answer.strip() == "reached"


def test_cut_heal_and_blip(testbed):
    assert _reaches(testbed, "w1", "w2") and _reaches(testbed, "w2", "w1")
    proc = testbed.run("cut", "w1", "w2")
    assert proc.returncode == 0, proc.stderr.decode()
    assert not _reaches(testbed, "w1", "w2") and not _reaches(testbed, "w2", "w1")
    assert _reaches(testbed, "w1", "w3") and _reaches(testbed, "w3", "w2")
    proc = testbed.run("cut", "w1", "w3")  # a second cut adds to the first
    assert proc.returncode == 0, proc.stderr.decode()
    assert not _reaches(testbed, "w1", "w2") and not _reaches(testbed, "w1", "w3")
    proc = testbed.run("heal")
    assert proc.returncode == 0, proc.stderr.decode()
    assert _reaches(testbed, "w1", "w2") and _reaches(testbed, "w1", "w3")
    blip = subprocess.Popen([*TESTBED, *testbed.args, "blip", "w2", "--seconds", "4"], cwd=str(COLLECTION_ROOT),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(1.5)
    assert not _reaches(testbed, "w3", "w2")
    _out, err = blip.communicate(timeout=30)
    assert blip.returncode == 0 and b"blip: w2 was off the network for 4." in err, err.decode()
    assert _reaches(testbed, "w3", "w2")


def test_battery_charge_changes_in_the_running_node(testbed):
    uevent = "cat /sys/class/power_supply/battery/uevent"
    assert "POWER_SUPPLY_CAPACITY=81" in testbed.sh("w1", uevent).splitlines()
    proc = testbed.run("battery", "w1", "15")
    assert proc.returncode == 0, proc.stderr.decode()
    assert "POWER_SUPPLY_CAPACITY=15" in testbed.sh("w1", uevent).splitlines()
    assert testbed.run("battery", "w1", "81").returncode == 0
    assert "POWER_SUPPLY_CAPACITY=81" in testbed.sh("w1", uevent).splitlines()
    proc = testbed.run("battery", "w2", "15")
    assert proc.returncode == 1 and b"w2 has no battery" in proc.stderr


def test_the_oximeter_moves_between_running_nodes(testbed):
    usb, tty = "sys/bus/usb/devices/1-1.3", "dev/ttyUSB0"
    for path in (tty, usb):
        proc = testbed.run("unplug", "w4", path)
        assert proc.returncode == 0, proc.stderr.decode()
        proc = testbed.run("plug", "w2", path, "--from", "w4")
        assert proc.returncode == 0, proc.stderr.decode()
    assert testbed.sh("w4", "test -e /dev/ttyUSB0 || echo gone; cat /sys/bus/usb/devices/*/idVendor", check=False) \
        .split().count("0403") == 0
    assert int(testbed.sh("w2", "stat -c %s /dev/ttyUSB0")) == 180 * 100 * 5
    assert testbed.sh("w2", "cat /sys/bus/usb/devices/1-1.3/idVendor") == "0403"
    proc = testbed.run("unplug", "w4", tty)
    assert proc.returncode == 1 and b"w4 has no /dev/ttyUSB0" in proc.stderr
    for path in (tty, usb):  # and back
        assert testbed.run("unplug", "w2", path).returncode == 0
        assert testbed.run("plug", "w4", path, "--from", "w4").returncode == 0
    assert int(testbed.sh("w4", "stat -c %s /dev/ttyUSB0")) == 180 * 100 * 5
    assert testbed.sh("w2", "test -e /dev/ttyUSB0 || echo gone", check=False) == "gone"


def _coap_get(uri: str) -> t.Optional[t.Dict[str, t.Any]]:
    client = shutil.which("coap-client-notls") or shutil.which("coap-client-openssl")
    assert client, "libcoap3-bin is not installed"
    proc = subprocess.run([client, "-B", "3", uri], capture_output=True, timeout=10, check=False)
    text = proc.stdout.decode().strip()
    return json.loads(text) if text.startswith("{") else None


def test_the_scenario_runs_and_readings_flow(testbed, images):
    """The seven services where the paper's scenario puts them; SpO2 readings
    reach the alert, the alert opens the oxygen valve, the display shows it
    all. The alert threshold is set above the patient's 97 % so the alert
    fires within seconds instead of at the recording's desaturation."""
    def deploy(host: str, name: str, *options: str) -> None:
        port = json.loads((COLLECTION_ROOT / "nanoservices" / name / "service.json").read_text())["port"]["number"]
        testbed.sh(host, "docker rm -f %s >/dev/null 2>&1; docker run -d --name %s --label io.nanoedge.service=%s "
                         "-p %d:%d/udp %s %s/%s" % (name, name, name, port, port, " ".join(options),
                                                    testbed.registry, images[name]))

    w = testbed.address
    oximeter = "-v /dev/ttyUSB0:/dev/ttyUSB0:ro"
    deploy("w4", "spo2", oximeter)
    deploy("w4", "hr", oximeter)
    deploy("w4", "hrv", oximeter)
    deploy("w1", "bot", "-v /sys/bus/w1/devices:/run/nanoedge/w1:ro -e NANOEDGE_W1_DEVICES=/run/nanoedge/w1")
    deploy("w3", "oc", "-v /run/nanoedge/oc:/run/nanoedge/oc")
    deploy("w2", "alert", "-e NANOEDGE_SPO2_URI=coap://%s:5701/spo2" % w("w4"),
           "-e NANOEDGE_OC_URI=coap://%s:5706/valve" % w("w3"), "-e NANOEDGE_SPO2_THRESHOLD=98",
           "-e NANOEDGE_ALERT_HOLD=3")
    sources = ",".join("%s=coap://%s:%d/%s" % item for item in (
        ("spo2", w("w4"), 5701, "spo2"), ("hr", w("w4"), 5702, "hr"), ("hrv", w("w4"), 5703, "hrv"),
        ("bot", w("w1"), 5704, "temperature"), ("alert", w("w2"), 5705, "alert"), ("oc", w("w3"), 5706, "valve")))
    deploy("w5", "display", "-v /run/nanoedge/display:/run/nanoedge/display",
           "-e NANOEDGE_DISPLAY_SOURCES=%s" % sources, "-e NANOEDGE_DISPLAY_OUTPUT=/run/nanoedge/display/screen.txt")

    deadline = time.monotonic() + 60
    screen = ""
    while time.monotonic() < deadline:
        screen = testbed.sh("w5", "cat /run/nanoedge/display/screen.txt 2>/dev/null", check=False)
        if "SpO2 LOW" in screen and "L/min (SpO2 alert)" in screen and "RMSSD --" not in screen:
            break
        time.sleep(1)
    lines = dict((line[:6].strip(), line[7:]) for line in screen.splitlines()[2:])
    assert set(lines) == {"SpO2", "HR", "HRV", "BoT", "Alert", "O2"}, screen
    assert lines["BoT"] == "37.1 C", screen
    assert lines["Alert"].startswith("SpO2 LOW since "), screen
    assert lines["O2"] == "4.0 L/min (SpO2 alert)", screen
    for value in lines.values():
        assert "unreachable" not in value and "--" not in value, screen

    valve = json.loads(testbed.sh("w3", "cat /run/nanoedge/oc/valve.json"))
    assert valve["open"] is True and valve["flow_lpm"] == 4.0 and valve["reason"] == "SpO2 alert"
    alert = _coap_get("coap://%s:5705/alert" % w("w2"))
    assert alert is not None and alert["state"] == "alert" and alert["threshold"] == 98
    assert [h["state"] for h in alert["history"]][:2] == ["pending", "alert"]
    hrv = _coap_get("coap://%s:5703/hrv" % w("w4"))
    assert hrv is not None and hrv["rmssd_ms"] > 0 and 700 < hrv["mean_rr_ms"] < 950
    for host, names in (("w1", "bot"), ("w2", "alert"), ("w3", "oc"), ("w4", "hr hrv spo2"), ("w5", "display")):
        running = testbed.sh(host, "docker ps --filter label=io.nanoedge.service --format '{{.Names}}'").split()
        assert sorted(running) == names.split()


def _alert_counters(testbed: "RunningBed", timeout: float = 30.0, newer_than: int = 0) -> t.Dict[str, t.Any]:
    """The alert's /counters once it has caught up with its SpO2 source (and passed ``newer_than``)."""
    deadline = time.monotonic() + timeout
    counters: t.Optional[t.Dict[str, t.Any]] = None
    while time.monotonic() < deadline:
        counters = _coap_get("coap://%s:5705/counters" % testbed.address("w2"))
        source = (counters or {}).get("sources", {}).get((counters or {}).get("current") or "")
        if source and source["head"] <= source["last_seq"] and source["last_seq"] > newer_than:
            return counters
        time.sleep(0.5)
    raise AssertionError("the alert did not catch up within %.0f s: %s" % (timeout, counters))


def test_a_killed_consumer_catches_up_at_its_restart(testbed):
    """The alert (the SpO2 consumer, as deployed above) is killed in the middle of the stream and started
    again: it processes every reading the sensor took while it was down, in order, each once, and its
    counters, kept with its position, say so (no gap, no duplicate)."""
    before = _alert_counters(testbed)
    source = before["current"]
    assert source.startswith("spo2/") and before["sources"][source]["last_seq"] > 0, before
    testbed.sh("w2", "docker kill alert >/dev/null")
    time.sleep(6)  # the sensor goes on at one reading a second; the alert hears none of them
    head = _coap_get("coap://%s:5701/spo2" % testbed.address("w4"))
    assert head is not None and head["seq"] >= before["sources"][source]["last_seq"] + 4, head
    testbed.sh("w2", "docker start alert >/dev/null")
    after = _alert_counters(testbed, newer_than=head["seq"])
    old, new = before["sources"][source], after["sources"][source]
    assert after["current"] == source
    # every number between the two positions handled once: as many received as the sequence advanced
    assert new["received"] - old["received"] == new["last_seq"] - old["last_seq"], (before, after)
    assert (new["missing"], new["gaps"], new["duplicates"], new["resets"]) == (
        old["missing"], old["gaps"], old["duplicates"], old["resets"]), (before, after)
    assert after["refused"] == []


def test_bare_metal_service_under_systemd(testbed, images):
    """The same program without Docker: files and aiocoap's wheel copied to
    the node, a systemd unit, the real (fake) 1-Wire bus."""
    wheel = sorted((COLLECTION_ROOT / ".build" / "wheels").glob("aiocoap-*.whl"))[-1]
    spec = json.loads((COLLECTION_ROOT / "nanoservices" / "bot" / "service.json").read_text())
    container = testbed.prefix + "w1"
    target = "/opt/nanoedge/services/bot"
    testbed.sh("w1", "mkdir -p %s/lib %s/wheels" % (target, target))
    for library in spec["libraries"]:
        testbed.docker("cp", str(COLLECTION_ROOT / "nanoservices" / library), "%s:%s/lib/" % (container, target))
    testbed.docker("cp", str(COLLECTION_ROOT / "nanoservices" / spec["program"]), "%s:%s/" % (container, target))
    testbed.docker("cp", str(wheel), "%s:%s/wheels/" % (container, target))
    testbed.sh("w1", "python3 -m zipfile -e %s/wheels/%s %s/lib && systemd-run --unit nanoedge-bot "
                     "-E PYTHONPATH=%s/lib -E NANOEDGE_PORT=5714 python3 %s/bot.py"
               % (target, wheel.name, target, target, target))
    deadline = time.monotonic() + 20
    reading = None
    while time.monotonic() < deadline and reading is None:
        reading = _coap_get("coap://%s:5714/temperature" % testbed.address("w1"))
        time.sleep(0.5)
    assert reading is not None and reading["celsius"] == 37.125 and reading["sensor"] == "28-3c01d607d9a1"
    assert testbed.sh("w1", "systemctl is-active nanoedge-bot") == "active"
