# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The agent role's files agree with the program: the configuration it writes has only keys the program
knows, the service unit is a restarting service with the sandbox the program needs, and the timer of
earlier versions is taken away."""

from __future__ import annotations

import pathlib

import jinja2
import pytest
import yaml

from ansible_collections.nanoedge.core.plugins.module_utils._agent.config import CONFIG_KEYS

ROLE = pathlib.Path(__file__).resolve().parents[4] / "roles" / "agent"


def load(path: str):
    return yaml.safe_load((ROLE / path).read_text())


def test_the_configuration_has_only_keys_the_program_knows():
    written = load("vars/main.yml")["_nanoedge_agent_config"]
    assert set(written) <= set(CONFIG_KEYS)
    assert {"interval", "jitter", "beat_interval", "debounce", "poll_interval", "state_dir"} <= set(written)


@pytest.mark.parametrize("key, variable", [
    ("beat_interval", "nanoedge_agent_beat_interval"),
    ("debounce", "nanoedge_agent_debounce"),
    ("poll_interval", "nanoedge_agent_poll_interval"),
])
def test_the_new_settings_default_as_the_program(key, variable):
    assert load("defaults/main.yml")[variable] == CONFIG_KEYS[key][1]
    assert variable in load("vars/main.yml")["_nanoedge_agent_config"][key]


def render_unit() -> str:
    template = jinja2.Template((ROLE / "templates" / "nanoedge-agent.service.j2").read_text())
    return template.render(ansible_managed="managed", nanoedge_agent_prefix="/opt/nanoedge-agent",
                           nanoedge_agent_config_dir="/etc/nanoedge-agent", nanoedge_agent_state_dir="/var/lib/nanoedge-agent")


@pytest.mark.parametrize("line", [
    "Type=simple",
    "Restart=always",
    "RestartSec=1",
    "StartLimitIntervalSec=0",
    "ExecStart=/opt/nanoedge-agent/venv/bin/python /opt/nanoedge-agent/nanoedge_agent.py"
    " --config /etc/nanoedge-agent/config.json",
    "ReadWritePaths=/var/lib/nanoedge-agent",
    "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK",
    "WantedBy=multi-user.target",
])
def test_the_service_unit(line):
    assert line in render_unit().splitlines()


def test_no_timer_is_left():
    assert not (ROLE / "templates" / "nanoedge-agent.timer.j2").exists()
    tasks = {task["name"]: task for task in load("tasks/main.yml")}
    assert tasks["Stop and disable the timer of earlier versions"]["ansible.builtin.systemd_service"] == {
        "name": "nanoedge-agent.timer", "state": "stopped", "enabled": False}
    assert tasks["Remove the timer of earlier versions"]["ansible.builtin.file"] == {
        "path": "/etc/systemd/system/nanoedge-agent.timer", "state": "absent"}
    assert tasks["Enable and start the service"]["ansible.builtin.systemd_service"]["name"] == "nanoedge-agent.service"
    names = list(tasks)
    assert names.index("Stop and disable the timer of earlier versions") < names.index("Remove the timer of earlier versions")


def test_every_change_to_what_runs_restarts_the_service():
    tasks = {task["name"]: task for task in load("tasks/main.yml")}
    for name in ("Restart the service for the new code", "Install the agent program", "Write the agent's configuration",
                 "Write the OSCORE security context", "Install the systemd service"):
        assert tasks[name]["notify"] == "Restart the nanoedge agent", name
    assert [handler["name"] for handler in load("handlers/main.yml")] == ["Restart the nanoedge agent"]
