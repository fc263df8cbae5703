# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The deploy role's argument specs and defaults describe the same variables, with the same defaults."""
from __future__ import annotations

import pathlib

import yaml

ROLE = pathlib.Path(__file__).resolve().parents[4] / "roles" / "deploy"


def load(path: str):
    return yaml.safe_load((ROLE / path).read_text())


def test_every_default_is_described_with_the_same_value():
    defaults = load("defaults/main.yml")
    options = load("meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    assert sorted(set(options) - {"nanoedge_deploy_plan", "nanoedge_deploy_services"}) == sorted(defaults)
    for name, value in defaults.items():
        assert options[name].get("default") == value, name
        assert options[name]["description"], name


def test_required_options_have_no_default():
    options = load("meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    for name in ("nanoedge_deploy_plan", "nanoedge_deploy_services"):
        assert options[name]["required"] is True
        assert "default" not in options[name]


def test_running_entry_point_matches_main():
    specs = load("meta/argument_specs.yml")["argument_specs"]
    for name, spec in specs["running"]["options"].items():
        assert spec["default"] == specs["main"]["options"][name]["default"], name
        assert spec["type"] == specs["main"]["options"][name]["type"], name


def test_variables_are_prefixed():
    for name in load("defaults/main.yml"):
        assert name.startswith("nanoedge_deploy_"), name
