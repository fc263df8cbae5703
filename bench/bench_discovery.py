# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Resource discovery: nanoedge.core vs the paper's toolchain vs ansible.builtin.setup.

Run from the laid-out collection (``make bench``, or
``cd .build/collections/ansible_collections/nanoedge/core && ../../../../../.venv/bin/python bench/bench_discovery.py``).
Everything is measured in this run on this machine:

1. our discovery in-process, and as a fresh ``python3`` process (what the
   agent's timer pays), against the paper's X12 toolchain run the way a shell
   script runs it: ``lshw -json | jq``, ``upower -d``, ``hciconfig -a`` (or
   ``bluetoothctl list``). Goal: at least 20x faster.
2. The module against ``ansible.builtin.setup``, twice: each module run as
   its own process (``python -m MODULE ARGS.json``, the way Ansible runs a
   module on a node: the same interpreter and AnsibleModule start-up for
   both), and through ``ansible -m MODULE localhost`` over the local
   connection. Goal: at least 3x faster. ``ansible.builtin.ping`` is timed too:
   ``setup / ping`` is the most any module can gain through the ansible CLI,
   whose own start-up both share.
3. The size of the profile (goal: at most 2 kB; the paper's was 158 kB).

This script installs nothing: a missing tool is reported and left out.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import typing as t
from pathlib import Path

COLLECTION_ROOT = Path(__file__).resolve().parents[1]
COLLECTIONS_PATH = COLLECTION_ROOT.parents[2]
sys.path.insert(0, str(COLLECTIONS_PATH))

from ansible_collections.nanoedge.core.plugins.module_utils._device_catalog import build_catalog  # noqa: E402
from ansible_collections.nanoedge.core.plugins.module_utils._discovery import discover  # noqa: E402

TOOLCHAIN_RUNS = 3
ANSIBLE_RUNS = 5
FRESH_RUNS = 20
INPROCESS_RUNS = 500
STEP_TIMES: t.Dict[str, t.List[float]] = {}
STEP_RC: t.Dict[str, int] = {}

LSHW_JQ = ('{cpu: [.. | objects | select(.class? == "processor") | .product], '
           'memory: [.. | objects | select(.class? == "memory" and .id? == "memory") | .size], '
           'network: [.. | objects | select(.class? == "network") | .logicalname]}')

FRESH_SCRIPT = (
    "import sys; sys.path.insert(0, %r)\n"
    "from ansible_collections.nanoedge.core.plugins.module_utils._device_catalog import build_catalog\n"
    "from ansible_collections.nanoedge.core.plugins.module_utils._discovery import discover\n"
    "import json; print(json.dumps(discover(catalog=build_catalog())[0]))\n"
) % str(COLLECTIONS_PATH)


def seconds(func: t.Callable[[], t.Any], runs: int) -> float:
    """Median wall time of ``runs`` calls."""
    times = []
    for dummy in range(runs):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(argv: t.Sequence[str], stdin: t.Optional[bytes] = None, env: t.Optional[t.Dict[str, str]] = None
        ) -> subprocess.CompletedProcess:
    # a failing tool is part of the measurement (its exit status is reported), not an error
    return subprocess.run(list(argv), input=stdin, capture_output=True, env=env, timeout=300, check=False)


def toolchain() -> t.Tuple[t.Optional[t.Callable[[], None]], t.List[str], t.List[str]]:
    """The paper's X12 toolchain as one callable; (callable, tools used, tools missing)."""
    missing = [tool for tool in ("lshw", "jq", "upower") if not shutil.which(tool)]
    bluetooth = "hciconfig" if shutil.which("hciconfig") else ("bluetoothctl" if shutil.which("bluetoothctl") else None)
    if bluetooth is None:
        missing.append("hciconfig/bluetoothctl")
    if missing:
        return None, [], missing
    used = ["lshw -json", "jq", "upower -d", "hciconfig -a" if bluetooth == "hciconfig" else "bluetoothctl list"]

    steps: t.List[t.Tuple[str, t.List[str], bool]] = [
        ("lshw -json", ["lshw", "-json", "-quiet"], False),
        ("jq", ["jq", "-c", LSHW_JQ], True),
        ("upower -d", ["upower", "-d"], False),
        ("hciconfig -a", ["hciconfig", "-a"], False) if bluetooth == "hciconfig"
        else ("bluetoothctl list", ["bluetoothctl", "list"], False),
    ]

    def chain() -> None:
        previous = b""
        for label, argv, reads_previous in steps:
            start = time.perf_counter()
            proc = run(argv, stdin=previous if reads_previous else None)
            STEP_TIMES.setdefault(label, []).append(time.perf_counter() - start)
            STEP_RC[label] = proc.returncode
            previous = proc.stdout

    return chain, used, []


def ansible_env() -> t.Dict[str, str]:
    env = dict(os.environ)
    inherited = env.get("ANSIBLE_COLLECTIONS_PATH")
    env.update(
        ANSIBLE_COLLECTIONS_PATH=os.pathsep.join([str(COLLECTIONS_PATH)] + ([inherited] if inherited else [])),
        ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOAD_CALLBACK_PLUGINS="0",
        ANSIBLE_DEPRECATION_WARNINGS="false",
        ANSIBLE_LOCALHOST_WARNING="false",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
    )
    env["PATH"] = "%s%s%s" % (Path(sys.executable).parent, os.pathsep, env.get("PATH", ""))
    return env


def module_process(dotted: str, args: Path, env: t.Dict[str, str]) -> t.Callable[[], None]:
    argv = [sys.executable, "-m", dotted, str(args)]
    module_env = dict(env, PYTHONPATH=str(COLLECTIONS_PATH))

    def call() -> None:
        proc = run(argv, env=module_env)
        if proc.returncode != 0:
            raise SystemExit("bench: %s failed:\n%s%s" % (" ".join(argv), proc.stdout.decode(), proc.stderr.decode()))

    return call


def ansible_adhoc(module: str, env: t.Dict[str, str]) -> t.Callable[[], None]:
    binary = shutil.which("ansible", path=env["PATH"]) or "ansible"
    argv = [binary, "localhost", "-i", "localhost,", "-c", "local", "-m", module,
            "-e", "ansible_python_interpreter=%s" % sys.executable]

    def adhoc() -> None:
        proc = run(argv, env=env)
        if proc.returncode != 0:
            raise SystemExit("bench: %s failed:\n%s%s" % (" ".join(argv), proc.stdout.decode(), proc.stderr.decode()))

    return adhoc


def main() -> int:
    catalog = build_catalog()
    profile, warnings = discover(catalog=catalog)
    size = len(json.dumps(profile, separators=(",", ":")).encode())

    print("== 1. discovery vs the paper's toolchain (median wall time) ==")
    inprocess = seconds(lambda: discover(catalog=catalog), INPROCESS_RUNS)
    fresh = seconds(lambda: run([sys.executable, "-c", FRESH_SCRIPT]), FRESH_RUNS)
    print("nanoedge discovery, in-process       %9.2f ms  (%d runs)" % (inprocess * 1e3, INPROCESS_RUNS))
    print("nanoedge discovery, fresh python3    %9.2f ms  (%d runs)" % (fresh * 1e3, FRESH_RUNS))
    chain, used, missing = toolchain()
    if chain is None:
        print("toolchain NOT measured: missing %s (install the Debian packages lshw, jq, upower, bluez)"
              % ", ".join(missing))
    else:
        chain()  # warm the page cache, as the other figures are warm too
        chain_time = seconds(chain, TOOLCHAIN_RUNS)
        print("paper toolchain, all steps           %9.2f ms  (%d runs)" % (chain_time * 1e3, TOOLCHAIN_RUNS))
        for label in used:
            note = "" if STEP_RC[label] == 0 else (
                "  exit %d: nothing to report here (no daemon / no adapter), so a lower bound" % STEP_RC[label])
            print("  %-34s %9.2f ms%s" % (label, statistics.median(STEP_TIMES[label]) * 1e3, note))
        print("speed-up, fresh process vs toolchain: %7.1fx  (goal >= 20x)" % (chain_time / fresh))
        print("speed-up, in-process vs toolchain:    %7.1fx" % (chain_time / inprocess))

    print()
    print("== 2. the module vs ansible.builtin.setup (median wall time) ==")
    env = ansible_env()
    with tempfile.TemporaryDirectory() as tmp:
        args = Path(tmp) / "args.json"
        args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {}}))
        direct = {}
        for module, dotted in (("ansible.builtin.setup", "ansible.modules.setup"),
                               ("nanoedge.core.resource_facts",
                                "ansible_collections.nanoedge.core.plugins.modules.resource_facts")):
            call = module_process(dotted, args, env)
            call()  # warm up: byte-compile, page cache
            direct[module] = seconds(call, ANSIBLE_RUNS)
            print("module process %-29s %8.0f ms  (%d runs)" % (module, direct[module] * 1e3, ANSIBLE_RUNS))
    print("speed-up, module process vs setup:    %7.1fx  (goal >= 3x)"
          % (direct["ansible.builtin.setup"] / direct["nanoedge.core.resource_facts"]))
    timings = {}
    for module in ("ansible.builtin.ping", "ansible.builtin.setup", "nanoedge.core.resource_facts"):
        adhoc = ansible_adhoc(module, env)
        adhoc()
        timings[module] = seconds(adhoc, ANSIBLE_RUNS)
        print("ansible -m %-33s %8.0f ms  (%d runs)" % (module, timings[module] * 1e3, ANSIBLE_RUNS))
    setup, ours, ping = (timings["ansible.builtin.setup"], timings["nanoedge.core.resource_facts"],
                         timings["ansible.builtin.ping"])
    print("speed-up, ansible -m vs setup:        %7.1fx  (at most %.1fx here: setup / ping)" % (setup / ours, setup / ping))
    if ours > ping:
        print("speed-up above ansible's own start-up ((setup - ping) / (ours - ping)): %.1fx"
              % ((setup - ping) / (ours - ping)))

    print()
    print("== 3. profile size ==")
    print("profile of this machine: %d bytes (goal <= 2048; the paper's was 158.2 kB)" % size)
    if warnings:
        print("discovery warnings on this machine: %s" % "; ".join(warnings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
