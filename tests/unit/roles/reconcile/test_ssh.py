# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How the reconcile role trusts and is trusted over SSH (tasks/ssh.yml, templates/ansible.cfg.j2):
the nodes accept the manager's key from its addresses only, and the manager pins the nodes'
host keys as the controller read them. The tasks' templates are rendered as Ansible does."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

ROOT = Path(__file__).resolve().parents[4]
TASKS = yaml.safe_load((ROOT / "roles/reconcile/tasks/ssh.yml").read_text())
DEFAULTS = yaml.safe_load((ROOT / "roles/reconcile/defaults/main.yml").read_text())
VARS = yaml.safe_load((ROOT / "roles/reconcile/vars/main.yml").read_text())

ED25519 = "AAAAC3NzaC1lZDI1NTE5AAAAIE1cXj7NBWS0b0l2KQ7DaVv1d8vYsVbSgZfS6kU8r8Yg"
ECDSA = "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEmKSENjQEezOmxkZMy7opKgwFB9nkt5YRrYMjNuG5N87uRgg5CLrRuj3g=="
HOSTS = {"managers": {"hosts": {"m1": {"ansible_host": "172.30.0.11", "nanoedge_address": "172.30.0.11"}}},
         "workers": {"hosts": {"w1": {"ansible_host": "fd00::21"}, "w4": {"ansible_host": "w4.lan"}}}}


def task(name: str) -> t.Dict[str, t.Any]:
    return next(item for item in TASKS if item["name"] == name)


def render(template: str, **variables: t.Any) -> t.Any:
    return Templar(loader=DataLoader(), variables=dict(DEFAULTS, **variables)).template(trust_as_template(template))


def facts(ed25519: str = ED25519, keytype: str = "ssh-ed25519", **more: str) -> t.Dict[str, t.Any]:
    found = {"ssh_host_key_ed25519_public": ed25519, "ssh_host_key_ed25519_public_keytype": keytype}
    found.update(more)
    return {"ansible_facts": found}


def host_keys(hostvars: t.Dict[str, t.Any]) -> t.Dict[str, t.List[str]]:
    expression = task("Pin the nodes' host keys for the reconcile runs")["ansible.builtin.set_fact"]
    return render(expression["_nanoedge_reconcile_host_keys"], _nanoedge_reconcile_hosts=HOSTS, hostvars=hostvars)


def test_every_node_is_pinned_at_the_address_the_runs_connect_to() -> None:
    hostvars = {"m1": facts(ssh_host_key_ecdsa_public=ECDSA, ssh_host_key_ecdsa_public_keytype="ecdsa-sha2-nistp256"),
                "w1": facts(), "w4": facts()}
    assert host_keys(hostvars) == {
        "m1": ["172.30.0.11 ssh-ed25519 " + ED25519, "172.30.0.11 ecdsa-sha2-nistp256 " + ECDSA],
        "w1": ["fd00::21 ssh-ed25519 " + ED25519],
        "w4": ["w4.lan ssh-ed25519 " + ED25519],
    }


@pytest.mark.parametrize("node_facts", [
    {},  # no host key files, or no facts at all
    facts(ED25519 + "\n* ssh-ed25519 " + ED25519),  # a hostile node adding a line for every host
    facts(ED25519 + " comment"),
    facts(keytype="ssh-dss"),
    facts(keytype="ssh-ed25519\n*"),
    facts(ed25519=""),
])
def test_a_node_without_a_well_formed_key_is_not_pinned(node_facts: t.Dict[str, t.Any]) -> None:
    assert host_keys({"m1": facts(), "w1": node_facts, "w4": facts()})["w1"] == []


def test_the_known_hosts_file_has_one_line_per_key() -> None:
    content = task("Write the manager's known hosts")["ansible.builtin.copy"]["content"]
    keys = {"m1": ["172.30.0.11 ssh-ed25519 " + ED25519], "w1": ["fd00::21 ssh-ed25519 " + ED25519,
                                                                 "fd00::21 ssh-rsa AAAAB3"]}
    assert render(content, _nanoedge_reconcile_host_keys=keys).splitlines() == [
        "# Managed by nanoedge.core.reconcile: the nodes' host keys as the controller read them.",
        "172.30.0.11 ssh-ed25519 " + ED25519,
        "fd00::21 ssh-ed25519 " + ED25519,
        "fd00::21 ssh-rsa AAAAB3",
    ]


