# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Step 5: what one node runs, as backend-neutral descriptions. Controller only.

A description joins three sources: the service profile (Contract 2, with
the image digest the registry answered), the service's ``service.json``
(program, port, devices, the services it consumes) and the plan (which node
runs what, so a consumer gets its producers' addresses). The deploy role
turns each description into a container or a systemd unit; both backends
read the same fields, so a service behaves the same either way. The swarm
backend (``_swarm.py``) runs the same description as a Swarm service pinned
to its node.
"""

from __future__ import annotations

import json
import posixpath
import re
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._profile import NODE_NAME_RE

BACKENDS = ("container", "baremetal", "swarm")
LABEL_PREFIX = "io.nanoedge."
SERVICE_LABEL = LABEL_PREFIX + "service"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_UNIT_SAFE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_IO_MODES = ("ro", "rw")


class DeploymentError(ValueError):
    """A service cannot be described for deployment; the message names it and the field at fault."""


def _require(condition: bool, service: str, message: str) -> None:
    if not condition:
        raise DeploymentError("service %r: %s" % (service, message))


def image_reference(image: str, digest: str, pull_registry: str = "") -> str:
    """``image`` pinned to ``digest``, with its registry replaced by ``pull_registry`` when given.

    Nodes often reach the registry under another address than the controller
    (a LAN address instead of loopback); the digest guarantees the same bytes."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last)] + last.split(":", 1)[0]
    first, slash, rest = name.partition("/")
    has_registry = bool(slash) and ("." in first or ":" in first or first == "localhost")
    repository = rest if has_registry else name
    registry = pull_registry.strip().rstrip("/") if pull_registry else (first if has_registry else "")
    if "://" in registry:
        registry = registry.split("://", 1)[1]
    return "%s%s@%s" % (registry + "/" if registry else "", repository, digest)


def tag_reference(image: str, pull_registry: str = "") -> str:
    """``image`` by its tag (``latest`` when it has none), with its registry replaced by ``pull_registry``."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else "latest"
    return image_reference(name, "", pull_registry)[:-1] + ":" + tag


def check_spec(name: str, spec: t.Any) -> t.Dict[str, t.Any]:
    """The parts of ``service.json`` deployment uses, checked (it comes from the service's author)."""
    if spec is None:
        return {"port": None, "provides": None, "consumes": {}, "io": [], "environment": {},
                "program": None, "libraries": [], "python_requirements": [], "description": ""}
    _require(isinstance(spec, dict), name, "service.json must be a JSON object, got %s" % type(spec).__name__)
    _require(spec.get("name", name) == name, name, "service.json names service %r" % spec.get("name"))
    port = spec.get("port")
    if port is not None:
        _require(isinstance(port, dict) and isinstance(port.get("number"), int) and 0 < port["number"] < 65536,
                 name, "port must be {number: 1-65535, protocol: udp|tcp}, got %r" % (port,))
        _require(port.get("protocol", "udp") in ("udp", "tcp"), name,
                 "port protocol must be udp or tcp, got %r" % port.get("protocol"))
    provides = spec.get("provides")
    _require(provides is None or (isinstance(provides, dict) and str(provides.get("path", "")).startswith("/")),
             name, "provides must be {path: /...}, got %r" % (provides,))
    consumes = spec.get("consumes") or {}
    _require(isinstance(consumes, dict), name, "consumes must be an object of service name to {env, format}")
    for producer, how in consumes.items():
        _require(isinstance(how, dict) and isinstance(how.get("env"), str) and bool(_ENV_NAME.match(how["env"])),
                 name, "consumes %r: env must be an environment variable name" % producer)
        _require(how.get("format", "uri") in ("uri", "name=uri"), name,
                 "consumes %r: format must be uri or name=uri, got %r" % (producer, how.get("format")))
    io = spec.get("io") or []
    _require(isinstance(io, list), name, "io must be a list")
    for index, entry in enumerate(io):
        where = "io[%d]" % index
        _require(isinstance(entry, dict), name, "%s must be an object" % where)
        for key in ("host_path", "container_path"):
            value = entry.get(key)
            _require(isinstance(value, str) and posixpath.isabs(value) and ".." not in value.split("/"), name,
                     "%s.%s must be an absolute path without '..', got %r" % (where, key, value))
        _require(entry.get("mode", "ro") in _IO_MODES, name,
                 "%s.mode must be ro or rw, got %r" % (where, entry.get("mode")))
        env = entry.get("env")
        _require(env is None or (isinstance(env, str) and bool(_ENV_NAME.match(env))), name,
                 "%s.env must be an environment variable name or null, got %r" % (where, env))
    environment = spec.get("environment") or {}
    _require(isinstance(environment, dict) and all(isinstance(k, str) and _ENV_NAME.match(k) for k in environment),
             name, "environment must be an object of variable name to value")
    program = spec.get("program")
    _require(program is None or (isinstance(program, str) and not posixpath.isabs(program)
                                 and ".." not in program.split("/")), name,
             "program must be a path relative to the services folder, got %r" % (program,))
    libraries = spec.get("libraries") or []
    _require(isinstance(libraries, list) and all(isinstance(x, str) and ".." not in x.split("/") for x in libraries),
             name, "libraries must be a list of relative folders")
    requirements = spec.get("python_requirements") or []
    _require(isinstance(requirements, list) and all(isinstance(x, str) and "==" in x for x in requirements), name,
             "python_requirements must be pinned (name==version), got %r" % (requirements,))
    return {"port": port, "provides": provides, "consumes": consumes, "io": io, "environment": environment,
            "program": program, "libraries": libraries, "python_requirements": requirements,
            "description": str(spec.get("description") or "")}


def _uri(spec: t.Mapping[str, t.Any], address: str) -> t.Optional[str]:
    if not spec["port"] or not spec["provides"]:
        return None
    host = "[%s]" % address if ":" in address else address
    return "coap://%s:%d%s" % (host, spec["port"]["number"], spec["provides"]["path"])


def consumer_environment(name: str, spec: t.Mapping[str, t.Any], specs: t.Mapping[str, t.Mapping[str, t.Any]],
                         placements: t.Mapping[str, str], addresses: t.Mapping[str, str]) -> t.Dict[str, str]:
    """Environment that points ``name`` at the producers it consumes, where the plan put them.

    A producer that is not placed is left out: the consumer starts without it
    and the summary already lists the producer as unplaced."""
    env = {}  # type: t.Dict[str, t.List[str]]
    for producer, how in spec["consumes"].items():
        node = placements.get(producer)
        producer_spec = specs.get(producer)
        if node is None or producer_spec is None:
            continue
        address = addresses.get(node)
        if not address:
            raise DeploymentError("service %r consumes %r on node %r, whose address is unknown "
                                  "(set nanoedge_address or ansible_host for it)" % (name, producer, node))
        uri = _uri(producer_spec, address)
        if uri is None:
            continue
        item = uri if how.get("format", "uri") == "uri" else "%s=%s" % (producer, uri)
        env.setdefault(how["env"], []).append(item)
    return {key: ",".join(values) for key, values in env.items()}


def path_type(value: t.Any) -> str:
    """``char``, ``block``, ``dir``, ``file`` or ``missing``, from a name or from the result of ansible.builtin.stat."""
    if isinstance(value, str):
        return value
    if not isinstance(value, dict) or not value.get("exists"):
        return "missing"
    for key, name in (("ischr", "char"), ("isblk", "block"), ("isdir", "dir")):
        if value.get(key):
            return name
    return "file"


def describe(service: t.Mapping[str, t.Any], spec: t.Any, node: str, plan: t.Mapping[str, t.Any],
             specs: t.Mapping[str, t.Any], addresses: t.Mapping[str, str], backend: str,
             pull_registry: str = "", name_prefix: str = "nanoedge-svc-", install_dir: str = "/opt/nanoedge",
             path_types: t.Optional[t.Mapping[str, str]] = None) -> t.Dict[str, t.Any]:
    """One backend-neutral deployment description (see the module docstring)."""
    name = service.get("name")
    if not isinstance(name, str) or not _UNIT_SAFE.match(name):
        raise DeploymentError("service name %r: must match %s (it names a container and a unit)"
                              % (name, _UNIT_SAFE.pattern))
    _require(backend in BACKENDS, name, "backend must be one of %s, got %r" % (", ".join(BACKENDS), backend))
    digest = service.get("digest")
    _require(isinstance(digest, str) and bool(_DIGEST.match(digest)), name,
             "digest must be sha256:<64 hex digits>, got %r" % (digest,))
    image = service.get("image")
    _require(isinstance(image, str) and bool(image), name, "image is missing")
    requires = service.get("requires") or {}
    checked = check_spec(name, spec)
    checked_specs = {other: check_spec(other, value) for other, value in specs.items() if value is not None}
    checked_specs[name] = checked
    placements = plan.get("placements") or {}

    env = {str(k): str(v) for k, v in checked["environment"].items()}
    if checked["port"]:
        env["NANOEDGE_PORT"] = str(checked["port"]["number"])
    env.update(consumer_environment(name, checked, checked_specs, placements, addresses))
    types = path_types or {}
    note = ""
    if backend == "swarm":
        device_nodes = [e["host_path"] for e in checked["io"]
                        if path_type(types.get(e["host_path"], "unknown")) in ("char", "block")]
        if device_nodes:
            # A Swarm service cannot be granted a device (no --device for services), and a bind-mounted
            # device node is refused by the task's device cgroup: the node's own engine runs it instead.
            backend = "container"
            note = "runs on the node's engine: Swarm services cannot use the device(s) %s" % ", ".join(device_nodes)
    mounts, devices, paths = [], [], []
    for entry in checked["io"]:
        host_path, container_path = entry["host_path"], entry["container_path"]
        mode = entry.get("mode", "ro")
        kind = path_type(types.get(host_path, "unknown"))
        paths.append({"path": host_path, "mode": mode, "kind": entry.get("kind", "sensor"), "type": kind})
        if kind in ("char", "block"):
            # A device node needs the cgroup device rule `devices` grants; a bind mount would not.
            devices.append("%s:%s:%s" % (host_path, container_path, "r" if mode == "ro" else "rwm"))
        else:
            mounts.append({"type": "bind", "source": host_path, "target": container_path,
                           "read_only": mode == "ro"})
        if entry.get("env"):
            env[entry["env"]] = host_path if backend == "baremetal" else container_path

    cpus = requires.get("cpu") or 0
    memory_mb = requires.get("memory_mb") or 0
    unit = name_prefix + name
    program = checked["program"]
    service_dir = posixpath.join(install_dir, "services", name)
    labels = {
        SERVICE_LABEL: name,
        LABEL_PREFIX + "node": node,
        LABEL_PREFIX + "digest": digest,
        # the tag as the node pulls it: the same label whoever runs the deploy (the controller reaches the
        # registry at another address than the managers' reconcile runs), so a re-run changes nothing
        LABEL_PREFIX + "image": tag_reference(image, pull_registry),
        LABEL_PREFIX + "requirements": json.dumps(requires, sort_keys=True, separators=(",", ":")),
    }
    if node in addresses and _uri(checked, addresses[node]):
        labels[LABEL_PREFIX + "uri"] = t.cast(str, _uri(checked, addresses[node]))
    return {
        "name": name,
        "node": node,
        "backend": backend,
        "backend_note": note,
        "description": checked["description"],
        "image": image_reference(image, digest, pull_registry),
        "digest": digest,
        "container_name": unit,
        "unit_name": unit + ".service",
        "labels": labels,
        "env": dict(sorted(env.items())),
        "mounts": mounts,
        "devices": devices,
        "paths": paths,
        "cpus": cpus if cpus else None,
        "memory": "%dM" % memory_mb if memory_mb else None,
        "cpu_quota": "%d%%" % round(cpus * 100) if cpus else None,
        "memory_max": "%dM" % memory_mb if memory_mb else None,
        "port": checked["port"],
        "program": posixpath.join(service_dir, posixpath.basename(program)) if program else None,
        "program_source": program,
        "libraries": checked["libraries"],
        "python_requirements": checked["python_requirements"],
        "service_dir": service_dir,
        "writable_paths": [p["path"] for p in paths if p["mode"] == "rw"],
    }


def deployments(plan: t.Any, services: t.Any, node: t.Any, specs: t.Any = None, addresses: t.Any = None,
                backend: t.Any = "container", backends: t.Any = None, pull_registry: t.Any = "",
                name_prefix: t.Any = "nanoedge-svc-", install_dir: t.Any = "/opt/nanoedge",
                path_types: t.Any = None) -> t.List[t.Dict[str, t.Any]]:
    """The descriptions of every service the plan places on ``node``, in placement order."""
    if not isinstance(plan, dict) or not isinstance(plan.get("by_node"), dict):
        raise DeploymentError("plan must be the result of nanoedge.core.allocate (a dict with by_node)")
    if not isinstance(node, str) or not NODE_NAME_RE.match(node):
        raise DeploymentError("node %r is not a valid node name" % (node,))
    if not isinstance(services, list) or not all(isinstance(s, dict) and "name" in s for s in services):
        raise DeploymentError("services must be a list of service profiles (nanoedge.core.service_profiles)")
    specs = specs or {}
    addresses = addresses or {}
    backends = backends or {}
    for what, value in (("specs", specs), ("addresses", addresses), ("backends", backends)):
        if not isinstance(value, dict):
            raise DeploymentError("%s must be a dict, got %s" % (what, type(value).__name__))
    if not isinstance(name_prefix, str) or not re.match(r"^[a-z0-9][a-z0-9._-]*$", name_prefix):
        raise DeploymentError("name_prefix %r must be lower-case letters, digits, '.', '_' or '-'" % (name_prefix,))
    unknown = sorted(set(backends) - {s["name"] for s in services})
    if unknown:
        raise DeploymentError("backends names unknown service(s): %s" % ", ".join(unknown))
    by_name = {s["name"]: s for s in services}
    result = []
    for name in plan["by_node"].get(node) or []:
        if name not in by_name:
            raise DeploymentError("the plan places %r on %r, but no such service was given" % (name, node))
        result.append(describe(by_name[name], specs.get(name), node, plan, specs, addresses,
                               str(backends.get(name, backend)), str(pull_registry or ""), name_prefix,
                               str(install_dir), path_types))
    return result
