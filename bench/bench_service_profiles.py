# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Service discovery benchmark: 100 labelled images in the local registry.

Times the service_profiles lookup's engine cold (empty cache) and warm (the
on-disk cache of a previous run, so only manifest digests are asked for)
against the baseline measured in the same run: a sequential loop of
``skopeo inspect --config`` over the same images, which is what a shell
script would do. Goals: cold <= 1 s and >= 5x faster than the loop, warm <= 0.2 s.

Run from the collection layout with the project's venv:
    cd .build/collections/ansible_collections/nanoedge/core && ../../../../../.venv/bin/python bench/bench_service_profiles.py
Options: --registry HOST:PORT (default 127.0.0.1:5000), --images N, --rounds N.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import typing as t
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

COLLECTION_ROOT = Path(__file__).resolve().parents[1]
if COLLECTION_ROOT.parent.parent.name != "ansible_collections":
    sys.exit("run from the ansible_collections/nanoedge/core layout (make layout), not the checkout")
sys.path.insert(0, str(COLLECTION_ROOT.parents[2]))

# pylint: disable=wrong-import-position
from ansible_collections.nanoedge.core.plugins.plugin_utils._oci_cache import DigestCache  # noqa: E402
from ansible_collections.nanoedge.core.plugins.plugin_utils._service_profiles import (  # noqa: E402
    DiscoveryOptions,
    discover,
)

PREFIX = "nanoedge-bench"
LABEL = "io.nanoedge.requirements"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def requirements_for(i: int) -> t.Dict[str, t.Any]:
    return {"capabilities": ["pom"] if i % 3 == 0 else [], "cpu": 1 + i % 2, "memory_mb": 16 + i,
            "storage_mb": 10, "power": "ac" if i % 4 == 0 else "", "network": "wifi" if i % 5 == 0 else ""}


def _request(method: str, url: str, body: t.Optional[bytes] = None,
             headers: t.Optional[t.Dict[str, str]] = None) -> t.Tuple[int, t.Dict[str, str]]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers)


