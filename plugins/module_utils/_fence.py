# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fencing at the nodes (docs/contracts.md, "Fencing"): a node refuses a change from a manager whose
term is below the highest term it has seen.

A node learns terms two ways: from the changes managers make (each fenced run records its term in the
fence file) and from its agent, which persists the highest term it ever granted in the witness file
before the grant leaves the node. The highest of the two is what a change must match or beat: a
manager that lost its majority has a lower term than whoever won it, so once the winner touched the
node, or the node's agent granted the winner, the loser can change nothing here, even before it
notices that it lost.

Check and record happen under an exclusive ``flock`` on ``<fence file>.lock``: two fenced runs on one
node are serialised, so a lower term that comes second is refused rather than read beside a higher
one and written over it. The fence file is replaced atomically (temporary file, fsync, rename), so a
reader sees the old record or the new one, never a torn one. A file that cannot be trusted (not JSON,
not an object, a term that is not an integer in range) is never rewritten and accepts no term: a
node that cannot tell which term it has seen must not guess.

Standard library only: this runs on the nodes (module nanoedge.core.fence).
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._atomic import write_atomically
from ansible_collections.nanoedge.core.plugins.module_utils._leadership import MAX_TERM

DEFAULT_PATH = "/var/lib/nanoedge/fence.json"
DEFAULT_WITNESS_PATH = "/var/lib/nanoedge-agent/witness.json"
FENCE_KEYS = ("term", "manager", "updated")
WITNESS_KEYS = ("highest_term", "holder", "term", "updated")
# Both files are tens of bytes; anything much larger is not one of them.
MAX_FILE_BYTES = 4096
FILE_MODE = 0o644
FOLDER_MODE = 0o755
# Only root fences: a lock others could open (flock works on a read-only descriptor) would let any
# user hold every deploy.
LOCK_MODE = 0o600


class FenceError(Exception):
    """The fence cannot decide; the message says what is at fault."""


class FenceRefused(FenceError):
    """A change from a term lower than the highest this node has seen."""

    def __init__(self, message: str, highest: int) -> None:
        super().__init__(message)
        self.highest = highest


class FenceCorrupt(FenceError):
    """The fence file or the witness file cannot be trusted; no term is accepted."""


class Seen(t.NamedTuple):
    """A term the node has seen, and the manager it belongs to when the node knows it."""
    term: int
    manager: t.Optional[str]


class FenceResult(t.NamedTuple):
    changed: bool
    previous: t.Optional[Seen]   # the fence file's record before this run (None: no file)
    witness: Seen                # the witness file's highest term (0: no file)
    highest: Seen                # the highest term the node had seen before this run


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _is_term(value: t.Any, minimum: int) -> bool:
    # bool is an int in Python and true is not a term.
    return isinstance(value, int) and not isinstance(value, bool) and minimum <= value <= MAX_TERM


def _is_name(value: t.Any) -> bool:
    return isinstance(value, str) and value != "" and value.isprintable() and not any(c.isspace() for c in value)


def validate_request(term: t.Any, manager: t.Any) -> None:
    if not _is_term(term, 1):
        raise FenceError("fence: term must be an integer from 1 to %d, got %r" % (MAX_TERM, term))
    if not _is_name(manager):
        raise FenceError("fence: manager must be a name (printable, no spaces), got %r" % (manager,))


def _load(path: str, what: str) -> t.Optional[t.Dict[str, t.Any]]:
    """The file's JSON object, or None when there is no file."""
    def corrupt(why: str) -> FenceCorrupt:
        return FenceCorrupt("fence: the %s %s is corrupt: %s; this node accepts no change until it is repaired"
                            % (what, path, why))

    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise corrupt("it is a folder") from None
    except OSError as exc:
        raise FenceError("fence: cannot read the %s %s: %s" % (what, path, exc.strerror or exc)) from None
    if len(data) > MAX_FILE_BYTES:
        raise corrupt("it is larger than %d bytes" % MAX_FILE_BYTES)
    try:
        value = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise corrupt("it is not UTF-8 text") from None
    except ValueError as exc:
        raise corrupt("it is not JSON (%s)" % exc) from None
    if not isinstance(value, dict):
        raise corrupt("it is not a JSON object")
    return value


def _check_fields(value: t.Dict[str, t.Any], path: str, what: str,
                  checks: t.Sequence[t.Tuple[str, bool, t.Callable[[t.Any], bool], str]]) -> None:
    """Each (key, required, is_valid, expected): a missing required key or an invalid value is corruption."""
    for key, required, is_valid, expected in checks:
        if key not in value:
            if required:
                raise FenceCorrupt("fence: the %s %s is corrupt: it has no %s; this node accepts no change until it "
                                   "is repaired" % (what, path, key))
            continue
        if not is_valid(value[key]):
            raise FenceCorrupt("fence: the %s %s is corrupt: %s is %s, not %s; this node accepts no change until it "
                               "is repaired" % (what, path, key, json.dumps(value[key]), expected))


