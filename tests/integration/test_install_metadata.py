# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the collection declares is what the tests run against: the dependencies in galaxy.yml (every
collection the roles and playbooks use, from the version unpacked from the pinned "ansible" bundle up to its
next major version) and requires_ansible (the pinned ansible-core)."""

from __future__ import annotations

import json
import re
import typing as t
from pathlib import Path

import yaml
from ansible.release import __version__ as ansible_core_version

from conftest import COLLECTION_ROOT  # pylint: disable=import-error
from test_install import dependency_closure, unpacked_roots  # pylint: disable=import-error

# A module, role or plugin by its full name, in the places the collection uses other collections' content.
FQCN = re.compile(r"(?<![\w.])([a-z]\w*)\.([a-z]\w*)\.[a-z]\w*")
USERS = ("roles/**/*.yml", "roles/**/*.j2", "playbooks/*.yml", "plugins/**/*.py")


def galaxy() -> t.Dict[str, t.Any]:
    return yaml.safe_load((COLLECTION_ROOT / "galaxy.yml").read_text())


def used_collections(roots: t.Sequence[Path]) -> t.Set[str]:
    """The collections unpacked beside the checkout that nanoedge.core names content of."""
    found: t.Set[t.Tuple[str, str]] = set()
    for pattern in USERS:
        for path in COLLECTION_ROOT.glob(pattern):
            found.update(FQCN.findall(path.read_text()))
    return {"%s.%s" % pair for pair in found if any((root / pair[0] / pair[1] / "MANIFEST.json").is_file()
                                                    for root in roots)}


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
