# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build the example nanoservices' images and push them to the OCI registry.

    python tools/nanoservices.py                 # all of nanoservices/*/
    python tools/nanoservices.py spo2 alert      # some
    python tools/nanoservices.py --list          # what there is, with requirements

Each image is ``REGISTRY/NAMESPACE/<name>:<version>`` (default
127.0.0.1:5000/nanoedge/spo2:1.0.0), the version from the service's
service.json, also tagged ``latest``. The build context is assembled from aiocoap's wheel,
nanoservices/common/ and the service's folder, so the images need neither
pip nor network access. Idempotent and quick when nothing changed: an image
whose inputs are unchanged is not rebuilt, and a tag the registry already
holds with the same digest is not pushed again.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
import typing as t
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVICES_DIR = ROOT / "nanoservices"
WHEEL_DIR = ROOT / ".build" / "wheels"
AIOCOAP = "aiocoap==0.4.17"
INPUTS_LABEL = "io.nanoedge.build.inputs"
MANIFEST_TYPES = ", ".join((
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
))


class BuildError(RuntimeError):
    pass


def log(message: str) -> None:
    print("nanoservices: %s" % message, file=sys.stderr, flush=True)


def run(*args: str, timeout: float = 600) -> str:
    proc = subprocess.run(list(args), capture_output=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise BuildError("%s failed (%d): %s" % (" ".join(args[:3]), proc.returncode,
                                                 proc.stderr.decode(errors="replace").strip()))
    return proc.stdout.decode().strip()


def services(names: t.Sequence[str] = ()) -> t.List[t.Dict[str, t.Any]]:
    """service.json of each nanoservice (all, or the ``names`` given), by name."""
    found = {}
    for path in sorted(SERVICES_DIR.glob("*/service.json")):
        spec = json.loads(path.read_text())
        if spec.get("name") != path.parent.name:
            raise BuildError("%s: name %r must equal its folder %r" % (path, spec.get("name"), path.parent.name))
        spec["_dir"] = path.parent
        found[spec["name"]] = spec
    unknown = sorted(set(names) - set(found))
    if unknown:
        raise BuildError("no such nanoservice(s): %s (have: %s)" % (", ".join(unknown), ", ".join(found)))
    return [found[n] for n in (names or found)]


def aiocoap_wheel() -> Path:
    wheels = sorted(WHEEL_DIR.glob("aiocoap-%s-*.whl" % AIOCOAP.split("==")[1]))
    if wheels:
        return wheels[-1]
    WHEEL_DIR.mkdir(parents=True, exist_ok=True)
    log("downloading %s" % AIOCOAP)
    run(sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps",
        "--only-binary", ":all:", "-d", str(WHEEL_DIR), AIOCOAP, timeout=300)
    wheels = sorted(WHEEL_DIR.glob("aiocoap-*.whl"))
    if not wheels:
        raise BuildError("pip did not leave an aiocoap wheel in %s" % WHEEL_DIR)
    return wheels[-1]


def _copy_tree(source: Path, target: Path) -> None:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def assemble_context(spec: t.Dict[str, t.Any], wheel: Path, target: Path) -> str:
    """Fill ``target`` with the build context; return a digest of its content."""
    (target / "wheels").mkdir(parents=True)
    shutil.copy2(wheel, target / "wheels" / wheel.name)
    _copy_tree(SERVICES_DIR / "common", target / "common")
    _copy_tree(spec["_dir"], target / spec["name"])
    digest = hashlib.sha256()
    for item in sorted(p for p in target.rglob("*") if p.is_file()):
        digest.update(item.relative_to(target).as_posix().encode() + b"\0" + item.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _local_label(image: str, label: str) -> t.Optional[str]:
    proc = subprocess.run(["docker", "image", "inspect", "-f", "{{json .Config.Labels}}", image],
                          capture_output=True, check=False)
    if proc.returncode != 0:
        return None
    return (json.loads(proc.stdout) or {}).get(label)


def _registry_digest(registry: str, repository: str, tag: str) -> t.Optional[str]:
    request = urllib.request.Request("http://%s/v2/%s/manifests/%s" % (registry, repository, tag),
                                     method="HEAD", headers={"Accept": MANIFEST_TYPES})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.headers.get("Docker-Content-Digest")
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise BuildError("registry %s: HEAD %s:%s answered %d" % (registry, repository, tag, exc.code)) from exc
    except OSError as exc:
        raise BuildError("registry %s does not answer (bash tools/prereqs.sh starts it): %s" % (registry, exc)) from exc


def _local_digests(image: str) -> t.List[str]:
    out = run("docker", "image", "inspect", "-f", "{{json .RepoDigests}}", image)
    return [d.split("@", 1)[1] for d in json.loads(out) or []]


def build_and_push(spec: t.Dict[str, t.Any], registry: str, namespace: str, base_image: str,
                   wheel: Path, push: bool = True) -> t.Dict[str, t.Any]:
    name, version = spec["name"], spec["version"]
    repository = "%s/%s" % (namespace, name)
    image = "%s/%s:%s" % (registry, repository, version)
    base_id = run("docker", "image", "inspect", "-f", "{{.Id}}", base_image)
    with tempfile.TemporaryDirectory(prefix="nanoservice-%s-" % name) as tmp:
        context = Path(tmp)
        inputs = hashlib.sha256(("%s %s %s" % (assemble_context(spec, wheel, context), base_id, image))
                                .encode()).hexdigest()[:16]
        built = False
        if _local_label(image, INPUTS_LABEL) != inputs:
            run("docker", "build", "-q", "-f", str(context / name / "Dockerfile"),
                "--build-arg", "BASE_IMAGE=%s" % base_image, "--build-arg", "VERSION=%s" % version,
                "--build-arg", "AIOCOAP_WHEEL=%s" % wheel.name, "--label", "%s=%s" % (INPUTS_LABEL, inputs),
                "-t", image, str(context))
            built = True
    # "latest" follows the newest build, for consumers that do not pick by version
    latest = "%s/%s:latest" % (registry, repository)
    run("docker", "tag", image, latest)
    pushed = False
    digest = None
    if push:
        for tag, reference in ((version, image), ("latest", latest)):
            remote = _registry_digest(registry, repository, tag)
            if built or remote is None or remote not in _local_digests(image):
                run("docker", "push", "-q", reference)
                pushed = True
        digest = _registry_digest(registry, repository, version)
    labels = json.loads(run("docker", "image", "inspect", "-f", "{{json .Config.Labels}}", image))
    return {"name": name, "image": image, "digest": digest, "built": built, "pushed": pushed,
            "requirements": json.loads(labels["io.nanoedge.requirements"])}


def main(argv: t.Optional[t.Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="nanoservices.py", description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("names", nargs="*", help="nanoservices to build (default: all)")
    parser.add_argument("--registry", default="127.0.0.1:5000")
    parser.add_argument("--namespace", default="nanoedge")
    parser.add_argument("--base-image", default="nanoedge/base:bookworm")
    parser.add_argument("--no-push", action="store_true", help="build only")
    parser.add_argument("--list", action="store_true", help="list the nanoservices and exit")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    try:
        specs = services(args.names)
        if args.list:
            for spec in specs:
                print("%-8s %-8s %s" % (spec["name"], spec["version"], spec["description"]))
            return 0
        wheel = aiocoap_wheel()
        started = time.monotonic()
        results = [build_and_push(spec, args.registry, args.namespace, args.base_image, wheel,
                                  push=not args.no_push) for spec in specs]
    except (BuildError, subprocess.TimeoutExpired) as exc:
        log("error: %s" % exc)
        return 1
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for result in results:
            action = ("built and pushed" if result["built"] and result["pushed"] else "built" if result["built"]
                      else "pushed" if result["pushed"] else "unchanged")
            print("%-8s %-16s %s %s" % (result["name"], action, result["image"], result["digest"] or ""))
    log("%d image(s) in %.1f s" % (len(results), time.monotonic() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
