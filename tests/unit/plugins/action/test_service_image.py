# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The action plugin nanoedge.core.service_image: its argument spec is the module's documentation, the role
passes every option, and its Builder turns community.docker's answers into what _service_image_run reads."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest
import yaml

from ansible_collections.nanoedge.core.plugins.action import service_image as action
from ansible_collections.nanoedge.core.plugins.modules import service_image as module
from ansible_collections.nanoedge.core.plugins.plugin_utils._service_image import BuildError
from ansible_collections.nanoedge.core.plugins.plugin_utils._service_image_run import LocalImage

ROOT = Path(__file__).resolve().parents[4]


def test_the_argument_spec_is_the_documented_one():
    options = yaml.safe_load(module.DOCUMENTATION)["options"]
    assert set(options) == set(action.ARGUMENT_SPEC)
    for name, option in options.items():
        spec = action.ARGUMENT_SPEC[name]
        assert (option["type"], option.get("default"), option.get("required", False), option.get("elements")) == (
            spec["type"], spec.get("default"), spec.get("required", False), spec.get("elements")), name


def test_the_role_passes_every_option():
    (task,) = [t for t in yaml.safe_load((ROOT / "roles" / "service_image" / "tasks" / "main.yml").read_text())
               if "nanoedge.core.service_image" in t]
    assert set(task["nanoedge.core.service_image"]) == set(action.ARGUMENT_SPEC)


class Recorder:
    """Stands in for the action: answers each community.docker module with a canned result."""

    def __init__(self, answers: t.Dict[str, t.Dict[str, t.Any]]) -> None:
        self.answers = answers
        self.calls: t.List[t.Tuple[str, t.Dict[str, t.Any]]] = []

    def execute(self, module_name: str, args: t.Dict[str, t.Any], task_vars: t.Dict[str, t.Any]) -> t.Dict[str, t.Any]:
        self.calls.append((module_name, args))
        return self.answers[module_name]


def builder(**answers: t.Dict[str, t.Any]) -> t.Tuple[action.ModuleBuilder, Recorder]:
    recorder = Recorder({"community.docker." + name: answer for name, answer in answers.items()})
    return action.ModuleBuilder(recorder, {}), recorder  # type: ignore[arg-type]


def test_platform_from_docker_host_info():
    docker, dummy = builder(docker_host_info={"host_info": {"OSType": "linux", "Architecture": "x86_64"}})
    assert docker.platform() == "linux/x86_64"


@pytest.mark.parametrize("images, expected", [
    ([], None),
    ([{"Id": "sha256:1", "Config": {"Labels": {"a": "b"}}}], LocalImage("sha256:1", {"a": "b"})),
    ([{"Id": "sha256:1", "Config": {"Labels": None}}], LocalImage("sha256:1", {})),
])
def test_image_from_docker_image_info(images, expected):
    docker, recorder = builder(docker_image_info={"images": images})
    assert docker.image("r/n/resp:1.0.0") == expected
    assert recorder.calls == [("community.docker.docker_image_info", {"name": ["r/n/resp:1.0.0"]})]


def test_build_tag_and_push_arguments(tmp_path):
    docker, recorder = builder(docker_image={}, docker_image_tag={}, docker_image_push={})
    docker.build(tmp_path, "r/n/resp:1.0.0", {"SERVICE": "resp"}, {"io.nanoedge.build.inputs": "x"}, "linux/amd64")
    docker.tag("r/n/resp:1.0.0", "r/n/resp:latest")
    docker.push("r/n/resp:latest")
    assert recorder.calls == [
        ("community.docker.docker_image", {
            "name": "r/n/resp:1.0.0", "source": "build", "force_source": True, "push": False,
            "build": {"path": str(tmp_path), "dockerfile": "Dockerfile", "args": {"SERVICE": "resp"},
                      "labels": {"io.nanoedge.build.inputs": "x"}, "platform": "linux/amd64", "pull": False,
                      "rm": True}}),
        ("community.docker.docker_image_tag", {"name": "r/n/resp:1.0.0", "repository": ["r/n/resp:latest"]}),
        ("community.docker.docker_image_push", {"name": "r/n/resp:latest"}),
    ]


def test_a_failing_module_names_itself():
    docker, dummy = builder(docker_image_push={"failed": True, "msg": "denied"})
    with pytest.raises(BuildError) as error:
        docker.push("r/n/resp:latest")
    assert str(error.value) == "community.docker.docker_image_push: denied"
