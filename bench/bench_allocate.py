# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Allocation benchmark: the heuristics against the naive transcription of Algorithm 1.

Run from the laid-out collection (``make bench``, or
``cd .build/collections/ansible_collections/nanoedge/core && ../../../../../.venv/bin/python bench/bench_allocate.py``).
Random Raspberry-Pi-like node profiles and paper-like nanoservices, fixed
seed. Prints, per size, the time of each heuristic and of the naive
transcription, the placed counts, the speed-up of first_fit over the naive
version (the baseline measured in the same run) and whether both give the
identical result; then the optimal strategy on small clusters with its gap.
Goals: at 5,000 nodes x 50,000 services every heuristic <= 2 s and first_fit
>= 10x the naive version with the identical result; optimal on 5 x 20 <= 1 s
and on 50 x 200 <= 10 s.
"""

from __future__ import annotations

import pathlib
import random
import sys
import time
import typing as t

ROOT = pathlib.Path(__file__).resolve().parents[1]
if ROOT.parent.name != "nanoedge" or ROOT.parent.parent.name != "ansible_collections":
    sys.exit("bench_allocate: run from the laid-out collection (make bench): %s is not "
             "ansible_collections/nanoedge/core" % ROOT)
sys.path.insert(0, str(ROOT.parents[2]))

from ansible_collections.nanoedge.core.plugins.plugin_utils._allocate import allocate  # noqa: E402
from ansible_collections.nanoedge.core.tests.unit.algorithm1 import algorithm1  # noqa: E402

SEED = 20211
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


def timed(function: t.Callable[[], t.Any]) -> t.Tuple[float, t.Any]:
    started = time.perf_counter()
    value = function()
    return time.perf_counter() - started, value


def run_size(nodes_count: int, services_count: int) -> bool:
    rng = random.Random(SEED + nodes_count)
    nodes = make_nodes(rng, nodes_count)
    services = make_services(rng, services_count)
    print("\n%d nodes x %d services" % (nodes_count, services_count))
    print("  %-24s %9s %9s %9s" % ("strategy", "seconds", "placed", "unplaced"))
    ok = True
    results = {}
    for strategy in ("first_fit", "best_fit", "spread"):
        seconds, result = timed(lambda strategy=strategy: allocate(services, nodes, strategy=strategy))
        results[strategy] = (seconds, result)
        print("  %-24s %9.3f %9d %9d" % (strategy, seconds, result["placed"], len(result["unplaced"])))
        if nodes_count >= 5000 and seconds > 2.0:
            print("  GOAL MISSED: %s took more than 2 s" % strategy)
            ok = False
    naive_seconds, (placements, remaining) = timed(lambda: algorithm1(services, nodes))
    unplaced = services_count - len(placements)
    print("  %-24s %9.3f %9d %9d" % ("naive Algorithm 1", naive_seconds, len(placements), unplaced))
    first_seconds, first = results["first_fit"]
    identical = first["placements"] == placements and first["remaining"] == remaining
    ratio = naive_seconds / first_seconds
    print("  first_fit vs naive: %.1fx faster, identical result: %s" % (ratio, "yes" if identical else "NO"))
    print("  placements per second (first_fit): %.0f" % (first["placed"] / first_seconds))
    if not identical:
        ok = False
    if nodes_count >= 5000 and ratio < 10:
        print("  GOAL MISSED: first_fit less than 10x faster than naive")
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
    seconds, result = timed(lambda: allocate(services, nodes, strategy="optimal", time_limit=goal))
    info = result["optimal"]
    print("  optimal %3d x %-4d %7.3f s  placed %4d (first_fit %4d, bound %4d, gap %.4f, proven %s, from %s)"
          % (nodes_count, services_count, seconds, result["placed"], first, info["bound"], info["gap"],
             info["proven"], info["source"]))
    ok = seconds <= goal + 0.5 and result["placed"] >= first
    if not ok:
        print("  GOAL MISSED: optimal %d x %d" % (nodes_count, services_count))
    return ok


def main() -> int:
    print("nanoedge.core allocation benchmark (seed %d, Python %s)" % (SEED, sys.version.split()[0]))
    ok = run_size(1000, 10000)
    ok = run_size(5000, 50000) and ok
    print()
    ok = run_optimal(5, 20, 1.0) and ok
    ok = run_optimal(50, 200, 10.0) and ok
    print("\nall goals met" if ok else "\nsome goals missed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
