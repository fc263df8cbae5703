# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build a nanoservice's image and push it, only when something changed.

The image carries INPUTS_LABEL, a digest of everything it is built from. When the registry's image
of the service's version carries the same digest (and ``latest`` is that image), nothing is built or
pushed; when the local image carries it, only the push is left. The Docker work is a ``Builder``'s:
the action plugin ``nanoedge.core.service_image`` runs community.docker's modules, tools/nanoservices.py
the docker command line; both decide here, so both build the same image. Controller only.
"""

from __future__ import annotations

import ipaddress
import tempfile
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

from ansible_collections.nanoedge.core.plugins.plugin_utils._oci import RegistryClient
from ansible_collections.nanoedge.core.plugins.plugin_utils._oci_http import ImageError, OciError
from ansible_collections.nanoedge.core.plugins.plugin_utils._service_image import (
    COMPARED_LABELS,
    INPUTS_LABEL,
    BuildError,
    Service,
    assemble_context,
    build_args,
    inputs_digest,
    nanoedge_labels,
)
from ansible_collections.nanoedge.core.plugins.module_utils._profile import platform_of

# Docker builds for its own platform. Others would need docker buildx with QEMU emulation (binfmt_misc),
# which this machine lacks, so that path is neither written nor claimed.
OTHER_PLATFORMS = "other platforms need docker buildx with QEMU emulation, which is not used here"


@dataclass(frozen=True)
class LocalImage:
    id: str
    labels: t.Dict[str, str]


class Builder(t.Protocol):
    """The Docker engine the images are built with."""

    def platform(self) -> str:
        """The engine's own platform, ``linux/amd64``: the one it can build for."""

    def image(self, reference: str) -> t.Optional[LocalImage]:
        """The local image, or None."""

    def build(self, context: Path, image: str, arguments: t.Mapping[str, str], labels: t.Mapping[str, str],
              platform: str) -> None:
        """Build ``context`` (its Dockerfile) as ``image``."""

    def tag(self, source: str, target: str) -> None:
        """Tag the local ``source`` as ``target``."""

    def push(self, reference: str) -> None:
        """Push ``reference`` to its registry."""


@dataclass(frozen=True)
class Request:
    registry: str = "127.0.0.1:5000"  # as image references spell it
    namespace: str = "nanoedge"
    base_image: str = "nanoedge/base:bookworm"
    platforms: t.Tuple[str, ...] = ()  # none: the builder's own
    push: bool = True
    registry_url: t.Optional[str] = None  # default: http on a loopback address, else https


@dataclass
class Remote:
    digest: t.Optional[str] = None
    labels: t.Dict[str, str] = field(default_factory=dict)
    latest: t.Optional[str] = None


def full_platform(name: str) -> str:
    """``amd64``, ``linux/amd64``, ``x86_64`` -> ``linux/amd64``."""
    name = name.strip()
    if name.startswith("linux/"):
        name = name[len("linux/"):]
    return "linux/" + platform_of(name)


def choose_platform(asked: t.Sequence[str], own: str) -> str:
    """The platform to build for: the builder's own, and only it (refused otherwise)."""
    own = full_platform(own)
    unsupported = sorted({full_platform(p) for p in asked} - {own})
    if unsupported:
        raise BuildError("platform %s is not supported: only the Docker engine's own platform, %s, is built; %s"
                         % (", ".join(unsupported), own, OTHER_PLATFORMS))
    return own


def registry_url(registry: str) -> str:
    """Docker speaks plain HTTP to a loopback registry (an insecure registry by default), else HTTPS."""
    if registry.startswith("[") and "]" in registry:
        host = registry[1:registry.index("]")]
    else:
        host = registry.split(":")[0] if registry.count(":") == 1 else registry
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    return ("http://" if loopback else "https://") + registry


def read_remote(client: RegistryClient, repository: str, tag: str) -> Remote:
    """What the registry holds of ``repository:tag`` and of its ``latest``."""
    remote = Remote()
    try:
        metadata = client.inspect(repository, tag)
    except ImageError:
        return remote
    except OciError as exc:
        raise BuildError("registry %s: %s (is it running? bash tools/prereqs.sh starts it)" % (client.host, exc)) from exc
    remote.digest = metadata.digest
    for platform in metadata.content.platforms:
        remote.labels.update(platform.labels)
    try:
        remote.latest = client.manifest_digest(repository, "latest", "%s/%s:latest" % (client.host, repository))
    except ImageError:
        remote.latest = None
    return remote


def references(service: Service, request: Request) -> t.Tuple[str, str, str]:
    """(repository, image, latest) of the service in the request's registry."""
    repository = "/".join(part for part in (request.namespace.strip("/"), service.name) if part)
    base = "%s/%s" % (request.registry, repository)
    return repository, "%s:%s" % (base, service.version), "%s:latest" % base


def _action(built: bool, pushed: bool, current: bool) -> str:
    if built and pushed:
        return "built and pushed"
    return "built" if built else "pushed" if pushed else "unchanged" if current else "tagged"


def ensure_image(service: Service, wheel: Path, request: Request, builder: Builder,
                 client: t.Optional[RegistryClient] = None, check_mode: bool = False) -> t.Dict[str, t.Any]:
    """Build and push ``service``'s image unless the registry (or, without push, Docker) has it already."""
    repository, image, latest = references(service, request)
    platform = choose_platform(request.platforms, builder.platform())
    base = builder.image(request.base_image)
    if base is None:
        raise BuildError("base image %s is not there (bash tools/prereqs.sh builds nanoedge/base:bookworm)"
                         % request.base_image)
    arguments = build_args(service.raw, request.base_image, wheel)
    with tempfile.TemporaryDirectory(prefix="nanoedge-service-image-") as tmp:
        context = Path(tmp) / "context"
        inputs = inputs_digest(assemble_context(service, wheel, context), base.id, image, arguments, platform)
        local = builder.image(image)
        local_inputs = local.labels.get(INPUTS_LABEL) if local else None
        if request.push:
            client = client or RegistryClient(request.registry_url or registry_url(request.registry))
            remote = read_remote(client, repository, service.version)
            before = remote.labels
            current = remote.labels.get(INPUTS_LABEL) == inputs and remote.latest == remote.digest
        else:
            remote = Remote()
            before = local.labels if local else {}
            latest_image = builder.image(latest)
            current = local_inputs == inputs and latest_image is not None and latest_image.id == local.id
        build = not current and local_inputs != inputs
        push = request.push and not current
        if not check_mode and not current:
            if build:
                builder.build(context, image, arguments, {INPUTS_LABEL: inputs}, platform)
            # "latest" follows the newest build, for consumers that do not pick by version
            builder.tag(image, latest)
            if push:
                builder.push(image)
                builder.push(latest)
    digest = remote.digest
    if push and not check_mode and client is not None:
        digest = read_remote(client, repository, service.version).digest
    wanted = nanoedge_labels(arguments, inputs)
    return {
        "name": service.name, "image": image, "latest": latest, "digest": digest, "platform": platform,
        "built": build, "pushed": push, "action": _action(build, push, current), "changed": not current,
        "inputs": inputs, "labels": wanted,
        "diff": {"before": {"image": image if remote.digest or before else None,
                            "labels": {k: before[k] for k in COMPARED_LABELS if k in before}},
                 "after": {"image": image, "labels": wanted}},
    }
