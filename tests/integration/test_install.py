# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""nanoedge.core as a user gets it: the tarball ``ansible-galaxy collection build`` makes, installed with
``ansible-galaxy collection install --offline`` into an empty collections path together with its dependencies,
as tarballs built from the collections the tests run against (unpacked from the PyPI "ansible" bundle). Every
plugin's and role's ``ansible-doc`` and a ``--check`` run of ``nanoedge.core.site`` then run from the installed
copy, never from the checkout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest
import yaml

from _registry_server import RegistryServer
from conftest import COLLECTION_ROOT  # pylint: disable=import-error
from test_service_profiles import LABEL, Pusher  # pylint: disable=import-error

# ansible-doc's plugin type for each folder of plugins/ (action plugins document as their modules)
PLUGIN_TYPES = {"modules": "module", "filter": "filter", "lookup": "lookup", "inventory": "inventory",
                "test": "test"}
TIMEOUT = 300


class Installed(t.NamedTuple):
    path: Path  # the collections path it was installed into (holds ansible_collections/)
    env: t.Dict[str, str]  # ansible commands see this path only
    work: Path  # a folder outside the checkout to run in


def run(command: t.Sequence[str], env: t.Dict[str, str], cwd: Path) -> str:
    proc = subprocess.run(list(command), env=env, cwd=str(cwd), capture_output=True, text=True, timeout=TIMEOUT,
                          check=False)
    assert proc.returncode == 0, "%s failed (%d):\n%s%s" % (" ".join(command), proc.returncode, proc.stdout,
                                                            proc.stderr)
    return proc.stdout


def unpacked_roots(env: t.Dict[str, str]) -> t.List[Path]:
    """The ansible_collections folders the tests use: the checkout's layout and where the bundle's collections
    were unpacked (the same folder with make's default layout)."""
    return [Path(p) / "ansible_collections" for p in env["ANSIBLE_COLLECTIONS_PATH"].split(os.pathsep) if p]


def dependency_closure(direct: t.Dict[str, str], roots: t.Sequence[Path]) -> t.Dict[str, Path]:
    """Each collection nanoedge.core needs, directly or through another, with its unpacked folder."""
    found: t.Dict[str, Path] = {}
    todo = list(direct)
    while todo:
        name = todo.pop()
        if name in found:
            continue
        folders = [r / name.replace(".", "/") for r in roots if (r / name.replace(".", "/") / "MANIFEST.json").is_file()]
        assert folders, "dependency %s is not unpacked in any of %s (make collections)" % (name, roots)
        found[name] = folders[0]
        todo.extend(json.loads((folders[0] / "MANIFEST.json").read_text())["collection_info"]["dependencies"])
    return found


def source_tree(unpacked: Path, dest: Path) -> Path:
    """An installed collection as a tree ``ansible-galaxy collection build`` takes: its files and a galaxy.yml
    from its MANIFEST.json (the build writes MANIFEST.json and FILES.json anew)."""
    shutil.copytree(unpacked, dest, ignore=shutil.ignore_patterns("MANIFEST.json", "FILES.json"))
    info = json.loads((unpacked / "MANIFEST.json").read_text())["collection_info"]
    (dest / "galaxy.yml").write_text(yaml.safe_dump({k: v for k, v in info.items() if v not in (None, "", [])}))
    return dest


