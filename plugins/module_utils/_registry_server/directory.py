# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The service directory (docs/contracts.md, "The CoAP API"): which service
instances run where, in the spirit of the CoRE Resource Directory (RFC 9176:
register, renew, look up, expire).

A node's agent puts the list of its running instances (``PUT /instances/{node}``);
the list lives until ``lt`` seconds after its last PUT, and never longer than
the node's own lease: when the node's profile expires or is deleted its
instances go, and while the failure detector holds the node lost they are
left out of every answer (as its profile is). Kept in memory only: the
agents put their lists again at each renewal and whenever they observe a
registry anew (after its restart).

Served by service name: ``GET /services`` (every service -> its instances)
and ``GET /services/{name}`` (one service's instances, ``[]`` for none yet,
so a consumer can observe a producer that is not up).
"""

from __future__ import annotations

import heapq
import math
import re
import time
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._canonical_json import canonical_json
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server import LOG
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.codec import etag_of

# The same names as a service description's (plugin_utils/_service_description.py), which the
# registry, running on the managers without the controller's code, cannot import.
SERVICE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
INSTANCE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
URI_RE = re.compile(r"^coaps?(\+tcp)?://[!-~]{1,240}$")
# Instances one node may list, and the bytes of its list: a node runs a handful of services.
MAX_INSTANCES = 32
MAX_BODY = 8192
INSTANCE_KEYS = frozenset(("service", "instance", "uri", "port", "registered"))

Clock = t.Callable[[], float]


class DirectoryError(ValueError):
    """An instance list that is refused; the message says where."""


class DirectoryFull(Exception):
    """A new node beyond the cap on nodes listed."""


class Instance(t.NamedTuple):
    service: str
    instance: str
    node: str
    uri: str
    port: int
    registered: float

    def public(self) -> t.Dict[str, t.Any]:
        return {"service": self.service, "instance": self.instance, "node": self.node, "uri": self.uri,
                "port": self.port, "registered": self.registered}


def _check_instance(node: str, index: int, item: t.Any) -> Instance:
    where = "instances[%d]" % index
    if not isinstance(item, dict):
        raise DirectoryError("%s: must be an object, got %s" % (where, type(item).__name__))
    unknown = sorted(set(item) - INSTANCE_KEYS, key=str)
    if unknown:
        raise DirectoryError("%s: unknown key(s) %s" % (where, ", ".join(map(str, unknown))))
    missing = sorted(INSTANCE_KEYS - set(item))
    if missing:
        raise DirectoryError("%s: %s missing" % (where, ", ".join(missing)))
    for key, pattern in (("service", SERVICE_NAME_RE), ("instance", INSTANCE_RE), ("uri", URI_RE)):
        value = item[key]
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise DirectoryError("%s: %s %r must match %s" % (where, key, value, pattern.pattern))
    port = item["port"]
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise DirectoryError("%s: port must be from 1 to 65535, got %r" % (where, port))
    registered = item["registered"]
    if isinstance(registered, bool) or not isinstance(registered, (int, float)) or not math.isfinite(registered) \
            or registered < 0:
        raise DirectoryError("%s: registered must be a time in seconds since the epoch, got %r" % (where, registered))
    return Instance(item["service"], item["instance"], node, item["uri"], port, registered)


def parse_instances(node: str, value: t.Any) -> t.Tuple[Instance, ...]:
    """The instances of ``{"node": node, "instances": [...]}``, checked, in a stable order."""
    if not isinstance(value, dict) or set(value) != {"node", "instances"}:
        raise DirectoryError("must be an object with exactly node and instances")
    if value["node"] != node:
        raise DirectoryError("node %r does not match the path /instances/%s" % (value["node"], node))
    items = value["instances"]
    if not isinstance(items, list):
        raise DirectoryError("instances must be a list")
    if len(items) > MAX_INSTANCES:
        raise DirectoryError("%d instances, at most %d per node" % (len(items), MAX_INSTANCES))
    instances = [_check_instance(node, index, item) for index, item in enumerate(items)]
    keys = [(i.service, i.instance) for i in instances]
    if len(set(keys)) != len(keys):
        raise DirectoryError("an instance is listed twice (service and instance must be unique)")
    return tuple(sorted(instances))


class _Listed:
    __slots__ = ("instances", "expires_at")

    def __init__(self, instances: t.Tuple[Instance, ...], expires_at: float) -> None:
        self.instances = instances
        self.expires_at = expires_at


class Directory:
    """The lists by node. ``registry`` (model.Registry) says whose lease ended (its
    listeners) and who is lost (``hidden``); ``listeners`` hear the service names whose
    answer changed, within the call that changed them."""

    def __init__(self, registry: t.Any, clock: Clock = time.time, max_nodes: int = 1000) -> None:
        self.registry = registry
        self.clock = clock
        self.max_nodes = max_nodes
        self.nodes: t.Dict[str, _Listed] = {}
        self._heap: t.List[t.Tuple[float, str]] = []
        self._cache: t.Dict[t.Optional[str], t.Tuple[bytes, bytes]] = {}
        self._hidden: t.Set[str] = set()  # listed nodes hidden as lost, as last notified
        self.listeners: t.List[t.Callable[[t.Set[str]], None]] = []
        registry.listeners.append(self._on_node)

    # -- changes ---------------------------------------------------------

    def put(self, node: str, instances: t.Tuple[Instance, ...], lifetime: int) -> bool:
        """List ``instances`` as ``node``'s for ``lifetime`` seconds; True when the node was not listed."""
        now = self.clock()
        self.expire_due(now)
        previous = self.nodes.get(node)
        if previous is None and len(self.nodes) >= self.max_nodes:
            raise DirectoryFull("%d nodes list instances (at most %d): node %r not added"
                                % (len(self.nodes), self.max_nodes, node))
        self.nodes[node] = _Listed(instances, now + lifetime)
        if node in self.registry.hidden:
            self._hidden.add(node)
        heapq.heappush(self._heap, (now + lifetime, node))
        if previous is None:
            LOG.info("directory: node=%s lists %d instance(s) lt=%d", node, len(instances), lifetime)
        if previous is None or previous.instances != instances:
            self._changed(node, previous.instances if previous else (), instances)
        return previous is None

    def delete(self, node: str) -> bool:
        listed = self.nodes.pop(node, None)
        self._hidden.discard(node)
        if listed is None:
            return False
        LOG.info("directory: node=%s removed its instances", node)
        self._changed(node, listed.instances, ())
        return True

    def expire_due(self, now: t.Optional[float] = None) -> None:
        now = self.clock() if now is None else now
        while self._heap and self._heap[0][0] <= now:
            expires_at, node = heapq.heappop(self._heap)
            listed = self.nodes.get(node)
            if listed is None or listed.expires_at != expires_at:
                continue  # renewed or removed since
            del self.nodes[node]
            self._hidden.discard(node)
            LOG.info("directory: node=%s instances expired %.3f s ago", node, now - expires_at)
            self._changed(node, listed.instances, ())

    def _on_node(self, node: str) -> None:
        """The registry changed ``node``'s profile: gone (its lease ended), hidden (lost) or back."""
        listed = self.nodes.get(node)
        if listed is None:
            return
        if node not in self.registry.entries:
            del self.nodes[node]
            self._hidden.discard(node)
            LOG.info("directory: node=%s instances removed with its profile", node)
            self._changed(node, listed.instances, ())
            return
        hidden = node in self.registry.hidden
        if hidden != (node in self._hidden):  # lost or back: its services' answers change (a new profile does not)
            if hidden:
                self._hidden.add(node)
            else:
                self._hidden.discard(node)
            self._changed(node, listed.instances, listed.instances)

    def _changed(self, node: str, old: t.Tuple[Instance, ...], new: t.Tuple[Instance, ...]) -> None:
        names = {i.service for i in old} | {i.service for i in new}
        if not names and old == new:
            return
        for name in names:
            self._cache.pop(name, None)
        self._cache.pop(None, None)
        for listener in self.listeners:
            listener(names)

    # -- answers ---------------------------------------------------------

    def _visible(self) -> t.Iterator[Instance]:
        hidden = self.registry.hidden
        for node, listed in self.nodes.items():
            if node not in hidden:
                yield from listed.instances

    def value(self, name: t.Optional[str]) -> t.Any:
        """What ``/services/{name}`` (a list) or, for None, ``/services`` (name -> list) holds."""
        self.expire_due()
        if name is not None:
            return [i.public() for i in sorted(self._visible(), key=_order) if i.service == name]
        result: t.Dict[str, t.List[t.Dict[str, t.Any]]] = {}
        for instance in sorted(self._visible(), key=_order):
            result.setdefault(instance.service, []).append(instance.public())
        return result

    def answer(self, name: t.Optional[str]) -> t.Tuple[bytes, bytes]:
        """(canonical JSON, ETag) of ``/services`` or ``/services/{name}``, kept until a change."""
        self.expire_due()
        cached = self._cache.get(name)
        if cached is None:
            body = canonical_json(self.value(name))
            cached = self._cache[name] = (body, etag_of(body))
            if len(self._cache) > 4 * MAX_INSTANCES * max(1, len(self.nodes)) + 64:
                self._cache.clear()  # names asked for and never listed do not pile up
                self._cache[name] = cached
        return cached


def _order(instance: Instance) -> t.Tuple[t.Any, ...]:
    return instance.service, instance.node, instance.instance
