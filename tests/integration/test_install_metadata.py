# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the collection declares is what the tests run against: the dependencies in galaxy.yml (every
collection the roles and playbooks use, from the version unpacked from the pinned "ansible" bundle up to its
next major version), requires_ansible (the pinned ansible-core) and the controller Pythons the Makefile
accepts (those of the pinned ansible-core)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import typing as t
from pathlib import Path

import pytest
import yaml
from ansible.release import __version__ as ansible_core_version
from ansible_test._util.target.common.constants import CONTROLLER_PYTHON_VERSIONS

from conftest import COLLECTION_ROOT  # pylint: disable=import-error
from test_install import dependency_closure, unpacked_roots  # pylint: disable=import-error

# A module, role or plugin by its full name, in the places the collection uses other collections' content.
FQCN = re.compile(r"(?<![\w.])([a-z]\w*)\.([a-z]\w*)\.[a-z]\w*")
USERS = ("roles/**/*.yml", "roles/**/*.j2", "playbooks/*.yml", "plugins/**/*.py")


def galaxy() -> t.Dict[str, t.Any]:
    return yaml.safe_load((COLLECTION_ROOT / "galaxy.yml").read_text())


def used_collections(roots: t.Sequence[Path]) -> t.Set[str]:
    """The other collections, unpacked beside the checkout, that nanoedge.core names content of."""
    found: t.Set[t.Tuple[str, str]] = set()
    for pattern in USERS:
        for path in COLLECTION_ROOT.glob(pattern):
            found.update(FQCN.findall(path.read_text()))
    return {"%s.%s" % pair for pair in found if pair != ("nanoedge", "core")
            and any((root / pair[0] / pair[1] / "MANIFEST.json").is_file() for root in roots)}


def test_every_collection_used_is_declared(ansible_env):
    assert used_collections(unpacked_roots(ansible_env)) == set(galaxy()["dependencies"])


def test_each_dependency_range_starts_at_the_version_tested(ansible_env):
    folders = dependency_closure(galaxy()["dependencies"], unpacked_roots(ansible_env))
    for name, requirement in galaxy()["dependencies"].items():
        tested = json.loads((folders[name] / "MANIFEST.json").read_text())["collection_info"]["version"]
        major = int(tested.split(".")[0])
        assert requirement == ">=%s,<%d.0.0" % (tested, major + 1), name


def test_requires_ansible_is_the_tested_ansible_core():
    runtime = yaml.safe_load((COLLECTION_ROOT / "meta" / "runtime.yml").read_text())
    assert runtime["requires_ansible"] == ">=%s.0" % ".".join(ansible_core_version.split(".")[:2])


def makefile_check(*variables: str) -> subprocess.CompletedProcess:
    # not the variables of a make this test may run under (make integration)
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    return subprocess.run(["make", "-s", "--no-print-directory", "-C", str(COLLECTION_ROOT), "python-check",
                           *variables], env=env, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("version", CONTROLLER_PYTHON_VERSIONS)
def test_the_makefile_accepts_every_controller_python(version):
    checked = makefile_check("PYTHON_VERSION=%s" % version)
    assert (checked.returncode, checked.stderr) == (0, "")


@pytest.mark.parametrize("version", ["3.10", "3.14", "3.1"])
def test_the_makefile_refuses_other_pythons(version):
    checked = makefile_check("PYTHON=python3", "PYTHON_VERSION=%s" % version)
    assert checked.returncode != 0
    assert checked.stderr.startswith("need one of Python %s on the controller (PYTHON=python3 is %s)\n" % (
        " ".join(CONTROLLER_PYTHON_VERSIONS), version))


def test_the_makefile_accepts_the_python_running_the_tests():
    """The Python CI tests with (3.11), found by the check itself."""
    checked = makefile_check("PYTHON=python3")
    assert (checked.returncode, checked.stderr) == (0, "")


def test_the_tarball_leaves_out_what_git_ignores():
    """A tarball built from a working checkout carries no build output, caches or virtual environment."""
    built_in = {"__pycache__", "*.pyc", "tests/output"}  # ansible-galaxy leaves these out itself
    ignored = {line.strip().strip("/") for line in (COLLECTION_ROOT / ".gitignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert ignored - built_in - set(galaxy()["build_ignore"]) == set()
