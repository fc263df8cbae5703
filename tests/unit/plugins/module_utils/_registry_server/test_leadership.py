# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PUT/GET /leadership rendered directly with an injected clock, the term
file (atomic, refused when corrupt) and the registry's leadership options."""

from __future__ import annotations

import asyncio
import json
import os
import typing as t

import pytest
from aiocoap import Message
from aiocoap.numbers.codes import Code

from ansible_collections.nanoedge.core.plugins.module_utils._coap import CF_JSON
from ansible_collections.nanoedge.core.plugins.module_utils._leadership import GrantBook, LeadershipError
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server import cli
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.leadership import (
    TERM_FILE, Leadership, LeadershipResource, TermFileError, parse_candidacy, read_term, write_term,
)
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.resources import diagnostic


class Clock:
    def __init__(self, now: float = 500.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Remote:
    def __init__(self, *claims: str) -> None:
        self.authenticated_claims = claims


class Face:
    """/leadership of m2 (second of two managers) among five members."""

    def __init__(self, folder: str, security: bool = False, highest: int = 0) -> None:
        self.clock = Clock()
        self.path = os.path.join(folder, TERM_FILE)
        self.book = GrantBook("m2", ["m1", "m2"], ["m1", "m2", "w1", "w2", "w3"], highest_term=highest,
                              clock=self.clock)
        self.leadership = Leadership(self.book, self.path, highest)
        self.resource = LeadershipResource(self.leadership, security, frozenset(["m1", "m2", "controller"]), diagnostic)

    def request(self, code: Code, payload: t.Any = None, remote: t.Any = None) -> Message:
        body = b"" if payload is None else payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        request = Message(code=code, payload=body, content_format=CF_JSON if body else None)
        if remote is not None:
            request.remote = remote
        return asyncio.run(self.resource.render(request))


def status(response: Message) -> t.Dict[str, t.Any]:
    assert response.code in (Code.CHANGED, Code.CONTENT), response.payload
    return json.loads(response.payload)


def test_candidacy_status_and_its_ttl(tmp_path) -> None:
    face = Face(str(tmp_path))
    assert status(face.request(Code.GET)) == {
        "manager": "m2", "candidate": False, "term": 0, "leader": False, "lease_remaining": 0.0, "granted_by": [],
        "members": 5, "majority": 3, "highest_term": 0}
    # the second manager stands one lease after it started (the first one's asks go first)
    assert status(face.request(Code.PUT, {"candidate": True, "ttl": 3.0}))["candidate"] is False
    face.clock.now += 4.0
    answer = status(face.request(Code.PUT, {"candidate": True, "ttl": 3.0}))
    assert (answer["candidate"], answer["term"], answer["leader"]) == (True, 1, False)
    assert read_term(face.path) == 1  # on disk before any ask carries it
    face.clock.now += 2.0
    assert status(face.request(Code.PUT, {"candidate": True, "ttl": 3.0}))["term"] == 1  # a renewal keeps the term
    face.clock.now += 3.5
    assert status(face.request(Code.GET))["candidate"] is False  # not renewed within its ttl
    assert status(face.request(Code.PUT, {"candidate": True, "ttl": 1}))["term"] == 3  # a new candidacy, a new term
    assert status(face.request(Code.PUT, {"candidate": False}))["candidate"] is False
    assert read_term(face.path) == 3


def test_terms_keep_growing_across_restarts(tmp_path) -> None:
    first = Face(str(tmp_path))
    first.clock.now += 4.0
    first.request(Code.PUT, {"candidate": True, "ttl": 3.0})
    again = Face(str(tmp_path), highest=read_term(first.path))
    again.clock.now += 4.0
    assert status(again.request(Code.PUT, {"candidate": True, "ttl": 3.0}))["term"] == 3


@pytest.mark.parametrize("payload, expected", [
    ({"candidate": "yes"}, "invalid candidacy: candidacy.candidate must be true or false, got 'yes'"),
    ({"candidate": True}, "invalid candidacy: candidacy.ttl must be a number of seconds in (0, 60], got None"),
    ({"candidate": True, "ttl": 0}, "invalid candidacy: candidacy.ttl must be a number of seconds in (0, 60], got 0"),
    ({"candidate": True, "ttl": 61}, "invalid candidacy: candidacy.ttl must be a number of seconds in (0, 60], got 61"),
    ({"candidate": True, "ttl": True}, "invalid candidacy: candidacy.ttl must be a number of seconds in (0, 60],"
                                       " got True"),
    ({"candidate": True, "ttl": 3, "term": 9}, "invalid candidacy: candidacy has unknown key(s) term"),
    ([], "invalid candidacy: candidacy must be an object, got list"),
    (b"{", "malformed JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
])
def test_a_malformed_candidacy_is_refused(tmp_path, payload: t.Any, expected: str) -> None:
    face = Face(str(tmp_path))
    response = face.request(Code.PUT, payload)
    assert (str(response.code), response.payload.decode().split(": ", 1)[1]) == ("4.00 Bad Request", expected)
    assert face.book.term == 0


@pytest.mark.parametrize("value, expected", [({"candidate": False}, None), ({"candidate": False, "ttl": 3}, None),
                                             ({"candidate": True, "ttl": 2}, 2.0), ({"candidate": True, "ttl": 0.5}, 0.5)])
def test_parse_candidacy(value: t.Any, expected: t.Optional[float]) -> None:
    assert parse_candidacy(value) == expected


@pytest.mark.parametrize("code, remote, expected", [
    (Code.PUT, None, "4.01 Unauthorized: nanoedge.core.registry: writing /leadership needs OSCORE as node 'm2'"),
    (Code.PUT, Remote(":m1"), "4.01 Unauthorized: nanoedge.core.registry: OSCORE identity 'm1' may not write /leadership"),
    (Code.PUT, Remote(":w1"), "4.01 Unauthorized: nanoedge.core.registry: OSCORE identity 'w1' may not write /leadership"),
    (Code.PUT, Remote(":m2"), "2.04 Changed"),
    (Code.PUT, Remote(":m2+site"), "2.04 Changed"),
    (Code.GET, Remote(":w1"), "4.01 Unauthorized: nanoedge.core.registry: reading /leadership needs OSCORE as one of"
                              " the managers"),
    (Code.GET, Remote(":m1"), "2.05 Content"),
    (Code.POST, Remote(":m2"), "4.05 Method Not Allowed: nanoedge.core.registry: POST is not allowed on /leadership"
                               " (GET, PUT)"),
])
def test_under_security_only_the_manager_itself_stands(tmp_path, code: Code, remote: t.Any, expected: str) -> None:
    face = Face(str(tmp_path), security=True)
    payload = {"candidate": True, "ttl": 3} if code != Code.GET else None
    response = face.request(code, payload, remote or object())
    got = str(response.code) if response.code.is_successful() else "%s: %s" % (response.code, response.payload.decode())
    assert got == expected


def test_the_term_file_is_written_atomically(tmp_path) -> None:
    path = str(tmp_path / TERM_FILE)
    assert read_term(path) == 0
    write_term(path, 9, "m1")
    write_term(path, 11, "m1")
    content = json.loads((tmp_path / TERM_FILE).read_text())
    assert (content["highest_term"], content["manager"]) == (11, "m1")
    assert sorted(os.listdir(str(tmp_path))) == [TERM_FILE]  # no temporary file left behind
    assert oct(os.stat(path).st_mode & 0o777) == "0o644"


@pytest.mark.parametrize("content, why", [
    (b"", "Expecting value: line 1 column 1 (char 0)"),
    (b"{\"highest_term\": 9", "Expecting ',' delimiter: line 1 column 19 (char 18)"),
    (b"[9]", "not a JSON object with highest_term"),
    (b"{\"term\": 9}", "not a JSON object with highest_term"),
    (b"{\"highest_term\": -1}", "highest_term must be an integer from 0 to 2**53, got -1"),
    (b"{\"highest_term\": \"9\"}", "highest_term must be an integer from 0 to 2**53, got '9'"),
    (b"\xff\xfe", "'utf-8' codec can't decode byte 0xff in position 0: invalid start byte"),
])
def test_a_corrupt_term_file_stops_the_registry_naming_the_file(tmp_path, content: bytes, why: str) -> None:
    path = tmp_path / TERM_FILE
    path.write_bytes(content)
    expected = ("nanoedge.core.registry: the leadership term file %s is corrupt (%s); the registry does not start with"
                " an unknown term: restore the file, or remove it to start from the terms the members report"
                % (path, why))
    with pytest.raises(TermFileError) as caught:
        read_term(str(path))
    assert str(caught.value) == expected
    with pytest.raises(SystemExit) as stopped:
        cli.main(["--db", str(tmp_path / "registry.sqlite"), "--port", "0", "--name", "m1"])
    assert str(stopped.value) == expected


def test_no_term_file_is_read_without_leadership(tmp_path) -> None:
    (tmp_path / TERM_FILE).write_bytes(b"garbage")
    args = cli.parse_args(["--db", str(tmp_path / "registry.sqlite")])
    assert (args.name, args.cluster_managers, args.members) == ("", [], [])


@pytest.mark.parametrize("argv, expected", [
    (["--name", "m2", "--cluster-managers", "m1,m2", "--members", "w1, w2,m1,w1"],
     ("m2", ["m1", "m2"], ["w1", "w2", "m1"], 2.0, 3.5, 4.0, 0.05)),
    (["--name", "m1", "--suspect-after", "1", "--confirm-after", "1.5", "--lease", "6", "--clock-drift", "0.1"],
     ("m1", ["m1"], ["m1"], 1.0, 1.5, 6.0, 0.1)),
])
def test_leadership_options(tmp_path, argv: t.List[str], expected: t.Tuple[t.Any, ...]) -> None:
    args = cli.parse_args(["--db", str(tmp_path / "r.sqlite")] + argv)
    assert (args.name, args.cluster_managers, args.members, args.suspect_after, args.confirm_after, args.lease,
            args.clock_drift) == expected


def test_members_from_a_file(tmp_path) -> None:
    listing = tmp_path / "members"
    listing.write_text("w1\n# a comment\nw2  # trailing\n\nm1\n")
    args = cli.parse_args(["--db", str(tmp_path / "r.sqlite"), "--name", "m1", "--members", "w9",
                           "--members-file", str(listing)])
    assert args.members == ["w9", "w1", "w2", "m1"]


@pytest.mark.parametrize("argv, message", [
    (["--suspect-after", "4"], "need 0 < --suspect-after < --confirm-after"),
    (["--suspect-after", "0"], "need 0 < --suspect-after < --confirm-after"),
    (["--lease", "0"], "--lease must be more than 0 and at most 60 seconds"),
    (["--clock-drift", "0.5"], "--clock-drift must be from 0 to less than 0.5"),
    (["--name", "m3", "--cluster-managers", "m1,m2"], "--name m3 is not one of --cluster-managers (m1, m2)"),
    (["--name", "M1"], "--name: 'M1' is not a node name"),
    (["--members", "w1,w 2"], "--members: 'w 2' is not a node name"),
    (["--members-file", "/nonexistent/members"], "--members-file: [Errno 2] No such file or directory"),
])
def test_bad_leadership_options(tmp_path, capsys: pytest.CaptureFixture, argv: t.List[str], message: str) -> None:
    with pytest.raises(SystemExit):
        cli.parse_args(["--db", str(tmp_path / "r.sqlite")] + argv)
    assert message in capsys.readouterr().err


def test_the_grant_book_refuses_what_the_options_let_through() -> None:
    # the options check the same rules first; this is the book's own guard
    with pytest.raises(LeadershipError, match="manager m3 is not one of the managers"):
        GrantBook("m3", ["m1"], [])
