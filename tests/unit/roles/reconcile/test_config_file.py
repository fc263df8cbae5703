# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The configuration the reconcile role writes (vars/main.yml) is one the daemon takes, and the
role's shipped timing defaults, rendered as Ansible does, are the daemon's own."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.config import (
    CONFIG_KEYS, OBSOLETE_KEYS, validate_config,
)

ROOT = Path(__file__).resolve().parents[4]
VARS = yaml.safe_load((ROOT / "roles/reconcile/vars/main.yml").read_text())
DEFAULTS = yaml.safe_load((ROOT / "roles/reconcile/defaults/main.yml").read_text())
CONFIG = VARS["_nanoedge_reconcile_config"]

# the keys whose values come straight from a role default (the rest name hosts, paths and files)
TIMING = ("interval", "debounce", "flap_limit", "flap_window", "settle", "lease_poll", "lease_ttl", "command_timeout")


def test_the_role_writes_only_keys_the_daemon_knows_and_none_of_the_probe_election():
    assert set(CONFIG) <= set(CONFIG_KEYS)
    assert not set(CONFIG) & set(OBSOLETE_KEYS)


@pytest.mark.parametrize("key, value", [
    ("debounce", 0.5), ("lease_poll", 1.0), ("lease_ttl", 3.0), ("flap_limit", 4), ("flap_window", 30), ("settle", 30),
])
def test_the_shipped_timing(key, value):
    rendered = Templar(loader=DataLoader(), variables=DEFAULTS).template(trust_as_template(CONFIG[key]))
    assert float(rendered) == value


def test_the_rendered_timing_is_a_valid_configuration():
    templar = Templar(loader=DataLoader(), variables=DEFAULTS)
    raw = {key: templar.template(trust_as_template(CONFIG[key])) for key in TIMING}
    raw = {key: int(value) if key == "flap_limit" else float(value) for key, value in raw.items()}
    config = validate_config(dict(raw, registry="coap://m1", command=["ansible-playbook"]))
    assert (config["debounce"], config["lease_poll"], config["lease_ttl"]) == (0.5, 1.0, 3.0)
