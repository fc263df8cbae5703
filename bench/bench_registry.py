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

The same load runs against a registry with security on (docs/contracts.md,
"The CoAP API"): every node writes under its own OSCORE security context,
the stored profiles are read back as a manager. Both registries run side by
side and the loads alternate (off, on), twice: *cold*, each client context
used for the first time inside the window (each OSCORE context then persists
its sequence numbers, with fsync), and *steady state*, each client context
first sending one untimed report per node, as a worker that keeps its
context for days. The clock stops at the last answer (the contexts'
shutdown and the client processes' end are outside it). The cost of
security is the ratio of the two throughputs, printed for both; the goal
(at most 2x, every report stored, 500 nodes holding their latest) is judged
on the steady state. The registry's own CPU per report with security off
and on is printed too (the simulated nodes do their OSCORE work on the same
cores).

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
import os
import sys
import tempfile
import typing as t
from pathlib import Path

import cbor2

from registry.liveness import liveness_main  # pylint: disable=import-error
from registry.load import (  # pylint: disable=import-error
    PAPER_PROFILE_BYTES, Server, fetch_all, make_profile, run_load, write_oscore_contexts)


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

    print("load average at start: %.2f %.2f %.2f" % os.getloadavg())
    nodes = ["node%03d" % i for i in range(args.nodes)]
    with tempfile.TemporaryDirectory(prefix="nanoedge-bench-") as tmp:
        rows, paper = _measure(Path(tmp), nodes, args)
    print("load average at end: %.2f %.2f %.2f" % os.getloadavg())

    ours = rows[("cold", "off")]
    print("baseline (paper-sized %d kB profile, block-wise): %d reports: %.1f reports/s, p50 %.1f ms, p99 %.1f ms"
          % (PAPER_PROFILE_BYTES // 1000, paper["sent"], paper["per_second"], paper["p50_ms"], paper["p99_ms"]))
    print("ratio (cold, OSCORE off): %.0fx the reports/s of the baseline, p50 latency %.0fx lower"
          % (ours["per_second"] / paper["per_second"], paper["p50_ms"] / ours["p50_ms"]))
    goal = ours["per_second"] >= 1000 and ours["p50_ms"] <= 20
    print("goal (>= 1,000 reports/s, p50 <= 20 ms; cold, OSCORE off): %s" % ("met" if goal else "NOT met"))
    costs = {}
    for phase, title in PHASES:
        print("%s, %d processes x %d contexts:" % (title, args.processes, args.contexts))
        for security in ("off", "on"):
            _print_row(security, rows[(phase, security)], len(nodes))
        off, on = rows[(phase, "off")], rows[(phase, "on")]
        costs[phase] = off["per_second"] / on["per_second"]
        print("  cost of security, %s: %.2fx the time per report (OSCORE off %.0f reports/s, p99 %.1f ms; on %.0f "
              "reports/s, p99 %.1f ms); the registry's own CPU per report: off %.3f ms, on %.3f ms (%.2fx)"
              % (phase, costs[phase], off["per_second"], off["p99_ms"], on["per_second"], on["p99_ms"],
                 off["registry_cpu_ms"], on["registry_cpu_ms"], on["registry_cpu_ms"] / off["registry_cpu_ms"]))
    stored_ok = all(row["ok"] for row in rows.values())
    print("stored count = sent count, every node holding its latest report (cold and steady, off and on): %s"
          % ("yes" if stored_ok else "NO"))
    steady_ok = rows[("steady", "off")]["ok"] and rows[("steady", "on")]["ok"]
    print("goal with OSCORE, judged on the steady state (at most 2x, every report stored): %s at %.2fx "
          "(cold: %.2fx, each OSCORE context's first use and its sequence numbers' fsync inside the window)"
          % ("met" if costs["steady"] <= 2 and steady_ok else "NOT met", costs["steady"], costs["cold"]))
    return 0 if stored_ok else 1


PHASES = (("cold", "cold (each client context's first use inside the window)"),
          ("steady", "steady state (one untimed report per node and context first)"))


def _measure(tmp: Path, nodes: t.Sequence[str], args: argparse.Namespace,
             ) -> t.Tuple[t.Dict[t.Tuple[str, str], t.Dict[str, t.Any]], t.Dict[str, t.Any]]:
    """Both registries side by side; the loads alternate off, on (cold), off, on (steady); then the baseline."""
    oscore = tmp / "oscore"
    write_oscore_contexts(oscore, list(nodes) + ["m1"])
    (tmp / "plain").mkdir()
    (tmp / "secured").mkdir()
    servers = {"off": Server(tmp / "plain")}
    try:
        servers["on"] = Server(tmp / "secured", "--security", "on", "--oscore-contexts", str(oscore / "server"),
                               "--managers", "m1")
        rows = {}
        for phase, _title in PHASES:
            for security in ("off", "on"):
                server, secured = servers[security], oscore if security == "on" else None
                url = "coap://127.0.0.1:%d" % server.port
                # steady follows cold on the same registry: its reports carry the next seqs
                row = run_load(url, nodes, args.rounds, args.processes, args.contexts, oscore=secured,
                               warm=phase == "steady", first_seq=0 if phase == "cold" else args.rounds,
                               pid=server.proc.pid)
                stored = asyncio.run(fetch_all(url, secured))
                row["fresh"] = sum(1 for n in nodes if stored.get(n, {}).get("labels", {}).get("seq") == str(row["last_seq"]))
                row["stored"] = len(stored)
                row["ok"] = (row["acked"] == row["sent"] == len(nodes) * args.rounds and row["fresh"] == len(nodes) == len(stored)
                             and row["warm_acked"] == (len(nodes) if phase == "steady" else 0))
                rows[(phase, security)] = row
        url = "coap://127.0.0.1:%d" % servers["off"].port
        paper = run_load(url, ["paper%02d" % i for i in range(args.baseline_reports)], 1, 1, 4, big=True)
    finally:
        for server in servers.values():
            server.stop()
    return rows, paper


def _print_row(security: str, row: t.Dict[str, t.Any], nodes: int) -> None:
    print("  OSCORE %-3s: %d reports from %d nodes in %.2f s: %.0f reports/s, p50 %.1f ms, p99 %.1f ms, "
          "acknowledged %d, refused %d (untimed first: %d acknowledged, %d refused); stored %d nodes, %d with their "
          "latest report" % (security, row["sent"], nodes, row["seconds"], row["per_second"], row["p50_ms"], row["p99_ms"],
                             row["acked"], row["failed"], row["warm_acked"], row["warm_failed"], row["stored"],
                             row["fresh"]))


if __name__ == "__main__":
    sys.exit(main())
