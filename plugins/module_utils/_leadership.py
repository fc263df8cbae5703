# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Leadership by lease with the cluster's members as witnesses (docs/leadership.md).

Every worker beats to every manager's registry once a second. A manager that
stands as a candidate puts an *ask* in each beat answer; a worker grants its
one grant to at most one manager at a time, for ``lease`` seconds of its own
clock, and carries the grant in its next beats to that manager. A manager is
the leader while it holds unexpired grants from a majority of the members
(itself included). Two majorities share a member, and a member holds one grant
at a time, so two managers are never leaders at once; the manager's view of a
grant ends before the worker's (it counts from when it *sent* the ask, and
shortens the lease by the clocks' rate difference), so a manager steps down
before any worker can grant to another.

Terms only grow: manager ``i`` of ``M`` uses the terms ``t`` with ``t % M == i``,
each candidacy one above every term it has seen, so no two managers share a
term, and the nodes refuse changes from a term below the highest they have
seen (``_fence.py``).

Standard library only: the worker's agent runs this.
"""

from __future__ import annotations

import collections
import random
import re
import time
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._profile import NODE_NAME_RE

DEFAULT_LEASE = 4.0
DEFAULT_DRIFT = 0.05
MAX_BEAT_BYTES = 512
MAX_TERM = 2 ** 53
MAX_LEASE = 60.0
PROFILE_STATES = ("current", "stale", "missing")

_ETAG_RE = re.compile(r"[0-9a-f]{16}")


class LeadershipError(ValueError):
    """A malformed beat, answer or ask; the message names the field at fault."""


class Grant(t.NamedTuple):
    term: int
    ask: int


class Ask(t.NamedTuple):
    manager: str
    term: int
    n: int
    lease: float
    priority: int


class Beat(t.NamedTuple):
    etag: str
    term: int
    grant: t.Optional[Grant] = None
    holder: t.Optional[str] = None


def majority(members: int) -> int:
    """The smallest number of members that any other such number overlaps."""
    if members < 1:
        raise LeadershipError("members must be >= 1, got %d" % members)
    return members // 2 + 1


def next_term(highest: int, index: int, managers: int) -> int:
    """The smallest term above ``highest`` that belongs to manager ``index`` of ``managers``."""
    if managers < 1 or not 0 <= index < managers:
        raise LeadershipError("manager index %d is not within 0..%d" % (index, managers - 1))
    term = highest + 1
    return term + (index - term) % managers


# -- messages -------------------------------------------------------------------------


def _int(obj: t.Mapping[str, t.Any], key: str, where: str, low: int) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_TERM:
        raise LeadershipError("%s.%s must be an integer from %d to 2**53, got %r" % (where, key, low, value))
    return value


def _name(value: t.Any, where: str) -> str:
    if not isinstance(value, str) or not NODE_NAME_RE.fullmatch(value):
        raise LeadershipError("%s must be a node name, got %r" % (where, value))
    return value


def _object(obj: t.Any, where: str, required: t.Sequence[str], optional: t.Sequence[str] = ()) -> t.Mapping[str, t.Any]:
    if not isinstance(obj, dict):
        raise LeadershipError("%s must be an object, got %s" % (where, type(obj).__name__))
    unknown = sorted(str(key) for key in obj if key not in required and key not in optional)
    if unknown:
        raise LeadershipError("%s has unknown key(s) %s" % (where, ", ".join(unknown)))
    missing = [key for key in required if key not in obj]
    if missing:
        raise LeadershipError("%s lacks %s" % (where, ", ".join(missing)))
    return obj


def beat_payload(beat: Beat) -> t.Dict[str, t.Any]:
    payload: t.Dict[str, t.Any] = {"etag": beat.etag, "term": beat.term}
    if beat.grant is not None:
        payload["grant"] = {"term": beat.grant.term, "ask": beat.grant.ask}
    if beat.holder is not None:
        payload["holder"] = beat.holder
    return payload


def parse_beat(obj: t.Any) -> Beat:
    """A beat's payload (decoded JSON or CBOR), checked."""
    obj = _object(obj, "beat", ("etag", "term"), ("grant", "holder"))
    etag = obj["etag"]
    if not isinstance(etag, str) or not _ETAG_RE.fullmatch(etag):
        raise LeadershipError("beat.etag must be 16 lowercase hex digits, got %r" % (etag,))
    grant = None
    if "grant" in obj:
        raw = _object(obj["grant"], "beat.grant", ("term", "ask"))
        grant = Grant(_int(raw, "term", "beat.grant", 1), _int(raw, "ask", "beat.grant", 0))
    holder = _name(obj["holder"], "beat.holder") if "holder" in obj else None
    return Beat(etag, _int(obj, "term", "beat", 0), grant, holder)


