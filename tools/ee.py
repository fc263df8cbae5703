# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build nanoedge.core's execution environment (meta/execution-environment.yml) with ansible-builder.

    python tools/ee.py --collection COLL_DEST --collections .build/collections --tag nanoedge/ee:0.1.0

No public registry nor Galaxy is reachable here, so the build context is made complete first, in
``--work`` (default .build/ee): copies of meta/execution-environment.yml, requirements.txt and
bindep.txt (their relative paths read as in the collection's root), ``collections/`` with the
collection's tarball and those of its dependencies (galaxy.yml's, closed over their MANIFEST.json; each
built again from its unpacked folder), ``requirements.yml`` naming
them, and ``wheels/`` with every Python package the build installs, downloaded by pip on this machine
(the requirements of every collection, as ``ansible-builder introspect`` lists them, and the build's own
tools), at the versions this venv has where it has them. The base image is the local
``nanoedge/base:bookworm`` (tools/prereqs.sh); the definition adds pip from Debian. The build runs
``ansible-builder build --container-runtime docker``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import typing as t
from pathlib import Path

import yaml

# What ansible-builder's stages install besides the requirements: ansible-core and ansible-runner (the
# definition's ranges), the container's init, and bindep with what its script needs.
BUILD_TOOLS = ("ansible-core>=2.19.0,<2.20", "ansible-runner>=2.4,<2.5", "dumb-init==1.2.5", "bindep", "pyyaml",
               "packaging", "setuptools", "wheel")
DEFINITION_FILES = ("requirements.txt", "bindep.txt")


class EEError(RuntimeError):
    pass


def log(message: str) -> None:
    print("ee: %s" % message, file=sys.stderr, flush=True)


def run(*args: str, timeout: float = 1800, cwd: t.Optional[Path] = None,
        env: t.Optional[t.Mapping[str, str]] = None) -> str:
    proc = subprocess.run(list(args), capture_output=True, timeout=timeout, check=False, cwd=cwd,
                          env=dict(os.environ, **env) if env else None)
    if proc.returncode != 0:
        raise EEError("%s failed (%d):\n%s%s" % (" ".join(args[:4]), proc.returncode,
                                                 proc.stdout.decode(errors="replace")[-3000:],
                                                 proc.stderr.decode(errors="replace")[-3000:]))
    return proc.stdout.decode(errors="replace")


def dependency_folders(collection: Path, roots: t.Sequence[Path]) -> t.Dict[str, Path]:
    """Each collection the collection needs, directly or through another, with its unpacked folder."""
    todo = list((yaml.safe_load((collection / "galaxy.yml").read_text()).get("dependencies") or {}))
    found: t.Dict[str, Path] = {}
    while todo:
        name = todo.pop()
        if name in found:
            continue
        folders = [root / name.replace(".", "/") for root in roots
                   if (root / name.replace(".", "/") / "MANIFEST.json").is_file()]
        if not folders:
            raise EEError("dependency %s is not unpacked in %s (make collections)" % (name, ", ".join(map(str, roots))))
        found[name] = folders[0]
        todo.extend(json.loads((folders[0] / "MANIFEST.json").read_text())["collection_info"]["dependencies"])
    return found


def source_tree(unpacked: Path, dest: Path) -> Path:
    """An unpacked collection as a tree ``ansible-galaxy collection build`` takes: its files and a galaxy.yml
    from its MANIFEST.json (the bundle leaves out files its FILES.json lists, so it cannot be packed as it is)."""
    shutil.copytree(unpacked, dest, ignore=shutil.ignore_patterns("MANIFEST.json", "FILES.json", "__pycache__"))
    info = json.loads((unpacked / "MANIFEST.json").read_text())["collection_info"]
    (dest / "galaxy.yml").write_text(yaml.safe_dump({k: v for k, v in info.items() if v not in (None, "", [])}))
    return dest


def stage(collection: Path, roots: t.Sequence[Path], work: Path) -> None:
    """The build's definition, collections and wheels in ``work``."""
    if work.exists():
        shutil.rmtree(work)
    (work / "collections").mkdir(parents=True)
    shutil.copy2(collection / "meta" / "execution-environment.yml", work / "execution-environment.yml")
    for name in DEFINITION_FILES:
        shutil.copy2(collection / name, work / name)
    run("ansible-galaxy", "collection", "build", "--output-path", str(work / "collections"), str(collection))
    for name, folder in dependency_folders(collection, roots).items():
        source = source_tree(folder, work / "sources" / name)
        run("ansible-galaxy", "collection", "build", "--output-path", str(work / "collections"), str(source))
    shutil.rmtree(work / "sources")
    tarballs = sorted(p.name for p in (work / "collections").glob("*.tar.gz"))
    (work / "requirements.yml").write_text(yaml.safe_dump(
        {"collections": [{"name": "collections/" + name, "type": "file"} for name in tarballs]}, sort_keys=False))
    # installed here as in the build (offline, from the tarballs), to list every collection's requirements
    tree = work / "tree"
    # (only the tree on the collections path: ansible-galaxy skips what it finds installed elsewhere)
    run("ansible-galaxy", "collection", "install", "--offline", "-p", str(tree),
        *[str(work / "collections" / name) for name in tarballs], env={"ANSIBLE_COLLECTIONS_PATH": str(tree)})
    pip = work / "pip.txt"
    run("ansible-builder", "introspect", "--sanitize", "--user-pip", str(work / "requirements.txt"),
        "--write-pip", str(pip), str(tree))
    shutil.rmtree(tree)
    # the versions this venv runs the tests with, wherever it has the package
    constraints = work / "constraints.txt"
    constraints.write_text("".join(line + "\n" for line in run(sys.executable, "-m", "pip", "freeze").splitlines()
                                   if "==" in line and " @ " not in line))
    run(sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "-d", str(work / "wheels"),
        "-c", str(constraints), "-r", str(pip), *BUILD_TOOLS)


def build(work: Path, tag: str) -> None:
    run("ansible-builder", "build", "--container-runtime", "docker", "-f", str(work / "execution-environment.yml"),
        "-c", str(work / "context"), "-t", tag, "-v", "2", cwd=work)


def main(argv: t.Optional[t.Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="ee.py", description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--collection", type=Path, required=True, help="the collection's root (a laid-out copy)")
    parser.add_argument("--collections", type=Path, action="append", default=[],
                        help="a folder holding ansible_collections/ with the dependencies unpacked")
    parser.add_argument("--work", type=Path, default=Path(".build/ee"))
    parser.add_argument("--tag", default="nanoedge/ee:latest")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        stage(args.collection.resolve(), [p.resolve() / "ansible_collections" for p in args.collections],
              args.work.resolve())
        log("context staged in %.1f s" % (time.monotonic() - started))
        build(args.work.resolve(), args.tag)
    except (EEError, subprocess.TimeoutExpired) as exc:
        log("error: %s" % exc)
        return 1
    log("%s built in %.1f s" % (args.tag, time.monotonic() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
