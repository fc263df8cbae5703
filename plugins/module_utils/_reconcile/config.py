# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The reconcile daemon's configuration file: keys, defaults and checks."""

from __future__ import annotations

import json
import os
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._coap import parse_registry

DEFAULT_STATE_DIR = "/var/lib/nanoedge-reconcile"

# key: (accepted types, default); None as default means required.
CONFIG_KEYS = {
    "registry": (str, None),
    "command": (list, None),
    "managers": (list, []),
    "self": ((int, str), None),
    "state_dir": (str, DEFAULT_STATE_DIR),
    "lock_file": (str, ""),
    "plan_file": (str, ""),
    "log_dir": (str, ""),
    "keep_runs": (int, 20),
    "tail_lines": (int, 20),
    "interval": ((int, float), 30),
    # seconds from the last change of the live profiles to a run (a burst of reports makes one run)
    "debounce": ((int, float), 0.5),
    # a node that changes more than flap_limit times within flap_window seconds is held until it is
    # stable for flap_window seconds (damping.py); a window of 0 turns this off
    "flap_limit": (int, 4),
    "flap_window": ((int, float), 30),
    # after the daemon starts, no run for this long: the manager's own registry may have been down with
    # it and holds profiles from before until the workers report again
    # (a manager after the first also stands for leadership only after it, so that at a cold start the
    # preferred manager wins the lease)
    "settle": ((int, float), 0),
    # leadership (docs/contracts.md, "The CoAP API"): every lease_poll seconds PUT /leadership on the own
    # registry, standing as a candidate for lease_ttl seconds
    "lease_poll": ((int, float), 1.0),
    "lease_ttl": ((int, float), 3.0),
    "request_timeout": ((int, float), 10),
    "command_timeout": ((int, float), 600),
    "stop_grace": ((int, float), 30),
    "retry_backoff": ((int, float), 30),
    "retry_backoff_max": ((int, float), 600),
    "oscore_context": (str, ""),
    # aiocoap's credentials file: one OSCORE context per registry (this manager's and its peers')
    "oscore_credentials": (str, ""),
    "environment": (dict, {}),
    # Targeted re-placement (targeted.py): a change is re-planned here, from the live profiles of these
    # workers (in this order, the order first fit tries them) and the services the last full run read
    # (services_file), and move_command deploys to the nodes it touches only. Without a move_command every
    # run is the full command. A full run comes first after becoming active, after a failure, and at
    # least every full_every seconds (the safety net).
    "workers": (list, []),
    "move_command": (list, []),
    "services_file": (str, ""),
    "full_every": ((int, float), 900),
    # The nodes' service directory (docs/contracts.md, "The CoAP API", service directory): a targeted run
    # rewires no consumer that finds its producers there by name. Empty: none.
    "directory": (str, ""),
}  # type: t.Dict[str, t.Tuple[t.Any, t.Any]]

# Keys of the probe election the lease replaced: accepted so that an older configuration still loads,
# and ignored (the daemon logs them once at start).
OBSOLETE_KEYS = ("probe_interval", "probe_timeout", "probe_failures")
MAX_LEASE_TTL = 60.0

TYPE_NAMES = {
    str: "a string", list: "a list", dict: "an object", int: "an integer",
    (int, float): "a number", (int, str): "an index or a URI",
}  # type: t.Dict[t.Any, str]

POSITIVE_NUMBERS = ("interval", "debounce", "lease_poll", "lease_ttl", "request_timeout",
                    "command_timeout", "retry_backoff", "retry_backoff_max", "full_every")


class ConfigError(Exception):
    """The configuration is unusable; the message names the key at fault."""


# Configuration.

def parse_registry_uri(value: t.Any, key: str) -> str:
    """``coap://host[:port]`` by the collection's one rule for registry URIs; returned normalised with the port."""
    try:
        registry = parse_registry(value)
    except ValueError as exc:
        # the message says "registry <value>: why"; any other key goes in front of it
        raise ConfigError(str(exc) if key == "registry" else "%s: %s" % (key, exc)) from None
    return "coap://%s" % registry.authority


