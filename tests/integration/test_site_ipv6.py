# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Managers at IPv6 addresses, through real ansible-playbook runs: nanoedge.core.site's
steps 1 to 4 and its summary against the real registry server listening on [::1]
(the worker is this machine), and the reconcile role's list of the managers'
registries."""

from __future__ import annotations

import json
import sys
import typing as t
from pathlib import Path

import pytest

from _registry_server import RegistryServer
from ansible_collections.nanoedge.core.plugins.module_utils import _coap
from conftest import COLLECTION_ROOT, read_json_marker  # pylint: disable=import-error

LOCAL = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}

SITE = """
- name: The whole playbook
  ansible.builtin.import_playbook: nanoedge.core.site
"""


def site_inventory(port: int, unique: str) -> str:
    return json.dumps({"all": {
        "hosts": {"localhost": LOCAL},
        "children": {
            "managers": {"hosts": {"m1": {"nanoedge_address": "::1"}}},
            "workers": {"hosts": {"w1": LOCAL}},
        },
        "vars": {
            "nanoedge_registry_port": port,
            # a plain registry: the opt-out path (security is the registry role's, not tested here)
            "nanoedge_security": False,
            # no images: the plan places nothing, the point is where the profiles come from
            "nanoedge_services_repositories": ["nanoedge-ipv6-%s/*" % unique],
        },
    }})


@pytest.fixture()
def ipv6_registry(tmp_path: Path) -> t.Iterator[RegistryServer]:
    with RegistryServer(tmp_path / "registry.sqlite", bind="::1") as server:
        yield server


def test_site_reports_and_plans_through_an_ipv6_manager(ipv6_registry, registry, run_playbook, tmp_path, unique):
    url = "coap://[::1]:%d" % ipv6_registry.port
    plan_file = tmp_path / "plan.json"
    files = ("-e", "nanoedge_plan_file=%s" % plan_file, "-e", "nanoedge_picture_file=%s" % (tmp_path / "plan.svg"))
    inventory = site_inventory(ipv6_registry.port, unique)

    rc, output = run_playbook(SITE, inventory, "--tags", "discovery,plan,summary", *files)
    assert rc == 0, output
    assert list(_coap.run_fetch_profiles(url, timeout=5)) == ["w1"]
    plan = json.loads(plan_file.read_text())
    assert (plan["registry"], list(plan["by_node"])) == (url, ["w1"])

    # as the reconcile service runs it: the workers come from the registry's live profiles
    plan_file.unlink()
    rc, output = run_playbook(SITE, inventory, "--tags", "discovery,plan,summary", *files,
                              "-e", "nanoedge_site_nodes_from=registry")
    assert rc == 0, output
    plan = json.loads(plan_file.read_text())
    assert (plan["registry"], list(plan["by_node"])) == (url, ["w1"])


RECONCILE = """
- name: The reconcile role's registries
  hosts: managers
  gather_facts: false
  vars_files:
    - %s
  vars:
    nanoedge_reconcile_managers: []
  tasks:
    - name: Check them as the role does
      ansible.builtin.assert:
        that: _nanoedge_reconcile_managers | reject('nanoedge.core.registry_uri') | list | length == 0

    - name: Show them
      ansible.builtin.debug:
        var: _nanoedge_reconcile_managers
      run_once: true
""" % (COLLECTION_ROOT / "roles" / "reconcile" / "vars" / "main.yml")


@pytest.mark.parametrize("port, expected", [
    (None, ["coap://[fd00::1]:5683", "coap://[::1]:5683", "coap://m3:5683"]),
    (5684, ["coap://[fd00::1]:5684", "coap://[::1]:5684", "coap://m3:5684"]),
])
def test_reconcile_role_brackets_ipv6_managers(run_playbook, port, expected):
    inventory = {"all": {"children": {"managers": {"hosts": {
        "m1": dict(LOCAL, nanoedge_address="fd00::1"), "m2": dict(LOCAL, nanoedge_address="::1"), "m3": LOCAL}}}}}
    if port is not None:
        inventory["all"]["vars"] = {"nanoedge_registry_port": port}
    rc, output = run_playbook(RECONCILE, json.dumps(inventory))
    assert rc == 0, output
    assert read_json_marker(output, '"_nanoedge_reconcile_managers": ') == expected
