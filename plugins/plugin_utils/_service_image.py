# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What an image of a nanoservice is built from: its service.json, checked, and the build context.

A service folder ``<source>/<name>/`` holds ``service.json`` and the program; the description's
``program`` and ``libraries`` are relative to ``<source>`` (docs/contracts.md, "Service description").
Every image is built from the collection's one ``nanoservices/Dockerfile``; the build arguments come
from the description, the description itself becomes the label ``io.nanoedge.description``. A
library ``common/<folder>`` is taken from ``<source>/common/<folder>`` or, when the source has none,
from the collection's ``nanoservices/common/<folder>`` (``nanoedge_ns``), so a new service needs only
its own folder. ``_service_image_run.py`` decides what to build and push. Controller only.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import typing as t
from dataclasses import dataclass
from pathlib import Path

from ansible_collections.nanoedge.core.plugins.module_utils._labels import (
    BUILD_INPUTS_LABEL,
    DESCRIPTION_LABEL,
    REQUIREMENTS_LABEL,
    SERVICE_LABEL,
)
from ansible_collections.nanoedge.core.plugins.plugin_utils import _service_description as _schema

# A digest of everything an image is built from; equal digests mean an equal image, so no rebuild.
INPUTS_LABEL = BUILD_INPUTS_LABEL
# The labels the diff compares: the nanoedge ones the pipeline reads, and the inputs digest.
COMPARED_LABELS = (SERVICE_LABEL, REQUIREMENTS_LABEL, DESCRIPTION_LABEL, INPUTS_LABEL)
# The collection's nanoservices folder: the one Dockerfile and the shared libraries (common/).
NANOSERVICES = Path(__file__).resolve().parents[2] / "nanoservices"
DOCKERFILE = NANOSERVICES / "Dockerfile"
# The one Python requirement the Dockerfile installs (unpacked from its wheel, no pip in the image).
AIOCOAP = "aiocoap==0.4.17"


class BuildError(RuntimeError):
    """A service cannot be built; the message names the service and what is at fault."""


@dataclass(frozen=True)
class Service:
    """One service.json: as written (``raw``, for the requirements label) and normalised."""

    raw: t.Dict[str, t.Any]
    description: t.Dict[str, t.Any]
    folder: Path  # the service's folder, <source>/<name>
    source: Path  # what program and libraries are relative to

    @property
    def name(self) -> str:
        return str(self.description["name"])

    @property
    def version(self) -> str:
        return str(self.description["version"])


def check_description(spec: t.Mapping[str, t.Any]) -> t.Dict[str, t.Any]:
    """The description, validated and normalised; BuildError naming the service and the key if invalid.

    Keys starting with ``_`` are the caller's own (tools/nanoservices.py keeps the folder there)."""
    try:
        return _schema.normalize_description({k: v for k, v in spec.items() if not k.startswith("_")})
    except _schema.DescriptionError as exc:
        raise BuildError("service %r: service.json: %s" % (spec.get("name"), exc)) from exc


def check_buildable(description: t.Mapping[str, t.Any]) -> None:
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


def load_service(path: t.Union[str, Path], source: t.Optional[t.Union[str, Path]] = None) -> Service:
    """The service.json at ``path``, checked; ``source`` defaults to the parent of its folder."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BuildError("%s: cannot read it: %s" % (path, exc.strerror or exc)) from exc
    except ValueError as exc:
        raise BuildError("%s: not valid JSON: %s" % (path, exc)) from exc
    if not isinstance(raw, dict):
        raise BuildError("%s: the description must be a JSON object, got %s" % (path, type(raw).__name__))
    description = check_description(raw)
    folder = path.resolve().parent
    if folder.name != description["name"]:
        raise BuildError("service %r: service.json: name must equal its folder %r" % (description["name"], folder.name))
    check_buildable(description)
    service = Service(raw=raw, description=description, folder=folder,
                      source=Path(source).resolve() if source else folder.parent)
    if not (service.source / description["program"]).is_file():
        raise BuildError("service %r: service.json: program %s is not a file"
                         % (service.name, service.source / description["program"]))
    for library in description["libraries"]:
        library_folder(service, library)
    return service


def library_folder(service: Service, library: str) -> Path:
    """Where a library ``common/<folder>`` is: in the service's source, else in the collection."""
    for root in (service.source, NANOSERVICES):
        if (root / library).is_dir():
            return root / library
    raise BuildError("service %r: service.json: library %s is not a folder (looked in %s and %s)"
                     % (service.name, library, service.source, NANOSERVICES))