def answer_payload(profile: str, ask: t.Optional[Ask]) -> t.Dict[str, t.Any]:
    if profile not in PROFILE_STATES:
        raise LeadershipError("profile must be one of %s, got %r" % (", ".join(PROFILE_STATES), profile))
    payload: t.Dict[str, t.Any] = {"profile": profile}
    if ask is not None:
        payload["ask"] = ask._asdict()
    return payload


def parse_answer(obj: t.Any) -> t.Tuple[str, t.Optional[Ask]]:
    """A beat answer's payload, checked: the profile's state there and the manager's ask, if any."""
    obj = _object(obj, "answer", ("profile",), ("ask",))
    profile = obj["profile"]
    if profile not in PROFILE_STATES:
        raise LeadershipError("answer.profile must be one of %s, got %r" % (", ".join(PROFILE_STATES), profile))
    if "ask" not in obj:
        return profile, None
    raw = _object(obj["ask"], "answer.ask", ("manager", "term", "n", "lease", "priority"))
    lease = raw["lease"]
    if isinstance(lease, bool) or not isinstance(lease, (int, float)) or not 0 < lease <= MAX_LEASE:
        raise LeadershipError("answer.ask.lease must be a number of seconds in (0, %g], got %r" % (MAX_LEASE, lease))
    ask = Ask(_name(raw["manager"], "answer.ask.manager"), _int(raw, "term", "answer.ask", 1),
              _int(raw, "n", "answer.ask", 0), float(lease), _int(raw, "priority", "answer.ask", 0))
    return profile, ask


# -- the witness (worker side) ---------------------------------------------------------


class _Held(t.NamedTuple):
    registry: str
    manager: str
    term: int
    ask: int
    expires: float
    lease: float


class Witness:
    """One worker's single grant: to at most one manager at a time, for ``lease`` of its own clock."""

    def __init__(self, highest_term: int = 0, priority_window: float = 2.0,
                 clock: t.Callable[[], float] = time.monotonic) -> None:
        self._highest = highest_term
        self.priority_window = priority_window
        self.clock = clock
        self._held: t.Optional[_Held] = None
        # registry -> (priority, term, when) of its latest ask
        self._heard: t.Dict[str, t.Tuple[int, int, float]] = {}

    @property
    def highest_term(self) -> int:
        """The highest term this worker ever granted (persisted before any grant is sent)."""
        return self._highest

    def _current(self, now: float) -> t.Optional[_Held]:
        held = self._held
        return held if held is not None and held.expires > now else None

    @property
    def holder(self) -> t.Optional[str]:
        held = self._current(self.clock())
        return held.manager if held is not None else None

    def _preferred_waiting(self, registry: str, ask: Ask, now: float) -> t.Optional[str]:
        """A registry preferred to ``registry`` that asked lately with a term this worker could grant."""
        for other, (priority, term, when) in self._heard.items():
            if other != registry and priority < ask.priority and term >= self._highest \
                    and now - when <= self.priority_window:
                return other
        return None

    def on_ask(self, registry: str, ask: Ask) -> str:
        """Grant, renew or refuse the ask that ``registry`` sent: "granted", "renewed" or "refused: why"."""
        now = self.clock()
        self._heard[registry] = (ask.priority, ask.term, now)
        if ask.term < self._highest:
            return "refused: term %d is below the highest granted, %d" % (ask.term, self._highest)
        held = self._current(now)
        if held is not None and held.registry != registry:
            return "refused: granted to %s (term %d) for %.1f s more" % (held.manager, held.term, held.expires - now)
        if held is None:
            preferred = self._preferred_waiting(registry, ask, now)
            if preferred is not None:
                return "refused: %s, preferred, asked %.1f s ago" % (preferred, now - self._heard[preferred][2])
        renewal = held is not None and held.term == ask.term
        self._held = _Held(registry, ask.manager, ask.term, ask.n, now + ask.lease, ask.lease)
        self._highest = max(self._highest, ask.term)
        return "renewed" if renewal else "granted"

    def grant_for(self, registry: str) -> t.Optional[Grant]:
        """The grant to carry in the next beat to ``registry``, while it holds one."""
        held = self._current(self.clock())
        if held is None or held.registry != registry:
            return None
        return Grant(held.term, held.ask)

    def snapshot(self) -> t.Dict[str, t.Any]:
        """The witness file's content (docs/contracts.md, "Fencing"), without its time stamp. ``lease``
        is the current grant's: a worker that restarts grants to no other manager for twice that long."""
        held = self._current(self.clock())
        return {"highest_term": self._highest,
                "holder": held.manager if held is not None else None,
                "term": held.term if held is not None else 0,
                "lease": held.lease if held is not None else 0.0}


