# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The service description: the one schema (docs/contracts.md, "Service description").

A nanoservice is described once, in its ``service.json``. ``tools/nanoservices.py``
validates it here and writes the result into the image as one label; the
service_profiles lookup reads that label back through the same function, and
the deploy code (``_deployment.py``) runs the service from what the lookup
returned. The requirement part is ``normalize_requirements``, the one
requirement schema. Controller only, standard library only.
"""

from __future__ import annotations

import json
import posixpath
import re
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._requirements import (
    RequirementError,
    normalize_requirements,
)

SERVICE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# name==version, spelled so that it can be part of a wheel's file name and nothing else
PINNED_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9][A-Za-z0-9.+!_-]*$")

# Every key of a normalised description, in the order service.json writes them.
DESCRIPTION_KEYS = ("name", "version", "description", "requirements", "program", "libraries",
                    "python_requirements", "port", "provides", "consumes", "directory", "io", "environment")
# Placement hints the allocate filter and the plan report read; kept only when given.
PLACEMENT_KEYS = ("critical", "replicas", "priority")
PROTOCOLS = ("udp", "tcp")
# state: a folder the service keeps its own durable state in (its readings' history), so that the state
# survives the container; it is written, so its mode must be rw.
IO_KINDS = ("sensor", "actuator", "state")
IO_MODES = ("ro", "rw")
CONSUME_FORMATS = ("uri", "name=uri")

# Where an image built from nanoservices/Dockerfile keeps what the bare-metal backend installs:
# the program at IMAGE_PROGRAM and each library folder under IMAGE_LIBRARIES by its base name.
IMAGE_HOME = "/opt/nanoedge"
IMAGE_PROGRAM = IMAGE_HOME + "/service/main.py"
IMAGE_LIBRARIES = IMAGE_HOME + "/lib"


class DescriptionError(ValueError):
    """A service description breaks the schema; the message names the key at fault."""


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise DescriptionError(message)


def _relative(value: t.Any) -> bool:
    return (isinstance(value, str) and bool(value) and not posixpath.isabs(value)
            and ".." not in value.split("/") and bool(posixpath.basename(value.rstrip("/"))))


def _absolute(value: t.Any) -> bool:
    return isinstance(value, str) and posixpath.isabs(value) and ".." not in value.split("/")


def _port(value: t.Any) -> t.Optional[t.Dict[str, t.Any]]:
    if value is None:
        return None
    number = value.get("number") if isinstance(value, dict) else None
    _check(isinstance(value, dict) and set(value) <= {"number", "protocol"}
           and isinstance(number, int) and not isinstance(number, bool) and 0 < number < 65536
           and value.get("protocol", "udp") in PROTOCOLS,
           "port must be {number: 1-65535, protocol: udp|tcp}, got %r" % (value,))
    return {"number": number, "protocol": value.get("protocol", "udp")}


def _provides(value: t.Any) -> t.Optional[t.Dict[str, str]]:
    if value is None:
        return None
    _check(isinstance(value, dict) and set(value) == {"path"} and isinstance(value["path"], str)
           and value["path"].startswith("/"), "provides must be {path: /...}, got %r" % (value,))
    return {"path": value["path"]}


def _consumes(value: t.Any) -> t.Dict[str, t.Dict[str, str]]:
    value = {} if value is None else value
    _check(isinstance(value, dict), "consumes must be an object of service name to {env, format}")
    result = {}
    for producer, how in value.items():
        _check(isinstance(producer, str) and bool(SERVICE_NAME_RE.fullmatch(producer)),
               "consumes: %r is not a service name" % (producer,))
        _check(isinstance(how, dict) and set(how) <= {"env", "format"} and isinstance(how.get("env"), str)
               and bool(ENV_NAME_RE.fullmatch(how["env"])),
               "consumes %r: env must be an environment variable name" % producer)
        _check(how.get("format", "uri") in CONSUME_FORMATS,
               "consumes %r: format must be uri or name=uri, got %r" % (producer, how.get("format")))
        result[producer] = {"env": how["env"], "format": how.get("format", "uri")}
    return result


def _directory(value: t.Any) -> bool:
    """Whether the program registers itself at its node's service directory and finds its producers there.

    Only the author knows: shipping nanoedge_ns is no proof (an older copy, or a program that never calls the
    directory, cannot read ``service:<name>``). Left out, it is false: addresses, which every program reads."""
    value = False if value is None else value
    _check(isinstance(value, bool), "directory must be true or false, got %r" % (value,))
    return value


def _io_entry(index: int, entry: t.Any) -> t.Dict[str, t.Any]:
    where = "io[%d]" % index
    _check(isinstance(entry, dict), "%s must be an object" % where)
    unknown = sorted(set(entry) - {"kind", "host_path", "container_path", "env", "mode"})
    _check(not unknown, "%s: unknown key(s) %s" % (where, ", ".join(repr(k) for k in unknown)))
    for key in ("host_path", "container_path"):
        _check(_absolute(entry.get(key)), "%s.%s must be an absolute path without '..', got %r"
               % (where, key, entry.get(key)))
    _check(entry.get("mode", "ro") in IO_MODES, "%s.mode must be ro or rw, got %r" % (where, entry.get("mode")))
    _check(entry.get("kind", "sensor") in IO_KINDS,
           "%s.kind must be sensor, actuator or state, got %r" % (where, entry.get("kind")))
    _check(entry.get("kind") != "state" or entry.get("mode") == "rw",
           "%s: a state folder is written: its mode must be rw, got %r" % (where, entry.get("mode", "ro")))
    env = entry.get("env")
    _check(env is None or (isinstance(env, str) and bool(ENV_NAME_RE.fullmatch(env))),
           "%s.env must be an environment variable name or null, got %r" % (where, env))
    return {"kind": entry.get("kind", "sensor"), "host_path": entry["host_path"],
            "container_path": entry["container_path"], "env": env, "mode": entry.get("mode", "ro")}


def _io(value: t.Any) -> t.List[t.Dict[str, t.Any]]:
    value = [] if value is None else value
    _check(isinstance(value, list), "io must be a list")
    return [_io_entry(index, entry) for index, entry in enumerate(value)]


def _environment(value: t.Any) -> t.Dict[str, str]:
    value = {} if value is None else value
    _check(isinstance(value, dict) and all(isinstance(k, str) and ENV_NAME_RE.fullmatch(k) for k in value)
           and all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value.values()),
           "environment must be an object of variable name to string or number")
    return {key: str(item) for key, item in value.items()}


def _program(value: t.Any) -> t.Optional[str]:
    _check(value is None or _relative(value), "program must be a relative path without '..', got %r" % (value,))
    return value


def _libraries(value: t.Any) -> t.List[str]:
    value = [] if value is None else value
    _check(isinstance(value, list) and all(_relative(item) for item in value),
           "libraries must be a list of relative folders without '..', got %r" % (value,))
    names = [posixpath.basename(item.rstrip("/")) for item in value]
    # each is installed under IMAGE_LIBRARIES by its base name
    _check(len(set(names)) == len(names), "libraries must have distinct folder names, got %r" % (value,))
    return list(value)


def _python_requirements(value: t.Any) -> t.List[str]:
    value = [] if value is None else value
    _check(isinstance(value, list) and all(isinstance(item, str) and PINNED_RE.fullmatch(item) for item in value),
           "python_requirements must be pinned (name==version), got %r" % (value,))
    return list(value)


def _text(key: str, value: t.Any) -> str:
    value = "" if value is None else value
    _check(isinstance(value, str), "%s must be a string, got %r" % (key, value))
    return value


def _requirements(value: t.Any, present: bool) -> t.Dict[str, t.Any]:
    _check(present, "requirements is missing ({} for none)")
    try:
        return normalize_requirements(value)
    except RequirementError as exc:
        raise DescriptionError("requirements: %s" % exc) from None


def _placement(raw: t.Mapping[str, t.Any]) -> t.Dict[str, t.Any]:
    result: t.Dict[str, t.Any] = {}
    if raw.get("critical") is not None:
        _check(isinstance(raw["critical"], bool), "critical must be true or false, got %r" % (raw["critical"],))
        result["critical"] = raw["critical"]
    if raw.get("replicas") is not None:
        replicas = raw["replicas"]
        _check(isinstance(replicas, int) and not isinstance(replicas, bool) and replicas >= 1,
               "replicas must be an integer >= 1, got %r" % (replicas,))
        result["replicas"] = replicas
    if raw.get("priority") is not None:
        priority = raw["priority"]
        _check(isinstance(priority, (int, float)) and not isinstance(priority, bool),
               "priority must be a number, got %r" % (priority,))
        result["priority"] = priority
    return result


def normalize_description(raw: t.Any) -> t.Dict[str, t.Any]:
    """The full description (every key of DESCRIPTION_KEYS present), or DescriptionError naming the key."""
    _check(isinstance(raw, dict), "the description must be a JSON object, got %s" % type(raw).__name__)
    unknown = sorted(set(raw) - set(DESCRIPTION_KEYS) - set(PLACEMENT_KEYS))
    _check(not unknown, "unknown key(s) %s (known: %s)" % (", ".join(repr(k) for k in unknown),
                                                           ", ".join(DESCRIPTION_KEYS + PLACEMENT_KEYS)))
    name = raw.get("name")
    _check(isinstance(name, str) and bool(SERVICE_NAME_RE.fullmatch(name)),
           "name must be a service name (letters, digits, '.', '_', '-'), got %r" % (name,))
    result = {
        "name": name,
        "version": _text("version", raw.get("version")),
        "description": _text("description", raw.get("description")),
        "requirements": _requirements(raw.get("requirements"), "requirements" in raw),
        "program": _program(raw.get("program")),
        "libraries": _libraries(raw.get("libraries")),
        "python_requirements": _python_requirements(raw.get("python_requirements")),
        "port": _port(raw.get("port")),
        "provides": _provides(raw.get("provides")),
        "consumes": _consumes(raw.get("consumes")),
        "directory": _directory(raw.get("directory")),
        "io": _io(raw.get("io")),
        "environment": _environment(raw.get("environment")),
    }
    result.update(_placement(raw))
    return result


def minimal_description(name: str, requirements: t.Any, **known: t.Any) -> t.Dict[str, t.Any]:
    """The description of an image that carries none: its name and requirements, what else is ``known``."""
    return normalize_description(dict(known, name=name, requirements=requirements))


def description_label(description: t.Mapping[str, t.Any]) -> str:
    """The label's value: the normalised description as compact JSON with sorted keys."""
    return json.dumps(normalize_description(dict(description)), sort_keys=True, separators=(",", ":"))


def parse_description_label(text: str, where: str) -> t.Dict[str, t.Any]:
    """A label's JSON text -> the normalised description; errors name ``where``."""
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise DescriptionError("%s is not valid JSON (%s)" % (where, exc)) from None
    try:
        return normalize_description(raw)
    except DescriptionError as exc:
        raise DescriptionError("%s: %s" % (where, exc)) from None


def image_paths(description: t.Mapping[str, t.Any]) -> t.List[str]:
    """The folders of the image the bare-metal backend installs: the program's and each library's."""
    return [posixpath.dirname(IMAGE_PROGRAM)] + [
        posixpath.join(IMAGE_LIBRARIES, posixpath.basename(library.rstrip("/")))
        for library in description.get("libraries") or []]
