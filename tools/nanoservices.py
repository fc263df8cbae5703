# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build the example nanoservices' images and push them to the OCI registry.

    python tools/nanoservices.py                 # all of nanoservices/*/
    python tools/nanoservices.py spo2 alert      # some
    python tools/nanoservices.py --list          # what there is, with requirements

Each image is ``REGISTRY/NAMESPACE/<name>:<version>`` (default
127.0.0.1:5000/nanoedge/spo2:1.0.0), the version from the service's
service.json, also tagged ``latest``. Every service is built from the one
nanoservices/Dockerfile with build arguments taken from its service.json,
which is first validated with the collection's service description schema
(``plugins/plugin_utils/_service_description.py``). The validated description
becomes the image's label ``io.nanoedge.description``, so the deployment reads
exactly what was built; the requirements are also kept in
``io.nanoedge.requirements`` for readers of that label. The build context is
assembled from aiocoap's wheel, nanoservices/common/ and the service's
folder, so the images need neither pip nor network access. Idempotent and quick when nothing changed: an image
whose inputs are unchanged is not rebuilt, and a tag the registry already
holds with the same digest is not pushed again.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
import types
import typing as t
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVICES_DIR = ROOT / "nanoservices"
DOCKERFILE = SERVICES_DIR / "Dockerfile"
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


def _collection_module(name: str) -> types.ModuleType:
    """One of the collection's modules (``module_utils._labels``), from this checkout.

    The tool validates with the very code the service_profiles lookup and the
    deploy role use. Inside an ``ansible_collections/nanoedge/core`` tree
    (a laid-out copy) that tree is imported; in a plain checkout the package
    path is mapped onto it.
    """
    if ROOT.parent.name == "nanoedge" and ROOT.parents[1].name == "ansible_collections":
        if str(ROOT.parents[2]) not in sys.path:
            sys.path.insert(0, str(ROOT.parents[2]))
    elif "ansible_collections" not in sys.modules:
        for package, path in (("ansible_collections", []), ("ansible_collections.nanoedge", []),
                              ("ansible_collections.nanoedge.core", [str(ROOT)])):
            module = types.ModuleType(package)
            module.__path__ = path  # type: ignore[attr-defined]
            sys.modules[package] = module
    return importlib.import_module("ansible_collections.nanoedge.core.plugins.%s" % name)


_schema = _collection_module("plugin_utils._service_description")
_labels = _collection_module("module_utils._labels")


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
        check_description(spec)
        spec["_dir"] = path.parent
        found[spec["name"]] = spec
    unknown = sorted(set(names) - set(found))
    if unknown:
        raise BuildError("no such nanoservice(s): %s (have: %s)" % (", ".join(unknown), ", ".join(found)))
    return [found[n] for n in (names or found)]


def check_description(spec: t.Dict[str, t.Any]) -> t.Dict[str, t.Any]:
    """The service's description, validated and normalised; BuildError naming the service and key if invalid.

    Keys starting with ``_`` are this tool's own (the service's folder)."""
    try:
        return _schema.normalize_description({k: v for k, v in spec.items() if not k.startswith("_")})
    except _schema.DescriptionError as exc:
        raise BuildError("service %r: service.json: %s" % (spec.get("name"), exc)) from exc


def _check_buildable(description: t.Dict[str, t.Any]) -> None:
    """What the one Dockerfile needs beyond the schema: a port to expose, a program and libraries it copies."""
    name = description["name"]
    if description["port"] is None:
        raise BuildError("service %r: service.json: port is required (the image exposes it)" % name)
    if not description["version"]:
        raise BuildError("service %r: service.json: version is required (it tags the image)" % name)
    program = description["program"]
    if program is None or not program.startswith(name + "/"):
        raise BuildError("service %r: service.json: program must be a file in its folder (%s/...), got %r"
                         % (name, name, program))
    for library in description["libraries"]:
        # the Dockerfile installs common/<folder> as <IMAGE_LIBRARIES>/<folder>
        if library.rstrip("/").count("/") != 1 or not library.startswith("common/"):
            raise BuildError("service %r: service.json: libraries must be folders of nanoservices/common "
                             "(common/<folder>), got %r" % (name, library))


def build_args(spec: t.Dict[str, t.Any], base_image: str, wheel: Path) -> t.Dict[str, str]:
    """The build arguments of nanoservices/Dockerfile, every one from service.json."""
    description = check_description(spec)
    _check_buildable(description)
    port = description["port"]
    return {
        "BASE_IMAGE": base_image,
        "SERVICE": description["name"],
        "PROGRAM": description["program"],
        "PORT": "%d/%s" % (port["number"], port["protocol"]),
        "DESCRIPTION": description["description"],
        "VERSION": description["version"],
        # as written in service.json (key order and spacing), so the label
        # reads as its author wrote it
        "REQUIREMENTS": json.dumps(spec["requirements"]),
        "SERVICE_DESCRIPTION": _schema.description_label(description),
        "AIOCOAP_WHEEL": wheel.name,
    }


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
    shutil.copy2(DOCKERFILE, target / "Dockerfile")
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
    arguments = build_args(spec, base_image, wheel)
    base_id = run("docker", "image", "inspect", "-f", "{{.Id}}", base_image)
    with tempfile.TemporaryDirectory(prefix="nanoservice-%s-" % name) as tmp:
        context = Path(tmp)
        inputs = hashlib.sha256(("%s %s %s %s" % (assemble_context(spec, wheel, context), base_id, image,
                                                  json.dumps(arguments, sort_keys=True)))
                                .encode()).hexdigest()[:16]
        if not (context / arguments["PROGRAM"]).is_file():
            raise BuildError("service %r: service.json: program %s is not a file"
                             % (name, SERVICES_DIR / arguments["PROGRAM"]))
        for library in spec.get("libraries") or []:
            if not (context / library).is_dir():
                raise BuildError("service %r: service.json: library %s is not a folder" % (name, SERVICES_DIR / library))
        built = False
        if _local_label(image, INPUTS_LABEL) != inputs:
            command = ["docker", "build", "-q", "-f", str(context / "Dockerfile")]
            for key, value in arguments.items():
                command += ["--build-arg", "%s=%s" % (key, value)]
            run(*command, "--label", "%s=%s" % (INPUTS_LABEL, inputs), "-t", image, str(context))
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
            "requirements": json.loads(labels[_labels.REQUIREMENTS_LABEL]),
            "description": json.loads(labels[_labels.DESCRIPTION_LABEL])}


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
                print("%-17s requires %s" % ("", json.dumps(spec["requirements"])))
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
