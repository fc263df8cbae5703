# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The events of ``bench/bench_continuity.py``: how each is caused, when it counts as restored, and how
the cluster is put back afterwards.

Each event is a small class: ``required`` (the services it must move), ``prepare`` (before the clock
starts), ``trigger`` (the clock starts just before the fault itself), ``restored`` (the consumer's view:
True once the moved services answer from their new node and their consumers read from there) and
``put_back``. ``bench_continuity.py`` times them and counts the moves.
"""

from __future__ import annotations

import threading
import time
import typing as t

from continuity.cluster import BenchError, Cluster, log  # pylint: disable=import-error
from continuity.report import latest_moment  # pylint: disable=import-error

# The placement testbed/README.md predicts for the example nanoservices (first fit).
# where the oximeter is moved to (SensorMoved)
TARGET = "w1"
PAPER = {"spo2": "w4", "hrv": "w4", "hr": "w4", "bot": "w1", "oc": "w3", "display": "w5", "alert": "w2"}
# The oximeter's FTDI cable in w4's hardware folder, and the serial port its services read.
POM_USB = "sys/bus/usb/devices/1-1.3"
POM_DEVICE = "dev/ttyUSB0"
POM_SERVICES = ("spo2", "hr", "hrv")
BATTERY = "sys/class/power_supply/battery/capacity"

Check = t.Tuple[bool, str]
# (the moment, by the consumers' own clocks, their readings began to flow from the new node, or None; why not)
Flowing = t.Tuple[t.Optional[float], str]


def _host_of(uri: str) -> str:
    """``coap://172.30.0.24:5701/spo2`` -> ``172.30.0.24``."""
    rest = uri.split("://", 1)[-1]
    return rest.split("/", 1)[0].rsplit(":", 1)[0].strip("[]")


