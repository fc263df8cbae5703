# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Continuity of care on the demo cluster: what the patient experiences when the kit changes.

Run from the checkout after ``make demo`` (``make continuity``): the demo cluster runs the paper's
scenario in dynamic mode (agents on the workers, the reconcile service on the managers), as deployed,
with whatever settings were deployed. The bench causes each event, one after the other, and measures
from outside (``docker exec`` into the node containers, the managers' state files, CoAP GETs):

    sensor_moved         the pulse oximeter (USB tree and /dev/ttyUSB0) moves from w4 to w1 (w2 lacks the cores)
    worker_killed        docker kill of the worker running the alert
    manager_killed       the same, and the active manager about 1 s later
    network_blip         the worker with the SpO2 service is off the network for 2 s
    battery_low          w1's battery falls below BoT's min_battery_percent (a second probe waits on w2)
    swarm_worker_killed  worker_killed with nanoedge_deploy_backend: swarm (converged for it, then back)

Per event, one row: ``detect_s`` from the event until the managers' view changes (the ``fingerprint``
in a running manager's /var/lib/nanoedge-reconcile/state.json differs from before the event, read every
0.25 s; the first manager to see it counts, active or not); ``restore_s`` from the event until the
services run on their new node and their consumers read from there. The bench polls for that state (the
alert's SpO2 URI and /alert snapshot, the display's sources and /screen, or the service's own resource);
once it holds, the consumers' /counters say by their own clocks when their readings began to flow from
the new node (``flowing_since``), and the latest of those moments ends ``restore_s``; the moment the
bench's polling saw it is ``restore_seen_s``, up to a polling round later (events whose consumers never
changed source, the blip, use it as ``restore_s`` and say so in the note); ``moves`` the services whose nodes differ between before the event and after the
placement settled; ``unneeded_moves`` those the event did not call for; ``readings_lost`` and
``duplicates`` the SpO2 readings the alert (the consumer) never processed, or processed twice, counted
from its /counters against the producer's own numbering just before the event and once it settled and
caught up (continuity/readings.py). After each event the cluster is put back and the bench waits for
the paper's placement before the next.

    python bench/bench_continuity.py [--events a,b] [--runs N] [--report PATH] [--skip-swarm]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
import typing as t
from pathlib import Path

# Run as a script: the bench's helper package, continuity/, is beside this file.
from continuity.cluster import BenchError, Cluster, log  # pylint: disable=import-error
from continuity.events import EVENTS, PAPER, Event, Probe  # pylint: disable=import-error
from continuity.readings import caught_up, tally  # pylint: disable=import-error
from continuity.report import (  # pylint: disable=import-error
    Placement, Row, consumers_restore, describe_moves, format_table, make_row, median_rows, moved_away, moved_services,
    placement_from_nodes, unneeded_moves, write_report,
)

ROOT = Path(__file__).resolve().parents[1]
SWARM_EVENTS = ("swarm_worker_killed",)


class Watcher(threading.Thread):
    """Reads the managers' state files every ``period`` s; notes when a running manager's fingerprint first
    differs from the one it had before the event.

    Both managers watch their own registry, active or not; the first to see the change counts, since the
    active role may pass from one to the other during the event (manager_killed, or a lease that lapses).
    """

    def __init__(self, cluster: Cluster, before: t.Mapping[str, t.Any], started: float, period: float = 0.25):
        super().__init__(daemon=True)
        self.cluster, self.before, self.started, self.period = cluster, dict(before), started, period
        self.detected: t.Optional[float] = None
        self.by: t.Optional[str] = None
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set() and self.detected is None:
            for host, state in self.cluster.manager_states().items():
                if state.get("fingerprint") != self.before.get(host) and self.cluster.running(host):
                    self.detected, self.by = time.time() - self.started, "%s (%s)" % (host, state.get("role"))
                    break
            self.stop.wait(self.period)


