# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The swarm role's argument specs and defaults describe the same variables, with the same defaults."""
from __future__ import annotations

import pathlib

import yaml

ROLE = pathlib.Path(__file__).resolve().parents[4] / "roles" / "swarm"
REQUIRED = {"services": {"nanoedge_swarm_plan", "nanoedge_swarm_nodes"}}


def load(path: str):
    return yaml.safe_load((ROLE / path).read_text())


def test_every_default_is_described_with_the_same_value():
    defaults = load("defaults/main.yml")
    specs = load("meta/argument_specs.yml")["argument_specs"]
    described = {}
    for entry_point, spec in specs.items():
        for name, option in spec["options"].items():
            assert option["description"], (entry_point, name)
            described.setdefault(name, []).append(option)
    assert sorted(set(described) - set().union(*REQUIRED.values())) == sorted(defaults)
    for name, value in defaults.items():
        for option in described[name]:
            if isinstance(value, str) and "{{" in value:
                # Computed from the inventory: documented in words, not as a value.
                assert "default" not in option, name
            else:
                assert option.get("default") == value, name


def test_required_options_have_no_default():
    specs = load("meta/argument_specs.yml")["argument_specs"]
    for entry_point, names in REQUIRED.items():
        for name in names:
            assert specs[entry_point]["options"][name]["required"] is True
            assert "default" not in specs[entry_point]["options"][name]


def test_variables_are_prefixed():
    for name in load("defaults/main.yml"):
        assert name.startswith("nanoedge_swarm_"), name
