# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The nanoservice programs' own logic, and what their images promise."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ansible_collections.nanoedge.core.plugins.module_utils._labels import DESCRIPTION_LABEL
from ansible_collections.nanoedge.core.plugins.module_utils._requirements import normalize_requirements
from ansible_collections.nanoedge.core.plugins.plugin_utils._service_description import normalize_description
from nanoedge_ns import alerting, bm1000b, coapio
from nanoedge_ns.bm1000b import Packet

NANOSERVICES = Path(__file__).resolve().parents[3] / "nanoservices"
SERVICE_NAMES = ("alert", "bot", "display", "hr", "hrv", "oc", "spo2")


DOCKERFILE = NANOSERVICES / "Dockerfile"


def _spec(name: str) -> dict:
    return json.loads((NANOSERVICES / name / "service.json").read_text())


# ------------------------------------------------------------------ images


def test_every_folder_is_a_known_service():
    folders = sorted(p.name for p in NANOSERVICES.iterdir() if (p / "service.json").exists())
    assert folders == sorted(SERVICE_NAMES)


def test_one_dockerfile_serves_every_service():
    assert sorted(p.parent.name for p in NANOSERVICES.rglob("Dockerfile")) == ["nanoservices"]


def test_the_labels_come_from_the_build_arguments():
    dockerfile = DOCKERFILE.read_text()
    arguments = set(re.findall(r"^ARG (\w+)", dockerfile, re.MULTILINE))
    assert arguments == {"BASE_IMAGE", "SERVICE", "PROGRAM", "PORT", "DESCRIPTION", "VERSION", "REQUIREMENTS",
                         "SERVICE_DESCRIPTION", "AIOCOAP_WHEEL"}
    labels = dict(re.findall(r'^(?:LABEL)?\s+([\w.]+)="([^"]*)"', dockerfile, re.MULTILINE))
    assert labels == {
        "io.nanoedge.service": "${SERVICE}",
        "io.nanoedge.requirements": "${REQUIREMENTS}",
        DESCRIPTION_LABEL: "${SERVICE_DESCRIPTION}",
        "org.opencontainers.image.title": "nanoedge ${SERVICE}",
        "org.opencontainers.image.description": "${DESCRIPTION}",
        "org.opencontainers.image.version": "${VERSION}",
        "org.opencontainers.image.licenses": "GPL-3.0-or-later",
    }
    assert "COPY ${PROGRAM} /opt/nanoedge/service/main.py" in dockerfile
    assert "EXPOSE ${PORT}" in dockerfile
    # exec form: the program is PID 1 and receives the container's signals
    assert 'ENTRYPOINT ["python3", "/opt/nanoedge/service/main.py"]' in dockerfile


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_service_description(name):
    spec = _spec(name)
    assert normalize_description(spec)["name"] == name  # the one schema, no unknown keys
    assert spec["program"] == "%s/%s.py" % (name, name)
    assert spec["port"]["protocol"] == "udp"
    # the program's default port is the one the description publishes
    help_text = subprocess.run([sys.executable, str(NANOSERVICES / spec["program"]), "--help"], check=True,
                               capture_output=True, env=dict(os.environ, PYTHONPATH=str(NANOSERVICES / "common")),
                               timeout=60).stdout.decode()
    assert "default %d)" % spec["port"]["number"] in " ".join(help_text.split())


def test_ports_are_distinct():
    ports = [_spec(n)["port"]["number"] for n in SERVICE_NAMES]
    assert len(set(ports)) == len(ports)


@pytest.mark.parametrize("name, capabilities, power", [
    # the paper's scenario: SpO2 and HRV need the pulse oximeter (W4), BoT the
    # thermometer (W1), OC the valve actuator (W3), the display the screen (W5)
    ("spo2", ["pom"], ""), ("hrv", ["pom"], ""), ("hr", ["pom"], ""), ("bot", ["bot"], ""),
    ("oc", ["oc"], "ac"), ("display", ["dd"], ""), ("alert", [], "ac"),
])
def test_requirements_express_the_scenario(name, capabilities, power):
    requirements = normalize_requirements(_spec(name)["requirements"])
    assert requirements["capabilities"] == capabilities
    assert requirements["power"] == power
    assert 0 < requirements["cpu"] <= 1 and 0 < requirements["memory_mb"] <= 128


# ------------------------------------------------------------------- spo2


def test_spo2_window_averages_valid_readings(service_module):
    spo2 = service_module("spo2")
    window = spo2.Spo2Window(rate_hz=4, seconds=1.0)
    for value, rate in ((96, 70), (98, 72), (97, 74), (95, 76)):
        window.add(Packet(pulse_rate=rate, spo2=value))
    assert window.reading() == {"spo2": 96, "pulse_rate": 73, "status": "ok"}