class Probe:
    """Consumer-side checks shared by the events."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def address(self, host: str) -> str:
        return self.cluster.address(host)

    def only_on(self, placement: t.Mapping[str, t.List[str]], service: str, host: t.Optional[str] = None,
                not_on: t.Optional[str] = None) -> t.Tuple[t.Optional[str], str]:
        """(the one node ``service`` runs on, "") when it fits the conditions, else (None, why not)."""
        nodes = placement.get(service, [])
        if len(nodes) != 1:
            return None, "%s runs on %s" % (service, ",".join(nodes) or "no node")
        if (host and nodes[0] != host) or (not_on and nodes[0] == not_on):
            return None, "%s still runs on %s" % (service, nodes[0])
        return nodes[0], ""

    def alert_reads_from(self, placement: t.Mapping[str, t.List[str]], spo2_host: str) -> Check:
        """The alert reads SpO2 from ``spo2_host`` and its /alert snapshot has a reading, no source error.

        Where it reads from: the ``spo2_uri`` its /alert snapshot reports (found at the node's service
        directory), else the address its environment was given at deploy time."""
        alert_host, why = self.only_on(placement, "alert")
        if alert_host is None:
            return False, why
        snapshot, error = self.cluster.coap_get(alert_host, "alert")
        if error:
            return False, error
        uri = snapshot.get("spo2_uri") if isinstance(snapshot, dict) else None
        if not uri:
            uri = self.cluster.container_env(alert_host, "alert").get("NANOEDGE_SPO2_URI", "")
        if _host_of(str(uri)) != self.address(spo2_host):
            return False, "the alert reads SpO2 from %s" % (uri or "nowhere")
        return self._alert_has_reading(snapshot)

    def alert_answers(self, alert_host: str) -> Check:
        snapshot, error = self.cluster.coap_get(alert_host, "alert")
        if error:
            return False, error
        return self._alert_has_reading(snapshot)

    @staticmethod
    def _alert_has_reading(snapshot: t.Any) -> Check:
        if not isinstance(snapshot, dict) or snapshot.get("source_error") is not None:
            return False, "the alert's source error: %s" % (snapshot or {}).get("source_error")
        if snapshot.get("last_value") is None:
            return False, "the alert has no SpO2 reading yet"
        return True, ""

    def display_reads_from(self, placement: t.Mapping[str, t.List[str]], sources: t.Mapping[str, str]) -> Check:
        """The display's sources for each service point at its node, and /screen holds a reading of each."""
        display_host, why = self.only_on(placement, "display")
        if display_host is None:
            return False, why
        screen, error = self.cluster.coap_get(display_host, "display")
        if error:
            return False, error
        # where it reads from: the sources /screen reports (found at the directory), else its deploy-time env
        configured = screen.get("sources") if isinstance(screen, dict) else None
        if not isinstance(configured, dict):
            env = self.cluster.container_env(display_host, "display").get("NANOEDGE_DISPLAY_SOURCES", "")
            configured = dict(item.split("=", 1) for item in env.split(",") if "=" in item)
        for service, host in sources.items():
            if _host_of(str(configured.get(service) or "")) != self.address(host):
                return False, "the display reads %s from %s" % (service, configured.get(service) or "nowhere")
        readings = screen.get("readings", {}) if isinstance(screen, dict) else {}
        missing = sorted(s for s in sources if not isinstance(readings.get(s), dict) or readings[s].get("error"))
        if missing:
            return False, "the display shows no reading of %s" % ", ".join(missing)
        return True, ""

    def alert_flowing(self, placement: t.Mapping[str, t.List[str]], spo2_host: str) -> Flowing:
        """When the alert's SpO2 readings began to flow from ``spo2_host`` (its /counters, its own clock)."""
        counters, why = self._counters(placement, "alert")
        if counters is None:
            return None, why
        return self._since(counters, "the alert's SpO2", spo2_host)

    def display_flowing(self, placement: t.Mapping[str, t.List[str]], sources: t.Mapping[str, str]) -> Flowing:
        """When the display's readings of each source began to flow from its node (the latest of them)."""
        counters, why = self._counters(placement, "display")
        if counters is None:
            return None, why
        moments = []
        for service, host in sorted(sources.items()):
            moment, why = self._since((counters.get("sources") or {}).get(service), "the display's %s" % service, host)
            if moment is None:
                return None, why
            moments.append(moment)
        return max(moments), ""

    def _counters(self, placement: t.Mapping[str, t.List[str]],
                  consumer: str) -> t.Tuple[t.Optional[t.Dict[str, t.Any]], str]:
        """The consumer's /counters where it runs, or (None, why not)."""
        host, why = self.only_on(placement, consumer)
        if host is None:
            return None, why
        counters, error = self.cluster.coap_get(host, consumer, path="/counters")
        if error or not isinstance(counters, dict):
            return None, error or "the %s's /counters is not a JSON object" % consumer
        return counters, ""

    def _since(self, counted: t.Any, what: str, host: str) -> Flowing:
        counted = counted if isinstance(counted, dict) else {}
        since, uri = counted.get("flowing_since"), str(counted.get("flowing_from") or "")
        if not isinstance(since, (int, float)) or isinstance(since, bool):
            return None, "%s: no flowing_since (an older image?)" % what
        if _host_of(uri) != self.address(host):
            return None, "%s flows from %s" % (what, uri or "nowhere")
        return float(since), ""

    def service_answers(self, host: str, service: str) -> Check:
        answer, error = self.cluster.coap_get(host, service)
        return (False, error) if error else (isinstance(answer, dict), "%s answered %r" % (service, answer))


class Event:
    """An event with nothing to prepare or put back; subclasses fill in the rest."""

    name = ""
    # the bench waits this long after the fault for the placement to change, for events that move nothing
    observe_s = 0.0
    # prepare() changes a profile: the bench waits until a manager saw it, then for quiet
    prepare_changes_profiles = False

    def __init__(self, cluster: Cluster, probe: Probe) -> None:
        self.cluster = cluster
        self.probe = probe
        self.notes: t.List[str] = []
        self.triggered = False

    def required(self, placement: t.Mapping[str, t.List[str]]) -> t.Set[str]:
        return set()

    def prepare(self) -> None:
        """Before the clock starts (the cluster is at the paper's placement)."""

    def trigger(self, placement: t.Mapping[str, t.List[str]]) -> float:
        """Cause the event; return its moment (time.time())."""
        raise NotImplementedError

    def restored(self, placement: t.Mapping[str, t.List[str]]) -> Check:
        raise NotImplementedError

    def flowing(self, placement: t.Mapping[str, t.List[str]]) -> Flowing:
        """Once ``restored``: when, by the consumers' own clocks, their readings began to flow from where
        they flow now (the latest consumer's moment); None when the event has no such moment."""
        return None, "no consumer changes its source in %s" % self.name

    def put_back(self) -> None:
        """Undo the event (best effort, every step tried)."""