# -- the grant book (manager side) -------------------------------------------------------


class GrantBook:
    """One manager's candidacy and the grants the members sent it."""

    def __init__(self, name: str, managers: t.Sequence[str], members: t.Sequence[str],
                 lease: float = DEFAULT_LEASE, drift: float = DEFAULT_DRIFT, highest_term: int = 0,
                 clock: t.Callable[[], float] = time.monotonic,
                 rng: t.Callable[[], float] = random.random) -> None:
        if name not in managers:
            raise LeadershipError("manager %s is not one of the managers (%s)" % (name, ", ".join(managers)))
        if not 0 < lease <= MAX_LEASE:
            raise LeadershipError("lease must be in (0, %g] seconds, got %r" % (MAX_LEASE, lease))
        if not 0 <= drift < 0.5:
            raise LeadershipError("drift must be in [0, 0.5), got %r" % (drift,))
        self.name = name
        self.index = list(managers).index(name)
        self.managers = len(managers)
        self.members = frozenset(members) | {name}
        self.lease = float(lease)
        self.drift = float(drift)
        self.clock = clock
        self.rng = rng
        self._highest = highest_term
        self.term = 0  # 0: not standing
        self._candidate_until = 0.0
        # a manager after the first starts one lease late, so that at a start of all managers at once
        # the witnesses have heard the first one's asks and leave their grants to it (Witness.on_ask)
        self._withdrawn_until = clock() + self.lease if self.index else 0.0
        self._no_majority_since: t.Optional[float] = None
        self._n = 0
        self._sent: t.Dict[int, float] = {}  # ask number -> when its answer was sent
        self._sent_order: t.Deque[int] = collections.deque()
        self._split_checked = 0.0
        self._grants: t.Dict[str, float] = {}  # member -> until when its grant counts here
        self._holders: t.Dict[str, t.Optional[str]] = {}  # member -> the manager it says it grants to

    @property
    def highest_term(self) -> int:
        return max(self._highest, self.term)

    @property
    def needed(self) -> int:
        """Grants from other members needed besides this manager's own."""
        return majority(len(self.members)) - 1

    # -- candidacy ----------------------------------------------------------------------

    def set_candidate(self, ttl: float) -> None:
        """Stand (or keep standing) for ``ttl`` seconds more; the reconcile daemon renews it."""
        now = self.clock()
        self._candidate_until = now + ttl
        if self.term == 0 and now >= self._withdrawn_until:
            self._stand()

    def withdraw(self) -> None:
        self._candidate_until = 0.0
        self._stop()

    def _stand(self) -> None:
        self.term = next_term(self._highest, self.index, self.managers)
        self._highest = self.term
        self._forget()

    def _reterm(self) -> None:
        """A leader that hears of a higher term (a member granted it to another manager that had no
        majority, say after a restart) moves above it, so that no node fences it out, and keeps leading:
        the grants it holds are exclusive to it whatever their term, and count until they lapse, while
        the members grant the new term with their next beats."""
        self.term = next_term(self._highest, self.index, self.managers)
        self._highest = self.term

    def _stop(self) -> None:
        self.term = 0
        self._forget()

    def _forget(self) -> None:
        self._grants.clear()
        self._sent.clear()
        self._sent_order.clear()
        self._no_majority_since = None

    def candidate(self) -> bool:
        """Standing now; lapses when the daemon stops renewing, and after a split vote (see _split)."""
        now = self.clock()
        if self.term and now >= self._candidate_until:
            self._stop()
        if self.term:
            if now - self._split_checked >= 0.25:
                self._split_checked = now  # a few times a second is enough, and keeps a beat's cost flat
                self._split(now)
            if self.term and self.term < self._highest and self._leader_until(now) <= now and not self._other_leads():
                # Another term is ahead: the next asks carry a higher one. Not while another manager leads:
                # the leader moves above every term it hears of, and a follower that kept climbing too would
                # race it, term after term, on the grants of the members it holds.
                self._stand()
        elif now < self._candidate_until and now >= self._withdrawn_until:
            self._stand()
        return bool(self.term)

    def _split(self, now: float) -> None:
        """After a split vote (no manager holds a majority as the members tell it), a manager after
        the first that has had no majority for two leases steps aside for one to two leases."""
        if self._leader_until(now) > now or self._other_leads():
            self._no_majority_since = None
            return
        if self._no_majority_since is None:
            self._no_majority_since = now
        elif self.index > 0 and now - self._no_majority_since >= 2 * self.lease:
            self._withdrawn_until = now + self.lease * (1 + self.rng())
            self._stop()

    def _other_leads(self) -> bool:
        """Whether the members' beats name one other manager as the holder of a majority of grants."""
        counts: t.Dict[str, int] = {}
        for holder in self._holders.values():
            if holder is not None and holder != self.name:
                counts[holder] = counts.get(holder, 0) + 1
        return any(count + 1 >= majority(len(self.members)) for count in counts.values())

    # -- the exchange --------------------------------------------------------------------

    def next_ask(self) -> t.Optional[Ask]:
        """The ask for the next beat answer, or None when not standing; remembers when it goes out."""
        if not self.candidate():
            return None
        now = self.clock()
        self._n += 1
        self._sent[self._n] = now
        self._sent_order.append(self._n)
        horizon = now - self.lease
        while self._sent_order and self._sent[self._sent_order[0]] < horizon:
            # bounded: an ask older than one lease can grant nothing any more
            del self._sent[self._sent_order.popleft()]
        return Ask(self.name, self.term, self._n, self.lease, self.index)

    def on_beat(self, member: str, beat: Beat) -> None:
        """Take note of a member's beat: its highest term, and its grant to this manager."""
        if member not in self.members or member == self.name:
            return
        self._holders[member] = beat.holder
        if beat.term > self._highest:
            self._highest = beat.term
            if self.term and self.is_leader():
                self._reterm()
            # else candidate() stands again above it, unless another manager leads (see there)
        grant = beat.grant
        if grant is None or not self.term or grant.term != self.term:
            return
        sent = self._sent.get(grant.ask)
        if sent is None:
            return
        until = sent + self.lease * (1 - self.drift)
        if until > self._grants.get(member, 0.0):
            self._grants[member] = until

    # -- the outcome ---------------------------------------------------------------------

    def _leader_until(self, now: float) -> float:
        if not self.term:
            return 0.0
        if self.managers == 1:
            return float("inf")
        live = sorted((until for until in self._grants.values() if until > now), reverse=True)
        needed = self.needed
        if needed == 0:
            return float("inf")
        return live[needed - 1] if len(live) >= needed else 0.0

    def leader_until(self) -> float:
        """When the majority lapses without renewals (monotonic); 0 when not the leader."""
        now = self.clock()
        until = self._leader_until(now) if self.candidate() else 0.0
        return until if until > now else 0.0

    def is_leader(self) -> bool:
        return self.leader_until() > 0.0

    def status(self) -> t.Dict[str, t.Any]:
        """The answer of /leadership (docs/contracts.md, "The CoAP API")."""
        now = self.clock()
        until = self.leader_until()
        remaining = min(until - now, 3600.0) if until else 0.0
        return {
            "manager": self.name,
            "candidate": bool(self.term),
            "term": self.term,
            "leader": bool(until),
            "lease_remaining": round(remaining, 3),
            "granted_by": sorted(member for member, grant in self._grants.items() if grant > now),
            "members": len(self.members),
            "majority": majority(len(self.members)),
            "highest_term": self.highest_term,
        }