def validate_config(raw: t.Any) -> t.Dict[str, t.Any]:
    """The configuration with defaults filled in; ConfigError names the first bad key."""
    if not isinstance(raw, dict):
        raise ConfigError("must be a JSON object")
    unknown = sorted(set(raw) - set(CONFIG_KEYS) - set(OBSOLETE_KEYS))
    if unknown:
        raise ConfigError("unknown key(s) %s (known: %s)" % (", ".join(unknown), ", ".join(sorted(CONFIG_KEYS))))
    config = {}  # type: t.Dict[str, t.Any]
    for key, (kind, default) in CONFIG_KEYS.items():
        if key not in raw:
            if default is None and key != "self":
                raise ConfigError("%s is required" % key)
            config[key] = json.loads(json.dumps(default))
            continue
        value = raw[key]
        if isinstance(value, bool) or not isinstance(value, kind):
            raise ConfigError("%s must be %s, got %s" % (key, TYPE_NAMES[kind], json.dumps(value)))
        config[key] = value

    config["registry"] = parse_registry_uri(config["registry"], "registry")
    command = config["command"]
    if not command or not all(isinstance(arg, str) for arg in command) or not command[0]:
        raise ConfigError("command must be a non-empty list of strings (the argv of the reconcile command)")
    for key in POSITIVE_NUMBERS:
        if not config[key] > 0:
            raise ConfigError("%s must be > 0, got %s" % (key, config[key]))
    for key in ("stop_grace", "settle", "flap_window"):
        if config[key] < 0:
            raise ConfigError("%s must be >= 0, got %s" % (key, config[key]))
    for key in ("keep_runs", "tail_lines", "flap_limit"):
        if config[key] < 1:
            raise ConfigError("%s must be >= 1, got %s" % (key, config[key]))
    if config["retry_backoff_max"] < config["retry_backoff"]:
        raise ConfigError("retry_backoff_max must be >= retry_backoff (%s), got %s"
                          % (config["retry_backoff"], config["retry_backoff_max"]))
    if not config["lease_poll"] < config["lease_ttl"] <= MAX_LEASE_TTL:
        # a candidacy must outlive the gap between two renewals, and the registry takes at most 60 s
        raise ConfigError("lease_ttl must be greater than lease_poll (%s) and at most %g, got %s"
                          % (config["lease_poll"], MAX_LEASE_TTL, config["lease_ttl"]))
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in config["environment"].items()):
        raise ConfigError("environment must map names to strings")
    _check_targeted(config)

    managers = [parse_registry_uri(uri, "managers[%d]" % index) for index, uri in enumerate(config["managers"])]
    if len(set(managers)) != len(managers):
        raise ConfigError("managers lists a URI twice")
    config["managers"] = managers
    config["self"] = _self_index(config.get("self"), managers, config["registry"])
    if not os.path.isabs(config["state_dir"]):
        raise ConfigError("state_dir must be an absolute path, got %r" % config["state_dir"])
    config["lock_file"] = config["lock_file"] or os.path.join(config["state_dir"], "reconcile.lock")
    config["log_dir"] = config["log_dir"] or os.path.join(config["state_dir"], "runs")
    config["obsolete"] = sorted(set(raw) & set(OBSOLETE_KEYS))
    return config


def _check_targeted(config: t.Dict[str, t.Any]) -> None:
    workers, move = config["workers"], config["move_command"]
    if not all(isinstance(name, str) and name for name in workers) or len(set(workers)) != len(workers):
        raise ConfigError("workers must be a list of distinct node names")
    if move and (not all(isinstance(arg, str) for arg in move) or not move[0]):
        raise ConfigError("move_command must be a list of strings (the argv of a targeted run), or empty")
    if move and not (workers and config["plan_file"] and config["services_file"]):
        raise ConfigError("move_command needs workers, plan_file and services_file (what a targeted run plans from)")


def _self_index(value: t.Any, managers: t.List[str], registry: str) -> t.Optional[int]:
    """Where this manager stands in ``managers`` (None: no managers, always active)."""
    if not managers:
        if value is not None:
            raise ConfigError("self is set but managers is empty")
        return None
    if value is None:
        if registry in managers:
            return managers.index(registry)
        raise ConfigError("self is required: registry %s is not one of managers" % registry)
    if isinstance(value, int):
        if not 0 <= value < len(managers):
            raise ConfigError("self must be an index into managers (0 to %d), got %d" % (len(managers) - 1, value))
        return value
    uri = parse_registry_uri(value, "self")
    if uri not in managers:
        raise ConfigError("self %s is not one of managers (%s)" % (uri, ", ".join(managers)))
    return managers.index(uri)


def load_config(path: str) -> t.Dict[str, t.Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            raw = json.load(handle)
    except (OSError, ValueError) as exc:
        raise ConfigError("cannot read it: %s" % exc) from None
    return validate_config(raw)
