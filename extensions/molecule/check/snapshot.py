# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# The state of a node that a deployment could change, as JSON: containers (id, image, state,
# start time), nanoedge units and their state, and a checksum of every file nanoedge installs.
import hashlib
import json
import os
import subprocess

ROOTS = ("/opt/nanoedge", "/opt/nanoedge-registry", "/etc/nanoedge-registry", "/etc/systemd/system")


def run(*argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False).stdout.strip()
    except OSError:
        return ""


def files():
    sums = {}
    for root in ROOTS:
        for folder, dirs, names in os.walk(root):
            dirs[:] = [d for d in dirs if d not in ("venv", "__pycache__")]
            for name in names:
                path = os.path.join(folder, name)
                if root == "/etc/systemd/system" and not name.startswith("nanoedge"):
                    continue
                if os.path.isfile(path) and not os.path.islink(path):
                    with open(path, "rb") as handle:
                        sums[path] = hashlib.sha256(handle.read()).hexdigest()
    return sums


units = run("systemctl", "list-units", "nanoedge*", "--all", "--no-legend", "--plain", "--no-pager")
containers = run("docker", "ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Names}} {{.Image}} {{.State}} {{.CreatedAt}}")
since = {}
for line in units.splitlines():
    unit = line.split()[0]
    since[unit] = run("systemctl", "show", "-p", "ActiveEnterTimestamp", "--value", unit)
print(json.dumps({"containers": sorted(containers.splitlines()), "units": sorted(units.splitlines()),
                  "since": since, "files": files()}, sort_keys=True))