def test_spo2_window_without_enough_valid_readings(service_module):
    spo2 = service_module("spo2")
    window = spo2.Spo2Window(rate_hz=4, seconds=1.0)
    window.add(Packet(pulse_rate=70, spo2=96))
    for packet in [Packet(no_finger=True)] * 3:
        window.add(packet)
    assert window.reading() == {"spo2": None, "pulse_rate": None, "status": "no finger"}
    window.add(Packet(probe_unplugged=True))
    assert window.reading()["status"] == "probe unplugged"


# -------------------------------------------------------------- hr and hrv


def test_hr_from_the_synthetic_patient(service_module):
    hr = service_module("hr")
    window = hr.BeatWindow(bm1000b.DEFAULT_RATE_HZ, seconds=15.0)
    for packet in bm1000b.synthesize(40.0):
        window.add(packet)
    result = hr.reading(window)
    assert 70 < result["bpm"] < 76
    assert 17 <= result["beats"] <= 20  # 15 s of beats only
    assert result["window_s"] == 15.0


def test_hr_ignores_invalid_packets(service_module):
    hr = service_module("hr")
    window = hr.BeatWindow(100, seconds=15.0)
    for packet in bm1000b.synthesize(10.0):
        window.add(packet._replace(no_finger=True))
    assert hr.reading(window) == {"bpm": None, "beats": 0, "window_s": 15.0, "unit": "bpm"}


def test_hrv_from_the_synthetic_patient(service_module):
    hrv = service_module("hrv")
    window = hrv.IntervalWindow(bm1000b.DEFAULT_RATE_HZ, seconds=60.0)
    for packet in bm1000b.synthesize(70.0):
        window.add(packet)
    result = hrv.reading(window)
    # generated with a 45 ms respiratory swing and 12 ms noise around 820 ms
    assert 790 < result["mean_rr_ms"] < 850
    assert 20 < result["sdnn_ms"] < 60 and 10 < result["rmssd_ms"] < 80
    assert result["beats"] >= 60


def test_hrv_does_not_bridge_a_gap(service_module):
    hrv = service_module("hrv")
    window = hrv.IntervalWindow(100, seconds=60.0)
    packets = list(bm1000b.synthesize(20.0))
    for index, packet in enumerate(packets):
        # the finger is off for 3 s: no interval may span those 3 s
        window.add(packet._replace(no_finger=True) if 800 <= index < 1100 else packet)
    assert max(window.intervals()) < 1000


# --------------------------------------------------------------------- oc


@pytest.mark.parametrize("command, state", [
    ({"flow_lpm": 2.5}, {"open": True, "flow_lpm": 2.5, "reason": None}),
    ({"flow_lpm": 0}, {"open": False, "flow_lpm": 0.0, "reason": None}),
    ({"open": False, "reason": "done"}, {"open": False, "flow_lpm": 0.0, "reason": "done"}),
    ({"open": True, "flow_lpm": 3}, {"open": True, "flow_lpm": 3.0, "reason": None}),
])
def test_oc_commands(service_module, command, state):
    oc = service_module("oc")
    assert oc.apply_command({"open": True, "flow_lpm": 1.0, "reason": None}, command, 15.0) == state


@pytest.mark.parametrize("command, message", [
    ([], "oc: the command must be a JSON object with flow_lpm and/or open"),
    ({}, "oc: the command must be a JSON object with flow_lpm and/or open"),
    ({"flow": 2}, "oc: unknown key(s) flow (known: flow_lpm, open, reason)"),
    ({"flow_lpm": "2"}, "oc: flow_lpm must be a number, got '2'"),
    ({"flow_lpm": True}, "oc: flow_lpm must be a number, got True"),
    ({"flow_lpm": float("nan")}, "oc: flow_lpm must be a number, got nan"),
    ({"flow_lpm": 16}, "oc: flow_lpm=16 out of range 0..15 L/min"),
    ({"flow_lpm": -1}, "oc: flow_lpm=-1 out of range 0..15 L/min"),
    ({"open": "yes"}, "oc: open must be true or false, got 'yes'"),
    ({"open": True}, "oc: opening the valve needs a flow_lpm > 0"),
    ({"flow_lpm": 1, "reason": 5}, "oc: reason must be a string, got 5"),
])
def test_oc_rejects(service_module, command, message):
    oc = service_module("oc")
    with pytest.raises(ValueError) as error:
        oc.apply_command({"open": False, "flow_lpm": 0.0, "reason": None}, command, 15.0)
    assert str(error.value) == message


