# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The leadership lease: messages, the witness, the grant book, and a simulated
cluster with partitions, loss and clock drift in which two managers never lead at once."""

from __future__ import annotations

import random
import typing as t

import pytest

from ansible_collections.nanoedge.core.plugins.module_utils import _leadership as L

ETAG = "0123456789abcdef"


class Clock:
    def __init__(self, start: float = 100.0, rate: float = 1.0) -> None:
        self.real = 0.0
        self.start = start
        self.rate = rate

    def __call__(self) -> float:
        return self.start + self.real * self.rate

    def advance(self, seconds: float) -> None:
        self.real += seconds


@pytest.mark.parametrize("members, expected", [(1, 1), (2, 2), (3, 2), (4, 3), (7, 4), (8, 5)])
def test_majority(members: int, expected: int) -> None:
    assert L.majority(members) == expected


def test_majority_of_nobody() -> None:
    with pytest.raises(L.LeadershipError, match="members must be >= 1, got 0"):
        L.majority(0)


@pytest.mark.parametrize("highest, index, managers, expected", [
    (0, 0, 1, 1), (5, 0, 1, 6), (0, 0, 2, 2), (0, 1, 2, 1), (7, 0, 2, 8), (7, 1, 2, 9),
    (8, 1, 2, 9), (9, 2, 3, 11), (10, 2, 3, 11), (11, 2, 3, 14),
])
def test_next_term(highest: int, index: int, managers: int, expected: int) -> None:
    term = L.next_term(highest, index, managers)
    assert term == expected
    assert term % managers == index and term > highest


def test_next_term_bad_index() -> None:
    with pytest.raises(L.LeadershipError, match="manager index 2 is not within 0..1"):
        L.next_term(0, 2, 2)


# -- messages -------------------------------------------------------------------------

@pytest.mark.parametrize("beat", [
    L.Beat(ETAG, 0),
    L.Beat(ETAG, 7, L.Grant(7, 12), "m1"),
    L.Beat(ETAG, 2 ** 53, None, "w-1.a"),
])
def test_beat_round_trip(beat: L.Beat) -> None:
    assert L.parse_beat(L.beat_payload(beat)) == beat


@pytest.mark.parametrize("payload, message", [
    ([], "beat must be an object, got list"),
    ({"etag": ETAG}, "beat lacks term"),
    ({"etag": ETAG, "term": 1, "extra": 1}, "beat has unknown key(s) extra"),
    ({"etag": "0123", "term": 1}, "beat.etag must be 16 lowercase hex digits, got '0123'"),
    ({"etag": ETAG.upper(), "term": 1}, "beat.etag must be 16 lowercase hex digits"),
    ({"etag": ETAG, "term": -1}, "beat.term must be an integer from 0 to 2**53, got -1"),
    ({"etag": ETAG, "term": True}, "beat.term must be an integer from 0 to 2**53, got True"),
    ({"etag": ETAG, "term": 2 ** 53 + 1}, "beat.term must be an integer"),
    ({"etag": ETAG, "term": 1.5}, "beat.term must be an integer"),
    ({"etag": ETAG, "term": 1, "grant": [7, 1]}, "beat.grant must be an object, got list"),
    ({"etag": ETAG, "term": 1, "grant": {"term": 0, "ask": 1}}, "beat.grant.term must be an integer from 1"),
    ({"etag": ETAG, "term": 1, "grant": {"term": 1}}, "beat.grant lacks ask"),
    ({"etag": ETAG, "term": 1, "holder": "no spaces"}, "beat.holder must be a node name, got 'no spaces'"),
    ({"etag": ETAG, "term": 1, "holder": ""}, "beat.holder must be a node name"),
])
def test_beat_refused(payload: t.Any, message: str) -> None:
    with pytest.raises(L.LeadershipError) as caught:
        L.parse_beat(payload)
    assert str(caught.value).startswith(message)


def test_answer_round_trip() -> None:
    ask = L.Ask("m2", 9, 13, 4.0, 1)
    assert L.parse_answer(L.answer_payload("stale", ask)) == ("stale", ask)
    assert L.parse_answer(L.answer_payload("current", None)) == ("current", None)


@pytest.mark.parametrize("payload, message", [
    ("x", "answer must be an object, got str"),
    ({"profile": "gone"}, "answer.profile must be one of current, stale, missing, got 'gone'"),
    ({"profile": "current", "ask": {"manager": "m1", "term": 1, "n": 1, "lease": 0, "priority": 0}},
     "answer.ask.lease must be a number of seconds in (0, 60]"),
    ({"profile": "current", "ask": {"manager": "m1", "term": 1, "n": 1, "lease": 61, "priority": 0}},
     "answer.ask.lease must be a number of seconds in (0, 60]"),
    ({"profile": "current", "ask": {"manager": "m1", "term": 1, "n": 1, "lease": 4}}, "answer.ask lacks priority"),
    ({"profile": "current", "ask": {"manager": "m 1", "term": 1, "n": 1, "lease": 4, "priority": 0}},
     "answer.ask.manager must be a node name"),
])
def test_answer_refused(payload: t.Any, message: str) -> None:
    with pytest.raises(L.LeadershipError) as caught:
        L.parse_answer(payload)
    assert str(caught.value).startswith(message)


def test_answer_payload_refuses_unknown_state() -> None:
    with pytest.raises(L.LeadershipError, match="profile must be one of"):
        L.answer_payload("fresh", None)


# -- the witness ------------------------------------------------------------------------

def ask(manager: str = "m1", term: int = 2, n: int = 1, lease: float = 4.0, priority: int = 0) -> L.Ask:
    return L.Ask(manager, term, n, lease, priority)


def test_witness_grants_renews_and_carries_the_latest_ask() -> None:
    clock = Clock()
    witness = L.Witness(clock=clock)
    assert witness.on_ask("r1", ask(n=1)) == "granted"
    assert witness.grant_for("r1") == L.Grant(2, 1)
    assert witness.grant_for("r2") is None
    clock.advance(1)
    assert witness.on_ask("r1", ask(n=2)) == "renewed"
    assert witness.grant_for("r1") == L.Grant(2, 2)
    assert witness.snapshot() == {"highest_term": 2, "holder": "m1", "term": 2, "lease": 4.0}


def test_witness_holds_one_grant_until_it_expires() -> None:
    clock = Clock()
    witness = L.Witness(clock=clock)
    witness.on_ask("r1", ask())
    clock.advance(3.9)
    assert witness.on_ask("r2", ask("m2", 3, priority=1)) == "refused: granted to m1 (term 2) for 0.1 s more"
    clock.advance(0.1)
    assert witness.grant_for("r1") is None
    assert witness.holder is None
    assert witness.on_ask("r2", ask("m2", 3, priority=1)) == "granted"
    assert witness.snapshot() == {"highest_term": 3, "holder": "m2", "term": 3, "lease": 4.0}


def test_witness_refuses_a_stale_term() -> None:
    witness = L.Witness(highest_term=9, clock=Clock())
    assert witness.on_ask("r1", ask(term=8)) == "refused: term 8 is below the highest granted, 9"
    assert witness.on_ask("r1", ask(term=10)) == "granted"


def test_witness_new_term_from_its_holder_is_a_grant() -> None:
    witness = L.Witness(clock=Clock())
    witness.on_ask("r1", ask(term=2))
    assert witness.on_ask("r1", ask(term=4, n=7)) == "granted"
    assert witness.grant_for("r1") == L.Grant(4, 7)


def test_witness_leaves_a_free_grant_to_a_preferred_manager_that_asked_lately() -> None:
    clock = Clock()
    witness = L.Witness(priority_window=2.0, clock=clock)
    assert witness.on_ask("r1", ask("m1", 2, priority=0, lease=1.0)) == "granted"
    clock.advance(1.0)  # m1's grant has run out, but m1 asked 1 s ago
    assert witness.on_ask("r2", ask("m2", 3, priority=1)) == "refused: r1, preferred, asked 1.0 s ago"
    clock.advance(1.5)  # m1 has been silent for longer than the window
    assert witness.on_ask("r2", ask("m2", 3, priority=1)) == "granted"


def test_witness_does_not_wait_for_a_preferred_manager_with_a_stale_term() -> None:
    clock = Clock()
    witness = L.Witness(highest_term=5, clock=clock)
    witness.on_ask("r1", ask("m1", 4, priority=0))
    assert witness.on_ask("r2", ask("m2", 7, priority=1)) == "granted"


# -- the grant book ---------------------------------------------------------------------

MANAGERS = ["m1", "m2"]
WORKERS = ["w1", "w2", "w3", "w4", "w5"]


def book(name: str = "m1", clock: t.Optional[Clock] = None, **kwargs: t.Any) -> L.GrantBook:
    return L.GrantBook(name, MANAGERS, MANAGERS + WORKERS, clock=clock or Clock(), **kwargs)


def grant_from(b: L.GrantBook, workers: t.Sequence[str], answered: L.Ask) -> None:
    for worker in workers:
        b.on_beat(worker, L.Beat(ETAG, answered.term, L.Grant(answered.term, answered.n)))


def test_book_not_standing_asks_nothing() -> None:
    b = book()
    assert b.next_ask() is None
    assert b.status() == {"manager": "m1", "candidate": False, "term": 0, "leader": False, "lease_remaining": 0.0,
                          "granted_by": [], "members": 7, "majority": 4, "highest_term": 0}


def test_book_leads_with_a_majority_and_steps_down_before_the_witnesses_free_themselves() -> None:
    clock = Clock()
    b = book(clock=clock)
    b.set_candidate(3.0)
    first = b.next_ask()
    assert first == L.Ask("m1", 2, 1, 4.0, 0)
    clock.advance(0.01)
    grant_from(b, ["w1", "w2"], first)
    assert not b.is_leader()
    grant_from(b, ["w3"], first)
    assert b.is_leader()
    status = b.status()
    assert status["leader"] and status["granted_by"] == ["w1", "w2", "w3"] and status["term"] == 2
    assert status["lease_remaining"] == pytest.approx(4.0 * 0.95 - 0.01)
    b.set_candidate(10.0)
    clock.advance(3.78)
    assert b.is_leader()
    clock.advance(0.02)
    # 3.80 s after the ask went out: the witnesses' 4 s (counted from later) still run
    assert not b.is_leader()


def test_book_single_manager_leads_alone() -> None:
    b = L.GrantBook("m1", ["m1"], ["m1"] + WORKERS, clock=Clock())
    b.set_candidate(3.0)
    assert b.is_leader() and b.term == 1


def test_book_candidacy_lapses_with_its_ttl() -> None:
    clock = Clock()
    b = L.GrantBook("m1", ["m1"], ["m1"], clock=clock)
    b.set_candidate(3.0)
    clock.advance(3.0)
    assert not b.is_leader() and b.next_ask() is None
    b.set_candidate(3.0)
    assert b.is_leader() and b.term == 2  # a new candidacy takes a new term


def test_book_ignores_grants_of_other_terms_unknown_asks_and_non_members() -> None:
    clock = Clock()
    b = book(clock=clock)
    b.set_candidate(30.0)
    sent = b.next_ask()
    b.on_beat("w1", L.Beat(ETAG, 2, L.Grant(4, sent.n)))
    b.on_beat("w2", L.Beat(ETAG, 2, L.Grant(2, 99)))
    b.on_beat("intruder", L.Beat(ETAG, 2, L.Grant(2, sent.n)))
    b.on_beat("m1", L.Beat(ETAG, 2, L.Grant(2, sent.n)))
    assert b.status()["granted_by"] == []


def test_book_a_later_manager_stands_one_lease_after_its_start() -> None:
    clock = Clock()
    b = book("m2", clock=clock)
    b.set_candidate(30.0)
    assert b.next_ask() is None
    clock.advance(4.0)
    assert b.next_ask() == L.Ask("m2", 1, 1, 4.0, 1)


def test_book_bumps_its_term_when_a_member_has_seen_a_higher_one() -> None:
    clock = Clock()
    b = book("m2", clock=clock)
    clock.advance(4.0)
    b.set_candidate(30.0)
    assert b.term == 1
    b.on_beat("w1", L.Beat(ETAG, 8, None, "m1"))
    assert b.term == 9 and b.next_ask().term == 9
    assert b.highest_term == 9


def test_book_a_leader_moves_above_a_higher_term_and_keeps_leading() -> None:
    clock = Clock()
    b = book("m2", clock=clock)
    clock.advance(4.0)
    b.set_candidate(30.0)
    first = b.next_ask()
    grant_from(b, ["w1", "w3", "w4"], first)
    assert b.is_leader() and b.term == 1
    # w2 came back and granted term 6 to m1, which has no majority: the nodes that saw 6 would refuse m2's
    # runs at term 1, so m2 moves to 7, still leading on the grants it holds
    b.on_beat("w2", L.Beat(ETAG, 6, None, "m1"))
    assert b.term == 7 and b.is_leader() and b.status()["granted_by"] == ["w1", "w3", "w4"]
    clock.advance(1.0)
    renewal = b.next_ask()
    assert renewal.term == 7
    grant_from(b, ["w1", "w3", "w4"], renewal)
    clock.advance(3.5)  # the grants of term 1 have lapsed; those of term 7 carry the lead
    assert b.is_leader() and b.status()["term"] == 7 and b.highest_term == 7


def test_book_a_follower_does_not_climb_above_a_leader() -> None:
    clock = Clock()
    b = book("m2", clock=clock)
    clock.advance(4.0)
    b.set_candidate(30.0)
    assert b.term == 1
    for worker in ["w1", "w2", "w3"]:  # a majority grants m1, which leads
        b.on_beat(worker, L.Beat(ETAG, 0, None, "m1"))
    for worker in ["w1", "w2", "w3"]:  # at term 8
        b.on_beat(worker, L.Beat(ETAG, 8, None, "m1"))
    assert b.term == 1 and b.highest_term == 8 and b.next_ask().term == 1
    for worker in ["w1", "w2", "w3"]:  # m1's grants lapsed: m2 stands above the highest term it heard of
        b.on_beat(worker, L.Beat(ETAG, 8, None, None))
    assert b.next_ask().term == 9


def test_book_asks_are_forgotten_after_one_lease() -> None:
    clock = Clock()
    b = book(clock=clock)
    b.set_candidate(600.0)
    old = b.next_ask()
    clock.advance(4.1)
    b.next_ask()
    grant_from(b, ["w1", "w2", "w3"], old)
    assert not b.is_leader()
    assert len(b._sent) == 1  # pylint: disable=protected-access


def stand_for(b: L.GrantBook, clock: Clock, seconds: float, holders: t.Mapping[str, str]) -> None:
    for _tick in range(int(seconds / 0.25)):
        b.next_ask()
        for worker, holder in holders.items():
            b.on_beat(worker, L.Beat(ETAG, 0, None, holder))
        clock.advance(0.25)


def test_book_second_manager_steps_aside_after_a_split_vote() -> None:
    clock = Clock()
    b = book("m2", clock=clock, rng=lambda: 0.5)
    clock.advance(4.0)
    b.set_candidate(600.0)
    stand_for(b, clock, 8.25, {"w1": "m1", "w2": "m1", "w3": "m2", "w4": "m2"})
    assert b.next_ask() is None and b.term == 0
    clock.advance(6.0)  # withdrawn for lease * 1.5
    assert b.next_ask() is not None and b.term == 3


def test_book_second_manager_keeps_standing_while_another_leads() -> None:
    clock = Clock()
    b = book("m2", clock=clock)
    clock.advance(4.0)
    b.set_candidate(600.0)
    stand_for(b, clock, 20.0, {"w1": "m1", "w2": "m1", "w3": "m1", "w4": "m2"})
    assert b.next_ask() is not None and b.term == 1  # ready to take over the moment m1's grants lapse


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "m3"}, "manager m3 is not one of the managers (m1, m2)"),
    ({"lease": 0}, "lease must be in (0, 60] seconds, got 0"),
    ({"drift": 0.5}, "drift must be in [0, 0.5), got 0.5"),
])
def test_book_refuses_bad_settings(kwargs: t.Dict[str, t.Any], message: str) -> None:
    name = kwargs.pop("name", "m1")
    with pytest.raises(L.LeadershipError) as caught:
        L.GrantBook(name, MANAGERS, MANAGERS + WORKERS, **kwargs)
    assert str(caught.value) == message


# -- a simulated cluster ------------------------------------------------------------------

class Cluster:
    """Two managers and five workers on one real time line, each with a clock of its own rate."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.clocks = {name: Clock(start=self.rng.uniform(0, 1000), rate=1 + self.rng.uniform(-0.02, 0.02))
                       for name in MANAGERS + WORKERS}
        self.books = {m: L.GrantBook(m, MANAGERS, MANAGERS + WORKERS, clock=self.clocks[m], rng=self.rng.random)
                      for m in MANAGERS}
        self.witnesses = {w: L.Witness(priority_window=2.0, clock=self.clocks[w]) for w in WORKERS}
        self.cut: t.Set[t.Tuple[str, str]] = set()
        self.in_flight: t.List[t.Tuple[float, str, str, t.Any]] = []
        self.now = 0.0
        self.terms_led: t.Dict[int, str] = {}

    def reaches(self, a: str, b: str) -> bool:
        return (a, b) not in self.cut and (b, a) not in self.cut

    def send(self, src: str, dst: str, what: t.Any) -> None:
        if self.reaches(src, dst) and self.rng.random() > 0.1:  # 10 % of messages are lost
            self.in_flight.append((self.now + self.rng.uniform(0.001, 0.3), src, dst, what))

    def step(self, dt: float) -> None:
        self.now += dt
        for clock in self.clocks.values():
            clock.advance(dt)
        due = [m for m in self.in_flight if m[0] <= self.now]
        self.in_flight = [m for m in self.in_flight if m[0] > self.now]
        for _when, src, dst, what in sorted(due, key=lambda m: m[0]):
            if dst in self.books:  # a beat reaches a manager: it answers with an ask
                self.books[dst].on_beat(src, what)
                self.send(dst, src, self.books[dst].next_ask())
            elif what is not None:  # an answer reaches a worker
                if self.witnesses[dst].on_ask(src, what) == "granted":
                    self.beat(dst, src)

    def beat(self, worker: str, manager: str) -> None:
        witness = self.witnesses[worker]
        self.send(worker, manager, L.Beat(ETAG, witness.highest_term, witness.grant_for(manager), witness.holder))

    def tick(self) -> None:
        for manager, b in self.books.items():
            if self.rng.random() > 0.02:  # the daemon renews its candidacy
                b.set_candidate(3.0)
            if b.is_leader():
                self.terms_led.setdefault(b.term, manager)
                assert self.terms_led[b.term] == manager
        for worker in WORKERS:
            for manager in MANAGERS:
                self.beat(worker, manager)

    def leaders(self) -> t.List[str]:
        return [m for m, b in self.books.items() if b.is_leader()]