def read_fence(path: str) -> t.Optional[Seen]:
    """The fence file's record, or None when there is none."""
    value = _load(path, "fence file")
    if value is None:
        return None
    _check_fields(value, path, "fence file", (
        ("term", True, lambda v: _is_term(v, 1), "an integer from 1 to %d" % MAX_TERM),
        ("manager", True, _is_name, "a manager's name"),
        ("updated", False, lambda v: isinstance(v, str), "a time stamp"),
    ))
    return Seen(value["term"], value["manager"])


def read_witness(path: str) -> Seen:
    """The highest term the node's agent ever granted (0 without a witness file), with its manager
    when the agent's current grant is of that term."""
    value = _load(path, "witness file")
    if value is None:
        return Seen(0, None)
    _check_fields(value, path, "witness file", (
        ("highest_term", True, lambda v: _is_term(v, 0), "an integer from 0 to %d" % MAX_TERM),
        ("holder", False, lambda v: v is None or _is_name(v), "a manager's name or null"),
        ("term", False, lambda v: _is_term(v, 0), "an integer from 0 to %d" % MAX_TERM),
        ("updated", False, lambda v: isinstance(v, str), "a time stamp"),
    ))
    highest = value["highest_term"]
    holder = value.get("holder") if value.get("term") == highest else None
    return Seen(highest, holder)


def highest_seen(previous: t.Optional[Seen], witness: Seen) -> Seen:
    """The higher of the two; on a tie the fence file's, which always names its manager."""
    if previous is not None and previous.term >= witness.term:
        return previous
    return witness


def check(term: int, manager: str, highest: Seen) -> None:
    """Raise FenceRefused unless a change at ``term`` from ``manager`` may go ahead."""
    source = "manager %s" % highest.manager if highest.manager else "granted by this node's agent"
    if term < highest.term:
        raise FenceRefused("fence: refused the change from manager %s at term %d: this node has seen term %d (%s)"
                           % (manager, term, highest.term, source), highest.term)
    # Each term belongs to one manager (t % M == its index): another name at the same term means the
    # managers disagree about who is who, and neither can be trusted to be the only one acting.
    if term == highest.term and highest.manager and highest.manager != manager:
        raise FenceRefused("fence: refused the change from manager %s at term %d: this node has seen term %d (%s); "
                           "a term belongs to one manager only" % (manager, term, highest.term, source), highest.term)


def fence_content(term: int, manager: str, updated: str) -> str:
    return json.dumps({"term": term, "manager": manager, "updated": updated}) + "\n"


def _make_folder(folder: str) -> None:
    if not os.path.isdir(folder):
        os.makedirs(folder, FOLDER_MODE, exist_ok=True)
        # the umask may have taken bits away; the agent and operators read this folder
        os.chmod(folder, FOLDER_MODE)


def _write_atomically(path: str, content: str) -> None:
    """Readers see the old file or the new one, never a torn one, even after a power cut."""
    write_atomically(path, content, mode=FILE_MODE)


def _decide(path: str, witness_path: str, term: int, manager: str) -> FenceResult:
    previous = read_fence(path)
    witness = read_witness(witness_path)
    highest = highest_seen(previous, witness)
    check(term, manager, highest)
    changed = previous is None or term > previous.term
    return FenceResult(changed, previous, witness, highest)


def check_and_record(path: str, witness_path: str, term: int, manager: str, check_mode: bool = False,
                     updated: t.Optional[str] = None) -> FenceResult:
    """Refuse a change at ``term`` from ``manager`` below the highest term the node has seen, or record
    ``term`` in the fence file when it is higher than the one recorded (``changed``).

    In check mode nothing is written, not even the lock file or the folder: the decision is made on
    the files as they are (each is replaced whole, so a reader never sees one half-written).
    """
    validate_request(term, manager)
    if check_mode:
        return _decide(path, witness_path, term, manager)
    try:
        _make_folder(os.path.dirname(path) or ".")
        lock_fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, LOCK_MODE)
    except OSError as exc:
        raise FenceError("fence: cannot open the lock file %s.lock: %s" % (path, exc.strerror or exc)) from None
    try:
        # Held from the read to the rename: a concurrent fenced run waits, then sees this term.
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        result = _decide(path, witness_path, term, manager)
        if result.changed:
            try:
                _write_atomically(path, fence_content(term, manager, updated or now_iso()))
            except OSError as exc:
                raise FenceError("fence: cannot write the fence file %s: %s" % (path, exc.strerror or exc)) from None
        return result
    finally:
        # closing the descriptor releases the lock
        os.close(lock_fd)