def build_args(spec: t.Mapping[str, t.Any], base_image: str, wheel: t.Union[str, Path]) -> t.Dict[str, str]:
    """The build arguments of nanoservices/Dockerfile, every one from service.json."""
    description = check_description(spec)
    check_buildable(description)
    port = description["port"]
    return {
        "BASE_IMAGE": base_image,
        "SERVICE": description["name"],
        "PROGRAM": description["program"],
        "PORT": "%d/%s" % (port["number"], port["protocol"]),
        "DESCRIPTION": description["description"],
        "VERSION": description["version"],
        # as written in service.json (key order and spacing), so the label reads as its author wrote it
        "REQUIREMENTS": json.dumps(spec["requirements"]),
        "SERVICE_DESCRIPTION": _schema.description_label(description),
        "AIOCOAP_WHEEL": Path(wheel).name,
    }


def nanoedge_labels(arguments: t.Mapping[str, str], inputs: str) -> t.Dict[str, str]:
    """The labels of COMPARED_LABELS an image built with ``arguments`` carries (the Dockerfile sets them)."""
    return {SERVICE_LABEL: arguments["SERVICE"], REQUIREMENTS_LABEL: arguments["REQUIREMENTS"],
            DESCRIPTION_LABEL: arguments["SERVICE_DESCRIPTION"], INPUTS_LABEL: inputs}


def _copy_tree(source: Path, target: Path) -> None:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def tree_digest(root: Path) -> str:
    """A digest of every file under ``root``: names and contents."""
    digest = hashlib.sha256()
    for item in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(item.relative_to(root).as_posix().encode() + b"\0" + item.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def assemble_context(service: Service, wheel: Path, target: Path) -> str:
    """Fill ``target`` with the build context (the Dockerfile, the wheel, the libraries under common/,
    the service's folder); return a digest of its content."""
    (target / "wheels").mkdir(parents=True)
    (target / "common").mkdir()
    shutil.copy2(DOCKERFILE, target / "Dockerfile")
    shutil.copy2(wheel, target / "wheels" / wheel.name)
    for library in service.description["libraries"]:
        _copy_tree(library_folder(service, library), target / library.rstrip("/"))
    _copy_tree(service.folder, target / service.name)
    return tree_digest(target)


def inputs_digest(context: str, base_id: str, image: str, arguments: t.Mapping[str, str], platform: str) -> str:
    """The value of INPUTS_LABEL: the context, the base image's ID, the reference, the arguments, the platform."""
    text = "%s %s %s %s %s" % (context, base_id, image, json.dumps(dict(arguments), sort_keys=True), platform)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def find_wheel(wheel_dir: t.Union[str, Path]) -> t.Optional[Path]:
    """The AIOCOAP wheel in ``wheel_dir``, if one is there."""
    version = AIOCOAP.split("==")[1]
    wheels = sorted(Path(os.path.expanduser(str(wheel_dir))).glob("aiocoap-%s-*.whl" % version))
    return wheels[-1] if wheels else None


def ensure_wheel(wheel_dir: t.Union[str, Path]) -> Path:
    """The AIOCOAP wheel, downloaded into ``wheel_dir`` with pip the first time (the images need no pip)."""
    found = find_wheel(wheel_dir)
    if found:
        return found
    folder = Path(os.path.expanduser(str(wheel_dir)))
    folder.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps",
                           "--only-binary", ":all:", "-d", str(folder), AIOCOAP],
                          capture_output=True, timeout=300, check=False)
    found = find_wheel(folder)
    if proc.returncode != 0 or found is None:
        raise BuildError("pip could not download %s into %s: %s"
                         % (AIOCOAP, folder, proc.stderr.decode(errors="replace").strip()))
    return found
