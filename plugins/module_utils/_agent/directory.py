# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node's side of the service directory (docs/contracts.md, "The CoAP API", "The local directory").

Local nanoservices talk to the agent over loopback only (``127.0.0.1``, the
``directory_port``): a producer registers its instance (``PUT
/local/instances/{service}``, renewed before its ``lifetime`` ends, ``DELETE``
on a clean exit) and a consumer looks up its producers (``GET
/local/services/{name}``, observable). The services hold no credentials: the
agent forwards this node's instance list to every manager's registry (``PUT
/instances/{node}``, over OSCORE like its reports) at once on every change and
every ``renew`` seconds, and answers lookups from its copy of the managers'
``/services``, which it observes from the first lookup on.

This module holds the logic without the network (``LocalInstances``,
``ManagersView``); ``directory_server`` the CoAP parts.

Standard library only, Python >= 3.9.
"""

from __future__ import annotations

import json
import time
import typing as t
import urllib.parse

from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.directory import (
    INSTANCE_RE, MAX_INSTANCES, SERVICE_NAME_RE, DirectoryError, parse_instances,
)

DEFAULT_LIFETIME = 30
MAX_LIFETIME = 3600
REGISTRATION_KEYS = frozenset(("uri", "instance", "lifetime", "since"))
# ``since``: when the registering process started (seconds since the epoch); one that differs from the last
# registration's is a new process (a restart), registered anew even at the same URI
MAX_SINCE = 1e11


class LocalInstances:
    """The instances registered on this node, each until its lifetime ends (``clock``: seconds since the epoch)."""

    def __init__(self, node: str, clock: t.Callable[[], float] = time.time) -> None:
        self.node = node
        self.clock = clock
        # (service, instance) -> the listed item and when it expires
        self.items: t.Dict[t.Tuple[str, str], t.Tuple[t.Dict[str, t.Any], float]] = {}
        # (service, instance) -> the ``since`` of its last registration (None: the service gave none)
        self.since: t.Dict[t.Tuple[str, str], t.Optional[float]] = {}

    def register(self, service: str, body: t.Any) -> t.Tuple[bool, bool, int]:
        """Register or renew one instance from ``{"uri": ..., "instance": "main", "lifetime": 30, "since": ...}``;
        (created, the node's list changed, the lifetime granted). ValueError says what is wrong.

        A renewal keeps the instance's ``registered`` time; a new process (another ``since``) or another URI
        is registered anew, so that consumers take it over an instance of the same service elsewhere that
        registered after the old process did (newest first)."""
        if not SERVICE_NAME_RE.fullmatch(service):
            raise ValueError("invalid service name %r: must match %s" % (service, SERVICE_NAME_RE.pattern))
        if not isinstance(body, dict):
            raise ValueError("the registration must be a JSON object with uri, and optionally instance and lifetime")
        unknown = sorted(set(body) - REGISTRATION_KEYS, key=str)
        if unknown:
            raise ValueError("unknown key(s) %s (uri, instance, lifetime, since)" % ", ".join(map(str, unknown)))
        instance = body.get("instance", "main")
        if not isinstance(instance, str) or not INSTANCE_RE.fullmatch(instance):
            raise ValueError("instance %r must match %s" % (instance, INSTANCE_RE.pattern))
        lifetime = body.get("lifetime", DEFAULT_LIFETIME)
        if isinstance(lifetime, bool) or not isinstance(lifetime, int) or not 1 <= lifetime <= MAX_LIFETIME:
            raise ValueError("lifetime must be whole seconds from 1 to %d, got %r" % (MAX_LIFETIME, lifetime))
        since = body.get("since")
        if since is not None and (isinstance(since, bool) or not isinstance(since, (int, float))
                                  or not 0 < since < MAX_SINCE):
            raise ValueError("since must be the process's start in seconds since the epoch, got %r" % (since,))
        uri = body.get("uri")
        port = _port_of(uri)
        key = (service, instance)
        now = self.clock()
        previous = self.items.get(key)
        if previous is None and len(self.items) >= MAX_INSTANCES:
            raise ValueError("%d instances are registered on this node (at most %d)" % (len(self.items), MAX_INSTANCES))
        renewal = previous is not None and previous[0]["uri"] == uri and self.since.get(key) == since
        registered = previous[0]["registered"] if renewal and previous else round(now, 3)
        item = {"service": service, "instance": instance, "uri": uri, "port": port, "registered": registered}
        try:
            parse_instances(self.node, {"node": self.node, "instances": [item]})  # the registry's own rules
        except DirectoryError as exc:
            raise ValueError(str(exc).split(": ", 1)[-1]) from None
        self.items[key] = (item, now + lifetime)
        self.since[key] = since
        return previous is None, previous is None or previous[0] != item, lifetime

    def remove(self, service: str, instance: str = "main") -> bool:
        self.since.pop((service, instance), None)
        return self.items.pop((service, instance), None) is not None

    def expire(self) -> t.List[t.Tuple[str, str]]:
        """Drop the instances whose lifetime ended (their service stopped renewing); the keys dropped."""
        now = self.clock()
        gone = [key for key, (_item, expires_at) in self.items.items() if expires_at <= now]
        for key in gone:
            del self.items[key]
            self.since.pop(key, None)
        return gone

    def listing(self) -> t.Dict[str, t.Any]:
        """What ``PUT /instances/{node}`` carries."""
        return {"node": self.node, "instances": [item for _key, (item, _end) in sorted(self.items.items())]}


def _port_of(uri: t.Any) -> int:
    if not isinstance(uri, str):
        raise ValueError("uri must be the instance's coap:// URI, got %r" % (uri,))
    try:
        parts = urllib.parse.urlsplit(uri)
        port = parts.port
    except ValueError as exc:
        raise ValueError("uri %r: %s" % (uri, exc)) from None
    if parts.scheme not in ("coap", "coaps", "coap+tcp") or not parts.hostname:
        raise ValueError("uri %r must be coap://host[:port]/path" % uri)
    return port or (5684 if parts.scheme == "coaps" else 5683)


class ManagersView:
    """The managers' ``/services`` as this node last heard them, one view per registry; a service's
    instances are those of every view (the managers get the same writes; one may lag a moment),
    newest registration first: the first is the one a consumer uses."""

    def __init__(self) -> None:
        self.views: t.Dict[str, t.Dict[str, t.List[t.Dict[str, t.Any]]]] = {}

    def update(self, registry: str, value: t.Any) -> t.Set[str]:
        """Take a registry's answer; the service names whose merged instances changed."""
        if not isinstance(value, dict) or not all(isinstance(v, list) for v in value.values()):
            raise ValueError("/services must be an object of service name to a list of instances")
        before = {name: self.instances(name) for name in self.names()}
        self.views[registry] = {str(name): [i for i in items if isinstance(i, dict)] for name, items in value.items()}
        return {name for name in set(before) | self.names() if self.instances(name) != before.get(name, [])}

    def names(self) -> t.Set[str]:
        return {name for view in self.views.values() for name in view}

    def instances(self, name: str) -> t.List[t.Dict[str, t.Any]]:
        merged: t.Dict[t.Tuple[t.Any, t.Any], t.Dict[str, t.Any]] = {}
        for view in self.views.values():
            for item in view.get(name, ()):
                key = (item.get("node"), item.get("instance"))
                if key not in merged or _registered(item) > _registered(merged[key]):
                    merged[key] = item
        return sorted(merged.values(), key=lambda item: (-_registered(item), str(item.get("node"))))


def _registered(item: t.Mapping[str, t.Any]) -> float:
    value = item.get("registered")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def encode(value: t.Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode("utf-8")
