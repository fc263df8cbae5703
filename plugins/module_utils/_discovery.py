# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Resource discovery (paper step 1): build a node's profile P_i from /proc and /sys.

Everything is read directly from files (no subprocess, no lshw), under a
configurable root so tests run on recorded fixture trees. A source that is
missing, unreadable or malformed is skipped and named in the warnings; the
profile is still complete and valid (docs/contracts.md, "The profile"). Hardware that is
simply absent (no battery, no HAT, no 1-Wire bus) is not a warning.

The profile is assembled here from one module per part: ``_discovery_reader``
(the file access and its warnings), ``_discovery_cpu``, ``_discovery_cgroups``
(limits of a container or service), ``_discovery_memory`` (memory and storage),
``_discovery_platform`` (arch, machine, model), ``_discovery_power``,
``_discovery_network`` and ``_discovery_devices``.

Standard library only, Python >= 3.9: this runs on managed nodes.
"""

from __future__ import annotations

import datetime
import os
import socket
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._device_catalog import Catalog
from ansible_collections.nanoedge.core.plugins.module_utils._discovery_cgroups import Cgroups
from ansible_collections.nanoedge.core.plugins.module_utils._discovery_cpu import bogomips, load1, online_cpus, parse_cpuinfo
from ansible_collections.nanoedge.core.plugins.module_utils._discovery_devices import devices
from ansible_collections.nanoedge.core.plugins.module_utils._discovery_memory import memory_mb, storage_mb
from ansible_collections.nanoedge.core.plugins.module_utils._discovery_network import network
from ansible_collections.nanoedge.core.plugins.module_utils._discovery_platform import arch, device_tree_base, machine, model
from ansible_collections.nanoedge.core.plugins.module_utils._discovery_power import power
from ansible_collections.nanoedge.core.plugins.module_utils._discovery_reader import Reader
from ansible_collections.nanoedge.core.plugins.module_utils._profile import (
    CAPABILITY_RE,
    NODE_NAME_RE,
    SCHEMA_VERSION,
)


class DiscoveryError(ValueError):
    """Input the caller controls (node name, labels, capabilities) is invalid."""


def default_node(reader: Reader) -> str:
    """The host name: the kernel's (under root) first, then the resolver's."""
    name = reader.text("/proc/sys/kernel/hostname", required=False) or socket.gethostname()
    return name.strip().lower()


def check_inputs(node: str, capabilities: t.Iterable[t.Any], labels: t.Any) -> t.Tuple[t.List[str], t.Dict[str, str]]:
    """Validate what the caller passes; return (capabilities, labels) normalized."""
    if not NODE_NAME_RE.fullmatch(node):
        raise DiscoveryError("node %r must match %s (set option node, e.g. to the inventory hostname)"
                             % (node, NODE_NAME_RE.pattern))
    declared: t.List[str] = []
    for index, cap in enumerate(capabilities):
        if not isinstance(cap, str) or not CAPABILITY_RE.fullmatch(cap):
            raise DiscoveryError("capabilities[%d] %r must match %s" % (index, cap, CAPABILITY_RE.pattern))
        declared.append(cap)
    if not isinstance(labels, dict):
        raise DiscoveryError("labels must be a dict of strings, got %s" % type(labels).__name__)
    clean: t.Dict[str, str] = {}
    for key, value in labels.items():
        if not isinstance(key, str) or not key:
            raise DiscoveryError("labels: key %r must be a non-empty string" % (key,))
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, (int, float)):
            value = str(value)
        if not isinstance(value, str):
            raise DiscoveryError("labels.%s: value %r must be a string" % (key, value))
        clean[key] = value
    return declared, clean


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def discover(*, catalog: Catalog, root: str = "/", storage_path: str = "/", node: t.Optional[str] = None,
             capabilities: t.Iterable[t.Any] = (), labels: t.Optional[t.Dict[str, t.Any]] = None,
             statvfs: t.Optional[t.Callable[[str], t.Any]] = None,
             clock: t.Optional[t.Callable[[], str]] = None) -> t.Tuple[t.Dict[str, t.Any], t.List[str]]:
    """Build the profile P_i; return (profile, warnings).

    Raises DiscoveryError only for bad caller input (node, capabilities,
    labels); problems with the host's files become warnings.
    """
    reader = Reader(root)
    node_name = node if node else default_node(reader)
    declared, clean_labels = check_inputs(node_name, capabilities, labels or {})

    cpuinfo_text = reader.text("/proc/cpuinfo")
    blocks = parse_cpuinfo(cpuinfo_text) if cpuinfo_text is not None else []
    cgroups = Cgroups(reader)
    cores = online_cpus(reader, blocks)
    cpu_limit = cgroups.cpu_limit()
    if cpu_limit is not None:
        cores = max(1, min(cores, cpu_limit))
    dt_base = device_tree_base(reader)
    kernel_machine = machine(reader, blocks)
    found_devices = devices(reader, catalog, dt_base)

    profile = {
        "schema": SCHEMA_VERSION,
        "node": node_name,
        "collected_at": (clock or utc_now)(),
        "arch": arch(reader, blocks, kernel_machine),
        "machine": kernel_machine,
        "model": model(reader, dt_base, blocks),
        "cpu": {"cores": cores, "bogomips": bogomips(reader, blocks), "load1": load1(reader)},
        "memory_mb": memory_mb(reader, cgroups),
        "storage_mb": storage_mb(reader, storage_path, statvfs or os.statvfs),
        "power": power(reader),
        "network": network(reader),
        "capabilities": sorted({d["capability"] for d in found_devices} | set(declared)),
        "devices": found_devices,
        "labels": clean_labels,
    }
    return profile, reader.warnings
