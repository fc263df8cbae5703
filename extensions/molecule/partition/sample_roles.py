# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sample the managers' roles every half second until told to stop.

    python3 sample_roles.py OUT STOP CONTAINER=MANAGER...

Reads each manager's reconcile state file through ``docker exec`` (both at
once, so the two reads of one sample are a few milliseconds apart) and
appends one JSON line per sample to OUT: the wall time and, per manager,
its role and term as its state file says, or why it could not be read.
Stops when the file STOP exists, or after an hour.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
import time
import typing as t

STATE_FILE = "/var/lib/nanoedge-reconcile/state.json"


def read_state(container: str) -> t.Dict[str, t.Any]:
    try:
        proc = subprocess.run(["docker", "exec", container, "cat", STATE_FILE], capture_output=True, timeout=5,
                              check=False)
    except subprocess.TimeoutExpired:
        return {"error": "timed out"}
    if proc.returncode != 0:
        return {"error": proc.stderr.decode(errors="replace").strip()[-200:] or "exit %d" % proc.returncode}
    try:
        state = json.loads(proc.stdout)
    except ValueError as exc:
        return {"error": "not JSON: %s" % exc}
    return {"role": state.get("role"), "term": state.get("term"), "lease_remaining": state.get("lease_remaining")}


def main(argv: t.Sequence[str]) -> int:
    if len(argv) < 3:
        sys.stderr.write(__doc__)
        return 2
    out, stop, pairs = argv[0], argv[1], [arg.split("=", 1) for arg in argv[2:]]
    deadline = time.monotonic() + 3600
    with concurrent.futures.ThreadPoolExecutor(len(pairs)) as pool, open(out, "a", encoding="utf-8") as sink:
        while not os.path.exists(stop) and time.monotonic() < deadline:
            started = time.monotonic()
            states = list(pool.map(read_state, [container for container, _name in pairs]))
            sample = {"time": time.time(), "managers": {name: state for (_c, name), state in zip(pairs, states)}}
            sink.write(json.dumps(sample, sort_keys=True) + "\n")
            sink.flush()
            time.sleep(max(0.0, 0.5 - (time.monotonic() - started)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