class SensorMoved(Event):
    """The pulse oximeter moves from w4 to w1: its USB tree and its serial port, together.

    w1, not w2: SpO2, HRV and HR need 1.25 cores together, and w2 (a Pi 3 capped at one core on
    this 2-core machine) has one, so on w2 one of them stays unplaced whatever the manager does."""

    name = "sensor_moved"

    def required(self, placement: t.Mapping[str, t.List[str]]) -> t.Set[str]:
        return set(POM_SERVICES)

    def trigger(self, placement: t.Mapping[str, t.List[str]]) -> float:
        unplugged = time.time()
        self.cluster.testbed("unplug", "w4", POM_USB)
        self.cluster.testbed("unplug", "w4", POM_DEVICE)
        # the clock starts at the plug: the time the oximeter is away from every node is not the system's
        moment = time.time()
        # readings the sensor could not take are not the system's to lose: the count leaves them out
        self.notes.append("the oximeter was on no node for %.1f s: readings it did not take then are not counted"
                          % (moment - unplugged))
        self.cluster.testbed("plug", TARGET, POM_DEVICE, "--from", "w4")
        self.cluster.testbed("plug", TARGET, POM_USB, "--from", "w4")
        return moment

    def restored(self, placement: t.Mapping[str, t.List[str]]) -> Check:
        for service in POM_SERVICES:
            host, why = self.probe.only_on(placement, service, host=TARGET)
            if host is None:
                return False, why
        ok, why = self.probe.alert_reads_from(placement, TARGET)
        if not ok:
            return ok, why
        return self.probe.display_reads_from(placement, {s: TARGET for s in POM_SERVICES})

    def flowing(self, placement: t.Mapping[str, t.List[str]]) -> Flowing:
        return latest_moment(self.probe.alert_flowing(placement, TARGET),
                             self.probe.display_flowing(placement, {s: TARGET for s in POM_SERVICES}))

    def put_back(self) -> None:
        _each(lambda: self.cluster.testbed("unplug", TARGET, POM_USB), lambda: self.cluster.testbed("unplug", TARGET, POM_DEVICE),
              lambda: self.cluster.testbed("plug", "w4", POM_DEVICE, "--from", "w4"),
              lambda: self.cluster.testbed("plug", "w4", POM_USB, "--from", "w4"))


class WorkerKilled(Event):
    """``docker kill`` of the worker that runs the alert."""

    name = "worker_killed"

    def __init__(self, cluster: Cluster, probe: Probe) -> None:
        super().__init__(cluster, probe)
        self.victim = ""

    def required(self, placement: t.Mapping[str, t.List[str]]) -> t.Set[str]:
        return {s for s, nodes in placement.items() if self.victim in nodes}

    def trigger(self, placement: t.Mapping[str, t.List[str]]) -> float:
        self.victim = placement["alert"][0]
        moment = time.time()
        self.cluster.kill(self.victim)
        return moment

    def restored(self, placement: t.Mapping[str, t.List[str]]) -> Check:
        host, why = self.probe.only_on(placement, "alert", not_on=self.victim)
        if host is None:
            return False, why
        ok, why = self.probe.alert_answers(host)
        if not ok:
            return ok, why
        return self.probe.display_reads_from(placement, {"alert": host})

    def flowing(self, placement: t.Mapping[str, t.List[str]]) -> Flowing:
        # the alert on its new node: its first SpO2 readings there, and the display's first answer from it
        spo2 = placement.get("spo2") or [""]
        return latest_moment(self.probe.alert_flowing(placement, spo2[0]),
                             self.probe.display_flowing(placement, {"alert": (placement.get("alert") or [""])[0]}))

    def put_back(self) -> None:
        if self.victim:
            self.cluster.start(self.victim)


class SwarmWorkerKilled(WorkerKilled):
    """The same, with the Swarm backend (the bench converges it before)."""

    name = "swarm_worker_killed"