def build_all(sources: t.Sequence[Path], dist: Path, env: t.Dict[str, str]) -> None:
    """Build the tarballs side by side (each build is one process, mostly waiting on its own files)."""
    procs = [(source, subprocess.Popen(["ansible-galaxy", "collection", "build", "--output-path", str(dist),
                                        str(source)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       text=True)) for source in sources]
    for source, proc in procs:
        output = proc.communicate(timeout=TIMEOUT)[0]
        assert proc.returncode == 0, "building %s failed:\n%s" % (source, output)


@pytest.fixture(scope="module")
def installed(ansible_env: t.Dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Installed:
    work = tmp_path_factory.mktemp("install")
    galaxy = yaml.safe_load((COLLECTION_ROOT / "galaxy.yml").read_text())
    deps = dependency_closure(galaxy["dependencies"], unpacked_roots(ansible_env))
    sources = [COLLECTION_ROOT] + [source_tree(folder, work / "src" / name) for name, folder in sorted(deps.items())]
    build_all(sources, work / "dist", ansible_env)

    path = work / "installed"
    env = dict(ansible_env, ANSIBLE_COLLECTIONS_PATH=str(path), ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false")
    env.pop("PYTHONPATH", None)
    tarballs = sorted(str(p) for p in (work / "dist").glob("*.tar.gz"))
    run(["ansible-galaxy", "collection", "install", "--offline", "-p", str(path), *tarballs], env, work)

    listed = json.loads(run(["ansible-galaxy", "collection", "list", "--format", "json", "-p", str(path)], env, work))
    versions = {name: info["version"] for name, info in listed[str(path / "ansible_collections")].items()}
    expected = {name: json.loads((folder / "MANIFEST.json").read_text())["collection_info"]["version"]
                for name, folder in deps.items()}
    assert versions == dict(expected, **{"nanoedge.core": galaxy["version"]})
    return Installed(path, env, work)


def names_in(folder: Path, pattern: str) -> t.List[str]:
    return sorted("nanoedge.core.%s" % p.parent.parent.name if pattern.endswith(".yml") else "nanoedge.core." + p.stem
                  for p in folder.glob(pattern) if p.stem != "__init__")


@pytest.mark.parametrize("kind, names", [
    *((kind, names_in(COLLECTION_ROOT / "plugins" / folder, "*.py")) for folder, kind in PLUGIN_TYPES.items()),
    ("role", names_in(COLLECTION_ROOT / "roles", "*/meta/argument_specs.yml")),
])
def test_every_plugin_and_role_documents_from_the_installed_copy(installed, kind, names):
    docs = json.loads(run(["ansible-doc", "--json", "-t", kind, *names], installed.env, installed.work))
    assert sorted(docs) == names
    for name, doc in docs.items():
        if kind == "role":
            assert doc["path"] == str(installed.path / "ansible_collections" / "nanoedge" / "core"), name
            assert all(spec["short_description"] for spec in doc["entry_points"].values()), name
        else:
            assert doc["doc"]["filename"].startswith(str(installed.path) + os.sep), name
            assert doc["doc"]["short_description"], name


@pytest.fixture()
def manager_registry(installed: Installed, tmp_path: Path) -> t.Iterator[RegistryServer]:
    """A manager's profile registry, run from the installed copy's package."""
    env = ["env", "PYTHONPATH=%s" % installed.path]
    with RegistryServer(tmp_path / "registry.sqlite", prefix=env) as server:
        yield server


def test_site_check_runs_from_the_installed_copy(installed, manager_registry, registry, unique):
    """Steps 1 to 5 and the summary in check mode: this machine as the worker, the test's registry as the
    manager's, one service in the real OCI registry that needs a device no worker has (so nothing is
    deployed, and the plan explains why)."""
    repository = "nanoedge-install-%s/probe" % unique
    requirements = {"capabilities": ["chest-band"], "cpu": 0.1, "memory_mb": 16}
    Pusher("http://%s" % registry).image(repository, "latest", {LABEL: json.dumps(requirements)})
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inventory = {"all": {
        "hosts": {"localhost": local},
        "children": {"managers": {"hosts": {"m1": dict(local, nanoedge_address="127.0.0.1")}},
                     "workers": {"hosts": {"w1": local}}},
        "vars": {"nanoedge_registry_port": manager_registry.port, "nanoedge_security": False,
                 "nanoedge_services_registry": "http://%s" % registry,
                 "nanoedge_services_repositories": [repository]},
    }}
    (installed.work / "hosts.json").write_text(json.dumps(inventory))
    plan = installed.work / "plan.json"
    # the registry role would install the registry on this machine: its play is the one left out
    run(["ansible-playbook", "-i", "hosts.json", "nanoedge.core.site", "--check", "--skip-tags", "registry",
         "-e", "nanoedge_plan_file=%s" % plan], installed.env, installed.work)

    document = json.loads(plan.read_text())
    assert (document["registry"], list(document["by_node"]), document["placements"]) == (
        manager_registry.url, ["w1"], {})
    assert [entry["service"] for entry in document["unplaced"]] == ["probe"]
