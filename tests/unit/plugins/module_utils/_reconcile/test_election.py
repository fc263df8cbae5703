# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which manager acts: the leadership answers and the clock (the answers are tables here)."""

from __future__ import annotations

import logging
import typing as t

import pytest

from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.election import (
    Election, RoleChange, Status, parse_status,
)

M1 = "coap://m1:5683"


def status(**changes: t.Any) -> t.Dict[str, t.Any]:
    """A leader's /leadership answer (docs/contracts.md, "The CoAP API") with ``changes``."""
    answer = {"manager": "m1", "candidate": True, "term": 9, "leader": True, "lease_remaining": 2.81,
              "granted_by": ["w1", "w2", "w3"], "members": 7, "majority": 4, "highest_term": 9}
    answer.update(changes)
    return answer


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(ttl: float = 3.0) -> t.Tuple[Election, Clock]:
    clock = Clock()
    return Election(M1, ttl, clock), clock


def test_a_status_is_parsed_with_its_types():
    assert parse_status(status(lease_remaining=3)) == Status("m1", True, 9, True, 3.0, ["w1", "w2", "w3"], 7, 4, 9)


@pytest.mark.parametrize("answer, message", [
    ([], "the status must be an object, got list"),
    ({"manager": "m1"}, "the status lacks candidate"),
    (status(term="9"), "status.term has the wrong type: '9'"),
    (status(term=True), "status.term has the wrong type: True"),
    (status(leader=1), "status.leader has the wrong type: 1"),
    (status(lease_remaining=None), "status.lease_remaining has the wrong type: None"),
    (status(granted_by="w1"), "status.granted_by has the wrong type: 'w1'"),
    (status(granted_by=["w1", 2]), "status.granted_by must list member names, got ['w1', 2]"),
])
def test_a_malformed_status_names_the_field(answer, message):
    with pytest.raises(ValueError) as caught:
        parse_status(answer)
    assert str(caught.value) == message


def test_negative_numbers_are_refused():
    with pytest.raises(ValueError, match="must not be negative"):
        parse_status(status(lease_remaining=-1))


def test_active_only_while_the_lease_runs_counted_from_the_request_s_sending():
    election, clock = make()
    sent = clock.now
    clock.now += 0.4  # the answer comes 0.4 s after the request left
    change = election.answered(sent, status(lease_remaining=2.5))
    assert change == RoleChange("passive", "active", 9, ["w1", "w2", "w3"], 4, 7,
                                "leader at term 9, granted by w1, w2, w3 (majority 4 of 7 members)",
                                "leader at term 9, granted by w1, w2, w3 (majority 4 of 7 members);"
                                " this manager coap://m1:5683 is now ACTIVE")
    assert (election.active_until, election.lease_remaining(), election.fence()) == (102.5, 2.1, (9, "m1"))
    clock.now = 102.49
    assert election.tick() is None and election.active()
    clock.now = 102.5
    change = election.tick()
    assert (change.previous, change.role, change.term) == ("active", "passive", 9)
    assert change.why == "the lease ran out without a renewal (no leader answer since 2.5 s)"
    assert change.line.endswith("; this manager coap://m1:5683 goes PASSIVE (held term 9)")
    assert election.fence() is None and not election.active()


@pytest.mark.parametrize("ttl, remaining, until", [
    (3.0, 2.81, 102.81),
    (3.0, 3600.0, 103.0),  # one manager: the book leads while the candidacy lasts, which the TTL bounds
    (1.5, 2.0, 101.5),
])
def test_the_lease_never_outlasts_the_candidacy(ttl, remaining, until):
    election, clock = make(ttl)
    election.answered(clock.now, status(lease_remaining=remaining))
    assert election.active_until == until


def test_renewals_extend_the_lease_and_an_older_answer_arriving_late_is_ignored():
    election, clock = make()
    election.answered(100.0, status(lease_remaining=2.0))
    clock.now = 101.0
    assert election.answered(101.0, status(lease_remaining=2.0)) is None
    assert election.active_until == 103.0
    # the answer to a request sent at 100.5 overtaken by the one sent at 101.0
    assert election.answered(100.5, status(leader=False, lease_remaining=0)) is None
    assert election.failed(100.5, "answered 5.03 Service Unavailable") is None
    assert election.active()