@pytest.mark.parametrize("seed", range(12))
def test_never_two_leaders(seed: int) -> None:
    cluster = Cluster(seed)
    led = set()
    for second in range(240):
        if second % 30 == 0:  # a new partition every 30 s
            pairs = [(a, b) for a in MANAGERS for b in MANAGERS + WORKERS if a != b]
            cluster.cut = set(cluster.rng.sample(pairs, cluster.rng.randint(0, 6)))
        cluster.tick()
        for _tenth in range(10):
            cluster.step(0.1)
            leaders = cluster.leaders()
            assert len(leaders) <= 1, (second, leaders)
            led.update(leaders)
    assert led  # the cluster was not simply leaderless
    # healed and left alone, the leader ends up at a term no witness is above: no node fences it out
    cluster.cut = set()
    for _second in range(20):
        cluster.tick()
        for _tenth in range(10):
            cluster.step(0.1)
    [leader] = cluster.leaders()
    assert cluster.books[leader].term >= max(w.highest_term for w in cluster.witnesses.values())


def test_failover_when_the_leader_dies() -> None:
    cluster = Cluster(99)
    for _second in range(10):
        cluster.tick()
        for _tenth in range(10):
            cluster.step(0.1)
    assert cluster.leaders() == ["m1"]
    cluster.cut = {("m1", other) for other in ["m2"] + WORKERS}
    for tenth in range(1, 121):
        if tenth % 10 == 1:
            cluster.tick()
        cluster.step(0.1)
        if cluster.leaders() == ["m2"]:
            break
    assert cluster.leaders() == ["m2"]
    assert tenth <= 90, "m2 led %.1f s after m1 was cut off" % (tenth / 10)
    assert cluster.books["m2"].term > cluster.books["m1"].term