class ManagerKilled(WorkerKilled):
    """The worker running the alert is killed, and the active manager about a second later."""

    name = "manager_killed"
    delay_s = 1.0

    def __init__(self, cluster: Cluster, probe: Probe) -> None:
        super().__init__(cluster, probe)
        self.manager: t.Optional[str] = None
        self.killer: t.Optional[threading.Thread] = None

    def trigger(self, placement: t.Mapping[str, t.List[str]]) -> float:
        deadline = time.monotonic() + 20
        self.manager = self.cluster.active_manager()
        while self.manager is None and time.monotonic() < deadline:
            time.sleep(0.25)  # the role may be passing from one manager to the other
            self.manager = self.cluster.active_manager()
        if self.manager is None:
            self.manager = self.cluster.last_leader()
            if self.manager is None:
                raise BenchError("no manager runs: nothing to kill")
            self.notes.append("no manager was active for 20 s before the event; killed %s, the latest leader"
                              % self.manager)
        moment = super().trigger(placement)

        def kill_manager() -> None:
            time.sleep(max(0.0, moment + self.delay_s - time.time()))
            self.cluster.kill(str(self.manager))
            log("killed the active manager %s %.1f s after %s" % (self.manager, time.time() - moment, self.victim))

        self.killer = threading.Thread(target=kill_manager, daemon=True)
        self.killer.start()
        return moment

    def put_back(self) -> None:
        if self.killer is not None:
            self.killer.join(timeout=30)
        steps = [lambda: WorkerKilled.put_back(self)]
        if self.manager:
            steps.append(lambda: self.cluster.start_manager(str(self.manager)))
        _each(*steps)


class NetworkBlip(Event):
    """The worker with the SpO2 service is off the network for 2 s; nothing may move."""

    name = "network_blip"
    seconds = 2.0
    observe_s = 20.0

    def __init__(self, cluster: Cluster, probe: Probe) -> None:
        super().__init__(cluster, probe)
        self.victim = ""
        self.ended = 0.0

    def trigger(self, placement: t.Mapping[str, t.List[str]]) -> float:
        self.victim = placement["spo2"][0]
        moment = time.time()
        self.cluster.testbed("blip", self.victim, "--seconds", "%g" % self.seconds)
        self.ended = time.time()
        return moment

    def restored(self, placement: t.Mapping[str, t.List[str]]) -> Check:
        # readings flowing again after the blip: the alert (the SpO2 consumer) reads from the same node
        return self.probe.alert_reads_from(placement, self.victim)

    def put_back(self) -> None:
        self.cluster.testbed("heal")


class BatteryLow(Event):
    """w1's battery drops below the BoT service's ``min_battery_percent`` (20): BoT, and only it, moves.

    BoT needs the body-temperature probe, which only w1 has, so the bench first plugs a second probe
    (w1's 1-Wire bus) into w2, where BoT can go; the placement stays the paper's (w1 comes first).
    """

    name = "battery_low"
    percent = 15
    prepare_changes_profiles = True

    def __init__(self, cluster: Cluster, probe: Probe) -> None:
        super().__init__(cluster, probe)
        self.original = ""

    def required(self, placement: t.Mapping[str, t.List[str]]) -> t.Set[str]:
        return {"bot"}

    def prepare(self) -> None:
        self.cluster.testbed("plug", "w2", "sys/bus/w1", "--from", "w1")

    def trigger(self, placement: t.Mapping[str, t.List[str]]) -> float:
        self.original = (self.cluster.live_hardware("w1") / BATTERY).read_text(encoding="utf-8").strip()
        moment = time.time()
        self.cluster.testbed("battery", "w1", "%d" % self.percent)
        return moment

    def restored(self, placement: t.Mapping[str, t.List[str]]) -> Check:
        host, why = self.probe.only_on(placement, "bot", host="w2")
        if host is None:
            return False, why
        ok, why = self.probe.service_answers("w2", "bot")
        if not ok:
            return ok, why
        return self.probe.display_reads_from(placement, {"bot": "w2"})

    def flowing(self, placement: t.Mapping[str, t.List[str]]) -> Flowing:
        return self.probe.display_flowing(placement, {"bot": "w2"})

    def put_back(self) -> None:
        _each(lambda: self.cluster.testbed("battery", "w1", self.original or "81"),
              lambda: self.cluster.testbed("unplug", "w2", "sys/bus/w1"))


EVENTS: t.Dict[str, t.Type[Event]] = {cls.name: cls for cls in (
    SensorMoved, WorkerKilled, ManagerKilled, NetworkBlip, BatteryLow, SwarmWorkerKilled)}


def _each(*steps: t.Callable[[], t.Any]) -> None:
    """Run every step even when one fails; raise the first failure at the end."""
    failures = []
    for step in steps:
        try:
            step()
        except BenchError as exc:
            failures.append(exc)
            log("putting back: %s" % exc)
    if failures:
        raise failures[0]