def ensure_images(base: str, count: int) -> int:
    """Push the images that are not there yet (config-only manifests through the API); return how many."""
    pushed = 0
    for i in range(count):
        repo = "%s/svc-%03d" % (PREFIX, i)
        config = json.dumps({"architecture": "amd64", "os": "linux",
                             "config": {"Labels": {LABEL: json.dumps(requirements_for(i))}},
                             "rootfs": {"type": "layers", "diff_ids": []}}, sort_keys=True).encode()
        digest = "sha256:" + hashlib.sha256(config).hexdigest()
        manifest = json.dumps({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST, "layers": [],
                               "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                                          "size": len(config), "digest": digest}}, sort_keys=True).encode()
        manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        status, headers = _request("HEAD", "%s/v2/%s/manifests/latest" % (base, repo),
                                   headers={"Accept": DOCKER_MANIFEST})
        if status == 200 and headers.get("Docker-Content-Digest") == manifest_digest:
            continue
        status, headers = _request("POST", "%s/v2/%s/blobs/uploads/" % (base, repo), b"")
        if status != 202:
            raise SystemExit("cannot start a blob upload to %s (HTTP %d)" % (repo, status))
        location = urllib.parse.urljoin(base, headers["Location"])
        status, _headers = _request("PUT", "%s%sdigest=%s" % (location, "&" if "?" in location else "?", digest),
                                    config, {"Content-Type": "application/octet-stream"})
        if status != 201:
            raise SystemExit("cannot upload the config of %s (HTTP %d)" % (repo, status))
        status, _headers = _request("PUT", "%s/v2/%s/manifests/latest" % (base, repo), manifest,
                                    {"Content-Type": DOCKER_MANIFEST})
        if status != 201:
            raise SystemExit("cannot push the manifest of %s (HTTP %d)" % (repo, status))
        pushed += 1
    return pushed


def skopeo_loop(registry: str, count: int) -> t.Tuple[float, t.Dict[str, t.Any]]:
    """The baseline: one ``skopeo inspect --config`` per image, one after the other."""
    skopeo = shutil.which("skopeo")
    if not skopeo:
        raise SystemExit("skopeo is not installed (apt-get install skopeo)")
    found = {}
    start = time.perf_counter()
    for i in range(count):
        ref = "docker://%s/%s/svc-%03d:latest" % (registry, PREFIX, i)
        proc = subprocess.run([skopeo, "inspect", "--config", "--tls-verify=false", ref],
                              capture_output=True, check=True)
        labels = json.loads(proc.stdout)["config"]["Labels"]
        found["svc-%03d" % i] = json.loads(labels[LABEL])
    return time.perf_counter() - start, found


def ours(registry: str, cache_path: t.Optional[str]) -> t.Tuple[float, t.List[t.Dict[str, t.Any]]]:
    options = DiscoveryOptions(registry="http://" + registry, repositories=["%s/*" % PREFIX], cache_path=cache_path)
    start = time.perf_counter()
    services = discover(options, cache=DigestCache(cache_path)).services
    return time.perf_counter() - start, services


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--registry", default="127.0.0.1:5000")
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    base = "http://" + args.registry

    start = time.perf_counter()
    pushed = ensure_images(base, args.images)
    print("images: %d in %s/%s/* (%d pushed now, %.2f s)" % (args.images, args.registry, PREFIX, pushed,
                                                             time.perf_counter() - start))
    if args.images != 100:
        print("note: the goals are stated for 100 images")

    # the baseline runs before and after our rounds; the faster of the two is kept, in its favour
    loop_before, loop_found = skopeo_loop(args.registry, args.images)
    cold_times, warm_times = [], []
    services: t.List[t.Dict[str, t.Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for round_no in range(args.rounds):
            cache_path = str(Path(tmp) / ("cache-%d.json" % round_no))
            elapsed, services = ours(args.registry, cache_path)
            cold_times.append(elapsed)
            elapsed, warm_services = ours(args.registry, cache_path)
            warm_times.append(elapsed)
            if warm_services != services:
                raise SystemExit("warm and cold results differ")
    loop_after, _found = skopeo_loop(args.registry, args.images)
    loop_time = min(loop_before, loop_after)

    ours_found = {s["name"]: s["requires"] for s in services if s["name"].startswith("svc-")}
    expected = {"svc-%03d" % i for i in range(args.images)}
    if not set(ours_found) >= expected:
        raise SystemExit("missing services: %s" % sorted(expected - set(ours_found)))
    for name, raw in loop_found.items():
        for key, value in raw.items():
            if ours_found[name][key] != value:
                raise SystemExit("%s: %s differs (%r vs %r)" % (name, key, ours_found[name][key], value))

    cold, warm = statistics.median(cold_times), statistics.median(warm_times)

    def row(label: str, seconds: float, detail: str) -> None:
        print("%-46s %8.3f   %s" % (label, seconds, detail))

    print("%-46s %8s" % ("", "seconds"))
    row("skopeo inspect --config loop (baseline, best)", loop_time,
        "(runs: %.3f before, %.3f after)" % (loop_before, loop_after))
    row("service_profiles, cold cache (median)", cold,
        "(min %.3f, max %.3f, %d rounds)" % (min(cold_times), max(cold_times), args.rounds))
    row("service_profiles, warm disk cache (median)", warm, "(min %.3f, max %.3f)" % (min(warm_times), max(warm_times)))
    print("ratio baseline / cold: %.1fx   baseline / warm: %.1fx" % (loop_time / cold, loop_time / warm))
    goals = [("cold <= 1 s", cold <= 1.0), ("cold >= 5x faster than the loop", loop_time / cold >= 5.0),
             ("warm <= 0.2 s", warm <= 0.2)]
    print("goals: " + ", ".join("%s: %s" % (name, "met" if ok else "MISSED") for name, ok in goals))
    return 0


if __name__ == "__main__":
    sys.exit(main())
