# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The adapters of swarm_node_labels, swarm_service and swarm_placements: registration and error mapping."""
from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.nanoedge.core.plugins.filter import swarm_node_labels, swarm_placements, swarm_service


def test_filters_are_registered() -> None:
    assert swarm_node_labels.FilterModule().filters() == {"swarm_node_labels": swarm_node_labels.swarm_node_labels}
    assert swarm_service.FilterModule().filters() == {"swarm_service": swarm_service.swarm_service}
    assert swarm_placements.FilterModule().filters() == {"swarm_placements": swarm_placements.swarm_placements}


def test_node_labels_and_labels_to_remove() -> None:
    profile = {"node": "w4", "capabilities": ["pom"], "power": {"source": "ac"}}
    assert swarm_node_labels.swarm_node_labels(profile) == {
        "nanoedge.cap.pom": "true", "nanoedge.node": "w4", "nanoedge.power": "ac"}
    assert swarm_node_labels.swarm_node_labels(profile, "w4", current={"nanoedge.cap.bot": "true", "zone": "a"}) == [
        "nanoedge.cap.bot"]


def test_service_and_placements() -> None:
    description = {"name": "bot", "node": "w1", "image": "r/nanoedge/bot@sha256:" + "0" * 64,
                   "container_name": "nanoedge-svc-bot", "labels": {"io.nanoedge.service": "bot"}, "env": {},
                   "mounts": [], "devices": [], "cpus": 0.25, "memory": "32M", "port": None}
    spec = swarm_service.swarm_service(description, restart_policy="on-failure")
    assert spec["placement"] == {"constraints": ["node.labels.nanoedge.node == w1"]}
    assert spec["restart_config"]["condition"] == "on-failure"
    read_back = [{"Spec": {"Labels": spec["labels"], "TaskTemplate": {"Placement": {"Constraints": spec["placement"]["constraints"]}}}}]
    assert swarm_placements.swarm_placements(read_back) == {"bot": "w1"}


@pytest.mark.parametrize("call, message", [
    (lambda: swarm_node_labels.swarm_node_labels({"node": "w4", "power": {"source": "x"}}),
     "nanoedge.core.swarm_node_labels: node 'w4': power.source: must be one of ac, dc, got 'x'"),
    (lambda: swarm_service.swarm_service({"name": "bot"}),
     "nanoedge.core.swarm_service: service 'bot': the deployment description has no 'node' (use nanoedge.core.deployments)"),
    (lambda: swarm_placements.swarm_placements("spo2"),
     "nanoedge.core.swarm_placements: the services must be a list (docker_swarm_info with verbose_output), got str"),
    (lambda: swarm_placements.swarm_placements([], label=""),
     "nanoedge.core.swarm_placements: label must be a non-empty string, got ''"),
])
def test_errors_name_the_filter(call, message: str) -> None:
    with pytest.raises(AnsibleFilterError) as info:
        call()
    assert info.value.message == message
