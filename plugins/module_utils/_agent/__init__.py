# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""nanoedge reporting agent: discover this node's resources and report the
profile to the CoAP profile registries, once. A systemd timer runs it every
interval with a lease of three intervals, so a registry stays fresh between
playbook runs and a node that vanishes drops out by itself.

The nanoedge.core.agent role installs the collection's module_utils on the
worker (role nanoedge.core.code) and a short entry point,
roles/agent/files/nanoedge_agent.py, that imports this module: the discovery
and reporting code is the one behind nanoedge.core.resource_facts and
nanoedge.core.coap_report.

Exit status: 0 when at least min_acks registries stored the profile, 1 when
fewer did, 2 when the configuration or the installation is broken.
"""

from __future__ import annotations

import argparse
import json
import sys
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils import _coap, _device_catalog, _discovery

PROG = "nanoedge-agent"
DEFAULT_CONFIG = "/etc/nanoedge-agent/config.json"

CONFIG_KEYS = {
    # key: (type, default); None as default means required
    "registries": (list, None),
    "lifetime": (int, None),
    "format": (str, "json"),
    "timeout": ((int, float), 5),
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
}


class AgentError(Exception):
    """Broken configuration or installation; the message says what and where."""


def _say(text: str, stream: t.TextIO) -> None:
    stream.write(text + "\n")


def require_aiocoap() -> None:
    if not _coap.HAS_AIOCOAP:
        raise AgentError("the Python library aiocoap is missing for %s (%s); "
                         "the nanoedge.core.agent role installs it in the agent's virtual environment"
                         % (sys.executable, _coap.AIOCOAP_IMPORT_ERROR))


def load_config(path: str) -> t.Dict[str, t.Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            raw = json.load(handle)
    except (OSError, ValueError) as exc:
        raise AgentError("configuration %s: %s" % (path, exc)) from None
    if not isinstance(raw, dict):
        raise AgentError("configuration %s: must be a JSON object" % path)
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
    return config


def discover(config: t.Dict[str, t.Any]) -> t.Tuple[t.Dict[str, t.Any], t.List[str]]:
    try:
        catalog = _device_catalog.build_catalog(config["device_catalog"])
        return _discovery.discover(catalog=catalog, root=config["root"], storage_path=config["storage_path"],
                                   node=config["node"] or None, capabilities=config["capabilities"],
                                   labels=config["labels"])
    except ValueError as exc:  # CatalogError, DiscoveryError
        raise AgentError("discovery: %s" % exc) from None


def run(args: argparse.Namespace) -> int:
    require_aiocoap()
    config = load_config(args.config)
    profile, warnings = discover(config)
    for warning in warnings:
        _say("%s: warning: %s" % (PROG, warning), sys.stderr)
    if args.print:
        _say(json.dumps(profile, indent=2, sort_keys=True), sys.stdout)
        return 0
    settings = _coap.ReportSettings(
        fmt=config["format"], lifetime=config["lifetime"], timeout=float(config["timeout"]),
        retries=config["retries"], oscore_context=config["oscore_context"] or None,
        oscore_credentials=config["oscore_credentials"] or None,
    )
    try:
        outcomes = _coap.run_report(profile, config["registries"], settings)
    except (ValueError, _coap.CoapError) as exc:
        raise AgentError(str(exc)) from None
    for outcome in outcomes:
        if outcome.stored:
            _say("%s: %s: %s %s (%s, %d attempt%s)" % (
                PROG, outcome.registry, outcome.action, profile["node"], outcome.code,
                outcome.attempts, "" if outcome.attempts == 1 else "s"), sys.stdout)
        else:
            _say("%s: %s: failed: %s" % (PROG, outcome.registry, outcome.error), sys.stderr)
    stored = sum(1 for outcome in outcomes if outcome.stored)
    if stored < config["min_acks"]:
        _say("%s: %d of %d registries stored the profile of %s, fewer than min_acks=%d" % (
            PROG, stored, len(outcomes), profile["node"], config["min_acks"]), sys.stderr)
        return 1
    return 0


def main(argv: t.Optional[t.Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description="Discover this node's resources and report them once.")
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="configuration file (default %(default)s)")
    # Read by the entry point, before this module can be imported.
    parser.add_argument("--lib", help="folder holding ansible_collections/nanoedge/core/plugins/module_utils "
                                      "(default: lib beside the program)")
    parser.add_argument("--print", action="store_true", help="print the discovered profile instead of reporting it")
    args = parser.parse_args(argv)
    try:
        return run(args)
    except AgentError as exc:
        _say("%s: %s" % (PROG, exc), sys.stderr)
        return 2
