# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which manager acts, from probes of the managers before it (the probes are a table here)."""

from __future__ import annotations

import asyncio
import typing as t

import pytest

from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.election import Election, RoleChange

M1, M2, M3 = "coap://m1:5683", "coap://m2:5683", "coap://m3:5683"


def probes(answers: t.Mapping[str, t.Optional[str]]) -> t.Callable[[str], t.Awaitable[t.Optional[str]]]:
    async def probe(uri: str) -> t.Optional[str]:
        return answers[uri]
    return probe


def round_of(election: Election, answers: t.Mapping[str, t.Optional[str]]) -> t.Optional[RoleChange]:
    return asyncio.run(election.probe_round(probes(answers)))


@pytest.mark.parametrize("managers, index, manager, role, peers", [
    ([], None, "coap://[::1]:5683", "active", []),
    ([M1, M2, M3], 0, M1, "active", []),
    ([M1, M2, M3], 2, M3, "passive", [M1, M2]),
])
def test_the_first_manager_starts_active_the_others_passive(managers, index, manager, role, peers):
    election = Election(managers, index, "coap://[::1]:5683", 2)
    assert (election.manager, election.role, [peer.uri for peer in election.peers]) == (manager, role, peers)
    assert election.active_peer() == (peers[0] if peers else manager)


def test_active_after_every_earlier_manager_failed_probe_failures_times_and_passive_after_one_answer():
    election = Election([M1, M2, M3], 2, M3, 2)
    assert round_of(election, {M1: "no answer within 2 s", M2: None}) is None
    assert election.peer_states() == {M1: "up", M2: "up"} and election.undecided()
    assert round_of(election, {M1: "no answer within 2 s", M2: None}) is None
    assert election.peer_states() == {M1: "down", M2: "up"} and election.active_peer() == M2
    assert round_of(election, {M1: "Connection refused", M2: "no answer within 2 s"}) is None
    assert election.role == "passive" and election.peers[0].last_error == "Connection refused"
    change = round_of(election, {M1: "Connection refused", M2: "no answer within 2 s"})
    assert change == RoleChange(
        "passive", "active", "became active: %s, %s stopped answering" % (M1, M2),
        "became active: %s, %s stopped answering; this manager %s is now ACTIVE" % (M1, M2, M3))
    assert election.active_peer() == M3 and not election.undecided()
    change = round_of(election, {M1: "Connection refused", M2: None})
    assert change == RoleChange("active", "passive", "manager %s answers again" % M2,
                                "manager %s answers again; this manager %s goes PASSIVE" % (M2, M3))
    assert election.peer_states() == {M1: "down", M2: "up"}


@pytest.mark.parametrize("probe_failures, failed_rounds, down", [(1, 1, True), (2, 1, False), (3, 2, False),
                                                                 (3, 3, True)])
def test_a_peer_is_down_after_probe_failures_in_a_row(probe_failures, failed_rounds, down):
    election = Election([M1, M2], 1, M2, probe_failures)
    for _round in range(failed_rounds):
        round_of(election, {M1: "no answer within 2 s"})
    assert (election.peers[0].up, election.role) == (not down, "active" if down else "passive")
