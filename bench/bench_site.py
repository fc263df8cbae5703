# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""End-to-end benchmark of nanoedge.core.site on the demo cluster (two managers, five workers).

Run from the laid-out collection (``make bench``). Starts the demo cluster from the checkout
(``tools/testbed.py``, fresh nodes), pushes the example nanoservices' images, stages the wheels on
the managers, then times:

1. steps 1-4 on the five workers: discovery, reporting to both registries, service discovery and
   allocation (``--tags discovery,plan``, registries already running); goal <= 5 s;
2. the full converge on fresh workers with the images already in the registry (registries on the
   managers, seven containers pulled and started); goal <= 45 s;
3. the idempotent re-run, which must report changed=0 on every host; goal <= 20 s.

The baseline, measured in the same run, is Ansible's own floor on the same hosts: an
``ansible.builtin.ping`` of the seven nodes. Each figure is printed with its ratio to it. The paper
reports 6-17 s per worker for steps 1-5. The cluster is left down.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys
import time
import typing as t

ROOT = pathlib.Path(__file__).resolve().parents[1]
if ROOT.parent.name != "nanoedge" or ROOT.parent.parent.name != "ansible_collections":
    sys.exit("bench_site: run from the laid-out collection (make bench): %s is not "
             "ansible_collections/nanoedge/core" % ROOT)


def checkout() -> pathlib.Path:
    """The git checkout the collection was laid out from: the nodes mount its hardware fixtures."""
    if os.environ.get("NANOEDGE_SOURCE_DIR"):
        return pathlib.Path(os.environ["NANOEDGE_SOURCE_DIR"])
    for parent in ROOT.parents:
        if (parent / ".git").exists() and (parent / "tools" / "testbed.py").exists():
            return parent
    sys.exit("bench_site: cannot find the checkout above %s; set NANOEDGE_SOURCE_DIR" % ROOT)


SOURCE = checkout()
PYTHON = sys.executable
BIN = pathlib.Path(PYTHON).parent
OUT = ROOT / "tests" / "output" / "bench_site"
RECAP = re.compile(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def environment() -> t.Dict[str, str]:
    env = dict(os.environ)
    env.update(ANSIBLE_COLLECTIONS_PATH="%s:%s" % (ROOT.parents[2], SOURCE / ".build" / "collections"),
               ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false", ANSIBLE_PIPELINING="1", ANSIBLE_FORKS="10",
               ANSIBLE_NOCOLOR="1", PATH="%s:%s" % (BIN, env.get("PATH", "")))
    return env


def run(argv: t.Sequence[str], what: str) -> t.Tuple[float, str]:
    start = time.monotonic()
    proc = subprocess.run(list(argv), cwd=ROOT, env=environment(), capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-6000:] + proc.stderr[-3000:])
        sys.exit("bench_site: %s failed (exit %d)" % (what, proc.returncode))
    return elapsed, proc.stdout


def site(*extra: str) -> t.Tuple[float, t.Dict[str, int]]:
    elapsed, output = run([str(BIN / "ansible-playbook"), "-i", "inventory/testbed", "playbooks/site.yml",
                           "-e", "nanoedge_wheels_dir=%s" % (SOURCE / ".build" / "wheels"),
                           "-e", "nanoedge_plan_file=%s" % (OUT / "plan.json"),
                           "-e", "nanoedge_picture_file=%s" % (OUT / "cluster.svg"), *extra], "site.yml")
    changed = {match[0]: int(match[1]) for match in RECAP.findall(output)}
    return elapsed, changed


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    subprocess.run(["bash", str(SOURCE / "tools" / "demo.sh"), "--prepare-only"], check=True)
    subprocess.run([PYTHON, str(SOURCE / "tools" / "testbed.py"), "down"], check=True, capture_output=True)
    subprocess.run([PYTHON, str(SOURCE / "tools" / "testbed.py"), "up"], check=True, capture_output=True)
    try:
        subprocess.run([PYTHON, str(SOURCE / "tools" / "nanoservices.py")], check=True, capture_output=True)
        run([str(BIN / "ansible-playbook"), "-i", "inventory/testbed", "extensions/molecule/shared/prepare.yml",
             "-e", "nanoedge_wheels_dir=%s" % (SOURCE / ".build" / "wheels")], "staging the wheels")
        baseline = min(run([str(BIN / "ansible"), "-i", "inventory/testbed", "testbed", "-m", "ansible.builtin.ping"],
                           "ping")[0] for attempt in range(3))

        converge, changed_first = site()
        rerun, changed = site()
        steps = site("--tags", "discovery,plan")[0]
    finally:
        subprocess.run([PYTHON, str(SOURCE / "tools" / "testbed.py"), "down"], check=False, capture_output=True)

    print("baseline  ansible.builtin.ping of 7 nodes      %6.2f s" % baseline)
    rows = (("steps 1-4 on 5 workers (discovery, report, services, allocation)", steps, 5.0),
            ("full converge, images in the registry", converge, 45.0),
            ("idempotent re-run", rerun, 20.0))
    for label, seconds, goal in rows:
        print("%-66s %6.2f s  %5.1fx baseline  goal <= %2.0f s  %s"
              % (label, seconds, seconds / baseline, goal, "met" if seconds <= goal else "MISSED"))
    print("changes on the first converge: %s" % ", ".join("%s=%d" % item for item in sorted(changed_first.items())))
    total = sum(changed.values())
    print("changes on the re-run: %d (%s)" % (total, "idempotent" if total == 0 else "NOT idempotent"))
    print("paper: 6-17 s per worker for steps 1-5")


if __name__ == "__main__":
    main()
