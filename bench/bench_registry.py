# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reporting benchmark for the CoAP profile registry (role nanoedge.core.registry).

Starts the real registry on loopback, then 500 distinct simulated nodes
report their profile (docs/contracts.md, "The profile") several times from a few client processes,
each with several aiocoap contexts (aiocoap keeps one outstanding confirmable
request per context and peer). Prints reports/s and latency percentiles,
checks that every acknowledged report is stored, and compares with a
baseline measured in the same run: the paper's way, a 158 kB profile sent
block-wise (about 155 blocks of 1024 bytes).

The same load runs a second time against a registry with security on
(docs/contracts.md, "The CoAP API"): every node writes under its own OSCORE
security context, the stored profiles are read back as a manager, and the
cost of security is printed as the ratio of the two throughputs (goal: at
most 2x, with every report stored), and the registry's own CPU per report
with security off and on (the simulated nodes do their OSCORE work on the
same cores).

``--liveness`` measures instead the registry's CPU for beats alone
(docs/contracts.md, "The CoAP API"): 50 and 500 simulated nodes each beat
once a second (NON, as the agent does), all of them members, the manager a
candidate for leadership, with security off and on; the registry process's
utime + stime from /proc over a fixed window, as % of one core (goal: at most
5 % at 50 nodes, 25 % at 500; when the simulated nodes fall behind, the cost
per beat received is scaled to the nominal rate). The ratio is against the
baseline of the same command, the paper-sized report, as CPU per message.

Run from the collection in its ``ansible_collections/nanoedge/core`` layout
(``make bench`` does): ``python bench/bench_registry.py [--liveness]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

import cbor2

from registry.liveness import liveness_main  # pylint: disable=import-error
from registry.load import (  # pylint: disable=import-error
    PAPER_PROFILE_BYTES, Server, cpu_seconds, fetch_all, make_profile, run_load, write_oscore_contexts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=4, help="reports per node (default 4: 2,000 reports)")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--contexts", type=int, default=8, help="client contexts per process")
    parser.add_argument("--baseline-reports", type=int, default=20)
    parser.add_argument("--liveness", action="store_true",
                        help="measure the registry's CPU for beats alone at 50 and 500 nodes instead")
    args = parser.parse_args()
    if args.liveness:
        return liveness_main(args)

    sample = make_profile("w4", 0)
    as_json = json.dumps(sample, separators=(",", ":")).encode()
    as_cbor = cbor2.dumps(sample)
    print("profile on the wire: %d bytes JSON, %d bytes CBOR; the paper's: %d bytes (%.0fx smaller as JSON)"
          % (len(as_json), len(as_cbor), PAPER_PROFILE_BYTES, PAPER_PROFILE_BYTES / len(as_json)))
    assert len(as_json) <= 2048, "a profile must stay under 2 kB"

    nodes = ["node%03d" % i for i in range(args.nodes)]
    with tempfile.TemporaryDirectory(prefix="nanoedge-bench-") as tmp:
        server = Server(Path(tmp))
        url = "coap://127.0.0.1:%d" % server.port
        try:
            cpu0 = cpu_seconds(server.proc.pid)
            ours = run_load(url, nodes, args.rounds, args.processes, args.contexts)
            ours["registry_cpu_ms"] = 1000 * (cpu_seconds(server.proc.pid) - cpu0) / ours["sent"]
            stored = asyncio.run(fetch_all(url))
            last_seq = str(args.rounds - 1)
            fresh = sum(1 for n in nodes if stored.get(n, {}).get("labels", {}).get("seq") == last_seq)
            baseline_nodes = ["paper%02d" % i for i in range(args.baseline_reports)]
            paper = run_load(url, baseline_nodes, 1, 1, 4, big=True)
        finally:
            server.stop()
        oscore = Path(tmp) / "oscore"
        write_oscore_contexts(oscore, nodes + ["m1"])
        secured_dir = Path(tmp) / "secured"
        secured_dir.mkdir()
        secured = Server(secured_dir, "--security", "on", "--oscore-contexts", str(oscore / "server"), "--managers", "m1")
        secure_url = "coap://127.0.0.1:%d" % secured.port
        try:
            cpu0 = cpu_seconds(secured.proc.pid)
            safe = run_load(secure_url, nodes, args.rounds, args.processes, args.contexts, oscore=oscore)
            safe["registry_cpu_ms"] = 1000 * (cpu_seconds(secured.proc.pid) - cpu0) / safe["sent"]
            safe_stored = asyncio.run(fetch_all(secure_url, oscore))
            safe_fresh = sum(1 for n in nodes if safe_stored.get(n, {}).get("labels", {}).get("seq") == last_seq)
        finally:
            secured.stop()

    print("registry: %d reports from %d nodes (%d processes x %d contexts): %.0f reports/s, p50 %.1f ms, "
          "p99 %.1f ms, acknowledged %d, refused %d"
          % (ours["sent"], len(nodes), args.processes, args.contexts, ours["per_second"], ours["p50_ms"],
             ours["p99_ms"], ours["acked"], ours["failed"]))
    print("stored: %d distinct nodes, %d with their latest report (sent %d, acknowledged %d)"
          % (len(set(stored) & set(nodes)), fresh, ours["sent"], ours["acked"]))
    print("baseline (paper-sized %d kB profile, block-wise): %d reports: %.1f reports/s, p50 %.1f ms, p99 %.1f ms"
          % (PAPER_PROFILE_BYTES // 1000, paper["sent"], paper["per_second"], paper["p50_ms"], paper["p99_ms"]))
    print("ratio: %.0fx the reports/s of the baseline, p50 latency %.0fx lower"
          % (ours["per_second"] / paper["per_second"], paper["p50_ms"] / ours["p50_ms"]))
    goal = ours["per_second"] >= 1000 and ours["p50_ms"] <= 20
    print("goal (>= 1,000 reports/s, p50 <= 20 ms): %s" % ("met" if goal else "NOT met"))
    ok = ours["acked"] == ours["sent"] == args.nodes * args.rounds and fresh == len(nodes) == len(stored)
    print("stored count = sent count: %s" % ("yes" if ok else "NO"))
    print("registry with OSCORE: %d reports from %d nodes, each under its own security context: %.0f reports/s, "
          "p50 %.1f ms, p99 %.1f ms, acknowledged %d, refused %d; stored %d with their latest report"
          % (safe["sent"], len(nodes), safe["per_second"], safe["p50_ms"], safe["p99_ms"], safe["acked"],
             safe["failed"], safe_fresh))
    cost = ours["per_second"] / safe["per_second"]
    print("cost of security: %.2fx the time per report (OSCORE off %.0f reports/s, p99 %.1f ms; on %.0f reports/s, "
          "p99 %.1f ms)" % (cost, ours["per_second"], ours["p99_ms"], safe["per_second"], safe["p99_ms"]))
    # The simulated nodes share the cores with the registry and do their own
    # OSCORE work: the registry's own CPU per report tells its part apart.
    print("the registry's own CPU per report: OSCORE off %.3f ms, on %.3f ms (%.2fx)"
          % (ours["registry_cpu_ms"], safe["registry_cpu_ms"], safe["registry_cpu_ms"] / ours["registry_cpu_ms"]))
    safe_ok = safe["acked"] == safe["sent"] == args.nodes * args.rounds and safe_fresh == len(nodes) == len(safe_stored)
    print("goal with OSCORE (at most 2x, every report stored): %s"
          % ("met" if cost <= 2 and safe_ok else "NOT met"))
    return 0 if ok and safe_ok else 1


if __name__ == "__main__":
    sys.exit(main())
