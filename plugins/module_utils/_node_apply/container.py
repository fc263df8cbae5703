# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Docker Engine's ContainerCreate body of one deployment description.

It is what community.docker.docker_container sends for the parameters ``roles/deploy/tasks/container.yml``
gives it (image, platform, restart_policy, network_mode, published_ports when the network is not the host's,
labels, env, mounts, devices, cpus, memory; detached, not interactive), so that module, run later over the
same node, compares the container with its parameters and finds nothing to change.
"""

from __future__ import annotations

import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._node_apply.request import Docker, memory_bytes


def _mount(mount: t.Mapping[str, t.Any]) -> t.Dict[str, t.Any]:
    return {"Target": mount["target"], "Source": mount["source"], "Type": mount["type"],
            "ReadOnly": bool(mount.get("read_only"))}


def _device(device: str) -> t.Dict[str, str]:
    """``host:container[:permissions]`` (as the deployments filter writes them) as the engine takes it."""
    parts = device.split(":")
    host = parts[0]
    inside = parts[1] if len(parts) > 1 else host
    permissions = parts[2] if len(parts) > 2 else "rwm"
    return {"PathOnHost": host, "PathInContainer": inside, "CgroupPermissions": permissions}


def _ports(port: t.Optional[t.Mapping[str, t.Any]]) -> t.Tuple[t.Dict[str, t.Any], t.Dict[str, t.Any]]:
    """(ExposedPorts, PortBindings) of ``<port>:<port>/<protocol>`` on every address of the node."""
    if not port:
        return {}, {}
    key = "%d/%s" % (port["number"], port.get("protocol", "udp"))
    return {key: {}}, {key: [{"HostIp": "0.0.0.0", "HostPort": str(port["number"])}]}


def create_body(description: t.Mapping[str, t.Any], docker: Docker) -> t.Dict[str, t.Any]:
    """The ContainerCreate body of a finished description (``_deploy_layout.on_node``); the name and the
    platform go in the request's query, not here."""
    host = {
        "RestartPolicy": {"Name": docker.restart_policy, "MaximumRetryCount": 0},
        "NetworkMode": docker.network_mode,
        "Mounts": [_mount(m) for m in description["mounts"]],
        "Devices": [_device(d) for d in description["devices"]],
    }  # type: t.Dict[str, t.Any]
    if description.get("cpus"):
        host["NanoCpus"] = int(round(float(description["cpus"]) * 1e9))
    memory = memory_bytes(description.get("memory"))
    if memory:
        host["Memory"] = memory
    body = {
        "Image": description["image"],
        "Env": ["%s=%s" % item for item in description["env"].items()],
        "Labels": dict(description["labels"]),
        # detached and not interactive, as docker_container's defaults say
        "AttachStdin": False, "AttachStdout": False, "AttachStderr": False, "OpenStdin": False, "StdinOnce": False,
        "HostConfig": host,
    }  # type: t.Dict[str, t.Any]
    if docker.network_mode != "host":
        exposed, bindings = _ports(description.get("port"))
        body["ExposedPorts"] = exposed
        host["PortBindings"] = bindings
    return body