def test_oc_state_survives_a_restart(service_module, tmp_path):
    oc = service_module("oc")
    path = str(tmp_path / "oc" / "valve.json")
    assert oc.load_state(path) == {"open": False, "flow_lpm": 0.0, "reason": None, "time": None}
    oc.write_state(path, {"open": True, "flow_lpm": 4.0, "reason": "SpO2 alert", "time": "t"})
    assert oc.load_state(path) == {"open": True, "flow_lpm": 4.0, "reason": "SpO2 alert", "time": "t"}
    (tmp_path / "oc" / "valve.json").write_text("{broken")
    assert oc.load_state(path)["open"] is False
    assert [p.name for p in (tmp_path / "oc").iterdir()] == ["valve.json"]


# ------------------------------------------------------------------ alert


def test_alert_monitor(service_module):
    alert = service_module("alert")
    monitor = alert.Monitor(threshold=92, hold_s=10, margin=1)
    assert monitor.observe({"spo2": 97}, 0.0) is None
    assert monitor.observe({"spo2": 90}, 1.0).state == alerting.PENDING
    assert monitor.observe(None, 2.0) is None  # the SpO2 service did not answer
    assert monitor.observe({"spo2": None, "status": "no finger"}, 5.0) is None
    transition = monitor.observe({"spo2": 89}, 11.0)
    assert transition.state == alerting.ALERT
    assert alert.message(transition, monitor) == "ALERT: SpO2 89 % has stayed below 92 % for 10 s"
    snapshot = monitor.snapshot()
    assert snapshot["state"] == "alert" and snapshot["since"] == "1970-01-01T00:00:11Z"
    assert [h["state"] for h in snapshot["history"]] == ["pending", "alert"]
    cleared = monitor.observe({"spo2": 95}, 20.0)
    assert alert.message(cleared, monitor) == "SpO2 back to 95 %: alert cleared"


def test_alert_keeps_the_sequence_numbers_of_its_transitions(service_module):
    alert = service_module("alert")
    monitor = alert.Monitor(threshold=92, hold_s=10, margin=1)
    readings = [{"seq": 7, "source": "spo2/main", "spo2": 97, "taken_at": 100.0},
                {"seq": 8, "source": "spo2/main", "spo2": 90, "taken_at": 101.0},
                {"seq": 9, "source": "spo2/main", "spo2": "bad", "taken_at": 105.0},
                {"seq": 10, "source": "spo2/main", "spo2": 89, "taken_at": 111.0}]
    states = [getattr(monitor.observe_numbered(r), "state", None) for r in readings]
    assert states == [None, "pending", None, "alert"]  # judged at the time each was taken, a bad one skipped
    snapshot = monitor.snapshot()
    assert snapshot["history"] == [
        {"state": "pending", "time": "1970-01-01T00:01:41Z", "spo2": 90, "seq": 8, "source": "spo2/main"},
        {"state": "alert", "time": "1970-01-01T00:01:51Z", "spo2": 89, "seq": 10, "source": "spo2/main"}]
    assert snapshot["last_seq"] == 10


def test_alert_rejects_a_non_number(service_module):
    alert = service_module("alert")
    with pytest.raises(ValueError) as error:
        alert.Monitor(92, 10, 1).observe({"spo2": "97"}, 0.0)
    assert str(error.value) == "alert: the SpO2 service sent spo2='97', not a number"


# ---------------------------------------------------------------- display


def test_display_renders_the_screen(service_module):
    display = service_module("display")
    screen = display.render({
        "spo2": {"spo2": 88, "pulse_rate": 74, "status": "ok"},
        "hr": {"bpm": 73.4, "beats": 18},
        "hrv": {"rmssd_ms": 42.6, "sdnn_ms": 35.2},
        "bot": {"celsius": 37.125, "error": None},
        "alert": {"state": "alert", "since": "2026-11-26T03:32:49Z", "threshold": 92},
        "oc": {"flow_lpm": 4.0, "reason": "SpO2 alert"},
        "extra": OSError("timed out"),
        "late": None,
    }, now=3600 * 3 + 60 * 32 + 50)
    assert screen == (
        "nanoedge patient monitor                03:32:50\n"
        "------------------------------------------------\n"
        "SpO2   88 %   pulse 74 bpm\n"
        "HR     73 bpm   (18 beats)\n"
        "HRV    RMSSD 43 ms  SDNN 35 ms\n"
        "BoT    37.1 C\n"
        "Alert  SpO2 LOW since 2026-11-26T03:32:49Z\n"
        "O2     4.0 L/min (SpO2 alert)\n"
        "extra  unreachable\n"
        "late   waiting\n"
    )


