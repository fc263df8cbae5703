# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_service_image_run: when an image is built, tagged and pushed, and when not (a fake Docker and a fake
registry record every call), check mode, the diff, and the platforms a builder can build."""

from __future__ import annotations

import json
import shutil
import typing as t
from pathlib import Path

import pytest

from ansible_collections.nanoedge.core.plugins.plugin_utils import _service_image_run as run
from ansible_collections.nanoedge.core.plugins.plugin_utils._oci_cache import ImageContent, ImageMetadata, PlatformImage
from ansible_collections.nanoedge.core.plugins.plugin_utils._oci_http import ImageError, RegistryError
from ansible_collections.nanoedge.core.plugins.plugin_utils._service_image import BuildError, load_service, nanoedge_labels

ROOT = Path(__file__).resolve().parents[4]
IMAGE = "127.0.0.1:5000/nanoedge/resp:1.0.0"
LATEST = "127.0.0.1:5000/nanoedge/resp:latest"


class FakeDocker:
    def __init__(self, own: str = "linux/amd64") -> None:
        self.own = own
        self.images: t.Dict[str, run.LocalImage] = {"nanoedge/base:bookworm": run.LocalImage("sha256:base", {})}
        self.calls: t.List[t.Tuple[str, ...]] = []

    def platform(self) -> str:
        return self.own

    def image(self, reference: str) -> t.Optional[run.LocalImage]:
        return self.images.get(reference)

    def build(self, context, image, arguments, labels, platform) -> None:
        assert (context / "Dockerfile").is_file() and arguments["SERVICE"] == "resp"
        self.calls.append(("build", image, platform))
        # the Dockerfile's own labels, and those given
        self.images[image] = run.LocalImage("sha256:%d" % len(self.calls),
                                            nanoedge_labels(arguments, labels["io.nanoedge.build.inputs"]))

    def tag(self, source: str, target: str) -> None:
        self.calls.append(("tag", source, target))
        self.images[target] = self.images[source]

    def push(self, reference: str) -> None:
        self.calls.append(("push", reference))


class FakeRegistry:
    host = "127.0.0.1:5000"

    def __init__(self, docker: FakeDocker) -> None:
        self.docker = docker
        self.held: t.Dict[str, t.Tuple[str, t.Dict[str, str]]] = {}

    def push_from(self, docker: FakeDocker) -> None:
        for call in docker.calls:
            if call[0] == "push":
                image = docker.images[call[1]]
                self.held[call[1].rsplit(":", 1)[1]] = ("sha256:m-" + image.id, image.labels)

    def inspect(self, repository: str, tag: str) -> ImageMetadata:
        assert repository == "nanoedge/resp"
        self.push_from(self.docker)
        if tag not in self.held:
            raise ImageError("%s:%s" % (repository, tag), self.host, repository, "manifest %r not found (HTTP 404)" % tag)
        digest, labels = self.held[tag]
        platform = PlatformImage("linux/amd64", digest, labels, {})
        return ImageMetadata(self.host, repository, tag, digest, ImageContent("manifest", {}, (platform,)))

    def manifest_digest(self, repository: str, tag: str, image: str) -> str:
        return self.inspect(repository, tag).digest


@pytest.fixture()
def service(tmp_path):
    shutil.copytree(ROOT / "docs" / "examples" / "my-service", tmp_path / "my-service")
    return load_service(tmp_path / "my-service" / "resp" / "service.json")


@pytest.fixture()
def wheel(tmp_path) -> Path:
    path = tmp_path / "aiocoap-0.4.17-py3-none-any.whl"
    path.write_bytes(b"wheel")
    return path


def ensure(service, wheel, docker, registry=None, check_mode=False, **request):
    return run.ensure_image(service, wheel, run.Request(**request), docker, registry or FakeRegistry(docker),
                            check_mode=check_mode)


def test_a_new_service_is_built_tagged_and_pushed(service, wheel):
    docker = FakeDocker()
    result = ensure(service, wheel, docker)
    assert docker.calls == [("build", IMAGE, "linux/amd64"), ("tag", IMAGE, LATEST), ("push", IMAGE), ("push", LATEST)]
    assert {k: result[k] for k in ("name", "image", "latest", "platform", "built", "pushed", "action", "changed")} == {
        "name": "resp", "image": IMAGE, "latest": LATEST, "platform": "linux/amd64", "built": True, "pushed": True,
        "action": "built and pushed", "changed": True}
    assert result["digest"] == "sha256:m-sha256:1"
    assert docker.images[IMAGE].labels == result["labels"]
    assert result["labels"]["io.nanoedge.build.inputs"] == result["inputs"]
    assert result["diff"]["before"] == {"image": None, "labels": {}}
    assert result["diff"]["after"] == {"image": IMAGE, "labels": result["labels"]}
    assert json.loads(result["labels"]["io.nanoedge.requirements"]) == service.raw["requirements"]


def test_nothing_happens_when_the_registry_holds_the_same_inputs(service, wheel):
    docker = FakeDocker()
    registry = FakeRegistry(docker)
    first = ensure(service, wheel, docker, registry)
    docker.calls.clear()
    del docker.images[IMAGE]  # a fresh engine: the registry decides
    again = ensure(service, wheel, docker, registry)
    assert docker.calls == []
    assert (again["action"], again["changed"], again["digest"]) == ("unchanged", False, first["digest"])
    assert again["diff"]["before"] == again["diff"]["after"]


def test_a_changed_program_is_built_and_pushed_again(service, wheel):
    docker = FakeDocker()
    registry = FakeRegistry(docker)
    first = ensure(service, wheel, docker, registry)
    (service.folder / "resp.py").write_text("# another program\n")
    docker.calls.clear()
    second = ensure(service, wheel, docker, registry)
    assert second["action"] == "built and pushed" and second["inputs"] != first["inputs"]
    assert second["diff"]["before"]["labels"]["io.nanoedge.build.inputs"] == first["inputs"]


def test_an_image_built_but_not_pushed_is_pushed_without_a_rebuild(service, wheel):
    docker = FakeDocker()
    ensure(service, wheel, docker, push=False)
    docker.calls.clear()
    result = ensure(service, wheel, docker)
    assert docker.calls == [("tag", IMAGE, LATEST), ("push", IMAGE), ("push", LATEST)]
    assert result["action"] == "pushed"


def test_latest_pointing_elsewhere_is_pushed_again(service, wheel):
    docker = FakeDocker()
    registry = FakeRegistry(docker)
    ensure(service, wheel, docker, registry)
    registry.held["latest"] = ("sha256:other", {})
    docker.calls = []
    assert ensure(service, wheel, docker, registry)["action"] == "pushed"


def test_check_mode_does_nothing(service, wheel):
    docker = FakeDocker()
    result = ensure(service, wheel, docker, check_mode=True)
    assert docker.calls == [] and IMAGE not in docker.images
    assert (result["action"], result["changed"], result["digest"]) == ("built and pushed", True, None)


@pytest.mark.parametrize("steps, action, calls", [
    ([], "built", [("build", IMAGE, "linux/amd64"), ("tag", IMAGE, LATEST)]),
    (["build"], "unchanged", []),
    (["build", "untag"], "tagged", [("tag", IMAGE, LATEST)]),
])
def test_without_push_the_local_image_decides(service, wheel, steps, action, calls):
    docker = FakeDocker()
    if "build" in steps:
        ensure(service, wheel, docker, push=False)
    if "untag" in steps:
        del docker.images[LATEST]
    docker.calls.clear()
    result = ensure(service, wheel, docker, push=False)
    assert (result["action"], docker.calls, result["pushed"]) == (action, calls, False)


def test_a_missing_base_image(service, wheel):
    with pytest.raises(BuildError) as error:
        ensure(service, wheel, FakeDocker(), base_image="nowhere:1")
    assert str(error.value) == "base image nowhere:1 is not there (bash tools/prereqs.sh builds nanoedge/base:bookworm)"


def test_a_registry_that_does_not_answer(service, wheel):
    class Down(FakeRegistry):
        def inspect(self, repository, tag):
            raise RegistryError(self.host, repository, "connection refused")

    with pytest.raises(BuildError) as error:
        ensure(service, wheel, FakeDocker(), Down(FakeDocker()))
    assert str(error.value).startswith("registry 127.0.0.1:5000: ")
    assert str(error.value).endswith("(is it running? bash tools/prereqs.sh starts it)")


@pytest.mark.parametrize("namespace, image", [("clinic/ward", "127.0.0.1:5000/clinic/ward/resp:1.0.0"),
                                              ("", "127.0.0.1:5000/resp:1.0.0")])
def test_references(service, namespace, image):
    repository, version, latest = run.references(service, run.Request(namespace=namespace))
    assert (repository, version, latest) == (image.split("/", 1)[1].rsplit(":", 1)[0], image,
                                             image.rsplit(":", 1)[0] + ":latest")


@pytest.mark.parametrize("name, full", [("amd64", "linux/amd64"), ("linux/amd64", "linux/amd64"),
                                        ("x86_64", "linux/amd64"), ("linux/aarch64", "linux/arm64"),
                                        ("arm/v7", "linux/arm/v7")])
def test_full_platform(name, full):
    assert run.full_platform(name) == full


@pytest.mark.parametrize("asked, own, chosen", [((), "linux/x86_64", "linux/amd64"),
                                                (("amd64", "linux/amd64"), "linux/amd64", "linux/amd64"),
                                                (("arm64",), "linux/aarch64", "linux/arm64")])
def test_the_builder_builds_its_own_platform(asked, own, chosen):
    assert run.choose_platform(asked, own) == chosen


def test_another_platform_is_refused(service, wheel):
    docker = FakeDocker()
    with pytest.raises(BuildError) as error:
        ensure(service, wheel, docker, platforms=("linux/amd64", "linux/arm/v7", "arm64"))
    assert str(error.value) == (
        "platform linux/arm/v7, linux/arm64 is not supported: only the Docker engine's own platform, linux/amd64, is "
        "built; other platforms need docker buildx with QEMU emulation, which is not used here")
    assert docker.calls == []


@pytest.mark.parametrize("registry, url", [
    ("127.0.0.1:5000", "http://127.0.0.1:5000"), ("localhost:5000", "http://localhost:5000"),
    ("[::1]:5000", "http://[::1]:5000"), ("registry.clinic.lan:5000", "https://registry.clinic.lan:5000"),
    ("10.0.0.2", "https://10.0.0.2"),
])
def test_registry_url(registry, url):
    assert run.registry_url(registry) == url
