# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The real CoAP profile registry (roles/registry/files/nanoedge_registry.py)
as a subprocess for the reporting tests, and a sample profile."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
import time
import typing as t
from pathlib import Path

COLLECTION_ROOT = Path(__file__).resolve().parents[2]
SERVER = COLLECTION_ROOT / "roles" / "registry" / "files" / "nanoedge_registry.py"
READY_RE = re.compile(r"ready on udp \[([^\]]*)\]:(\d+)")

PROFILE = {
    "schema": 1, "node": "w4", "collected_at": "2026-11-26T02:30:00Z", "arch": "armv7l",
    "model": "Raspberry Pi 3 Model B Plus Rev 1.3",
    "cpu": {"cores": 4, "bogomips": 89.6, "load1": 0.31},
    "memory_mb": {"total": 926, "available": 640},
    "storage_mb": {"total": 29820, "free": 21033},
    "power": {"source": "ac", "battery_percent": None, "battery_health": None, "charging": None},
    "network": ["bluetooth", "ethernet", "wifi"],
    "capabilities": ["pom"],
    "devices": [{"capability": "pom", "kind": "sensor", "name": "BerryMed BM1000B", "bus": "usb", "id": "0403:6001"}],
    "labels": {},
}


def profile(node: str, **top_level: t.Any) -> t.Dict[str, t.Any]:
    result = copy.deepcopy(PROFILE)
    result.update(top_level, node=node)
    return result


class RegistryProcess:
    """One registry server; ``url`` is where it listens once started."""

    def __init__(self, workdir: Path, bind: str = "127.0.0.1", port: int = 0,
                 prefix: t.Sequence[str] = (), extra: t.Sequence[str] = ()) -> None:
        self.workdir = workdir
        self.bind = bind
        self.port = port
        self.prefix = list(prefix)
        self.extra = list(extra)
        self.log_path = workdir / "registry.log"
        self.proc = None  # type: t.Optional[subprocess.Popen]

    @property
    def url(self) -> str:
        host = "[%s]" % self.bind if ":" in self.bind else self.bind
        return "coap://%s:%d" % (host, self.port)

    def start(self, timeout: float = 20) -> "RegistryProcess":
        if not SERVER.is_file():
            raise AssertionError("the registry server %s is missing" % SERVER)
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.prefix + [sys.executable, str(SERVER), "--bind", self.bind, "--port", str(self.port),
                               "--db", str(self.workdir / "registry.sqlite"), *self.extra],
                stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = READY_RE.search(self.log_path.read_text(errors="replace"))
            if match:
                self.port = int(match.group(2))
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise AssertionError("registry did not start: %s" % self.log_path.read_text(errors="replace"))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def __enter__(self) -> "RegistryProcess":
        return self.start()

    def __exit__(self, *exc_info: t.Any) -> None:
        self.stop()
