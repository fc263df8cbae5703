# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every role's argument specs and defaults describe the same variables, with the same defaults and types,
and every role has a README."""
from __future__ import annotations

import pathlib
import re
import typing as t

import pytest
import yaml

ROLES = pathlib.Path(__file__).resolve().parents[3] / "roles"
ROLE_NAMES = sorted(path.name for path in ROLES.iterdir() if (path / "tasks" / "main.yml").is_file())

# The Python types a value of each argument-spec type may have in defaults/main.yml.
TYPES: t.Dict[str, t.Tuple[type, ...]] = {
    "str": (str,), "path": (str,), "raw": (object,), "bool": (bool,), "int": (int,),
    "float": (int, float), "list": (list,), "dict": (dict,),
}


def load(role: str, path: str) -> t.Any:
    return yaml.safe_load((ROLES / role / path).read_text())


def defaults_of(role: str) -> t.Dict[str, t.Any]:
    path = ROLES / role / "defaults" / "main.yml"
    return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}


def described(role: str) -> t.Dict[str, t.List[t.Tuple[str, t.Dict[str, t.Any]]]]:
    """Each option: the entry points that describe it, with their spec."""
    found: t.Dict[str, t.List[t.Tuple[str, t.Dict[str, t.Any]]]] = {}
    for entry_point, spec in load(role, "meta/argument_specs.yml")["argument_specs"].items():
        for name, option in (spec.get("options") or {}).items():
            found.setdefault(name, []).append((entry_point, option))
    return found


def test_the_roles_are_found():
    assert {"agent", "code", "deploy", "reconcile", "registry", "swarm"} <= set(ROLE_NAMES)


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_every_default_is_described_with_the_same_value(role):
    options = described(role)
    for name, value in defaults_of(role).items():
        assert name in options, "%s: default %s is not in meta/argument_specs.yml" % (role, name)
        for entry_point, option in options[name]:
            where = "%s: %s (%s)" % (role, name, entry_point)
            assert option.get("description"), where
            if isinstance(value, str) and "{{" in value:
                # Computed from the inventory: documented in words or as the same expression.
                assert option.get("default", value) == value, where
                continue
            assert option.get("default") == value, where
            assert isinstance(value, TYPES[option.get("type", "str")]), where
            assert not (option.get("type") == "int" and isinstance(value, bool)), where


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_every_described_option_has_its_default_in_defaults(role):
    defaults = defaults_of(role)
    for name, entries in described(role).items():
        for entry_point, option in entries:
            where = "%s: %s (%s)" % (role, name, entry_point)
            if option.get("required"):
                assert "default" not in option and name not in defaults, where
            else:
                assert name in defaults, "%s: optional but not in defaults/main.yml" % where


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_an_option_reads_the_same_in_every_entry_point(role):
    for name, entries in described(role).items():
        kinds = {(option.get("type", "str"), repr(option.get("default"))) for _entry_point, option in entries}
        assert len(kinds) == 1, "%s: %s differs between entry points: %s" % (role, name, sorted(kinds))


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_variables_are_prefixed_with_the_role(role):
    prefix = "nanoedge_%s_" % role
    for name in list(defaults_of(role)) + list(described(role)):
        assert name.startswith(prefix), "%s: %s" % (role, name)


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_every_role_has_a_readme(role):
    readme = ROLES / role / "README.md"
    assert readme.is_file(), role
    assert "nanoedge.core.%s" % role in readme.read_text().splitlines()[0], role


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_private_variables_have_one_style(role):
    """Private variables are _nanoedge_<role>_*: one leading underscore, the role's own prefix."""
    private = re.compile(r"(?<![\w.])_+nanoedge_\w+")
    for path in sorted((ROLES / role).rglob("*")):
        if not path.is_file() or path.suffix not in (".yml", ".j2"):
            continue
        for name in set(private.findall(path.read_text())):
            assert name.startswith("_nanoedge_%s_" % role), "%s: %s" % (path.relative_to(ROLES), name)