class Bench:
    def __init__(self, cluster: Cluster, args: argparse.Namespace) -> None:
        self.cluster = cluster
        self.probe = Probe(cluster)
        self.timeout = args.timeout
        self.settle_timeout = args.settle_timeout

    def placement(self) -> Placement:
        return placement_from_nodes(self.cluster.services_by_node())

    def fingerprints(self) -> t.Dict[str, t.Any]:
        return {host: state.get("fingerprint") for host, state in self.cluster.manager_states().items()}

    def quiet(self) -> t.Tuple[bool, str]:
        """The paper's placement, no manager running a playbook, and the active one done with what it saw."""
        placement = self.placement()
        if placement != {s: [n] for s, n in sorted(PAPER.items())}:
            return False, "placement %s" % json.dumps(placement, sort_keys=True)
        states = self.cluster.manager_states()
        running = sorted(h for h, s in states.items() if s.get("running"))
        if running:
            return False, "%s running a playbook" % " and ".join(running)
        if not states:
            return False, "no manager's state file can be read"
        pending = sorted(h for h, s in states.items()
                         if s.get("role") == "active" and s.get("fingerprint") != s.get("applied_fingerprint"))
        if pending:
            return False, "%s has not acted on the live profiles yet" % " and ".join(pending)
        return True, ""

    def wait_quiet(self, what: str, hold_s: float = 3.0, nudge_after: float = 30.0) -> None:
        """Wait until ``quiet`` holds twice ``hold_s`` apart, or fail after the settle timeout.

        The reconcile service keeps a service where it runs while that node fits it, so a service that moved
        away stays away once its old node is back. After ``nudge_after`` s the bench removes the service's
        container from the node it moved to and asks the active manager for a full run (``systemctl reload``),
        which places it again, first fit, on the paper's node.
        """
        started = time.monotonic()
        deadline = started + self.settle_timeout
        why = ""
        nudged = False
        while time.monotonic() < deadline:
            if not nudged and time.monotonic() - started > nudge_after:
                nudged = self.nudge(what)
            ok, why = self.quiet()
            if ok:
                time.sleep(hold_s)
                ok, why = self.quiet()
                if ok:
                    return
            time.sleep(1)
        raise BenchError("%s: the cluster did not come back to the paper's placement within %.0f s (%s)"
                         % (what, self.settle_timeout, why))

    def nudge(self, what: str) -> bool:
        """Remove the containers of services that run away from the paper's node; True when it removed any."""
        removed = []
        for service, nodes in self.placement().items():
            home = PAPER.get(service)
            for node in nodes:
                if home and node != home and self.cluster.running(home):
                    self.cluster.remove_service(node, service)
                    removed.append("%s from %s" % (service, node))
        if removed:
            asked = self.cluster.request_full_run()
            log("%s: removed %s and asked %s for a full run, which places it on the paper's node"
                % (what, ", ".join(removed), asked or "no active manager"))
        return bool(removed)

    def wait_for_change(self, before: t.Mapping[str, t.Any], what: str) -> None:
        """Wait until a manager's fingerprint differs from ``before`` (it saw the change)."""
        deadline = time.monotonic() + self.settle_timeout
        while time.monotonic() < deadline:
            for host, state in self.cluster.manager_states().items():
                if state.get("fingerprint") != before.get(host):
                    return
            time.sleep(0.5)
        raise BenchError("%s: no manager's view changed within %.0f s" % (what, self.settle_timeout))

    def settle(self, window_s: float, limit_s: float) -> Placement:
        """The placement once it stayed the same for ``window_s`` (or as it is after ``limit_s``)."""
        deadline = time.monotonic() + limit_s
        last, since = self.placement(), time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - since < window_s:
            time.sleep(1)
            now = self.placement()
            if now != last:
                last, since = now, time.monotonic()
        return last

    def measure(self, event: Event) -> t.Tuple[Row, t.List[str]]:
        """One event: (its row, the moves described)."""
        if event.prepare_changes_profiles:
            before_prepare = self.fingerprints()
            event.prepare()
            self.wait_for_change(before_prepare, "after preparing %s" % event.name)
        self.wait_quiet("before %s" % event.name)
        before = self.placement()
        watcher = Watcher(self.cluster, self.fingerprints(), time.time())
        counted_before, why_before = self.consumer_counters(before)
        started = event.trigger(before)
        event.triggered = True
        watcher.started = started
        watcher.start()
        required = event.required(before)  # after the trigger: worker_killed picks its victim there
        restore: t.Optional[float] = None
        seen: t.Optional[float] = None  # when the bench saw it restored (restore is by the consumers' clocks)
        notes_restore: t.List[str] = []
        placed: t.Optional[float] = None  # when the services ran on a new node, consumers aside
        why = ""
        deadline = started + self.timeout
        while time.time() < deadline:
            now = self.placement()
            if placed is None and moved_away(before, now, required):
                placed = time.time() - started
            ok, why = event.restored(now)
            if ok:
                seen = time.time() - started
                restore, why_seen = consumers_restore(*event.flowing(now), started, seen)
                if why_seen:
                    notes_restore.append(why_seen)
                break
            time.sleep(0.3)
        # events that move nothing are watched for a while for a move that should not come
        remaining = max(0.0, started + event.observe_s - time.time())
        after = self.settle(window_s=max(5.0, remaining), limit_s=max(30.0, remaining + 10.0))
        if watcher.detected is None and time.time() < deadline and not event.observe_s:
            watcher.join(timeout=max(0.0, min(10.0, deadline - time.time())))
        watcher.stop.set()
        moved = moved_services(before, after)
        unneeded = unneeded_moves(moved, required)
        notes = list(event.notes) + notes_restore
        lost = duplicates = None
        counted_after, why_after = self.consumer_counters(after, wait_s=30.0)
        if counted_before is None or counted_after is None:
            notes.append("readings not counted: %s" % (why_before or why_after))
        else:
            counted = tally(counted_before, counted_after)
            lost, duplicates = counted.lost, counted.duplicates
            notes.extend(counted.notes)
        if watcher.detected is None:
            notes.append("no manager's view changed within %.0f s" % (time.time() - started))
        else:
            log("%s: seen first by %s after %.2f s" % (event.name, watcher.by, watcher.detected))
        if restore is None:
            notes.append("not restored within %.0f s: %s" % (self.timeout, why))
            if placed is not None:
                notes.append("%s ran on a new node after %.1f s" % (", ".join(sorted(required)), placed))
            notes.extend(self.cluster.unplaced())
        row = make_row(event.name, watcher.detected, restore, len(moved), len(unneeded), notes, lost, duplicates,
                       seen_s=seen)
        return row, describe_moves(before, after, moved)

    def consumer_counters(self, placement: Placement,
                          wait_s: float = 0.0) -> t.Tuple[t.Optional[t.Dict[str, t.Any]], str]:
        """The alert's /counters where ``placement`` runs it (waiting up to ``wait_s`` for it to catch up),
        or (None, why not)."""
        nodes = placement.get("alert") or []
        if len(nodes) != 1:
            return None, "the alert runs on %s" % (", ".join(nodes) or "no node")
        deadline = time.monotonic() + wait_s
        while True:
            answer, why = self.cluster.coap_get(nodes[0], "alert", path="/counters")
            if not isinstance(answer, dict):
                answer, why = None, why or "the alert's /counters on %s is not a JSON object" % nodes[0]
            if answer is None or caught_up(answer) or time.monotonic() >= deadline:
                if answer is not None and not caught_up(answer):
                    return answer, "the alert on %s had not caught up after %.0f s" % (nodes[0], wait_s)
                return answer, why or ""
            time.sleep(1)

    def event(self, name: str) -> Row:
        event = EVENTS[name](self.cluster, self.probe)
        log("== %s" % name)
        try:
            row, moves = self.measure(event)
            log("%s: moved %s" % (name, ", ".join(moves) or "nothing"))
        except BenchError as exc:
            row = make_row(name, None, None, None, None, ["not measured: %s" % exc])
        finally:
            try:
                if event.triggered:
                    event.put_back()
            except BenchError as exc:
                log("%s: could not put the cluster back: %s" % (name, exc))
        try:
            self.wait_quiet("after %s" % name)
        except BenchError as exc:
            log(str(exc))
            row.setdefault("note", "")
            row["note"] = "; ".join(n for n in (row["note"], str(exc)) if n)
        print(format_table([row]).splitlines()[1], flush=True)
        return row


