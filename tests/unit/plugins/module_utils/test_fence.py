# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fencing at the nodes: the term checks (lower, equal, higher, missing and corrupt files), what is
written, and two fenced runs racing on one node."""

from __future__ import annotations

import json
import multiprocessing
import os
import pathlib
import re
import stat
import time
import typing as t

import pytest

from ansible_collections.nanoedge.core.plugins.module_utils import _fence as fence
from ansible_collections.nanoedge.core.plugins.module_utils._fence import (
    FenceCorrupt, FenceError, FenceRefused, FenceResult, Seen, check_and_record)

UPDATED = "2026-12-05T19:00:00Z"
CONTRACTS = pathlib.Path(__file__).resolve().parents[4] / "docs" / "contracts.md"


def write(path: pathlib.Path, value: t.Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(value if isinstance(value, bytes) else json.dumps(value).encode())


def witness(highest: int, holder: t.Optional[str] = None, term: t.Optional[int] = None) -> t.Dict[str, t.Any]:
    return {"highest_term": highest, "holder": holder, "term": highest if term is None else term, "updated": UPDATED}


def files(tmp_path: pathlib.Path, fence_file: t.Any, witness_file: t.Any) -> t.Tuple[str, str]:
    path, witness_path = tmp_path / "lib" / "fence.json", tmp_path / "agent" / "witness.json"
    if fence_file is not None:
        write(path, fence_file)
    if witness_file is not None:
        write(witness_path, witness_file)
    return str(path), str(witness_path)


@pytest.mark.parametrize("fence_file, witness_file, term, manager, expected", [
    # no file: the first term is recorded
    (None, None, 1, "m1", FenceResult(True, None, Seen(0, None), Seen(0, None))),
    # higher than the fence file: recorded
    ({"term": 7, "manager": "m2", "updated": UPDATED}, None, 9, "m1",
     FenceResult(True, Seen(7, "m2"), Seen(0, None), Seen(7, "m2"))),
    # equal: accepted, nothing to record
    ({"term": 9, "manager": "m1", "updated": UPDATED}, None, 9, "m1",
     FenceResult(False, Seen(9, "m1"), Seen(0, None), Seen(9, "m1"))),
    # a fence file without its time stamp is still a record
    ({"term": 9, "manager": "m1"}, None, 10, "m2",
     FenceResult(True, Seen(9, "m1"), Seen(0, None), Seen(9, "m1"))),
    # the witness alone: its highest term, with the holder of that term
    (None, witness(9, "m2"), 9, "m2", FenceResult(True, None, Seen(9, "m2"), Seen(9, "m2"))),
    (None, witness(9, "m2"), 11, "m1", FenceResult(True, None, Seen(9, "m2"), Seen(9, "m2"))),
    # the witness granted a higher term than the fence file holds: that term is matched, and recorded
    ({"term": 5, "manager": "m1", "updated": UPDATED}, witness(8), 8, "m2",
     FenceResult(True, Seen(5, "m1"), Seen(8, None), Seen(8, None))),
    # the witness lower than the fence file: the fence file decides
    ({"term": 8, "manager": "m2", "updated": UPDATED}, witness(3, "m1"), 8, "m2",
     FenceResult(False, Seen(8, "m2"), Seen(3, "m1"), Seen(8, "m2"))),
    # a worker that never granted (highest 0, no holder)
    (None, witness(0), 1, "m1", FenceResult(True, None, Seen(0, None), Seen(0, None))),
    # the holder's grant is of an older term than the highest: the highest's manager is not known
    (None, witness(9, "m1", term=6), 9, "m1", FenceResult(True, None, Seen(9, None), Seen(9, None))),
    # the largest term a JSON number carries exactly
    ({"term": 2 ** 53 - 1, "manager": "m1"}, None, 2 ** 53, "m2",
     FenceResult(True, Seen(2 ** 53 - 1, "m1"), Seen(0, None), Seen(2 ** 53 - 1, "m1"))),
])
def test_accepted(tmp_path, fence_file, witness_file, term, manager, expected):
    path, witness_path = files(tmp_path, fence_file, witness_file)
    assert check_and_record(path, witness_path, term, manager, updated=UPDATED) == expected
    recorded = json.loads(pathlib.Path(path).read_text())
    if expected.changed:
        assert recorded == {"term": term, "manager": manager, "updated": UPDATED}
    else:
        assert recorded == fence_file


@pytest.mark.parametrize("fence_file, witness_file, term, manager, message, highest", [
    ({"term": 9, "manager": "m2", "updated": UPDATED}, None, 7, "m1",
     "fence: refused the change from manager m1 at term 7: this node has seen term 9 (manager m2)", 9),
    (None, witness(9, "m2"), 7, "m1",
     "fence: refused the change from manager m1 at term 7: this node has seen term 9 (manager m2)", 9),
    # the witness is higher than the fence file
    ({"term": 6, "manager": "m1", "updated": UPDATED}, witness(9, "m2"), 7, "m1",
     "fence: refused the change from manager m1 at term 7: this node has seen term 9 (manager m2)", 9),
    # the agent's grant of that term has lapsed: no holder to name
    (None, witness(9), 8, "m1",
     "fence: refused the change from manager m1 at term 8: this node has seen term 9 (granted by this node's agent)",
     9),
    ({"term": 9, "manager": "m2", "updated": UPDATED}, None, 9, "m1",
     "fence: refused the change from manager m1 at term 9: this node has seen term 9 (manager m2); a term belongs "
     "to one manager only", 9),
    (None, witness(9, "m2"), 9, "m1",
     "fence: refused the change from manager m1 at term 9: this node has seen term 9 (manager m2); a term belongs "
     "to one manager only", 9),
])
def test_refused(tmp_path, fence_file, witness_file, term, manager, message, highest):
    path, witness_path = files(tmp_path, fence_file, witness_file)
    before = pathlib.Path(path).read_bytes() if fence_file is not None else None
    with pytest.raises(FenceRefused) as exc:
        check_and_record(path, witness_path, term, manager, updated=UPDATED)
    assert (str(exc.value), exc.value.highest) == (message, highest)
    assert (pathlib.Path(path).read_bytes() if pathlib.Path(path).exists() else None) == before


CORRUPT_FENCE = [
    (b"", "it is not JSON (Expecting value: line 1 column 1 (char 0))"),
    (b"{\"term\": 9,", "it is not JSON (Expecting property name enclosed in double quotes: line 1 column 12 (char 11))"),
    (b"\xff\xfe", "it is not UTF-8 text"),
    (b" " * 4097, "it is larger than 4096 bytes"),
    ([9, "m1"], "it is not a JSON object"),
    ("9", "it is not a JSON object"),
    ({"manager": "m1"}, "it has no term"),
    ({"term": 9}, "it has no manager"),
    ({"term": True, "manager": "m1"}, "term is true, not an integer from 1 to 9007199254740992"),
    ({"term": -3, "manager": "m1"}, "term is -3, not an integer from 1 to 9007199254740992"),
    ({"term": 0, "manager": "m1"}, "term is 0, not an integer from 1 to 9007199254740992"),
    ({"term": 9.0, "manager": "m1"}, "term is 9.0, not an integer from 1 to 9007199254740992"),
    ({"term": "9", "manager": "m1"}, "term is \"9\", not an integer from 1 to 9007199254740992"),
    ({"term": 2 ** 53 + 1, "manager": "m1"}, "term is 9007199254740993, not an integer from 1 to 9007199254740992"),
    ({"term": 10 ** 400, "manager": "m1"}, "term is %d, not an integer from 1 to 9007199254740992" % 10 ** 400),
    ({"term": 9, "manager": ""}, "manager is \"\", not a manager's name"),
    ({"term": 9, "manager": None}, "manager is null, not a manager's name"),
    ({"term": 9, "manager": "m1", "updated": 5}, "updated is 5, not a time stamp"),
]


@pytest.mark.parametrize("content, why", CORRUPT_FENCE)
@pytest.mark.parametrize("term", [1, 9, 10, 2 ** 53])
def test_a_corrupt_fence_file_accepts_no_term_and_is_left_alone(tmp_path, content, why, term):
    path, witness_path = files(tmp_path, content, None)
    before = pathlib.Path(path).read_bytes()
    with pytest.raises(FenceCorrupt) as exc:
        check_and_record(path, witness_path, term, "m1", updated=UPDATED)
    assert str(exc.value) == ("fence: the fence file %s is corrupt: %s; this node accepts no change until it is "
                              "repaired" % (path, why))
    assert pathlib.Path(path).read_bytes() == before


@pytest.mark.parametrize("content, why", [
    (b"not json", "it is not JSON (Expecting value: line 1 column 1 (char 0))"),
    ([], "it is not a JSON object"),
    ({"holder": "m1", "term": 9}, "it has no highest_term"),
    (witness(-1), "highest_term is -1, not an integer from 0 to 9007199254740992"),
    (dict(witness(9), highest_term=False), "highest_term is false, not an integer from 0 to 9007199254740992"),
    (dict(witness(9), highest_term=2 ** 53 + 1),
     "highest_term is 9007199254740993, not an integer from 0 to 9007199254740992"),
    (dict(witness(9), holder=7), "holder is 7, not a manager's name or null"),
    (dict(witness(9), term="9"), "term is \"9\", not an integer from 0 to 9007199254740992"),
    (dict(witness(9), updated=None), "updated is null, not a time stamp"),
])
def test_a_corrupt_witness_file_accepts_no_term(tmp_path, content, why):
    path, witness_path = files(tmp_path, {"term": 3, "manager": "m1", "updated": UPDATED}, content)
    with pytest.raises(FenceCorrupt) as exc:
        check_and_record(path, witness_path, 12, "m1", updated=UPDATED)
    assert str(exc.value) == ("fence: the witness file %s is corrupt: %s; this node accepts no change until it is "
                              "repaired" % (witness_path, why))
    assert json.loads(pathlib.Path(path).read_text()) == {"term": 3, "manager": "m1", "updated": UPDATED}


def test_a_folder_in_place_of_the_fence_file_is_corrupt(tmp_path):
    path, witness_path = files(tmp_path, None, None)
    os.makedirs(path)
    with pytest.raises(FenceCorrupt, match=r"the fence file .* is corrupt: it is a folder;"):
        check_and_record(path, witness_path, 3, "m1")


@pytest.mark.parametrize("term, manager, message", [
    (0, "m1", "fence: term must be an integer from 1 to 9007199254740992, got 0"),
    (-1, "m1", "fence: term must be an integer from 1 to 9007199254740992, got -1"),
    (True, "m1", "fence: term must be an integer from 1 to 9007199254740992, got True"),
    (2 ** 53 + 1, "m1", "fence: term must be an integer from 1 to 9007199254740992, got 9007199254740993"),
    (3, "", "fence: manager must be a name (printable, no spaces), got ''"),
    (3, "m 1", "fence: manager must be a name (printable, no spaces), got 'm 1'"),
    (3, "m1\n", "fence: manager must be a name (printable, no spaces), got 'm1\\n'"),
])
def test_a_bad_request_is_refused_before_any_file_is_touched(tmp_path, term, manager, message):
    path, witness_path = files(tmp_path, None, None)
    with pytest.raises(FenceError) as exc:
        check_and_record(path, witness_path, term, manager)
    assert str(exc.value) == message
    assert not pathlib.Path(path).parent.exists()


@pytest.mark.parametrize("fence_file, term, changed", [
    (None, 4, True),
    ({"term": 3, "manager": "m1", "updated": UPDATED}, 4, True),
    ({"term": 4, "manager": "m1", "updated": UPDATED}, 4, False),
])
def test_check_mode_writes_nothing(tmp_path, fence_file, term, changed):
    path, witness_path = files(tmp_path, fence_file, None)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    found = check_and_record(path, witness_path, term, "m1", check_mode=True)
    assert found.changed is changed
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before
    if fence_file is not None:
        assert json.loads(pathlib.Path(path).read_text()) == fence_file


def test_check_mode_refuses_too(tmp_path):
    path, witness_path = files(tmp_path, None, witness(9, "m2"))
    with pytest.raises(FenceRefused):
        check_and_record(path, witness_path, 7, "m1", check_mode=True)


def test_the_written_file_its_mode_its_folder_and_the_lock(tmp_path):
    path, witness_path = files(tmp_path, None, None)
    old_umask = os.umask(0o077)
    try:
        check_and_record(path, witness_path, 9, "m1", updated=UPDATED)
    finally:
        os.umask(old_umask)
    written = pathlib.Path(path)
    assert written.read_text() == '{"term": 9, "manager": "m1", "updated": "2026-12-05T19:00:00Z"}\n'
    assert stat.S_IMODE(written.stat().st_mode) == 0o644
    assert stat.S_IMODE(written.parent.stat().st_mode) == 0o755
    assert stat.S_IMODE(pathlib.Path(path + ".lock").stat().st_mode) == 0o600
    # no temporary file is left beside it
    assert sorted(p.name for p in written.parent.iterdir()) == ["fence.json", "fence.json.lock"]


def test_the_time_stamp_is_utc_now(tmp_path):
    path, witness_path = files(tmp_path, None, None)
    check_and_record(path, witness_path, 2, "m2")
    updated = json.loads(pathlib.Path(path).read_text())["updated"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", updated)
    assert abs(time.mktime(time.strptime(updated, "%Y-%m-%dT%H:%M:%SZ")) - time.mktime(time.gmtime())) < 5


def test_a_second_run_with_the_same_term_changes_nothing(tmp_path):
    path, witness_path = files(tmp_path, None, None)
    assert check_and_record(path, witness_path, 5, "m2", updated=UPDATED).changed is True
    stamp = os.stat(path).st_mtime_ns
    assert check_and_record(path, witness_path, 5, "m2", updated="2030-01-01T00:00:00Z").changed is False
    assert os.stat(path).st_mtime_ns == stamp


def _race(path: str, witness_path: str, term: int, manager: str, start: t.Any, out: t.Any) -> None:
    start.wait()
    try:
        found = check_and_record(path, witness_path, term, manager, updated=UPDATED)
        out.put((term, "recorded" if found.changed else "unchanged", found.previous.term if found.previous else 0))
    except FenceRefused as exc:
        out.put((term, "refused", exc.highest))


@pytest.mark.parametrize("attempt", range(3))
def test_two_runs_racing_are_serialised(tmp_path, monkeypatch, attempt):
    """Terms 5 and 6 at once: 6 ends recorded, and 5 is refused when it comes second. The write is
    slowed down so that without the lock both would read the missing file and both write."""
    path, witness_path = files(tmp_path, None, None)
    slow_write = fence._write_atomically

    def slowly(*args: t.Any) -> None:
        time.sleep(0.3)
        slow_write(*args)

    monkeypatch.setattr(fence, "_write_atomically", slowly)
    context = multiprocessing.get_context("fork")
    start, out = context.Barrier(2), context.Queue()
    runs = [context.Process(target=_race, args=(path, witness_path, term, manager, start, out))
            for term, manager in ((5, "m2"), (6, "m3"))]
    for run in runs:
        run.start()
    outcomes = sorted(out.get(timeout=20) for _run in runs)
    for run in runs:
        run.join(timeout=20)
        assert run.exitcode == 0
    assert outcomes in ([(5, "recorded", 0), (6, "recorded", 5)], [(5, "refused", 6), (6, "recorded", 0)])
    assert json.loads(pathlib.Path(path).read_text()) == {"term": 6, "manager": "m3", "updated": UPDATED}


def test_the_contract_names_every_key_of_both_files():
    text = CONTRACTS.read_text(encoding="utf-8")
    start = text.index("\n## Fencing\n")
    end = text.find("\n## ", start + 1)
    section = text[start:end if end != -1 else len(text)]
    # outside the fenced examples, whose fences would pair up with the spans
    spans = set(re.findall(r"`([^`]+)`", re.sub(r"^```.*?^```$", "", section, flags=re.M | re.S)))
    assert [key for key in fence.FENCE_KEYS + fence.WITNESS_KEYS if key not in spans] == []
    assert {fence.DEFAULT_PATH, fence.DEFAULT_WITNESS_PATH, str(fence.MAX_TERM)} <= spans
