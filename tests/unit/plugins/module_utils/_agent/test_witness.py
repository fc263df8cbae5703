# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The witness file: read at start, written atomically when the highest term or the holder changes,
never overwritten when broken; a worker that restarts while it held a grant grants nothing for a while."""

from __future__ import annotations

import json
import os
import stat

import pytest

from ansible_collections.nanoedge.core.plugins.module_utils._agent import witness
from ansible_collections.nanoedge.core.plugins.module_utils._leadership import Ask, Grant

ASK_M1 = Ask(manager="m1", term=6, n=3, lease=4.0, priority=0)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def read(path) -> dict:
    return json.loads(path.read_text())


@pytest.mark.parametrize("content, expected", [
    (None, (0, None)),
    ('{"highest_term": 9, "holder": "m1", "term": 9, "updated": "2026-12-05T19:00:00Z"}', (9, "m1")),
    ('{"highest_term": 4, "holder": null, "term": 0}', (4, None)),
])
def test_load(tmp_path, content, expected):
    path = tmp_path / "witness.json"
    if content is not None:
        path.write_text(content)
    assert witness.load(str(path)) == expected


@pytest.mark.parametrize("content, why", [
    ("{", "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
    ("[]", "highest_term must be an integer from 0 to 2**53, got None"),
    ('{"highest_term": -1}', "highest_term must be an integer from 0 to 2**53, got -1"),
    ('{"highest_term": true}', "highest_term must be an integer from 0 to 2**53, got True"),
    ('{"highest_term": "9"}', "highest_term must be an integer from 0 to 2**53, got '9'"),
    ('{"highest_term": 9, "holder": 3}', "holder must be a name or null, got 3"),
])
def test_corrupt_file(tmp_path, content, why):
    path = tmp_path / "witness.json"
    path.write_text(content)
    with pytest.raises(witness.WitnessFileError) as info:
        witness.load(str(path))
    assert str(info.value) == "witness file %s: %s" % (path, why)


def test_write_is_atomic_and_readable_by_all(tmp_path):
    path = tmp_path / "witness.json"
    witness.write(str(path), {"highest_term": 7, "holder": "m2", "term": 7}, clock=lambda: "2026-12-05T19:00:00Z")
    assert read(path) == {"highest_term": 7, "holder": "m2", "term": 7, "updated": "2026-12-05T19:00:00Z"}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert sorted(os.listdir(tmp_path)) == ["witness.json"]  # no temporary file left


def test_write_failure_names_the_file(tmp_path):
    path = tmp_path / "gone" / "witness.json"
    with pytest.raises(witness.WitnessFileError) as info:
        witness.write(str(path), {"highest_term": 1})
    assert str(info.value) == "witness file %s: No such file or directory" % path


def test_keeper_persists_a_grant_before_it_is_carried(tmp_path):
    clock = Clock()
    keeper = witness.WitnessKeeper(str(tmp_path), priority_window=2.0, clock=clock)
    assert keeper.persist() is True
    assert not (tmp_path / "witness.json").exists()  # nothing changed: nothing written
    assert keeper.on_ask("coap://m1", ASK_M1) == "granted"
    assert keeper.persist() is True
    assert {k: v for k, v in read(tmp_path / "witness.json").items() if k != "updated"} == {
        "highest_term": 6, "holder": "m1", "term": 6, "lease": ASK_M1.lease}
    assert keeper.witness.grant_for("coap://m1") == Grant(6, 3)
    before = (tmp_path / "witness.json").stat().st_mtime_ns
    assert keeper.on_ask("coap://m1", ASK_M1._replace(n=4)) == "renewed"
    assert keeper.persist() is True
    assert (tmp_path / "witness.json").stat().st_mtime_ns == before  # a renewal changes neither
    clock.now += 5.0  # the grant lapses: the holder is gone
    assert keeper.persist() is True
    assert read(tmp_path / "witness.json")["holder"] is None


def test_keeper_starts_from_the_file(tmp_path):
    (tmp_path / "witness.json").write_text('{"highest_term": 8, "holder": null, "term": 0}')
    keeper = witness.WitnessKeeper(str(tmp_path), priority_window=2.0, clock=Clock())
    assert keeper.witness.highest_term == 8
    assert keeper.on_ask("coap://m1", ASK_M1) == "refused: term 6 is below the highest granted, 8"


def test_keeper_quiet_after_a_restart_that_held_a_grant(tmp_path):
    (tmp_path / "witness.json").write_text('{"highest_term": 6, "holder": "m1", "term": 6}')
    clock = Clock()
    keeper = witness.WitnessKeeper(str(tmp_path), priority_window=2.0, clock=clock)
    ask = ASK_M1._replace(manager="m2", term=7)
    assert keeper.on_ask("coap://m2", ask) == "refused: restarted while granted to m1; a witness again in 8.0 s"
    clock.now += 8.0
    assert keeper.on_ask("coap://m2", ask) == "granted"


@pytest.mark.parametrize("lease, quiet", [("10", 20.0), ("2.5", 5.0), ("0", 8.0), ("true", 8.0), ('"x"', 8.0),
                                          ("61", 8.0)])
def test_keeper_quiet_lasts_two_of_the_held_grants_leases(tmp_path, lease, quiet):
    (tmp_path / "witness.json").write_text('{"highest_term": 6, "holder": "m1", "term": 6, "lease": %s}' % lease)
    clock = Clock()
    keeper = witness.WitnessKeeper(str(tmp_path), priority_window=2.0, clock=clock)
    ask = ASK_M1._replace(manager="m2", term=7)
    clock.now += quiet - 0.01
    assert keeper.on_ask("coap://m2", ask).startswith("refused: restarted while granted to m1")
    clock.now += 0.01
    assert keeper.on_ask("coap://m2", ask) == "granted"


def test_keeper_after_a_restart_grants_again_to_the_manager_it_held(tmp_path):
    (tmp_path / "witness.json").write_text('{"highest_term": 6, "holder": "m1", "term": 6}')
    keeper = witness.WitnessKeeper(str(tmp_path), priority_window=2.0, clock=Clock())
    assert keeper.on_ask("coap://m1", ASK_M1._replace(n=9)) == "granted"
    assert keeper.witness.grant_for("coap://m1") == Grant(6, 9)
    assert keeper.on_ask("coap://m2", ASK_M1._replace(manager="m2", term=7)) == (
        "refused: restarted while granted to m1; a witness again in 8.0 s")


def test_keeper_with_a_broken_file_grants_nothing_and_keeps_it(tmp_path):
    (tmp_path / "witness.json").write_text("garbage")
    keeper = witness.WitnessKeeper(str(tmp_path), priority_window=2.0, clock=Clock())
    assert keeper.enabled is False
    assert keeper.on_ask("coap://m1", ASK_M1) == "refused: %s" % keeper.broken
    assert keeper.broken.startswith("witness file %s: Expecting value" % (tmp_path / "witness.json"))
    assert keeper.persist() is False
    assert (tmp_path / "witness.json").read_text() == "garbage"