def converge(root: Path, backend: str, log_dir: Path) -> None:
    """Re-run the demo's site.yml (tools/demo.sh) with the deploy backend ``backend``, dynamic mode on."""
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / ("converge-%s.log" % backend)
    log("converging the demo cluster with the %s backend (log: %s)" % (backend, path))
    started = time.monotonic()
    with open(path, "wb") as out:
        proc = subprocess.run(["bash", str(root / "tools" / "demo.sh"), "--", "-e", "nanoedge_dynamic=true",
                               "-e", "nanoedge_deploy_backend=%s" % backend],
                              stdout=out, stderr=subprocess.STDOUT, cwd=root, timeout=1200, check=False)
    if proc.returncode != 0:
        raise BenchError("tools/demo.sh with the %s backend failed (exit %d), see %s"
                         % (backend, proc.returncode, path))
    log("converged in %.0f s" % (time.monotonic() - started))


def parse_args(argv: t.Optional[t.Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench_continuity.py", description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--events", default=",".join(EVENTS),
                        help="comma-separated events, in this order (default: %(default)s)")
    parser.add_argument("--runs", type=int, default=1, help="repeat the events; prints each run and the median")
    parser.add_argument("--report", type=Path, default=ROOT / "build" / "continuity" / "report.json",
                        help="the JSON report (default: build/continuity/report.json)")
    parser.add_argument("--skip-swarm", action="store_true", help="leave out swarm_worker_killed (no converge)")
    parser.add_argument("--timeout", type=float, default=90.0,
                        help="seconds an event may take to be restored before its row says it was not")
    parser.add_argument("--settle-timeout", type=float, default=150.0,
                        help="seconds to wait for the paper's placement between events")
    args = parser.parse_args(argv)
    args.events = [e.strip() for e in args.events.split(",") if e.strip()]
    unknown = [e for e in args.events if e not in EVENTS]
    if unknown:
        parser.error("unknown event(s) %s; known: %s" % (", ".join(unknown), ", ".join(EVENTS)))
    if args.skip_swarm:
        args.events = [e for e in args.events if e not in SWARM_EVENTS]
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def run_all(bench: Bench, args: argparse.Namespace) -> t.List[t.List[Row]]:
    """Every run of the events; the Swarm event(s) of all runs come last, in one converge."""
    local = [e for e in args.events if e not in SWARM_EVENTS]
    swarm = [e for e in args.events if e in SWARM_EVENTS]
    runs: t.List[t.List[Row]] = [[] for _number in range(args.runs)]
    for number, rows in enumerate(runs, 1):
        if local:
            log("run %d of %d" % (number, args.runs))
        rows.extend(bench.event(name) for name in local)
    if swarm:
        try:
            converge(ROOT, "swarm", args.report.parent)
        except BenchError as exc:
            for rows in runs:
                rows.extend(make_row(n, None, None, None, None, ["not measured: %s" % exc]) for n in swarm)
        else:
            for rows in runs:
                rows.extend(bench.event(name) for name in swarm)
        finally:
            converge(ROOT, "container", args.report.parent)
    return runs


def main(argv: t.Optional[t.Sequence[str]] = None) -> int:
    args = parse_args(argv)
    cluster = Cluster(ROOT)
    if not cluster.running("m1") and not cluster.running("m2"):
        log("the demo cluster is not running: run make demo first")
        return 1
    runs = run_all(Bench(cluster, args), args)
    for number, rows in enumerate(runs, 1):
        print(format_table(rows, title="run %d of %d" % (number, len(runs))))
    report = median_rows(runs) if len(runs) > 1 else runs[0]
    if len(runs) > 1:
        print(format_table(report, title="median of %d runs" % len(runs)))
        write_report(str(args.report.with_suffix(".runs.json")),
                     [dict(row, run=number) for number, rows in enumerate(runs, 1) for row in rows])
    write_report(str(args.report), report)
    log("report: %s" % args.report)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        log("error: %s" % exc)
        sys.exit(1)
