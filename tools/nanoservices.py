# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build the example nanoservices' images and push them to the OCI registry.

    python tools/nanoservices.py                 # all of nanoservices/*/
    python tools/nanoservices.py spo2 alert      # some
    python tools/nanoservices.py --list          # what there is, with requirements

Each image is ``REGISTRY/NAMESPACE/<name>:<version>`` (default
127.0.0.1:5000/nanoedge/spo2:1.0.0), the version from the service's
service.json, also tagged ``latest``. The work is the collection's own, the
code of the ``nanoedge.core.service_image`` module and role
(``plugins/plugin_utils/_service_image.py`` checks service.json and assembles
the build context, ``_service_image_run.py`` decides what to build and push);
this tool only drives the docker command line for it, so it needs no Ansible
run. Every service is built from the one nanoservices/Dockerfile; the
validated description becomes the label ``io.nanoedge.description`` and the
requirements ``io.nanoedge.requirements``. Idempotent and quick when nothing
changed: an image whose build inputs (label ``io.nanoedge.build.inputs``) the
registry already holds is neither built nor pushed. What was built or pushed
is also logged on stderr (``nanoservices: spo2 built and pushed``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
import time
import types
import typing as t
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVICES_DIR = ROOT / "nanoservices"
WHEEL_DIR = ROOT / ".build" / "wheels"


def _collection_module(name: str) -> types.ModuleType:
    """One of the collection's modules (``plugin_utils._service_image``), from this checkout.

    Inside an ``ansible_collections/nanoedge/core`` tree (a laid-out copy) that
    tree is imported; in a plain checkout the package path is mapped onto it.
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


_image = _collection_module("plugin_utils._service_image")
_run = _collection_module("plugin_utils._service_image_run")
BuildError = _image.BuildError


def log(message: str) -> None:
    print("nanoservices: %s" % message, file=sys.stderr, flush=True)


def run(*args: str, timeout: float = 600) -> str:
    proc = subprocess.run(list(args), capture_output=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise BuildError("%s failed (%d): %s" % (" ".join(args[:3]), proc.returncode,
                                                 proc.stderr.decode(errors="replace").strip()))
    return proc.stdout.decode().strip()


class CliBuilder:
    """The Builder of _service_image_run, with the docker command line."""

    def platform(self) -> str:
        return run("docker", "version", "-f", "{{.Server.Os}}/{{.Server.Arch}}")

    def image(self, reference: str) -> t.Optional[t.Any]:
        proc = subprocess.run(["docker", "image", "inspect", "-f", "{{json .Id}} {{json .Config.Labels}}", reference],
                              capture_output=True, check=False)
        if proc.returncode != 0:
            return None
        image_id, labels = proc.stdout.decode().split(" ", 1)
        return _run.LocalImage(id=json.loads(image_id), labels=json.loads(labels) or {})

    def build(self, context: Path, image: str, arguments: t.Mapping[str, str], labels: t.Mapping[str, str],
              platform: str) -> None:
        command = ["docker", "build", "-q", "--platform", platform, "-f", str(context / "Dockerfile")]
        for key, value in arguments.items():
            command += ["--build-arg", "%s=%s" % (key, value)]
        for key, value in labels.items():
            command += ["--label", "%s=%s" % (key, value)]
        run(*command, "-t", image, str(context))

    def tag(self, source: str, target: str) -> None:
        run("docker", "tag", source, target)

    def push(self, reference: str) -> None:
        run("docker", "push", "-q", reference)


def services(names: t.Sequence[str] = ()) -> t.List[t.Any]:
    """Each nanoservice of nanoservices/ (all, or the ``names`` given), checked."""
    found = {}
    for path in sorted(SERVICES_DIR.glob("*/service.json")):
        service = _image.load_service(path, SERVICES_DIR)
        found[service.name] = service
    unknown = sorted(set(names) - set(found))
    if unknown:
        raise BuildError("no such nanoservice(s): %s (have: %s)" % (", ".join(unknown), ", ".join(found)))
    return [found[n] for n in (names or found)]


def _summary(result: t.Mapping[str, t.Any]) -> t.Dict[str, t.Any]:
    """What --json prints of a service: its image and digest, what was done, its requirements and description."""
    labels = result["labels"]
    return dict({key: result[key] for key in ("name", "image", "digest", "built", "pushed")},
                requirements=json.loads(labels[_image.REQUIREMENTS_LABEL]),
                description=json.loads(labels[_image.DESCRIPTION_LABEL]))


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
                print("%-8s %-8s %s" % (spec.name, spec.version, spec.description["description"]))
                print("%-17s requires %s" % ("", json.dumps(spec.raw["requirements"])))
            return 0
        wheel = _image.ensure_wheel(WHEEL_DIR)
        started = time.monotonic()
        request = _run.Request(registry=args.registry, namespace=args.namespace, base_image=args.base_image,
                               push=not args.no_push)
        builder = CliBuilder()
        results = []
        for spec in specs:
            result = _run.ensure_image(spec, wheel, request, builder)
            if result["changed"]:
                log("%s %s" % (result["name"], result["action"]))
            results.append(result)
    except (BuildError, subprocess.TimeoutExpired) as exc:
        log("error: %s" % exc)
        return 1
    if args.json:
        print(json.dumps([_summary(result) for result in results], indent=2))
    else:
        for result in results:
            print("%-8s %-16s %s %s" % (result["name"], result["action"], result["image"], result["digest"] or ""))
    log("%d image(s) in %.1f s" % (len(results), time.monotonic() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
