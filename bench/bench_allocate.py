# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Allocation benchmark: the heuristics against the naive transcription of Algorithm 1.

Times are CPU seconds of the benchmark's process. Run from the laid-out collection (``make bench``, or
``cd .build/collections/ansible_collections/nanoedge/core && ../../../../../.venv/bin/python bench/bench_allocate.py``;
``--quick`` leaves out the naive version, ``--size``, ``--workload`` and ``--no-optimal`` choose what runs,
``--help`` says how). Random Raspberry-Pi-like node profiles, fixed seed, three
workloads: ``templates`` (the paper's nanoservices and their neighbours, twelve requirement vectors),
``diverse`` (nearly every service its own vector, nodes with 0-2 devices) and ``over-subscribed``
(``diverse`` with a third of the nodes' free memory and storage: most services unplaced). Prints, per
workload and size, each heuristic's time, placed and unplaced counts, the size of its result as JSON,
the peak of the memory the call allocates (tracemalloc, a second run) and the size of the plan file
(as ``nanoedge.core.plan_json`` writes it); then the naive transcription's time (the baseline, measured in the same run), the
speed-up of first_fit and whether both give the identical result; then the optimal strategy on small
clusters with its gap.
Goals: on every workload at 5,000 nodes x 50,000 services every heuristic <= 2 s, <= 1 GB peak and a
plan file <= 20 MB; first_fit identical to the naive version and >= 10x faster at both sizes; optimal
on 5 x 20 <= 1 s and on 50 x 200 <= 10 s.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import random
import sys
import time
import tracemalloc
import typing as t

ROOT = pathlib.Path(__file__).resolve().parents[1]
if ROOT.parent.name != "nanoedge" or ROOT.parent.parent.name != "ansible_collections":
    sys.exit("bench_allocate: run from the laid-out collection (make bench): %s is not "
             "ansible_collections/nanoedge/core" % ROOT)
sys.path.insert(0, str(ROOT.parents[2]))

from ansible_collections.nanoedge.core.plugins.filter.plan_json import plan_json_filter  # noqa: E402
from ansible_collections.nanoedge.core.plugins.plugin_utils._allocate import allocate  # noqa: E402
from ansible_collections.nanoedge.core.plugins.plugin_utils._site_report import plan_report  # noqa: E402
from ansible_collections.nanoedge.core.tests.unit.algorithm1 import algorithm1  # noqa: E402

SEED = 20211
# today's twelve templates; nearly one requirement vector per service; the same with three times the demand
WORKLOADS = ("templates", "diverse", "over-subscribed")
SIZES = ("1000x10000", "5000x50000")
# (model, cores, memory total MB) of the Pi models found at edge sites
PI_MODELS = (("Raspberry Pi 3 Model B Rev 1.2", 4, 926), ("Raspberry Pi 3 Model B Plus Rev 1.3", 4, 926),
             ("Raspberry Pi 4 Model B Rev 1.4 2GB", 4, 1848), ("Raspberry Pi 4 Model B Rev 1.4 4GB", 4, 3794),
             ("Raspberry Pi Zero 2 W Rev 1.0", 4, 427))
# capability -> share of nodes that have the device
DEVICES = {"pom": 0.15, "bot": 0.15, "oc": 0.08, "dd": 0.10, "ecg": 0.05, "cam": 0.05}
# the paper's nanoservices and their neighbours: (name, requirements, share of the services)
TEMPLATES = (
    ("spo2", {"capabilities": ["pom"], "cpu": 0.25, "memory_mb": 48, "storage_mb": 20}, 0.12),
    ("hrv", {"capabilities": ["pom"], "cpu": 0.25, "memory_mb": 48, "storage_mb": 20}, 0.12),
    ("hr", {"capabilities": ["pom"], "cpu": 0.125, "memory_mb": 24, "storage_mb": 10}, 0.06),
    ("bot", {"capabilities": ["bot"], "cpu": 0.125, "memory_mb": 24, "storage_mb": 10}, 0.12),
    ("oc", {"capabilities": ["oc"], "cpu": 0.25, "memory_mb": 64, "storage_mb": 20, "power": "ac"}, 0.05),
    ("display", {"capabilities": ["dd"], "cpu": 0.5, "memory_mb": 128, "storage_mb": 50,
                 "min_battery_percent": 20}, 0.06),
    ("ecg", {"capabilities": ["ecg"], "cpu": 1, "memory_mb": 96, "storage_mb": 40, "network": "wban"}, 0.03),
    ("alert", {"cpu": 0.125, "memory_mb": 32, "storage_mb": 10, "network": "wifi"}, 0.14),
    ("aggregate", {"cpu": 0.5, "memory_mb": 128, "storage_mb": 200}, 0.12),
    ("store", {"cpu": 0.25, "memory_mb": 64, "storage_mb": 2000, "power": "ac"}, 0.08),
    ("camera", {"capabilities": ["cam"], "cpu": 1, "memory_mb": 256, "storage_mb": 500}, 0.04),
    ("ml", {"cpu": 2, "memory_mb": 512, "storage_mb": 300, "min_battery_percent": 50}, 0.06),
)


def make_nodes(rng: random.Random, count: int) -> t.List[t.Dict[str, t.Any]]:
    nodes = []
    for index in range(count):
        model, cores, total = rng.choice(PI_MODELS)
        dc = rng.random() < 0.3
        storage_total = rng.choice((14800, 29820, 60600))
        capabilities = sorted(name for name, share in DEVICES.items() if rng.random() < share)
        network = ["bluetooth", "wifi"] + (["ethernet"] if rng.random() < 0.5 else []) \
            + (["wban"] if rng.random() < 0.1 else [])
        nodes.append({
            "schema": 1, "node": "w%05d" % index, "collected_at": "2026-11-26T02:30:00Z",
            "arch": "aarch64" if "Pi 4" in model else "armv7l", "model": model,
            "cpu": {"cores": cores, "bogomips": 108.0, "load1": round(rng.random(), 2)},
            "memory_mb": {"total": total, "available": int(total * rng.uniform(0.3, 0.85))},
            "storage_mb": {"total": storage_total, "free": int(storage_total * rng.uniform(0.1, 0.9))},
            "power": {"source": "dc" if dc else "ac", "battery_percent": rng.randint(3, 100) if dc else None,
                      "battery_health": 0.95 if dc else None, "charging": False if dc else None},
            "network": sorted(network), "capabilities": capabilities, "devices": [], "labels": {},
        })
    return nodes


def make_services(rng: random.Random, count: int) -> t.List[t.Dict[str, t.Any]]:
    names = [template[0] for template in TEMPLATES]
    weights = [template[2] for template in TEMPLATES]
    requires = {template[0]: template[1] for template in TEMPLATES}
    picks = rng.choices(names, weights=weights, k=count)
    return [{"name": "%s-%05d" % (name, index), "requires": dict(requires[name]), "priority": rng.randint(0, 3)}
            for index, name in enumerate(picks)]


def make_diverse_services(rng: random.Random, count: int) -> t.List[t.Dict[str, t.Any]]:
    """Nearly every service its own requirement vector: replicas, per-patient settings and versions."""
    devices = sorted(DEVICES)
    services = []
    for index in range(count):
        requires: t.Dict[str, t.Any] = {
            "capabilities": sorted(rng.sample(devices, rng.choices((0, 1, 2), weights=(5, 4, 1))[0])),
            # most services are small, a few large: cpu 1/64-2 and memory 16-512 MB spread evenly on a log scale;
            # cpu in 64ths, exact as floats, so that the float transcription is exact too
            "cpu": max(1, round(2 ** rng.uniform(0, 7))) / 64, "memory_mb": int(2 ** rng.uniform(4, 9)),
            "storage_mb": rng.randint(0, 1000)}
        power = rng.random()
        if power < 0.2:
            requires["power"] = "ac" if power < 0.15 else "dc"
        network = rng.random()
        if network < 0.2:
            requires["network"] = "wifi" if network < 0.1 else ("ethernet" if network < 0.17 else "wban")
        if rng.random() < 0.1:
            requires["min_battery_percent"] = rng.randint(10, 60)
        services.append({"name": "svc-%05d" % index, "requires": requires, "priority": rng.randint(0, 3)})
    return services


def make_diverse_nodes(rng: random.Random, count: int) -> t.List[t.Dict[str, t.Any]]:
    """As make_nodes, each node with 0-2 devices."""
    nodes = make_nodes(rng, count)
    devices = sorted(DEVICES)
    for profile in nodes:
        profile["capabilities"] = sorted(rng.sample(devices, rng.randint(0, 2)))
    return nodes


def make_workload(name: str, nodes_count: int, services_count: int
                  ) -> t.Tuple[t.List[t.Dict[str, t.Any]], t.List[t.Dict[str, t.Any]]]:
    rng = random.Random(SEED + nodes_count)
    if name == "templates":
        return make_nodes(rng, nodes_count), make_services(rng, services_count)
    nodes = make_diverse_nodes(rng, nodes_count)
    services = make_diverse_services(rng, services_count)
    if name == "over-subscribed":
        # demand three times what the nodes offer: a third of their free memory and storage
        for profile in nodes:
            profile["memory_mb"]["available"] //= 3
            profile["storage_mb"]["free"] //= 3
    return nodes, services


def timed(function: t.Callable[[], t.Any]) -> t.Tuple[float, t.Any]:
    """The CPU seconds of this process (other load on a shared machine does not count) and the value."""
    started = time.process_time()
    value = function()
    return time.process_time() - started, value


def wall(function: t.Callable[[], t.Any]) -> t.Tuple[float, t.Any]:
    """Wall seconds (the solver's time limit is wall time) and the value."""
    started = time.perf_counter()
    value = function()
    return time.perf_counter() - started, value


def peak_mb(function: t.Callable[[], t.Any]) -> float:
    """The peak of the Python memory ``function`` allocates (tracemalloc), in MB."""
    tracemalloc.start()
    try:
        function()
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def json_mb(value: t.Any) -> float:
    return len(json.dumps(value, separators=(",", ":"))) / 1e6


def run_workload(workload: str, nodes_count: int, services_count: int, naive: bool) -> bool:
    nodes, services = make_workload(workload, nodes_count, services_count)
    big = nodes_count >= 5000
    print("\n%s: %d nodes x %d services" % (workload, nodes_count, services_count))
    print("  %-18s %8s %8s %8s %10s %10s %9s" % (
        "strategy", "seconds", "placed", "unplaced", "result MB", "peak MB", "plan MB"))
    ok = True
    results = {}
    for strategy in ("first_fit", "best_fit", "spread"):
        seconds, result = timed(lambda strategy=strategy: allocate(services, nodes, strategy=strategy))
        results[strategy] = (seconds, result)
        peak = peak_mb(lambda strategy=strategy: allocate(services, nodes, strategy=strategy))
        # the plan file as site.yml writes it
        plan = len(plan_json_filter(plan_report(result, services, nodes)).encode()) / 1e6
        print("  %-18s %8.3f %8d %8d %10.2f %10.1f %9.2f" % (
            strategy, seconds, result["placed"], len(result["unplaced"]), json_mb(result), peak, plan))
        if big and (seconds > 2.0 or peak > 1000 or plan > 20):
            print("  GOAL MISSED: %s over 2 s, 1 GB of memory or a 20 MB plan file" % strategy)
            ok = False
    if not naive:
        print("  naive Algorithm 1: not run (--quick)")
        return ok
    naive_seconds, (placements, remaining) = timed(lambda: algorithm1(services, nodes))
    print("  %-18s %8.3f %8d %8d" % ("naive Algorithm 1", naive_seconds, len(placements),
                                     services_count - len(placements)))
    first_seconds, first = results["first_fit"]
    identical = first["placements"] == placements and first["remaining"] == remaining
    ratio = naive_seconds / first_seconds
    print("  first_fit vs naive: %.1fx faster, identical result: %s" % (ratio, "yes" if identical else "NO"))
    if not identical or ratio < 10:
        print("  GOAL MISSED: first_fit not identical to or not 10x faster than the naive version")
        ok = False
    return ok


def run_optimal(nodes_count: int, services_count: int, goal: float) -> bool:
    rng = random.Random(SEED + 7 * nodes_count)
    nodes = make_nodes(rng, nodes_count)
    services = make_services(rng, services_count)
    # small clusters: make them tight, so the solver has something to decide
    for profile in nodes:
        profile["memory_mb"]["available"] = profile["memory_mb"]["available"] // 3
    first = allocate(services, nodes)["placed"]
    seconds, result = wall(lambda: allocate(services, nodes, strategy="optimal", time_limit=goal))
    info = result["optimal"]
    print("  optimal %3d x %-4d %7.3f s  placed %4d (first_fit %4d, bound %4d, gap %.4f, proven %s, from %s)"
          % (nodes_count, services_count, seconds, result["placed"], first, info["bound"], info["gap"],
             info["proven"], info["source"]))
    ok = seconds <= goal + 0.5 and result["placed"] >= first
    if not ok:
        print("  GOAL MISSED: optimal %d x %d" % (nodes_count, services_count))
    return ok


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="The allocation heuristics against the naive Algorithm 1.")
    parser.add_argument("--quick", action="store_true", help="leave out the naive version")
    parser.add_argument("--size", action="append", choices=SIZES, help="NODESxSERVICES (repeatable; default: both)")
    parser.add_argument("--workload", action="append", choices=WORKLOADS, help="repeatable; default: all three")
    parser.add_argument("--no-optimal", action="store_true", help="leave out the optimal strategy's clusters")
    return parser.parse_args()


def main() -> int:
    args = arguments()
    print("nanoedge.core allocation benchmark (seed %d, Python %s%s)"
          % (SEED, sys.version.split()[0], ", --quick: without the naive version" if args.quick else ""))
    ok = True
    for size in args.size or SIZES:
        nodes_count, services_count = (int(part) for part in size.split("x"))
        for workload in args.workload or WORKLOADS:
            ok = run_workload(workload, nodes_count, services_count, not args.quick) and ok
    if not args.no_optimal:
        print()
        ok = run_optimal(5, 20, 1.0) and ok
        ok = run_optimal(50, 200, 10.0) and ok
    print("\nall goals met" if ok else "\nsome goals missed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