@pytest.mark.parametrize("how, why", [
    ("not leader", "the registry says m1 is not the leader"),
    ("garbage", "the registry's answer is unusable: malformed status (the status lacks leader)"),
    ("error", "the registry's answer is unusable: /leadership answered 4.01 Unauthorized: "),
])
def test_an_answer_that_is_not_a_lease_steps_down_at_once(how, why):
    election, clock = make()
    election.answered(clock.now, status())
    clock.now += 1.0
    if how == "not leader":
        change = election.answered(clock.now, status(leader=False, lease_remaining=0, granted_by=["w1"]))
    elif how == "garbage":
        change = election.answered(clock.now, {"manager": "m1", "candidate": True, "term": 9})
    else:
        change = election.failed(clock.now, "/leadership answered 4.01 Unauthorized: ")
    assert (change.role, change.why, change.term) == ("passive", why, 9)
    assert not election.active()


def test_no_answer_leaves_the_lease_to_the_clock_and_an_outage_is_logged_once(caplog):
    election, clock = make()
    election.answered(clock.now, status(lease_remaining=2.0))
    with caplog.at_level(logging.INFO, logger="nanoedge.reconcile"):
        for _second in range(3):
            clock.now += 0.5
            election.unanswered("no answer to /leadership within 3 s")
            assert election.tick() is None
        clock.now += 0.5
        assert election.tick().role == "passive"
        election.unanswered("/leadership: Connection refused")
        election.answered(clock.now, status())
    assert [record.getMessage() for record in caplog.records] == [
        "leadership: no answer to /leadership within 3 s; the lease is not renewed until the registry answers",
        "leadership: the registry answers again"]
    assert election.problem is None and election.active()


def test_the_single_manager_s_answer_needs_no_grant():
    election, clock = make()
    change = election.answered(clock.now, status(granted_by=[], members=6, majority=4, lease_remaining=3600.0, term=1))
    assert change.why == "leader at term 1, granted by no other member (majority 4 of 6 members)"
    assert election.fence() == (1, "m1")


def test_the_state_file_fields():
    election, clock = make()
    assert election.snapshot() == {
        "term": 0, "leader": False, "lease_remaining": 0.0, "granted_by": [], "majority": None, "members": None,
        "candidate": False, "candidate_term": 0, "highest_term": None, "name": None, "lease_error": None}
    election.answered(clock.now, status())
    clock.now += 1.0
    assert election.snapshot() == {
        "term": 9, "leader": True, "lease_remaining": 1.81, "granted_by": ["w1", "w2", "w3"], "majority": 4,
        "members": 7, "candidate": True, "candidate_term": 9, "highest_term": 9, "name": "m1", "lease_error": None}
    # a candidate without a majority at a new term: the term held last stays what runs carried
    election.answered(clock.now, status(leader=False, term=11, lease_remaining=0, granted_by=["w1"], highest_term=11))
    snapshot = election.snapshot()
    assert (snapshot["term"], snapshot["candidate_term"], snapshot["leader"]) == (9, 11, False)


def test_a_new_term_while_staying_the_leader_is_a_decision():
    election, clock = make()
    first = election.answered(clock(), status(term=9))
    assert (first.previous, first.role, first.term) == ("passive", "active", 9)
    clock.now += 1
    assert election.answered(clock(), status(term=9)) is None
    clock.now += 1
    change = election.answered(clock(), status(term=11, granted_by=["w2", "w4", "w5"]))
    assert change == RoleChange("active", "active", 11, ["w2", "w4", "w5"], 4, 7,
                                "leader at a new term 11 (was 9), granted by w2, w4, w5",
                                "leader at a new term 11 (was 9), granted by w2, w4, w5; this manager %s stays ACTIVE"
                                % M1)
    assert election.fence() == (11, "m1")