def test_a_node_without_a_key_stops_the_role() -> None:
    check = task("Check that every node has a host key to pin")
    unpinned = render(check["vars"]["_nanoedge_reconcile_unpinned"],
                      _nanoedge_reconcile_host_keys={"m1": ["172.30.0.11 ssh-ed25519 A"], "w1": [], "w4": []})
    assert unpinned == ["w1", "w4"]


@pytest.mark.parametrize("key_from, ansible_facts, options", [
    ([], {"all_ipv4_addresses": ["172.30.0.11"], "all_ipv6_addresses": ["fd00::11", "fe80::42:acff:fe1e:b"]},
     'from="172.30.0.11,fd00::11,fe80::42:acff:fe1e:b,127.0.0.1,::1",no-agent-forwarding,no-port-forwarding,'
     "no-X11-forwarding"),
    ([], {"all_ipv4_addresses": ["172.30.0.11"]},
     'from="172.30.0.11,127.0.0.1,::1",no-agent-forwarding,no-port-forwarding,no-X11-forwarding'),
    (["203.0.113.7", "10.1.*"], {"all_ipv4_addresses": ["172.30.0.11"]},
     'from="203.0.113.7,10.1.*",no-agent-forwarding,no-port-forwarding,no-X11-forwarding'),
])
def test_the_nodes_accept_the_key_from_the_managers_addresses_only(
        key_from: t.List[str], ansible_facts: t.Dict[str, t.Any], options: str) -> None:
    authorize = task("Let the manager log in to the nodes")
    variables = {"nanoedge_reconcile_key_from": key_from, "ansible_facts": ansible_facts}
    variables["_nanoedge_reconcile_from"] = render(authorize["vars"]["_nanoedge_reconcile_from"], **variables)
    assert authorize["ansible.posix.authorized_key"]["key_options"] == "{{ _nanoedge_reconcile_key_options }}"
    assert render(authorize["vars"]["_nanoedge_reconcile_key_options"], **variables) == options


@pytest.mark.parametrize("pin, checking", [(True, "StrictHostKeyChecking=yes"), (False, "StrictHostKeyChecking=accept-new")])
def test_the_runs_check_host_keys_strictly_when_pinned(pin: bool, checking: str) -> None:
    template = (ROOT / "roles/reconcile/templates/ansible.cfg.j2").read_text()
    options = [render(option, nanoedge_reconcile_pin_host_keys=pin) for option in VARS["_nanoedge_reconcile_ssh_options"]]
    text = render(template, nanoedge_reconcile_pin_host_keys=pin, ansible_managed="managed",
                  groups={"workers": ["w1"], "managers": ["m1"]}, _nanoedge_reconcile_collections_dir="/c",
                  nanoedge_reconcile_config_dir="/etc/nanoedge-reconcile", _nanoedge_reconcile_ssh_options=options)
    ssh_args = next(line for line in text.splitlines() if line.startswith("ssh_args = "))
    assert ssh_args == ("ssh_args = -o ControlMaster=auto -o ControlPersist=300s -o ServerAliveInterval=2 "
                        "-o ServerAliveCountMax=3 -o %s -o CheckHostIP=no "
                        "-o UserKnownHostsFile=/var/lib/nanoedge-reconcile/known_hosts -o ConnectTimeout=5" % checking)
    assert "pipelining = true" in text


def test_node_side_moves_connect_as_the_runs_do() -> None:
    """The node-side moves' ssh: the runs' options, the service's key and user, batch mode, a control socket of
    their own; one address per worker, as the runs' inventory has it."""
    options = [render(option, nanoedge_reconcile_pin_host_keys=True) for option in VARS["_nanoedge_reconcile_ssh_options"]]
    settings = VARS["_nanoedge_reconcile_node_moves_settings"]
    argv = render(settings["ssh"], _nanoedge_reconcile_ssh_options=options,
                  _nanoedge_reconcile_key="/var/lib/nanoedge-reconcile/id_ed25519")
    assert argv == ["ssh", "-o", "BatchMode=yes", "-o", "ControlPath=/var/lib/nanoedge-reconcile/cp/node-%C",
                    "-i", "/var/lib/nanoedge-reconcile/id_ed25519", "-l", "root",
                    "-o", "ControlMaster=auto", "-o", "ControlPersist=300s", "-o", "ServerAliveInterval=2",
                    "-o", "ServerAliveCountMax=3", "-o", "StrictHostKeyChecking=yes", "-o", "CheckHostIP=no",
                    "-o", "UserKnownHostsFile=/var/lib/nanoedge-reconcile/known_hosts", "-o", "ConnectTimeout=5"]
    assert render(settings["hosts"], _nanoedge_reconcile_hosts=HOSTS) == {"w1": "fd00::21", "w4": "w4.lan"}
