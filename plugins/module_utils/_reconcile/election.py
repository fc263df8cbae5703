# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which manager acts. The managers are listed in priority order; this one is
active exactly while every manager before it is down, so one of them acts and
a backup takes over when the active one stops answering."""

from __future__ import annotations

import asyncio
import logging
import time
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.state import now_iso

LOG = logging.getLogger("nanoedge.reconcile")

# A probe of a peer's registry: None when it answered, else why not.
Probe = t.Callable[[str], t.Awaitable[t.Optional[str]]]


class Peer:
    """A manager before this one in the priority list."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.failures = 0
        self.up = True  # until it fails probe_failures times in a row
        self.last_error = ""


class RoleChange(t.NamedTuple):
    previous: str
    role: str
    reason: str
    line: str


class Election:
    """This manager's role, from probes of the managers before it."""

    def __init__(self, managers: t.Sequence[str], index: t.Optional[int], registry: str, probe_failures: int) -> None:
        self.manager = managers[index] if index is not None else registry
        self.peers = [Peer(uri) for uri in managers[:index]] if index else []
        self.probe_failures = probe_failures
        self.role = "active" if not self.peers else "passive"
        self.role_since = now_iso()
        self.activated_at = time.monotonic()

    def active_peer(self) -> str:
        """The manager acting now as this one sees it: itself, or the first earlier manager that answers."""
        if self.role == "active":
            return self.manager
        for peer in self.peers:
            if peer.up:
                return peer.uri
        return self.manager

    def peer_states(self) -> t.Dict[str, str]:
        return {peer.uri: "up" if peer.up else "down" for peer in self.peers}

    def undecided(self) -> bool:
        """Whether a peer still counts as up although its latest probes failed."""
        return any(peer.up and peer.failures for peer in self.peers)

    def record_probe(self, peer: Peer, error: t.Optional[str]) -> None:
        """Down after probe_failures failures in a row, up again after one answer."""
        if error is None:
            peer.failures = 0
            if not peer.up:
                peer.up = True
                LOG.info("manager %s answers again", peer.uri)
        else:
            peer.last_error = error
            peer.failures += 1
            if peer.up and peer.failures >= self.probe_failures:
                peer.up = False
                LOG.info("manager %s stopped answering (%d probes failed, last: %s)",
                         peer.uri, peer.failures, peer.last_error)

    async def probe_round(self, probe: Probe) -> t.Optional[RoleChange]:
        """Probe every peer at once; the change of role that follows, if any."""
        errors = await asyncio.gather(*(probe(peer.uri) for peer in self.peers))
        for peer, error in zip(self.peers, errors):
            self.record_probe(peer, error)
        return self.update_role()

    def update_role(self) -> t.Optional[RoleChange]:
        """Active exactly when every earlier manager is down."""
        up = [peer for peer in self.peers if peer.up]
        role = "passive" if up else "active"
        if role == self.role:
            return None
        previous, self.role = self.role, role
        self.role_since = now_iso()
        if role == "active":
            self.activated_at = time.monotonic()
            down = ", ".join(peer.uri for peer in self.peers)
            reason = "became active: %s stopped answering" % down
            line = "%s; this manager %s is now ACTIVE" % (reason, self.manager)
        else:
            reason = "manager %s answers again" % up[0].uri
            line = "%s; this manager %s goes PASSIVE" % (reason, self.manager)
        return RoleChange(previous, role, reason, line)