def test_display_without_readings(service_module):
    display = service_module("display")
    screen = display.render({"spo2": {"spo2": None, "status": "no finger"}, "bot": {"celsius": None,
                             "error": "no DS18B20 under /x"}, "alert": {"state": "normal"}}, now=0)
    assert screen.splitlines()[2:] == ["SpO2   no finger", "BoT    error: no DS18B20 under /x", "Alert  none"]


@pytest.mark.parametrize("values, sources", [
    (["spo2=coap://10.0.0.4:5701/spo2"], {"spo2": "coap://10.0.0.4:5701/spo2"}),
    (["a=coap://h/a, b=coap://h/b", "c=coaps://h/c"], {"a": "coap://h/a", "b": "coap://h/b", "c": "coaps://h/c"}),
    (["spo2=service:spo2,hr=service:hr"], {"spo2": "service:spo2", "hr": "service:hr"}),
    ([], {}),
])
def test_display_sources(service_module, values, sources):
    assert service_module("display").parse_sources(values) == sources


@pytest.mark.parametrize("value", ["spo2", "spo2=http://h/x", "=coap://h/x"])
def test_display_rejects_sources(service_module, value):
    with pytest.raises(ValueError) as error:
        service_module("display").parse_sources([value])
    assert str(error.value) == "display: source %r must look like name=coap://host/path or name=service:name" % value


# -------------------------------------------------------------------- bot


def test_bot_reads_the_first_probe(service_module, tmp_path):
    bot = service_module("bot")
    assert bot.read_temperature(str(tmp_path)) == {
        "celsius": None, "sensor": None, "error": "no DS18B20 under %s" % tmp_path}
    probe = tmp_path / "28-3c01d607d9a1"
    probe.mkdir()
    (probe / "w1_slave").write_text(
        "52 02 4b 46 7f ff 0c 10 29 : crc=29 YES\n52 02 4b 46 7f ff 0c 10 29 t=37125\n")
    assert bot.read_temperature(str(tmp_path)) == {"celsius": 37.125, "sensor": "28-3c01d607d9a1", "error": None}
    (probe / "w1_slave").write_text("ff ff : crc=00 NO\nff ff t=-62\n")
    result = bot.read_temperature(str(tmp_path))
    assert result["celsius"] is None and result["error"].startswith("w1_slave: the driver reports a CRC error")


def test_a_service_stops_at_once_on_sigterm(tmp_path):
    # A moved service is stopped with SIGTERM; as its container's PID 1 it must act on it itself.
    env = dict(os.environ, PYTHONPATH=str(NANOSERVICES / "common"), NANOEDGE_BIND="127.0.0.1",
               NANOEDGE_PORT=str(20000 + os.getpid() % 20000), NANOEDGE_SPO2_URI="coap://127.0.0.1:9/spo2",
               NANOEDGE_OC_URI="coap://127.0.0.1:9/valve", NANOEDGE_STATE_DIR=str(tmp_path))
    proc = subprocess.Popen([sys.executable, str(NANOSERVICES / "alert" / "alert.py")], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        time.sleep(1.5)
        assert proc.poll() is None, proc.stdout.read().decode()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_spo2_numbers_its_readings_across_a_restart(tmp_path):
    # The existing keys stay; seq, source, taken_at and epoch are added, and /spo2/history serves them.
    pytest.importorskip("aiocoap")
    recording = tmp_path / "ttyUSB0"
    recording.write_bytes(b"".join(bm1000b.encode(p) for p in bm1000b.synthesize(30.0)))
    port = 20000 + (os.getpid() + 7) % 20000
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(NANOSERVICES / "common")] + sys.path),
               NANOEDGE_BIND="127.0.0.1", NANOEDGE_PORT=str(port), NANOEDGE_POM_DEVICE=str(recording),
               NANOEDGE_STATE_DIR=str(tmp_path / "state"), NANOEDGE_HISTORY_FSYNC="0")

    async def read(*paths):
        client = coapio.Client(timeout=5)
        try:
            return [await client.get("coap://127.0.0.1:%d%s" % (port, path)) for path in paths]
        finally:
            await client.close()

    def run_for(seconds, *paths):
        proc = subprocess.Popen([sys.executable, str(NANOSERVICES / "spo2" / "spo2.py")], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            time.sleep(seconds)
            assert proc.poll() is None, proc.stdout.read().decode()
            return asyncio.run(read(*paths))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)

    live, = run_for(3.5, "/spo2")
    assert {"spo2", "pulse_rate", "status", "unit", "device", "time"} <= set(live)
    assert live["source"] == "spo2/main" and live["seq"] >= 1 and isinstance(live["taken_at"], float)
    again, history = run_for(2.5, "/spo2", "/spo2/history?since=0")
    assert again["epoch"] == live["epoch"] and again["seq"] > live["seq"]
    assert [r["seq"] for r in history["readings"]] == list(range(1, history["last"] + 1))
