# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which manager acts: the one whose registry holds the leadership lease.

Every ``lease_poll`` seconds the daemon stands as a candidate with its own
registry (``PUT /leadership``, docs/contracts.md, "The CoAP API"); the answer
is the registry's leadership status. This manager is ACTIVE only while the
latest answer says leader and the clock has not passed the moment the daemon
SENT that request plus the answer's ``lease_remaining``: the registry counts
the lease from when it sent its asks, which is after the request left, so the
daemon's view of the lease always ends first. The lease is also never taken
longer than the candidacy's TTL, which the registry counts from the request's
arrival.

A request left unanswered changes nothing until the clock ends the lease; an
answer that is an error or not a status ends it at once. This module keeps the
arithmetic and the role; the daemon sends the requests and acts on the changes.
"""

from __future__ import annotations

import logging
import time
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.state import now_iso

LOG = logging.getLogger("nanoedge.reconcile")


class Status(t.NamedTuple):
    """The registry's answer to ``PUT /leadership`` or ``GET /leadership``."""

    manager: str
    candidate: bool
    term: int
    leader: bool
    lease_remaining: float
    granted_by: t.List[str]
    members: int
    majority: int
    highest_term: int


_STATUS_TYPES = (("manager", str), ("candidate", bool), ("term", int), ("leader", bool),
                 ("lease_remaining", (int, float)), ("granted_by", list), ("members", int), ("majority", int),
                 ("highest_term", int))


def parse_status(obj: t.Any) -> Status:
    """The status in a /leadership answer; ValueError names the field at fault."""
    if not isinstance(obj, dict):
        raise ValueError("the status must be an object, got %s" % type(obj).__name__)
    values = {}
    for key, kind in _STATUS_TYPES:
        if key not in obj:
            raise ValueError("the status lacks %s" % key)
        value = obj[key]
        # a bool is an int to Python; only the boolean fields take one
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise ValueError("status.%s has the wrong type: %r" % (key, value))
        values[key] = value
    if values["lease_remaining"] < 0 or values["term"] < 0 or values["members"] < 1 or values["majority"] < 1:
        raise ValueError("status.lease_remaining, term, members and majority must not be negative (got %r)" % obj)
    if not all(isinstance(member, str) for member in values["granted_by"]):
        raise ValueError("status.granted_by must list member names, got %r" % (values["granted_by"],))
    values["lease_remaining"] = float(values["lease_remaining"])
    return Status(**values)


class RoleChange(t.NamedTuple):
    """A change of this manager's role, as the decision log records it."""

    previous: str
    role: str
    term: int
    granted_by: t.List[str]
    majority: int
    members: int
    why: str
    line: str


class Election:
    """This manager's role, from the registry's leadership answers and the clock."""

    def __init__(self, manager: str, ttl: float, clock: t.Callable[[], float] = time.monotonic) -> None:
        self.manager = manager
        self.ttl = ttl
        self.clock = clock
        self.role = "passive"
        self.role_since = now_iso()
        self.activated_at = clock()
        self.status: t.Optional[Status] = None
        # the send time of the newest request whose outcome was taken: an older answer that arrives
        # late is not news
        self.latest_sent = float("-inf")
        self.active_until = 0.0
        # the term of the lease this manager holds or held last
        self.term = 0
        self.problem: t.Optional[str] = None

    # -- what the registry said ---------------------------------------------------------------

    def answered(self, sent: float, payload: t.Any) -> t.Optional[RoleChange]:
        """A successful answer to the request sent at ``sent`` (monotonic); the change of role it makes."""
        if sent < self.latest_sent:
            return None
        try:
            status = parse_status(payload)
        except ValueError as exc:
            return self.failed(sent, "malformed status (%s)" % exc)
        self.latest_sent = sent
        self._recovered()
        self.status = status
        self.active_until = sent + min(status.lease_remaining, self.ttl) if status.leader else 0.0
        previous_term = self.term
        if status.leader:
            self.term = status.term
        why = "the registry says %s is not the leader" % status.manager if not status.leader else ""
        change = self.update(why)
        if change is None and self.role == "active" and previous_term and self.term != previous_term:
            # still the leader, under a new term (the registry restarted within the lease): a decision too
            why = "leader at a new term %d (was %d), granted by %s" % (
                self.term, previous_term, ", ".join(status.granted_by) or "no other member")
            change = RoleChange("active", "active", self.term, list(status.granted_by), status.majority,
                                status.members, why, "%s; this manager %s stays ACTIVE" % (why, self.manager))
        return change

    def failed(self, sent: float, error: str) -> t.Optional[RoleChange]:
        """An error or garbage answer: not the leader from now on."""
        if sent < self.latest_sent:
            return None
        self.latest_sent = sent
        self._trouble(error)
        self.active_until = 0.0
        return self.update("the registry's answer is unusable: %s" % error)

    def unanswered(self, error: str) -> None:
        """No answer (a timeout, the network): the lease already granted runs out by the clock."""
        self._trouble(error)

    def tick(self) -> t.Optional[RoleChange]:
        """The clock's verdict: step down when the lease ran out without a renewal."""
        return self.update("the lease ran out without a renewal (no leader answer since %.1f s)"
                           % max(0.0, self.clock() - self.latest_sent))

    def _trouble(self, error: str) -> None:
        # once per outage, not once per poll
        if self.problem is None:
            LOG.warning("leadership: %s; the lease is not renewed until the registry answers", error)
        self.problem = error

    def _recovered(self) -> None:
        if self.problem is not None:
            LOG.info("leadership: the registry answers again")
            self.problem = None

    # -- the role ---------------------------------------------------------------------------

    def active(self) -> bool:
        """Whether this manager may act now (the lease is running by this side's clock)."""
        return self.clock() < self.active_until

    def lease_remaining(self) -> float:
        return round(max(0.0, self.active_until - self.clock()), 3)

    def fence(self) -> t.Optional[t.Tuple[int, str]]:
        """(term, manager name) a run started now carries to the nodes; None when not the leader."""
        if not self.active() or self.status is None:
            return None
        return self.term, self.status.manager

    def update(self, why_passive: str) -> t.Optional[RoleChange]:
        """The change of role the latest answer and the clock make, if any."""
        role = "active" if self.active() else "passive"
        if role == self.role:
            return None
        previous, self.role = self.role, role
        self.role_since = now_iso()
        status = self.status
        granted_by = list(status.granted_by) if status is not None else []
        majority = status.majority if status is not None else 0
        members = status.members if status is not None else 0
        if role == "active":
            self.activated_at = self.clock()
            why = "leader at term %d, granted by %s (majority %d of %d members)" % (
                self.term, ", ".join(granted_by) or "no other member", majority, members)
            line = "%s; this manager %s is now ACTIVE" % (why, self.manager)
        else:
            why = why_passive or "the lease ran out"
            line = "%s; this manager %s goes PASSIVE (held term %d)" % (why, self.manager, self.term)
        return RoleChange(previous, role, self.term, granted_by, majority, members, why, line)

    def snapshot(self) -> t.Dict[str, t.Any]:
        """The state file's leadership fields."""
        status = self.status
        return {
            "term": self.term,
            "leader": self.active(),
            "lease_remaining": self.lease_remaining(),
            "granted_by": list(status.granted_by) if status is not None else [],
            "majority": status.majority if status is not None else None,
            "members": status.members if status is not None else None,
            "candidate": status.candidate if status is not None else False,
            "candidate_term": status.term if status is not None else 0,
            "highest_term": status.highest_term if status is not None else None,
            "name": status.manager if status is not None else None,
            "lease_error": self.problem,
        }
