# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The agent's configuration file (what the nanoedge.core.agent role writes) and discovery with it."""

from __future__ import annotations

import json
import sys
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils import _coap, _device_catalog, _discovery

PROG = "nanoedge-agent"
DEFAULT_CONFIG = "/etc/nanoedge-agent/config.json"
NUMBER = (int, float)

CONFIG_KEYS = {
    # key: (type, default); None as default means required
    "registries": (list, None),
    "lifetime": (int, None),
    "format": (str, "json"),
    "timeout": (NUMBER, 5),
    "retries": (int, 4),
    "min_acks": (int, 1),
    "node": (str, ""),
    "root": (str, "/"),
    "storage_path": (str, "/"),
    "capabilities": (list, []),
    "labels": (dict, {}),
    "device_catalog": (list, []),
    "oscore_context": (str, ""),
    # aiocoap's credentials file: one OSCORE context per registry (what the agent role writes)
    "oscore_credentials": (str, ""),
    # the service: seconds between two full reports (0: a third of the lifetime, as the timer used to run)
    "interval": (NUMBER, 0),
    # a random delay up to this many seconds is added to each periodic report, so workers spread out
    "jitter": (NUMBER, 0),
    "beat_interval": (NUMBER, 1.0),
    "debounce": (NUMBER, 0.5),
    "poll_interval": (NUMBER, 1.0),
    # the witness file (witness.json) lives here
    "state_dir": (str, "/var/lib/nanoedge-agent"),
    # the service directory for this node's nanoservices, on 127.0.0.1 (0: none, as before it existed)
    "directory_port": (int, 0),
    # seconds between two renewals of this node's instance list at every registry
    "directory_renew": (NUMBER, 5),
}

# (key, lowest, highest) for the numbers of the service
RANGES = (
    ("interval", 0, 86400),
    ("jitter", 0, 3600),
    ("beat_interval", 0.05, 60),
    ("debounce", 0, 60),
    ("poll_interval", 0.05, 3600),
    ("timeout", 0.05, 600),
    ("directory_port", 0, 65535),
    ("directory_renew", 1, 3600),
)


class AgentError(Exception):
    """Broken configuration or installation; the message says what and where."""


def require_aiocoap() -> None:
    if not _coap.HAS_AIOCOAP:
        raise AgentError("the Python library aiocoap is missing for %s (%s); "
                         "the nanoedge.core.agent role installs it in the agent's virtual environment"
                         % (sys.executable, _coap.AIOCOAP_IMPORT_ERROR))


def _read(path: str) -> t.Dict[str, t.Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            raw = json.load(handle)
    except (OSError, ValueError) as exc:
        raise AgentError("configuration %s: %s" % (path, exc)) from None
    if not isinstance(raw, dict):
        raise AgentError("configuration %s: must be a JSON object" % path)
    return raw


def load_config(path: str) -> t.Dict[str, t.Any]:
    raw = _read(path)
    unknown = sorted(set(raw) - set(CONFIG_KEYS))
    if unknown:
        raise AgentError("configuration %s: unknown key(s) %s" % (path, ", ".join(unknown)))
    config = {}
    for key, (kind, default) in CONFIG_KEYS.items():
        if key not in raw:
            if default is None:
                raise AgentError("configuration %s: %s is required" % (path, key))
            config[key] = default
            continue
        value = raw[key]
        if isinstance(value, bool) or not isinstance(value, kind):
            raise AgentError("configuration %s: %s has the wrong type (%s)" % (path, key, type(value).__name__))
        config[key] = value
    if not config["registries"]:
        raise AgentError("configuration %s: registries is empty" % path)
    for key, lowest, highest in RANGES:
        value = config[key]
        if not lowest <= value <= highest:
            raise AgentError("configuration %s: %s must be from %g to %g, got %r" % (path, key, lowest, highest, value))
    if 0 < config["interval"] < 1:
        raise AgentError("configuration %s: interval must be 0 (a third of the lifetime) or at least 1, got %r"
                         % (path, config["interval"]))
    if config["lifetime"] < 1:
        raise AgentError("configuration %s: lifetime must be at least 1, got %r" % (path, config["lifetime"]))
    if not config["interval"]:
        # configurations written for the timer: it ran every third of the lease
        config["interval"] = max(1.0, config["lifetime"] / 3)
    return config


def discover(config: t.Mapping[str, t.Any]) -> t.Tuple[t.Dict[str, t.Any], t.List[str]]:
    try:
        catalog = _device_catalog.build_catalog(config["device_catalog"])
        return _discovery.discover(catalog=catalog, root=config["root"], storage_path=config["storage_path"],
                                   node=config["node"] or None, capabilities=config["capabilities"],
                                   labels=config["labels"])
    except ValueError as exc:  # CatalogError, DiscoveryError
        raise AgentError("discovery: %s" % exc) from None


def report_settings(config: t.Mapping[str, t.Any]) -> _coap.ReportSettings:
    return _coap.ReportSettings(
        fmt=config["format"], lifetime=config["lifetime"], timeout=float(config["timeout"]),
        retries=config["retries"], oscore_context=config["oscore_context"] or None,
        oscore_credentials=config["oscore_credentials"] or None,
    )
